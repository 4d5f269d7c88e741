"""lib/sort.c swap counts (models/common/sort_swaps.py): the
compiled exact loop, the closed-form part and the bounded estimate above
EXACT_MAX, each against the plain-Python reference loop."""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

from execbench.models.common import sort_swaps as ss


def test_compiled_loop_equals_reference_loop():
    # heapsort_swaps_of() is the lib/sort.c loop in plain Python on a list;
    # exact_swaps() the same loop compiled on an int32 array.
    ns = list(range(0, 300)) + [511, 512, 513, 1000, 4095, 4096, 4097]
    for n in ns:
        assert ss.exact_swaps(n) == ss.heapsort_swaps_of(list(range(n))), n


def test_floor_log2_sum_closed_form():
    # F(n) = sum_{k=1}^{n-1} floor(log2 k):  F(2) = 0; F(4) = 0+1+1 = 2;
    # F(5) = 0+1+1+2 = 4; F(9) = 0+1+1+2+2+2+2+3 = 13.
    assert [ss.floor_log2_sum(n) for n in (0, 1, 2, 4, 5, 9)] == [0, 0, 0, 2, 4, 13]
    for n in (3, 17, 1000, 4097):
        assert ss.floor_log2_sum(n) == sum(k.bit_length() - 1 for k in range(1, n))


def test_estimate_within_one_percent_of_exact_for_many_n():
    # The estimate F(n) + c(m) n, with c from the exact count at m = n >> j <= limit,
    # tested with a small limit (2^13) so that many n up to 2^17 (four octaves
    # above it) can be run exactly here.
    rng = np.random.default_rng(11)
    ns = sorted({int(x) for x in rng.integers(1 << 13, 1 << 17, 30)} | {(1 << 13) + 1, 1 << 17})
    worst = max(abs(ss.estimate_swaps(n, 1 << 13) - ss.exact_swaps(n)) / ss.exact_swaps(n) for n in ns)
    assert worst < 0.01


def test_estimate_at_the_real_limit():
    # just above EXACT_MAX (one octave) the estimate is within 0.5 % of the exact loop
    for n in (ss.EXACT_MAX + 1, 3 * ss.EXACT_MAX // 2 + 7):
        e = ss.exact_swaps(n)
        assert abs(ss.heapsort_swaps(n) - e) / e < 0.005
    assert ss.heapsort_swaps(ss.EXACT_MAX) == ss.exact_swaps(ss.EXACT_MAX)


def test_largest_table_bounded_time_and_memory():
    # 2^30 entries (the schema's limit today): the estimate runs the exact loop
    # on 2^20 entries only -- well under a second and 16 MiB
    ss.heapsort_swaps.cache_clear()
    ss.exact_swaps(10)                       # compile outside the measurement
    tracemalloc.start()
    t0 = time.perf_counter()
    n = ss.heapsort_swaps(1 << 30)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert dt < 1.0 and peak < 16 << 20
    # n log2 n order: F(2^30) = 30*2^30 - 2^31 + 2 minus a bit; c in [1, 3]
    assert ss.floor_log2_sum(1 << 30) + (1 << 30) < n < ss.floor_log2_sum(1 << 30) + 3 * (1 << 30)
