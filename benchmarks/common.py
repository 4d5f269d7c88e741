"""Shared by the asv benchmarks: which designs and workloads to measure.

Both lists come from the *installed* execbench (the registry and the
workload catalog), never from a hard-coded list, so each commit is measured
on its own designs and traces.  Keep this module light: asv imports it at
discovery.

``EXECBENCH_BENCH_MAX_EVENTS`` (unset = no limit) drops workloads with more
events than that -- the test suite's quick check sets it so that a broken
benchmark fails fast without replaying the biggest traces; real ``asv run``
leaves it unset.  ``EXECBENCH_BENCH_DESIGNS`` (comma-separated) likewise
limits the designs; asv starts one process per benchmark and parameter
combination, so the quick check runs one design through asv and calls
every track_* for every design in-process (tests/test_asv_suite.py).
"""
from __future__ import annotations

import os


def designs() -> list[str]:
    try:
        from execbench import registry
    except ImportError:     # an old commit without the package layout
        return []
    only = os.environ.get("EXECBENCH_BENCH_DESIGNS")
    names = list(registry.names())
    if only:
        keep = {x.strip() for x in only.split(",")}
        names = [n for n in names if n in keep]
    return names


def workloads() -> list[str]:
    try:
        from execbench.workloads import catalog
    except ImportError:
        return []
    limit = os.environ.get("EXECBENCH_BENCH_MAX_EVENTS")
    out = []
    for w in catalog.shipped():
        if limit and w.events > int(limit):
            continue
        out.append(w.name)
    return out


def load(workload: str):
    """The shipped trace called ``workload``; NotImplementedError (asv:
    skipped) when this commit does not ship it."""
    from execbench.trace import load_trace
    from execbench.workloads import catalog
    try:
        info = catalog.find(workload)
    except KeyError:
        raise NotImplementedError(f"workload {workload} not shipped at this commit") from None
    return load_trace(info.path, name=info.name)


def check_design(design: str) -> None:
    from execbench import registry
    if design not in registry.names():
        raise NotImplementedError(f"design {design} not registered at this commit")
