"""The simulator's own speed and memory: one replay of each shipped
workload on each design (asv ``time_*`` and ``peakmem_*``).

The trace is loaded in ``setup`` so only the replay is timed.  A replay
of the biggest traces takes seconds, so samples are capped (``repeat``)
and ``number = 1``; ``warmup_time = 0`` because a replay is not a
micro-benchmark.
"""
from __future__ import annotations

from .common import check_design, designs, load, workloads


class Replay:
    params = (designs(), workloads())
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
