"""Resolve what a user typed after ``--workload``: a shipped workload's name
or a path to a trace file."""
from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .trace import Trace, load_trace


def resolve(ref: str | None) -> Trace:
    """Load the named shipped workload, the trace at a path, or (``None``)
    the default shipped workload."""
    from .workloads import catalog

    if ref is None:
        info = catalog.default()
        return load_trace(info.path, name=info.name)
    p = Path(ref)
    if p.suffix in (".csv", ".gz") or p.exists():
        if not p.exists():
            raise UsageError(f"{ref}: no such trace file")
        return load_trace(p)
    info = catalog.find(ref)         # UnknownName: a usage error, with a suggestion
    return load_trace(info.path, name=info.name)
