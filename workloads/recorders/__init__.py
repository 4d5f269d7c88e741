"""Recorders: one module per artifact kind (kernel packages, libbpf-tools, a live host).

Each recorder reads a real artifact and writes a derived table or a trace; nothing here
keeps code or object bytes from the artifacts, only sizes, counts and names.
"""
