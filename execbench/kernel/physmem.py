"""Physical frames and the kernel direct map ("linear map") over them.

Why model frames at all: a permission change on a vmalloc address also
changes the direct-map alias of the frame behind it (``cpa_process_alias()``,
arch/x86/mm/pat/set_memory.c), and that splits the 1 GiB / 2 MiB leaf that
maps the frame.  How many leaves split depends on *where* the frames are, so
frame placement is part of the machine.

Frames come from the page allocator of :mod:`.pagealloc` (buddy free areas,
per-CPU lists refilled in batches, migratetypes), in one of two named
presets (docs/placement.md):

* ``fresh-boot`` (default; old name ``contiguous``) -- memory as
  ``memblock_free_all()`` leaves it: the zone is freed in naturally aligned
  order-10 blocks, ascending, each added at the tail of the MOVABLE list
  (``__free_pages_core()`` uses ``FPI_TO_TAIL``; every pageblock starts
  MOVABLE, ``memmap_init_range()``).  Boot itself has used a seeded amount
  of memory below the first free block (up to 1 GiB; assumed, it moves
  where in a GiB the workload starts).  Kernel allocations then take whole
  pageblocks from the low end upwards (the ``ALLOC_NOFRAGMENT`` fallback).
* ``aged`` (old name ``scattered``) -- a page-cache-filled machine: every
  frame of the zone holds page cache except the free pages kswapd keeps
  between the low and high watermarks; reclaim frees page-cache pages in an
  order unrelated to their address (a machine that has run long enough
  that LRU order no longer follows allocation order; assumed), so free
  pages are scattered and kernel allocations fall back into MOVABLE
  pageblocks, stealing a pageblock's few free pages at a time.

Huge (PMD) vmalloc mappings need naturally aligned order-9 blocks; they come
from aligned 2 MiB blocks at the top of memory (we assume compaction
succeeds -- ``__vmalloc_node_range`` falls back to 4 KiB pages when it does
not, which a design would see only as fewer huge mappings).

Direct map (arch/x86/mm/init.c ``init_mem_mapping()`` ->
``memory_map_top_down()`` -> ``init_range_memory_mapping()`` ->
``split_mem_range()`` + ``adjust_range_page_size_mask()``, and
arch/x86/mm/init_64.c ``phys_pud_init()``, v6.1 through 7.2, with
``direct_gbpages``): only RAM (the e820 ``System RAM`` ranges in memblock)
is mapped.  A GiB that is RAM from end to end is one 1 GiB leaf (however
the top-down chunks cut it, ``adjust_range_page_size_mask()`` adds the 1 GiB
size when ``memblock_is_region_memory()`` holds for the whole GiB and
``phys_pud_init()`` maps the whole PUD); otherwise each 2 MiB block that is
RAM from end to end is one 2 MiB leaf, and the RAM pages of a block that is
only partly RAM are 4 KiB PTEs.  The first GiB is never a 1 GiB leaf: page
0 and the ISA hole are not RAM, and ``[0, ISA_END_ADDRESS)`` is mapped with
4 KiB pages before anything else, so its first 2 MiB are 4 KiB PTEs.
``ram_end`` is where RAM ends (the top of the last e820 RAM range; default
the machine's size): a QEMU/SeaBIOS guest with 2 GiB has RAM up to
0x7ffe0000 (SeaBIOS ``malloc_preinit()`` reserves the top of RAM below
4 GiB for its tables), so its second GiB is 2 MiB leaves and its last 2 MiB
block 480 4 KiB PTEs -- no 1 GiB leaf at all.  Splits are counted like ``/proc/vmstat``
``direct_map_level3_splits`` (1 GiB -> 2 MiB) and
``direct_map_level2_splits`` (2 MiB -> 4 KiB) and never heal in v6.1
(``split_large_page()`` has no inverse before v6.15's CPA_COLLAPSE); the
leaf counts are ``direct_pages_count[]``, shown as ``DirectMap4k/2M/1G`` in
kB by ``arch_report_meminfo()`` (arch/x86/mm/pat/set_memory.c).
"""
from __future__ import annotations

import numpy as np

from ..errors import OutOfMemory
from ..units import GiB, PAGES_PER_PMD, PAGES_PER_PUD
from .pagealloc import MAX_ORDER, MOVABLE, UNMOVABLE, Zone

PRESETS = ("fresh-boot", "aged")
#: the placement names used before the presets existed
ALIASES = {"contiguous": "fresh-boot", "scattered": "aged"}
PLACEMENTS = PRESETS + tuple(ALIASES)


def preset_name(placement: str) -> str:
    """The preset a placement name (or old alias) stands for."""
    p = ALIASES.get(placement, placement)
    if p not in PRESETS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, not {placement!r}")
    return p


class PhysMem:
    """Frame allocator plus direct-map leaf state for a machine."""

    def __init__(self, rng: np.random.Generator, mem_bytes: int = 16 * GiB,
                 placement: str = "fresh-boot", huge_reserve_blocks: int = 64, cpus: int = 2,
                 ram_end: int = 0, vmalloc_large_order: bool = False):
        self.placement = preset_name(placement)
        self.vmalloc_large_order = vmalloc_large_order
        if mem_bytes < 2 * GiB or mem_bytes % GiB:
            raise ValueError("machine memory must be a whole number of GiB, at least 2 GiB")
        ram_end = ram_end or mem_bytes
        if ram_end % 4096 or not mem_bytes - GiB < ram_end <= mem_bytes:
            raise ValueError(f"ram_end={ram_end:#x}: page-aligned, inside the machine's last GiB")
        self.n_frames = mem_bytes // 4096
        self.n_2m = self.n_frames // PAGES_PER_PMD
        self.n_1g = self.n_frames // PAGES_PER_PUD
        self.ram_frames = ram_end // 4096
        top_2m = self.ram_frames // PAGES_PER_PMD    # 2 MiB blocks that are RAM from end to end
        # Aligned 2 MiB blocks for huge mappings, from the top of RAM down.
        self._huge_free = list(range(top_2m - 1, top_2m - 1 - huge_reserve_blocks, -1))
        lo = PAGES_PER_PUD  # kernel image, page tables, early allocations live below 1 GiB
        hi = (top_2m - huge_reserve_blocks) * PAGES_PER_PMD
        self.zone = z = Zone(self.n_frames, lo, hi, cpus)
        if self.placement == "fresh-boot":
            start = lo + int(rng.integers(0, PAGES_PER_PUD))
            self._free_range(start, hi)
        else:
            z.movable[lo:hi] = True
            z.cache[lo:hi] = True
            self._lru = rng.permutation(np.arange(lo, hi, dtype=np.int64))
            self._lru_next = 0
            z.reclaim = self._reclaim
            z.compact = z.reclaim_block
            self._reclaim(z.whigh)
        # direct map: split state per 1 GiB and per 2 MiB region
        # (``True`` = not a leaf of that size: already 2 MiB / 4 KiB, or not RAM)
        self.split_1g = np.zeros(self.n_1g, dtype=bool)
        self.split_2m = np.zeros(self.n_2m, dtype=bool)
        self.split_1g[0] = True        # first GiB: 2 MiB leaves
        self.split_2m[0] = True        # first 2 MiB: 4 KiB pages
        g_ram = self.ram_frames // PAGES_PER_PUD               # GiBs that are RAM end to end
        self.split_1g[g_ram:] = True
        self.split_2m[top_2m:] = True                          # partly RAM: 4 KiB PTEs
        self.alias_ro = np.zeros(self.n_frames, dtype=bool)
        self.alias_invalid = np.zeros(self.n_frames, dtype=bool)
        self.splits_1g = 0
        self.splits_2m = 0
        # direct_pages_count[PG_LEVEL_4K/2M/1G] (update_page_count() at boot)
        self.leaves_1g = g_ram - 1
        self.leaves_2m = (PAGES_PER_PUD // PAGES_PER_PMD - 1) + (top_2m - max(g_ram, 1) * 512)
        self.leaves_4k = PAGES_PER_PMD + (self.ram_frames - top_2m * PAGES_PER_PMD)

    def map_all_ptes(self) -> None:
        """The arm64 linear map with rodata=full: page-mapped from boot
        (arch/arm64/mm/mmu.c ``map_mem()`` passes ``NO_BLOCK_MAPPINGS |
        NO_CONT_MAPPINGS`` when ``can_set_direct_map()``), so every frame is
        a permanent 4 KiB entry and nothing ever splits (execbench/kernel/arch/)."""
        self.split_1g[:] = True
        self.split_2m[:] = True
        self.leaves_4k, self.leaves_2m, self.leaves_1g = self.n_frames, 0, 0

    # -- boot state --------------------------------------------------------------------
    def _free_range(self, start: int, end: int) -> None:
        """``__free_pages_memory()``: the largest naturally aligned blocks, ascending, at the tail."""
        z = self.zone
        p = start
        while p < end:
            order = MAX_ORDER - 1
            while order > 0 and (p & ((1 << order) - 1) or p + (1 << order) > end):
                order -= 1
            z.free_block(p, order, MOVABLE, to_tail=True)
            p += 1 << order

    def _reclaim(self, n: int) -> None:
        """kswapd on the aged machine: free ``n`` page-cache pages in LRU
        order (a seeded permutation of the zone, unrelated to address)."""
        z = self.zone
        lru, i, freed = self._lru, self._lru_next, 0
        while freed < n and i < lru.size:
            take = lru[i:i + max(2 * (n - freed), 64)]
            i += take.size
            for pfn in take[z.cache[take]].tolist():
                z.cache[pfn] = z.movable[pfn] = False
                z.free_block(pfn, 0)
                freed += 1
                if freed >= n:
                    break
        self._lru_next = i
        z.stats["reclaimed_pages"] += freed

    # -- allocation ----------------------------------------------------------------------
    def alloc_frames(self, n: int, cpu: int = 0, movable: bool = False) -> np.ndarray:
        """``n`` order-0 frames, as ``vm_area_alloc_pages()`` gets them from
        ``alloc_pages_bulk_array_node()`` (mm/vmalloc.c, v6.1): each one from
        the current CPU's pcp list."""
        return np.array(self.zone.alloc_many(n, MOVABLE if movable else UNMOVABLE, cpu),
                        dtype=np.int64)

    def alloc_vmalloc_pages(self, n: int, cpu: int = 0) -> np.ndarray:
        """The ``n`` small pages of a vmalloc area (``vm_area_alloc_pages()``).

        v6.1-v6.12: order-0 pages one at a time (:meth:`alloc_frames`).  With
        ``vmalloc_large_order`` (7.2 mm/vmalloc.c ``vm_area_alloc_pages()``;
        not in 6.12.117's): first ``alloc_pages(large_gfp, large_order)`` with
        ``large_order = min(ilog2(remaining), MAX_PAGE_ORDER)``, split into
        order-0 pages, again for what remains; an order that fails is not
        tried again (``max_attempt_order = --large_order``); the rest
        (an odd last page, or everything when every order failed) from the
        bulk allocator.  ``large_gfp`` has no ``__GFP_DIRECT_RECLAIM``, so a
        large attempt never compacts or reclaims (the aged preset's
        stand-in for the slow path is off for it).  Orders 1-3 come from the
        per-CPU lists, larger ones from the buddy (``rmqueue()``).

        Its free side is :meth:`free_vmalloc_pages`."""
        if not self.vmalloc_large_order:
            return self.alloc_frames(n, cpu)
        z = self.zone
        out: list[np.ndarray] = []
        got, max_order = 0, MAX_ORDER - 1
        order = min(max_order, n.bit_length() - 1) if n else 0
        compact, z.compact = z.compact, None
        try:
            while order > 0 and got < n:
                try:
                    pfn = z.alloc(order, UNMOVABLE, cpu)
                except OutOfMemory:
                    max_order = order = order - 1
                    continue
                out.append(np.arange(pfn, pfn + (1 << order), dtype=np.int64))
                got += 1 << order
                order = min(max_order, (n - got).bit_length() - 1) if got < n else 0
        finally:
            z.compact = compact
        if got < n:
            out.append(self.alloc_frames(n - got, cpu))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def free_vmalloc_pages(self, frames: np.ndarray, cpu: int = 0) -> None:
        """``vfree()`` of a small-page area's ``frames`` (in the area's order).

        v6.1-v6.12: page by page (:meth:`free_frames`).  With
        ``vmalloc_large_order``, 7.2 ``vm_area_free_pages()`` ->
        ``free_pages_bulk()`` (mm/page_alloc.c): each run of consecutive
        entries with consecutive frame numbers goes to
        ``__free_contig_range()`` -> ``free_prepared_contig_range()``, which
        frees it as naturally aligned blocks, each of order
        ``min(__ffs(pfn), ilog2(pages left), MAX_PAGE_ORDER)``, with
        ``__free_frozen_pages(page, order)``: orders 0-3 to the per-CPU list
        of that order, larger ones to the buddy."""
        if not self.vmalloc_large_order:
            self.free_frames(frames, cpu=cpu)
            return
        if frames.size == 0:
            return
        f = frames.tolist()
        i = 0
        while i < len(f):
            j = i + 1
            while j < len(f) and f[j] == f[j - 1] + 1:
                j += 1
            pfn, left = f[i], j - i
            while left:
                align = (pfn & -pfn).bit_length() - 1 if pfn else MAX_ORDER - 1
                order = min(align, left.bit_length() - 1, MAX_ORDER - 1)
                self.zone.free(pfn, order, cpu)
                pfn += 1 << order
                left -= 1 << order
            i = j

    def alloc_block(self, order: int, cpu: int = 0, movable: bool = False) -> int:
        """One ``alloc_pages(gfp, order)`` block; its first frame."""
        return self.zone.alloc(order, MOVABLE if movable else UNMOVABLE, cpu)

    def free_block(self, pfn: int, order: int, cpu: int = 0) -> None:
        self.zone.free(pfn, order, cpu)

    def alloc_huge_block(self) -> np.ndarray:
        """One naturally aligned order-9 block (512 contiguous frames)."""
        if not self._huge_free:
            raise OutOfMemory("no aligned 2 MiB block left for a huge mapping")
        b = self._huge_free.pop()
        return np.arange(b * PAGES_PER_PMD, (b + 1) * PAGES_PER_PMD, dtype=np.int64)

    def free_frames(self, frames: np.ndarray, huge: bool = False, cpu: int = 0,
                    movable: bool = False) -> None:
        """``vfree()`` -> ``__vunmap()``: pages freed in index order (the last
        one ends up at the head of the pcp list)."""
        if huge:
            for b in np.unique(frames // PAGES_PER_PMD)[::-1]:
                self._huge_free.append(int(b))
            return
        self.zone.free_many(frames, cpu, movable)

    # -- direct map ------------------------------------------------------------------------
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
        # a 1 GiB leaf becomes 512 2 MiB leaves, a 2 MiB leaf 512 4 KiB pages
        self.leaves_1g -= n1
        self.leaves_2m += n1 * (PAGES_PER_PUD // PAGES_PER_PMD) - n2
        self.leaves_4k += n2 * PAGES_PER_PMD
        return n1, n2

    def leaves(self) -> tuple[int, int, int]:
        """Current (4K, 2M, 1G) leaf counts of the direct map (``direct_pages_count``)."""
        return self.leaves_4k, self.leaves_2m, self.leaves_1g

    def meminfo(self) -> dict[str, int]:
        """``DirectMap4k/2M/1G`` in kB, as ``arch_report_meminfo()`` prints them."""
        return {"DirectMap4k": self.leaves_4k * 4, "DirectMap2M": self.leaves_2m * 2048,
                "DirectMap1G": self.leaves_1g * 1048576}
