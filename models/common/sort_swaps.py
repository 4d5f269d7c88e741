"""How many swaps the kernel's ``sort()`` makes: the cost driver of the ORC
and mcount table sorts once every swap is a ``text_poke_copy``.

lib/sort.c ``sort_r()`` (v6.4) is a bottom-up heapsort (it is not
adaptive: it never checks whether its input is already sorted).
:func:`heapsort_swaps` counts its ``do_swap()`` calls for an input that is
already in ascending order; :func:`heapsort_swaps_of` runs the exact loop
on any input order (the reference the tests compare against).

Why ascending input (the modelling choice the brief asks us to justify):

* ``.orc_unwind_ip`` is written by objtool per object file in instruction
  order and concatenated by ``ld -r`` in link order, so within a module's
  text it is (nearly) ascending as the linker emits it; ``__mcount_loc``
  likewise lists call sites in address order per object.
* It does not save the kernel any work: heapsort on ascending input still
  builds a max-heap (ascending input is in fact the case that moves every
  internal node down) and then extracts n - 1 roots, so the swap count is
  ~ n*log2(n) whatever the order -- "0 swaps if already sorted" would be
  true of insertion sort, not of ``sort()``.  A random-order input gives
  within a few per cent of the same count (see the tests).

Bounded work.  A trace may claim any table size the schema accepts, so the
count must cost bounded time and memory:

* up to :data:`EXACT_MAX` entries the exact loop runs compiled (numba; one
  ``int32`` per entry: 4 MiB and ~0.07 s at the limit).  :data:`EXACT_MAX`
  is ten times the largest ``.orc_unwind_ip`` of any module in the shipped
  Debian 6.1.0-56 tables (107,342 entries), so every real module is exact;
* above it the count is an estimate: ``swaps(n) = F(n) + c(n) * n`` with
  ``F(n) = sum_{k=1}^{n-1} floor(log2 k)`` in closed form -- the n - 1
  extractions each sift the last leaf from the root back to (nearly) the
  bottom of a heap of k entries -- and ``c(n)`` (the build phase plus the
  root swaps minus the backtracking; 1.67..1.92 for every n >= 1024 we
  measured) taken from the *exact* count at ``m = n >> j``, the largest
  halving of n that is at most :data:`EXACT_MAX`.  No constant is fitted:
  the estimate is the exact model's own ``c`` one or more octaves down.
  The tests compare it with the exact loop for many n (relative error
  below 0.5 %).

The count is deterministic, so it is memoised per ``n``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: largest table counted exactly (see the module docstring)
EXACT_MAX = 1 << 20

_KERNEL = None      # the compiled loop, built on first use (importing numba costs ~1 s)


def _numba_kernel():
    global _KERNEL
    if _KERNEL is None:
        try:    # optional accelerator; results are identical without it
            import numba
        except ImportError:      # pragma: no cover - exercised only without numba
            _KERNEL = False
        else:
            _KERNEL = numba.njit(cache=True, nogil=True)(_swaps_loop)
    return _KERNEL or None


@lru_cache(maxsize=4096)
def heapsort_swaps(num: int) -> int:
    """``do_swap()`` calls ``sort(base, num, ...)`` makes on ascending input
    (exact up to :data:`EXACT_MAX` entries, the estimate above it)."""
    if num <= EXACT_MAX:
        return exact_swaps(num)
    return estimate_swaps(num)


def floor_log2_sum(num: int) -> int:
    """``F(num) = sum_{k=1}^{num-1} floor(log2 k)`` in closed form: with
    ``m = num - 1`` and ``h = floor(log2 m)``, the k in ``[2^i, 2^(i+1))``
    contribute ``i * 2^i`` for i < h and the last ``m - 2^h + 1`` of them h,
    which sums to ``(m + 1) * h - 2^(h+1) + 2``."""
    m = num - 1
    if m < 1:
        return 0
    h = m.bit_length() - 1
    return (m + 1) * h - (1 << (h + 1)) + 2


def estimate_swaps(num: int, exact_max: int = EXACT_MAX) -> int:
    """``F(num) + c * num`` with ``c`` from the exact count at the largest
    ``num >> j`` that is at most ``exact_max`` (bounded time and memory)."""
    m = num
    while m > exact_max:
        m >>= 1
    if m < 2:
        return exact_swaps(num)
    c = (exact_swaps(m) - floor_log2_sum(m)) / m
    return floor_log2_sum(num) + round(c * num)


def exact_swaps(num: int) -> int:
    """The exact count for ascending input, compiled when numba is there."""
    if num < 2:
        return 0
    k = _numba_kernel()
    v = np.arange(num, dtype=np.int32)
    if k is None:                # pragma: no cover - without numba
        return _swaps_loop(v)
    return int(k(v))


def heapsort_swaps_of(values: list[int]) -> int:
    """``do_swap()`` calls for an arbitrary input order (the reference loop,
    plain Python, for tests)."""
    return _swaps_loop(list(values))


def _swaps_loop(v) -> int:
    """lib/sort.c ``sort_r()`` on ``v`` (indices instead of pre-scaled byte
    offsets), counting ``do_swap()`` calls; ``v`` is modified."""
    num = len(v)
    n, a = num, num // 2          # element indices (the kernel pre-scales by size)
    if not a:                      # num < 2
        return 0
    swaps = 0
    c = d = 0
    while True:
        if a:                      # building heap: sift down --a
            a -= 1
        else:
            n -= 1
            if n:                  # sorting: extract root to --n
                t = v[0]
                v[0] = v[n]
                v[n] = t
                swaps += 1
            else:                  # sort complete
                break
        # bottom-up sift: follow the larger child to a leaf
        b = a
        while True:
            c = 2 * b + 1
            d = c + 1
            if d >= n:
                break
            b = c if v[c] >= v[d] else d
        if d == n:                 # last leaf with no sibling
            b = c
        # backtrack to where v[a] belongs
        while b != a and v[a] >= v[b]:
            b = (b - 1) // 2
        c = b
        while b != a:              # shift it into place
            b = (b - 1) // 2
            t = v[b]
            v[b] = v[c]
            v[c] = t
            swaps += 1
    return swaps
