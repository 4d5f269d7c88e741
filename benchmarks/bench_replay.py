"""The simulator's own speed and memory: one replay of the biggest shipped
workload (fleet-day) on each design (asv ``time_*`` and ``peakmem_*``).

Only the biggest trace: the speed of every design x workload is already
measured, without replaying again, by ``Metrics.track_replay_us_per_event``
(the wall time of the ``setup_cache`` replays), and on the small traces
both numbers are mostly the fixed cost of building the 16 GiB machine.
Timing and measuring all 84 pairs here cost more than half of a quick
``asv run`` (docs/performance.md).

The trace is loaded in ``setup`` so only the replay is timed.  A replay
of the biggest traces takes seconds, so samples are capped (``repeat``)
and ``number = 1``; ``warmup_time = 0`` because a replay is not a
micro-benchmark.
"""
from __future__ import annotations

from .common import check_design, designs, load, workloads


def biggest() -> list[str]:
    """The shipped workload with the most events (within
    ``EXECBENCH_BENCH_MAX_EVENTS``)."""
    try:
        from execbench.workloads import catalog
    except ImportError:
        return []
    keep = set(workloads())
    ws = [w for w in catalog.shipped() if w.name in keep]
    return [max(ws, key=lambda w: (w.events, w.name)).name] if ws else []


class Replay:
    params = (designs(), biggest())
    param_names = ["design", "workload"]
    number = 1
    repeat = (1, 3, 20.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, design, workload):
        check_design(design)
        self.trace = load(workload)

    def time_replay(self, design, workload):
        from execbench.replay import run
        run(self.trace, design, seed=0, progress=False)

    def peakmem_replay(self, design, workload):
        from execbench.replay import run
        run(self.trace, design, seed=0, progress=False)
    # asv's fork server (asv.conf.json launch_method) forks each benchmark
    # from a process that has imported the whole suite, and a forked
    # child's peak RSS starts at what it inherited: on the smallest traces
    # the peak is ~210 MB instead of 167-222 MB under "spawn", so the
    # history before the fork server is not comparable (docs/performance.md).
    peakmem_replay.version = "forkserver-1"
