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
        self._largest_free: int | None = None

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
        self.starts = np.insert(self.starts, i, start)
        self.ends = np.insert(self.ends, i, start + npages)
        self._largest_free = None

    def remove(self, start: int) -> int:
        """Remove the area starting at ``start``; return its length in pages."""
        i = bisect.bisect_left(self.starts, start)
        if i >= self.starts.size or self.starts[i] != start:
            raise KeyError(start)
        n = int(self.ends[i] - self.starts[i])
        self.starts = np.delete(self.starts, i)
        self.ends = np.delete(self.ends, i)
        self._largest_free = None
        return n

    def largest_free(self, lo: int = 0) -> int:
        """Largest free extent (pages) at or above ``lo``."""
        if self._largest_free is None:
            gap_lo = np.maximum(np.concatenate(([0], self.ends)), lo)
            gap_hi = np.concatenate((self.starts, [self.n_pages]))
            self._largest_free = int(np.maximum(gap_hi - gap_lo, 0).max())
        return self._largest_free
