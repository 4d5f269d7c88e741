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

# set in the parent just before forking the pool: the traces and the replay
# arguments, inherited by the workers instead of pickled per task
_FORK: dict = {}


def _replay_one(task: tuple[str, str]) -> tuple[str, str, dict]:
    from execbench.replay import run
    design, workload = task
    r = run(_FORK["traces"][workload], design, seed=_FORK["seed"], progress=False,
            machine=_FORK["machine"])
    out = {m: {"final": f, "peak": p, "mean": mean} for m, (f, p, mean) in r.stats.items()}
    out[SPEED] = {"wall_s": float(r.wall_s), "events": float(r.events)}
    return design, workload, out


def replay_stats(designs: list[str], seed: int = 0, machine: dict | None = None,
                 jobs: int = 0) -> dict:
    """``{(design, workload): {metric: {"final", "peak", "mean"}}}`` at ``seed``
    for every shipped workload: what the ``track_*`` benchmarks read.  Each
    entry also holds ``SPEED: {"wall_s", "events"}``, the wall time of that
    replay's event loop (``RunResult.wall_s``, what ``execbench run --json``
    reports as ``events_per_s``).

    Every (design, workload) replay is one task on a single pool of
    ``jobs`` forked processes (0: one per CPU; 1: serial, in this process),
    the longest traces first so that the two CPUs of a small machine finish
    together: one pool for the whole matrix instead of one per workload,
    which left a CPU idle while the last fleet-day replay of each workload
    ran.  The traces are loaded once, before the fork, and the compiled iTLB
    loop too.  A replay is deterministic and depends on nothing in the
    process, so the numbers are those of serial replays, in the same order
    (tests/test_asv_suite.py); only the wall time of ``setup_cache``
    changes, which asv does not record.
    """
    import multiprocessing

    names = []
    traces = {}
    for w in workloads():
        try:
            traces[w] = load(w)
        except NotImplementedError:
            continue
        names.append(w)
    tasks = [(d, w) for w in names for d in designs]
    n = jobs or os.cpu_count() or 1
    _FORK.update(traces=traces, seed=seed, machine=machine)
    try:
        if n <= 1 or len(tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            done = [_replay_one(t) for t in tasks]
        else:
            if (machine or {}).get("itlb_cpu", "on") != "off":
                try:
                    from execbench.metrics import tlbsim
                    tlbsim.backend()        # compile/load the iTLB loop once, before forking
                except (ImportError, AttributeError):
                    pass
            for tr in traces.values():
                list(tr.events())           # build the event lists once, shared by the workers
            by_size = sorted(tasks, key=lambda t: -len(traces[t[1]]))
            with multiprocessing.get_context("fork").Pool(min(n, len(tasks))) as pool:
                done = list(pool.imap_unordered(_replay_one, by_size, chunksize=1))
    finally:
        _FORK.clear()
    got = {(d, w): stats for d, w, stats in done}
    return {t: got[t] for t in tasks}


def check_design(design: str) -> None:
    from execbench import registry
    if design not in registry.names():
        raise NotImplementedError(f"design {design} not registered at this commit")
