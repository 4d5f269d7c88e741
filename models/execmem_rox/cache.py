"""The execmem ROX cache (mm/execmem.c, v6.13; docs/kernel-semantics.md §9).

Series: Mike Rapoport, "x86/module: use large ROX pages for text
allocations" (v4 Message-ID 20241007062858.44248-1-rppt@kernel.org, v7
20241023162711.2579610-1-rppt@kernel.org; x86 enabled by 5185e7f9f3bd for
v6.13).  What is modelled, function by function:

* ``struct execmem_cache``: ONE global cache (mutex + two maple trees,
  ``busy_areas`` and ``free_areas``, keyed by address) -- not per type, not
  per node.  Here: a sorted list of free ``[start, end)`` byte ranges and a
  dict of busy ranges.
* ``__execmem_cache_alloc(range, size)``: walk ``free_areas`` in address
  order and take the FIRST area with ``area_size >= size`` inside the range;
  ``[addr, addr+size)`` goes to ``busy_areas`` and the tail back to
  ``free_areas``.  ``size`` is already ``PAGE_ALIGN``ed by
  ``execmem_alloc()`` -> 4 KiB granularity.  No permission change.
* ``execmem_cache_populate(range, size)`` when nothing fits:
  ``alloc_size = round_up(size, PMD_SIZE)``; ``execmem_vmalloc(range,
  alloc_size, PAGE_KERNEL, VM_ALLOW_HUGE_VMAP)`` (``align = PMD_SIZE`` for
  huge vmap) -> a PMD-mapped RW area; ``execmem_fill_trapping_insns(p,
  alloc_size, writable=true)`` = ``memset(INT3)``; then
  - v6.13 (``version < (6, 15)``): ``vunmap_range()``,
    ``execmem_set_direct_map_valid(vm, false)`` (the frames leave the direct
    map, 2 MiB at a time), ``vmap_pages_range_noflush(..., PAGE_KERNEL_ROX,
    ..., PMD_SHIFT)`` -> 2 MiB ROX leaves, no ``set_memory_*`` call;
  - v6.15+ (925f42645118 "execmem: don't remove ROX cache from the
    direct map"; code read in ColinIanKing/linux-next mm/execmem.c
    @be35d7d61613): ``set_memory_rox(p, vm->nr_pages)`` instead (1 CPA; the
    direct-map alias goes RO as one 2 MiB change).  ``vm_flags`` stays
    ``VM_ALLOW_HUGE_VMAP`` only (no VM_FLUSH_RESET_PERMS).  (Before
    ``execmem_cache_make_ro()`` late in boot it is ``set_memory_x``; every
    workload here starts after boot, so that branch is not modelled.)
  then ``execmem_cache_add(p, alloc_size)`` (merging with neighbours).
* ``execmem_cache_free(ptr)``: remove from ``busy_areas``; v6.13-v6.16
  ``execmem_fill_trapping_insns(ptr, size, writable=false)`` =
  ``text_poke_set(INT3)``; add to ``free_areas`` (coalescing);
  ``schedule_work(&execmem_cache_clean_work)``.  v6.17 ("execmem: rework
  execmem_cache_free()", patch text read): ``__execmem_cache_free()`` =
  ``execmem_force_rw()`` (``set_memory_nx`` + ``set_memory_rw``),
  ``execmem_fill_trapping_insns(writable=true)`` (memset),
  ``execmem_restore_rox()`` (``set_memory_rox``) -- no text poke; the
  pending-free retry path (taken only when that fails) is not modelled.
* ``execmem_cache_clean()``: every free area whose start and size are
  PMD-aligned: ``execmem_set_direct_map_valid(vm, true)`` (in every version:
  ``__set_pages_p`` makes the frames present and RW again), then plain
  ``vfree(area)``.  A 2 MiB block goes back only when wholly free.

v7.2 (Debian 7.2.13 mm/execmem.c, read in full) keeps the v6.17 rules above.
One difference, invisible to a sequential replay: v6.17's
``execmem_cache_alloc()`` calls ``execmem_cache_populate()`` (which adds the
new block under the cache mutex) and then ``__execmem_cache_alloc()`` again
under a second hold, so a parallel allocator could take the block first; 7.2's
``execmem_cache_populate_alloc()`` adds the block and carves the allocation
from it under one hold (the commit that changed it is not in the sources read
here).  Unchanged since the v6.17 series (its patch 6/8,
20250704134943.3524829-7-rppt@kernel.org): ``execmem_fill_trapping_insns(ptr,
size)`` is a plain ``memset(INT3)`` on x86; populate ends with
``set_memory_rox(p, vm->nr_pages)``; if the 2 MiB ``execmem_vmalloc()`` fails it
retries with ``alloc_size = size`` (the v6.17 series' fallback, also in 7.2;
modelled from 6.17 on -- v6.15's ``execmem_cache_populate()`` returns -ENOMEM
at once); ``within_range()`` takes an area whose start ``addr >= range->start``
and ``addr + size < range->end`` (strict).

Simplified:
* the clean worker runs synchronously right after each free (it is queued
  work in the kernel; the block would be returned a little later);
* a free area is returned only when it is a whole populated area (for 2 MiB
  blocks this is exactly the kernel's alignment test; vmalloc's guard page
  keeps two blocks from ever being adjacent, so free areas never span two
  blocks);
* the fallback range (unused on x86) and KASAN are left out.
"""
from __future__ import annotations

import bisect
from typing import Callable

from execbench.errors import KernelBug, OutOfMemory
from execbench.kernel import Kernel
from execbench.units import PAGE_SIZE, PMD_SIZE, round_up

INT3 = 0xCC


class ExecmemCache:
    """One global ROX cache over ``[start, end)`` of the module range."""

    def __init__(self, kernel: Kernel, start: int, end: int, version: tuple[int, int]):
        self.k = kernel
        self.start = start
        self.end = end
        self.version = version
        self.free_starts: list[int] = []      # free_areas, by address
        self.free_ends: list[int] = []
        self.busy: dict[int, int] = {}        # busy_areas: addr -> size
        self.blocks: dict[int, int] = {}      # populated vm areas: addr -> size

    # -- free tree ---------------------------------------------------------------------
    def _add_free(self, addr: int, size: int) -> None:
        """``execmem_cache_add()``: insert and merge with adjacent free areas."""
        lo, hi = addr, addr + size
        i = bisect.bisect_left(self.free_starts, lo)
        if i > 0 and self.free_ends[i - 1] > lo or i < len(self.free_starts) and self.free_starts[i] < hi:
            raise KernelBug(f"execmem cache: free range {lo:#x}..{hi:#x} overlaps a free area")
        if i < len(self.free_starts) and self.free_starts[i] == hi:
            hi = self.free_ends[i]
            del self.free_starts[i], self.free_ends[i]
        if i > 0 and self.free_ends[i - 1] == lo:
            lo = self.free_starts[i - 1]
            del self.free_starts[i - 1], self.free_ends[i - 1]
            i -= 1
        self.free_starts.insert(i, lo)
        self.free_ends.insert(i, hi)

    def _take(self, size: int) -> int | None:
        """``__execmem_cache_alloc()``: first fit by address."""
        for i, (lo, hi) in enumerate(zip(self.free_starts, self.free_ends)):
            # within_range(): the area's start in [start, end) and start + size < end
            if hi - lo >= size and lo >= self.start and lo + size < self.end:
                if hi - lo == size:
                    del self.free_starts[i], self.free_ends[i]
                else:
                    self.free_starts[i] = lo + size
                self.busy[lo] = size
                return lo
        return None

    # -- populate / clean ------------------------------------------------------------------
    def _populate(self, size: int) -> None:
        k = self.k
        alloc_size = round_up(size, PMD_SIZE)
        new = self.version >= (6, 15)
        try:
            p = self._vmalloc(alloc_size)
        except OutOfMemory:
            if self.version < (6, 17):
                raise                       # execmem_cache_populate() returns -ENOMEM
            # v6.17 / 7.2 (execmem_cache_populate_alloc()): "alloc_size = size" and again
            alloc_size = size
            p = self._vmalloc(alloc_size)
        k.memcpy(p, alloc_size)                       # execmem_fill_trapping_insns(writable)
        npages = alloc_size // PAGE_SIZE
        if new:
            k.set_memory_rox(p, npages, collapse=True)
        else:
            k.set_direct_map_valid(p, npages, valid=False)
            k.vmap_remap(p, npages, w=False, x=True)  # vunmap + vmap ROX, PMD_SHIFT
        k.count("execmem_cache_blocks_new")
        self.blocks[p] = alloc_size
        self._add_free(p, alloc_size)

    def _vmalloc(self, alloc_size: int) -> int:
        """``execmem_vmalloc(range, alloc_size, PAGE_KERNEL, VM_ALLOW_HUGE_VMAP)``
        with the range's alignment (``MODULE_ALIGN`` = PAGE_SIZE without
        KASAN): the huge attempt aligns to PMD_SIZE by itself, the
        small-page fallback of ``__vmalloc_node_range()`` does not."""
        return self.k.vmalloc(alloc_size, align=PAGE_SIZE, start=self.start, end=self.end,
                              w=True, x=False, huge=True, reset_perms=False,
                              caller="execmem_cache_populate")

    def _clean(self) -> None:
        """``execmem_cache_clean()``: give back wholly free populated areas."""
        k = self.k
        for i in range(len(self.free_starts) - 1, -1, -1):
            lo, hi = self.free_starts[i], self.free_ends[i]
            # IS_ALIGNED(size, PMD_SIZE) && IS_ALIGNED(start, PMD_SIZE): a
            # block from the small-page fallback (no order-9 frames left, or
            # the 6.17+ unrounded retry) is never given back
            if self.blocks.get(lo) == hi - lo and lo % PMD_SIZE == 0 and (hi - lo) % PMD_SIZE == 0:
                del self.free_starts[i], self.free_ends[i]
                del self.blocks[lo]
                k.set_direct_map_valid(lo, (hi - lo) // PAGE_SIZE, valid=True)
                k.vfree(lo)
                k.count("execmem_cache_blocks_freed")

    # -- entry points ----------------------------------------------------------------------
    def alloc(self, size: int) -> int:
        """``execmem_cache_alloc(range, size)``; ``size`` page-aligned."""
        p = self._take(size)
        if p is None:
            self._populate(size)
            p = self._take(size)
            if p is None:
                raise KernelBug("execmem cache: populated but the allocation still does not fit")
        return p

    def free(self, addr: int, invalidate: Callable[[int, int], None]) -> bool:
        """``execmem_cache_free(ptr)``: False if ``addr`` is not from the cache
        (``execmem_free()`` then ``vfree()``s it)."""
        size = self.busy.pop(addr, None)
        if size is None:
            return False
        invalidate(addr, size)
        self._add_free(addr, size)
        self._clean()
        return True

    def free_bytes(self) -> int:
        return sum(h - l for l, h in zip(self.free_starts, self.free_ends))
