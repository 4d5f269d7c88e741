"""execbench: executable-memory allocator designs, compared on recorded workloads."""
__version__ = "0.1.0"
