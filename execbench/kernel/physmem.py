"""Physical frames and the kernel direct map ("linear map") over them.

Why model frames at all: a permission change on a vmalloc address also
changes the direct-map alias of the frame behind it (``cpa_process_alias()``,
arch/x86/mm/pat/set_memory.c), and that splits the 1 GiB / 2 MiB leaf that
maps the frame.  How many leaves split depends on *where* the frames are, so
frame placement is part of the machine.

Frame placement, seeded:

* ``contiguous`` -- a fresh boot: the buddy allocator hands out frames from
  one large free region in order; freed frames are reused first (LIFO, like
  the per-CPU page lists in mm/page_alloc.c).
* ``scattered`` -- after the page cache has filled memory: the free frames
  are spread uniformly over the machine (Aaron Lu's experiment in
  Message-ID Y2ioTodn+mBXdIqp@ziqianlu-desk2 shows that this multiplies
  direct-map splits).

Huge (PMD) vmalloc mappings need naturally aligned order-9 blocks; they come
from aligned 2 MiB blocks at the top of memory (we assume compaction
succeeds -- ``__vmalloc_node_range`` falls back to 4 KiB pages when it does
not, which a design would see only as fewer huge mappings).

Direct map (arch/x86/mm/init.c ``init_memory_mapping()`` with
``direct_gbpages``): every GiB above the first is one 1 GiB leaf; the first
GiB is mapped with 2 MiB leaves and its first 2 MiB with 4 KiB pages (ISA
hole, BIOS areas).  Splits are counted like ``/proc/vmstat``
``direct_map_level3_splits`` (1 GiB -> 2 MiB) and
``direct_map_level2_splits`` (2 MiB -> 4 KiB) and never heal in v6.1
(``split_large_page()`` has no inverse before v6.15's CPA_COLLAPSE).
"""
from __future__ import annotations

import numpy as np

from ..errors import OutOfMemory
from ..units import GiB, PAGES_PER_PMD, PAGES_PER_PUD

PLACEMENTS = ("contiguous", "scattered")


class PhysMem:
    """Frame allocator plus direct-map leaf state for a machine."""

    def __init__(self, rng: np.random.Generator, mem_bytes: int = 16 * GiB,
                 placement: str = "contiguous", huge_reserve_blocks: int = 64):
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
        if mem_bytes < 2 * GiB or mem_bytes % GiB:
            raise ValueError("machine memory must be a whole number of GiB, at least 2 GiB")
        self.n_frames = mem_bytes // 4096
        self.n_2m = self.n_frames // PAGES_PER_PMD
        self.n_1g = self.n_frames // PAGES_PER_PUD
        # Aligned 2 MiB blocks for huge mappings, from the top of memory down.
        self._huge_free = list(range(self.n_2m - 1, self.n_2m - 1 - huge_reserve_blocks, -1))
        low_limit = (self.n_2m - huge_reserve_blocks) * PAGES_PER_PMD
        first = PAGES_PER_PUD  # kernel image, page tables, early allocations live below 1 GiB
        if placement == "contiguous":
            # a seeded start inside the big free region, then in order
            start = first + int(rng.integers(0, PAGES_PER_PUD))
            order = np.arange(start, low_limit, dtype=np.int64)
        else:
            order = rng.permutation(np.arange(first, low_limit, dtype=np.int64))
        self._order = order
        self._next = 0
        self._recycled: list[int] = []
        # direct map: split state per 1 GiB and per 2 MiB region
        self.split_1g = np.zeros(self.n_1g, dtype=bool)
        self.split_2m = np.zeros(self.n_2m, dtype=bool)
        self.split_1g[0] = True        # first GiB: 2 MiB leaves
        self.split_2m[0] = True        # first 2 MiB: 4 KiB pages
        self.alias_ro = np.zeros(self.n_frames, dtype=bool)
        self.alias_invalid = np.zeros(self.n_frames, dtype=bool)
        self.splits_1g = 0
        self.splits_2m = 0

    def alloc_frames(self, n: int) -> np.ndarray:
        """Order-0 frames for a 4 KiB-mapped area."""
        if n - min(n, len(self._recycled)) > len(self._order) - self._next:
            # checked before taking any frame: a failed allocation takes none
            raise OutOfMemory("simulated machine is out of memory")
        out = np.empty(n, dtype=np.int64)
        k = min(n, len(self._recycled))
        if k:
            out[:k] = self._recycled[-k:][::-1]
            del self._recycled[-k:]
        rest = n - k
        if rest:
            out[k:] = self._order[self._next:self._next + rest]
            self._next += rest
        return out

    def alloc_huge_block(self) -> np.ndarray:
        """One naturally aligned order-9 block (512 contiguous frames)."""
        if not self._huge_free:
            raise OutOfMemory("no aligned 2 MiB block left for a huge mapping")
        b = self._huge_free.pop()
        return np.arange(b * PAGES_PER_PMD, (b + 1) * PAGES_PER_PMD, dtype=np.int64)

    def free_frames(self, frames: np.ndarray, huge: bool = False) -> None:
        if huge:
            for b in np.unique(frames // PAGES_PER_PMD)[::-1]:
                self._huge_free.append(int(b))
        else:
            self._recycled.extend(int(f) for f in frames)

    def split_for(self, frames: np.ndarray, whole_2m: bool = False) -> tuple[int, int]:
        """Split whatever large direct-map leaves cover ``frames`` so that
        their attributes can change page by page (``split_large_page()``).

        ``whole_2m``: the change covers every frame of each aligned 2 MiB
        block it touches (a PMD-mapped vmalloc area), so a 2 MiB leaf can
        change in place (``should_split_large_page()`` keeps a large page
        whose whole extent gets the same attributes) and only a covering
        1 GiB leaf must split.  Returns (new 1G splits, new 2M splits).
        """
        if frames.size == 0:
            return 0, 0
        # Filter to leaves not yet split before de-duplicating: after the
        # first few changes nearly every frame's leaves are split already,
        # and np.unique of an empty array is free.
        g = frames // PAGES_PER_PUD
        new_g = g[~self.split_1g[g]]
        n1 = 0
        if new_g.size:
            new_g = np.unique(new_g)
            self.split_1g[new_g] = True
            n1 = int(new_g.size)
        n2 = 0
        if not whole_2m:
            m = frames // PAGES_PER_PMD
            new_m = m[~self.split_2m[m]]
            if new_m.size:
                new_m = np.unique(new_m)
                self.split_2m[new_m] = True
                n2 = int(new_m.size)
        self.splits_1g += n1
        self.splits_2m += n2
        return n1, n2

    def leaves(self) -> tuple[int, int, int]:
        """Current (4K, 2M, 1G) leaf counts of the direct map, for /proc/meminfo-like output."""
        n1g = int((~self.split_1g).sum())
        split_g = np.flatnonzero(self.split_1g)
        m = self.split_2m.reshape(self.n_1g, -1)[split_g]
        n2m = int((~m).sum())
        n4k = int(m.sum()) * PAGES_PER_PMD
        return n4k, n2m, n1g
