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


#: the key of a replay's own speed in a :func:`replay_stats` entry (not a metric)
SPEED = "_replay"


def replay_stats(designs: list[str], seed: int = 0, machine: dict | None = None,
                 jobs: int = 0) -> dict:
    """``{(design, workload): {metric: {"final", "peak", "mean"}}}`` at ``seed``
    for every shipped workload: what the ``track_*`` benchmarks read.  Each
    entry also holds ``SPEED: {"wall_s", "events"}``, the wall time of that
    replay's event loop (``RunResult.wall_s``, what ``execbench run --json``
    reports as ``events_per_s``) for ``Metrics.track_replay_us_per_event``.

    The replays are independent, so they run on ``execbench.sweep`` with
    one process per CPU (``jobs=0``: auto, serial for small traces).  The
    sweep returns the same summaries as serial replays, in the same order
    (tests/test_sweep_parallel.py, tests/test_asv_suite.py), so the tracked
    numbers do not depend on how many CPUs the asv machine has.  Commits whose sweep cannot do that fall
    back to serial replays.  Only the wall time of ``setup_cache``
    changes, which asv does not record.
    """
    out: dict = {}
    for w in workloads():
        try:
            tr = load(w)
        except NotImplementedError:
            continue
        # one sweep per workload: only its summaries are kept, not every
        # design's per-event samples of every trace at once
        try:
            from execbench.sweep import sweep
            df, results = sweep([tr], designs, [seed], machine=machine, jobs=jobs)
        except (ImportError, TypeError):    # a commit without a parallel sweep
            from execbench.replay import run
            for d in designs:
                r = run(tr, d, seed=seed, progress=False, machine=machine)
                out[(d, w)] = {m: {"final": f, "peak": p, "mean": mean}
                               for m, (f, p, mean) in r.stats.items()}
                out[(d, w)][SPEED] = {"wall_s": float(r.wall_s), "events": float(r.events)}
            continue
        for row in df.itertuples(index=False):
            out.setdefault((row.design, w), {})[row.metric] = {
                "final": float(row.final), "peak": float(row.peak), "mean": float(row.mean)}
        for r in results or ():
            if hasattr(r, "wall_s") and (r.design, w) in out:   # a sweep that returns RunResults
                out[(r.design, w)][SPEED] = {"wall_s": float(r.wall_s), "events": float(r.events)}
    return out


def check_design(design: str) -> None:
    from execbench import registry
    if design not in registry.names():
        raise NotImplementedError(f"design {design} not registered at this commit")
