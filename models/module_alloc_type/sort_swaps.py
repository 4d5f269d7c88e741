"""How many swaps the kernel's ``sort()`` makes: the cost driver of the ORC
and mcount table sorts once every swap is a ``text_poke_copy``.

lib/sort.c ``sort_r()`` (v6.4) is a bottom-up heapsort (it is not
adaptive: it never checks whether its input is already sorted).
:func:`heapsort_swaps` runs that exact algorithm -- the same loop, the same
``>= 0`` tie rule, the same "last leaf with no sibling" special case -- on
indices and counts ``do_swap()`` calls, for an input that is already in
ascending order.

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

The count is deterministic, so it is memoised per ``n``.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def heapsort_swaps(num: int) -> int:
    """``do_swap()`` calls ``sort(base, num, ...)`` makes on ascending input."""
    return _swaps(list(range(num)))


def heapsort_swaps_of(values: list[int]) -> int:
    """``do_swap()`` calls for an arbitrary input order (for tests)."""
    return _swaps(list(values))


def _swaps(v: list[int]) -> int:
    num = len(v)
    n, a = num, num // 2          # element indices (the kernel pre-scales by size)
    if not a:                      # num < 2
        return 0
    swaps = 0
    while True:
        if a:                      # building heap: sift down --a
            a -= 1
        else:
            n -= 1
            if n:                  # sorting: extract root to --n
                v[0], v[n] = v[n], v[0]
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
            v[b], v[c] = v[c], v[b]
            swaps += 1
    return swaps
