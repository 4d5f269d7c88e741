"""Run designs x workloads x seeds and collect tidy summaries.

Every (workload, design, seed) replay is independent, so a sweep is
embarrassingly parallel.  Three ways to run it, all giving byte-identical
output in the same fixed order (workload, then design, then seed):

* ``jobs=1``: in this process, one after another;
* ``jobs=N``: a :class:`concurrent.futures.ProcessPoolExecutor` of N local
  processes (``fork`` where the platform has it, so workers inherit the
  loaded traces and compiled code instead of re-importing them);
* ``scheduler="tcp://host:8786"``: a Dask cluster through dask.distributed's
  own API (``Client``, ``scatter``, ``submit``, ``gather``) -- traces are
  scattered to the workers once, then one task per replay.

``jobs=0`` (the CLI default) means *auto*: one process per CPU, but serial
when the whole sweep is under :data:`AUTO_SERIAL_EVENTS` events, where
starting processes costs more than it saves.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Iterable

import pandas as pd

from .errors import ExecbenchError, printable
from .kernel import Costs
from .replay import RunResult, run
from .trace import Trace

#: below this many events in total, ``jobs=0`` runs serially
AUTO_SERIAL_EVENTS = 50_000

#: a sweep of at least this many events (about a second of replay) shows a
#: progress bar on a terminal; pipes and files stay quiet
PROGRESS_EVENTS = 2_000

Task = tuple[int, str, int]     # (trace index, design, seed)

# Traces handed to forked pool workers (inherited, not pickled per task).
_FORK_TRACES: list[Trace] = []


def _run_one(tr: Trace, design: str, seed: int, params: dict[str, Any] | None,
             costs: Costs | None, machine: dict[str, Any] | None,
             progress: bool | None = False) -> RunResult:
    return run(tr, design, seed=seed, params=params, costs=costs, machine=machine, progress=progress)


def _run_forked(task: Task, params, costs, machine) -> RunResult:
    i, design, seed = task
    return _run_one(_FORK_TRACES[i], design, seed, params, costs, machine)


def resolve_jobs(jobs: int | None, total_events: int) -> int:
    """Number of local processes for ``jobs`` (0 = auto, None = 1)."""
    if jobs is None:
        return 1
    if jobs < 0:
        raise ValueError(f"jobs must be >= 0, not {jobs}")
    if jobs == 0:
        return 1 if total_events < AUTO_SERIAL_EVENTS else (os.cpu_count() or 1)
    return jobs


def sweep(traces: Iterable[Trace], designs: list[str], seeds: list[int],
          params: dict[str, dict[str, Any]] | None = None, costs: Costs | None = None,
          machine: dict[str, Any] | None = None, *, jobs: int | None = None,
          scheduler: str | None = None, progress: bool | None = None
          ) -> tuple[pd.DataFrame, list[RunResult]]:
    """Every combination, in a fixed order; returns (tidy summary, results).

    ``jobs``: local worker processes (None or 1: serial; 0: auto).
    ``scheduler``: address of a Dask scheduler; overrides ``jobs``.
    ``progress``: a bar of replays done on stderr (default: on a terminal,
    for sweeps of :data:`PROGRESS_EVENTS` events or more).
    """
    traces = list(traces)
    params = params or {}
    tasks: list[Task] = [(i, d, s) for i in range(len(traces)) for d in designs for s in seeds]
    total = sum(len(traces[i]) for i, _, _ in tasks)
    if progress is None:
        progress = total >= PROGRESS_EVENTS and sys.stderr.isatty()
    bar = _progress_bar(len(tasks)) if progress and len(tasks) > 1 else None
    try:
        if scheduler is not None:
            results = _sweep_dask(scheduler, traces, tasks, params, costs, machine)
        else:
            n = min(resolve_jobs(jobs, total), max(len(tasks), 1))
            if n <= 1:
                results = []
                for i, d, s in tasks:
                    # serial: the replay's own per-event bar under the sweep's (long traces)
                    results.append(_run_one(traces[i], d, s, params.get(d), costs, machine,
                                            progress=None if bar is not None else False))
                    if bar is not None:
                        bar.update(1)
            else:
                results = _sweep_local(n, traces, tasks, params, costs, machine, bar)
    finally:
        if bar is not None:
            bar.close()
    frames = [r.summary() for r in results]
    if not frames:
        return pd.DataFrame(columns=["workload", "design", "seed", "metric", "final", "peak", "mean"]), []
    return pd.concat(frames, ignore_index=True), results


def _progress_bar(n: int):
    from tqdm import tqdm
    return tqdm(total=n, desc="replays", unit="run", leave=False, file=sys.stderr)


def _in_order(futs: list, bar) -> list[RunResult]:
    """The futures' results in submission order, ticking ``bar`` as each finishes."""
    if bar is not None:
        for _ in as_completed(futs):
            bar.update(1)
    return [f.result() for f in futs]


def _worker_init() -> None:
    """Workers leave Ctrl-C to the parent: a terminal sends SIGINT to the
    whole process group, and N workers each printing a KeyboardInterrupt
    traceback is not one line.  The parent stops them (:func:`_stop`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(ex: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (SIGTERM, then
    SIGKILL after half a second): used when the sweep is interrupted or
    fails, so that nothing keeps replaying after the command has given up."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 0.5
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(0.5)


def _sweep_local(n: int, traces: list[Trace], tasks: list[Task], params, costs, machine,
                 bar=None) -> list[RunResult]:
    global _FORK_TRACES
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    fork = ctx.get_start_method() == "fork"
    if fork:
        _FORK_TRACES = traces
        if (machine or {}).get("itlb_cpu", "skylake-sp") != "off":
            from .metrics import tlbsim
            tlbsim.backend()        # load the compiled iTLB loop once, before forking
        for tr in traces:
            list(tr.events())       # build the event lists once, shared by the workers
    ex = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_worker_init)
    try:
        if fork:
            futs = [ex.submit(_run_forked, t, params.get(t[1]), costs, machine) for t in tasks]
        else:                       # pragma: no cover - non-Linux
            futs = [ex.submit(_run_one, traces[i], d, s, params.get(d), costs, machine)
                    for i, d, s in tasks]
        results = _in_order(futs, bar)
    except BaseException:
        _stop(ex)
        raise
    finally:
        _FORK_TRACES = []
    ex.shutdown(wait=True)
    return results


def _sweep_dask(address: str, traces: list[Trace], tasks: list[Task], params, costs, machine) -> list[RunResult]:
    try:
        from dask.distributed import Client
    except ImportError:   # pragma: no cover - depends on the environment
        raise ExecbenchError("--scheduler needs dask.distributed "
                             "(pip install 'dask[distributed]')") from None
    try:
        client = Client(address, timeout=10)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise ExecbenchError(f"--scheduler {printable(address, 60)}: cannot connect: "
                             f"{printable(e, 100)}") from None
    with client:
        remote = client.scatter(traces, broadcast=True)
        futs = [client.submit(_run_one, remote[i], d, s, params.get(d), costs, machine,
                              key=f"execbench-run-{i}-{d}-{s}-{k}", pure=False)
                for k, (i, d, s) in enumerate(tasks)]
        return client.gather(futs)
