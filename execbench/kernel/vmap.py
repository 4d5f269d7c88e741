"""Virtual-address placement of vmap areas (mm/vmalloc.c, v6.1).

``__vmalloc_node_range()`` -> ``__get_vm_area_node()`` -> ``alloc_vmap_area()``
asks for ``size + PAGE_SIZE`` (the guard page ``__get_vm_area_node`` adds
unless ``VM_NO_GUARD``) and ``find_vmap_lowest_match()`` returns the lowest
address in ``[vstart, vend)`` with the requested alignment where it fits --
lowest fit, not best fit.  Areas are kept in page units, relative to
``MODULES_VADDR``, as two sorted numpy arrays so the gap search is one
vectorised pass.
"""
from __future__ import annotations

import bisect

import numpy as np


class VmapSpace:
    """Busy intervals ``[start, end)`` (pages, guard included) in one range."""

    def __init__(self, n_pages: int):
        self.n_pages = n_pages
        self.starts = np.zeros(0, dtype=np.int64)
        self.ends = np.zeros(0, dtype=np.int64)
        self._largest_free: int | None = None     # kept up to date by insert/remove
        self._lf_lo = 0                             # the ``lo`` it was computed for

    def __len__(self) -> int:
        return int(self.starts.size)

    def find(self, npages: int, align_pages: int, lo: int, hi: int) -> int:
        """Lowest page index ``p >= lo``, ``p % align_pages == 0``, with
        ``[p, p + npages)`` free and ``p + npages <= hi``; -1 if none."""
        # free gaps: [prev_end, next_start)
        gap_lo = np.concatenate(([0], self.ends))
        gap_hi = np.concatenate((self.starts, [self.n_pages]))
        cand = np.maximum(gap_lo, lo)
        cand = -(-cand // align_pages) * align_pages
        ok = (cand + npages <= np.minimum(gap_hi, hi)) & (cand < gap_hi)
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return -1
        return int(cand[idx[0]])

    def insert(self, start: int, npages: int) -> None:
        i = bisect.bisect_left(self.starts, start)
        # np.concatenate of slices: np.insert's generic-axis machinery costs
        # more than the copy for arrays this size
        s, e = self.starts, self.ends
        if self._largest_free is not None:
            # Splitting a gap smaller than the largest leaves the largest as
            # it is; splitting one of the largest size needs a recount.
            if self._gap(i - 1, i) >= self._largest_free:
                self._largest_free = None
        self.starts = np.concatenate((s[:i], (start,), s[i:])).astype(np.int64, copy=False)
        self.ends = np.concatenate((e[:i], (start + npages,), e[i:])).astype(np.int64, copy=False)

    def remove(self, start: int) -> int:
        """Remove the area starting at ``start``; return its length in pages."""
        i = bisect.bisect_left(self.starts, start)
        if i >= self.starts.size or self.starts[i] != start:
            raise KeyError(start)
        n = int(self.ends[i] - self.starts[i])
        if self._largest_free is not None:
            # the freed area and the gaps on both sides become one gap, at
            # least as large as either: the largest is the old one or it
            self._largest_free = max(self._largest_free, self._gap(i - 1, i + 1))
        self.starts = np.concatenate((self.starts[:i], self.starts[i + 1:]))
        self.ends = np.concatenate((self.ends[:i], self.ends[i + 1:]))
        return n

    def _gap(self, left: int, right: int) -> int:
        """Free pages between area ``left``'s end (-1: range start) and area
        ``right``'s start (``len``: range end), clipped at the cached ``lo``."""
        lo_edge = int(self.ends[left]) if left >= 0 else 0
        hi_edge = int(self.starts[right]) if right < self.starts.size else self.n_pages
        return max(hi_edge - max(lo_edge, self._lf_lo), 0)

    def largest_free(self, lo: int = 0) -> int:
        """Largest free extent (pages) at or above ``lo``."""
        if self._largest_free is None:
            gap_lo = np.maximum(np.concatenate(([0], self.ends)), lo)
            gap_hi = np.concatenate((self.starts, [self.n_pages]))
            self._largest_free = int(np.maximum(gap_hi - gap_lo, 0).max())
            self._lf_lo = lo
        return self._largest_free
