"""Recorded workloads: recorders that turn real artifacts into traces, and the shipped traces.

Installed as ``execbench.workloads``.  A workload knows nothing of designs: it only says
which user asked for what, and when (see docs/trace-schema.md).
"""
