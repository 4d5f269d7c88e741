"""Resolve what a user typed after ``--workload``: a shipped workload's name
or a path to a trace file."""
from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .trace import Trace, TraceStream, load_trace


def resolve(ref: str | None, stream: bool = False) -> Trace | TraceStream:
    """Load the named shipped workload, the trace at a path, or (``None``)
    the default shipped workload; ``stream``: validate it for a streamed
    replay (:class:`~execbench.trace.TraceStream`) instead of loading it."""
    from .workloads import catalog

    load = TraceStream if stream else load_trace
    if ref is None:
        info = catalog.default()
        return load(info.path, name=info.name)
    p = Path(ref)
    if p.suffix in (".csv", ".gz") or p.exists():
        if not p.exists():
            raise UsageError(f"{ref}: no such trace file")
        return load(p)
    info = catalog.find(ref)         # UnknownName: a usage error, with a suggestion
    return load(info.path, name=info.name)
