"""Lookups/s of execbench's iTLB loop (numba and pure Python) vs the C reference.

usage: python benchmarks/c/compare_tlb.py [--n 2000000] [--cpu skylake-sp ...]

Builds benchmarks/c/tlb_ref.c with the machine's gcc (build.sh), feeds the
same seeded fetch stream to both, checks that the miss counts agree exactly
and prints the lookup rates.  The stream mixes 4 KiB pages (Zipf over 20,000
pages) and 2 MiB pages (uniform over 40) -- synthetic, only to exercise every
path of the loop.  Not part of the test run (it needs gcc).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from execbench.itlb_cpus import CPUS
from execbench.metrics import tlbsim

HERE = Path(__file__).resolve().parent


def stream(cpu, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    huge = rng.random(n) < 0.3
    page = np.where(huge, rng.integers(0, 40, n), rng.zipf(1.2, n) % 20000)
    keys = (page.astype(np.int64) << 1) | huge
    arr = np.where(huge, cpu.l1_for(1), cpu.l1_for(0)).astype(np.int64)
    return keys, arr


def best_rate(fn, n: int, repeat: int = 3) -> tuple[float, object]:
    best, out = 0.0, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--cpu", nargs="+", default=list(CPUS))
    ap.add_argument("--python-n", type=int, default=100_000, help="lookups for the pure-Python reference")
    a = ap.parse_args()
    exe = subprocess.run([str(HERE / "build.sh")], check=True, capture_output=True, text=True).stdout.strip()
    print(f"{'cpu':12} {'C Mlook/s':>10} {'numba':>10} {'ratio':>6} {'python':>8}  misses agree")
    with tempfile.TemporaryDirectory() as td:
        for name in a.cpu:
            cpu = CPUS[name]
            keys, arr = stream(cpu, a.n)
            path = Path(td) / f"{name}.bin"
            np.concatenate([keys, arr]).astype(np.int64).tofile(path)
            geo = [str(cpu.l2.sets), str(cpu.l2.ways)] + [str(x) for l1 in cpu.l1 for x in (l1.sets, l1.ways)]
            out = subprocess.run([exe, str(path), str(a.n), "1000", "3", *geo],
                                 check=True, capture_output=True, text=True).stdout.split()
            c_m1, c_m2, c_rate = int(out[0]), int(out[1]), float(out[2])
            tlbsim.simulate(cpu, keys[:1000], arr[:1000])          # JIT warm-up
            nb_rate, (m1, m2) = best_rate(lambda: tlbsim.simulate(cpu, keys, arr, 1000), a.n)
            pn = a.python_n
            py_rate, _ = best_rate(lambda: tlbsim.simulate_py(cpu, keys[:pn], arr[:pn], 1000), pn, 1)
            agree = (m1, m2) == (c_m1, c_m2)
            print(f"{name:12} {c_rate / 1e6:10.1f} {nb_rate / 1e6:10.1f} {nb_rate / c_rate:6.2f} "
                  f"{py_rate / 1e6:8.2f}  {agree} ({m1}, {m2})")
            if not agree:
                print(f"  C says ({c_m1}, {c_m2})", file=sys.stderr)
                return 1
    print(f"backend: {tlbsim.backend()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
