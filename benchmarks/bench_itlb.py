"""Speed of the dynamic iTLB model's lookup loop (asv ``time_*``).

The loop is the hot path of ``itlb_miss_per_mfetch`` (execbench/metrics/
tlbsim.py).  benchmarks/c/compare_tlb.py compares the same loop against a
gcc build of benchmarks/c/tlb_ref.c; this tracks it commit by commit.
"""
from __future__ import annotations

N = 1_000_000


class TlbLoop:
    """One million lookups of a seeded 4 KiB/2 MiB mix through Skylake-SP's iTLB + STLB."""

    timeout = 300

    def setup(self):
        import numpy as np

        from execbench.itlb_cpus import get
        from execbench.metrics import tlbsim

        self.cpu = get("skylake-sp")
        rng = np.random.default_rng(0)
        huge = rng.random(N) < 0.3
        page = np.where(huge, rng.integers(0, 40, N), rng.zipf(1.2, N) % 20000)
        self.keys = (page.astype(np.int64) << 1) | huge
        self.arr = np.where(huge, 1, 0).astype(np.int64)
        if tlbsim.backend() != "numba":
            # asv must time the compiled loop users run, not the fallback
            raise RuntimeError("execbench's iTLB loop runs on the pure-Python fallback: "
                               "numba is not installed in the asv environment (asv.conf.json matrix)")
        self.sim = tlbsim.simulate
        self.sim(self.cpu, self.keys[:100], self.arr[:100])     # compile / load the numba cache

    def time_lookup_1m(self):
        self.sim(self.cpu, self.keys, self.arr, 1000)
