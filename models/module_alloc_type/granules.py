"""Sub-allocation inside 2 MiB RO+X granules: ``granularity = PMD_SIZE``.

Song Liu's v1 header comment (include/linux/moduleloader.h,
20230526051529.3387103-2-song@kernel.org) promises: "If @granularity >
@alignment the allocation can reuse free space in previously allocated
pages. If they are the same, then fresh pages have to be allocated." --
and the cover letter says the set "does not contain a binpack allocator";
**v1 never reads granularity**.  This module is what the comment describes,
built the way Song's own 2022 allocator did it (execmem_alloc v5,
20221128190245.2337461-2-song@kernel.org, mm/vmalloc.c):

* Free space is a per-granule list of free byte ranges, RO+X and backed
  (the 2022 ``free_text_area_root``).  ``alloc(size)``: lowest-address first
  fit with ``alignment`` over all granules (``find_vmap_lowest_match()``).
* No fit: a new granule of ``roundup(size, PMD_SIZE)``:
  ``__vmalloc_node_range(..., align = PMD_SIZE, PAGE_KERNEL,
  VM_ALLOW_HUGE_VMAP | VM_NO_GUARD)`` (PMD-mapped), zeroed while RW+NX,
  then made RO+X (2022: ``set_memory_ro`` + ``set_memory_x``; v6.4 has
  ``set_memory_rox``, one call) -- ``move_vmap_to_free_text_tree()``.
* Memory handed out is already RO+X: no ``set_memory_*`` per allocation and
  no VM_FLUSH_RESET_PERMS (v1's own comment: "Once a better allocator is
  used, we can manually undo set_memory_rox, and thus remove
  VM_FLUSH_RESET_PERMS").
* ``free(ptr)``: ``arch_invalidate_execmem()`` = ``text_poke_set(0xcc)``
  over the allocation, merge the range back; a granule that is entirely
  free again is returned at once: ``set_memory_nx`` + ``set_memory_rw``
  (undo the RO+X by hand) then ``vfree`` (2022: "free at most one backing
  vm per call" -- one per free here too, since one free empties at most
  one granule).

Simplified: free ranges are not merged *across* granules (2022 merged
adjacent vmap_areas of the free tree, so an allocation could straddle two
VM_NO_GUARD granules); allocations larger than a granule get their own
multi-PMD granule.  Only matters for allocations near 2 MiB.
"""
from __future__ import annotations

import bisect

from execbench.errors import DesignError, KernelBug
from execbench.kernel import Kernel
from execbench.units import PAGE_SIZE, PMD_SIZE, round_up

from .configs import VM_ALLOW_HUGE_VMAP, VM_NO_GUARD, ModAllocParams


class Granule:
    __slots__ = ("addr", "size", "free")

    def __init__(self, addr: int, size: int):
        self.addr = addr
        self.size = size
        self.free: list[list[int]] = [[addr, addr + size]]   # sorted, disjoint, merged

    def fit(self, size: int, align: int) -> int:
        """Lowest aligned start of ``size`` free bytes, or -1."""
        for s, e in self.free:
            a = round_up(s, align)
            if a + size <= e:
                return a
        return -1

    def take(self, a: int, size: int) -> None:
        for i, (s, e) in enumerate(self.free):
            if s <= a and a + size <= e:
                parts = [[s, a]] if a > s else []
                if a + size < e:
                    parts.append([a + size, e])
                self.free[i:i + 1] = parts
                return
        raise KernelBug(f"granule {self.addr:#x}: [{a:#x}, +{size}) is not free")

    def give(self, a: int, size: int) -> None:
        starts = [s for s, _ in self.free]
        i = bisect.bisect_left(starts, a)
        self.free.insert(i, [a, a + size])
        # merge with the neighbours
        if i + 1 < len(self.free) and self.free[i][1] == self.free[i + 1][0]:
            self.free[i][1] = self.free[i + 1][1]
            del self.free[i + 1]
        if i > 0 and self.free[i - 1][1] == self.free[i][0]:
            self.free[i - 1][1] = self.free[i][1]
            del self.free[i]

    @property
    def empty(self) -> bool:
        return self.free == [[self.addr, self.addr + self.size]]


class GranulePool:
    """The granules of one allocator (x86: the text allocator)."""

    def __init__(self, kernel: Kernel, params: ModAllocParams):
        if len([v for v in params.vmp if not v.unused]) != 1:
            raise DesignError(f"{params.name}: the granule pool models one address space")
        self.k = kernel
        self.p = params
        self.vmp = next(v for v in params.vmp if not v.unused)
        self.granules: list[Granule] = []            # by address
        self.allocs: dict[int, tuple[Granule, int]] = {}

    def owns(self, ptr: int) -> bool:
        return ptr in self.allocs

    def _new_granule(self, size: int, caller: str) -> Granule:
        k, v = self.k, self.vmp
        gsize = round_up(size, self.p.granularity)
        addr = k.vmalloc(gsize, align=PMD_SIZE, start=v.start, end=v.end, w=v.w, x=v.x,
                         huge=VM_ALLOW_HUGE_VMAP in v.vm_flags,
                         guard=VM_NO_GUARD not in v.vm_flags, caller=f"granule:{caller}")
        k.memcpy(addr, gsize)                           # memset(0) while RW+NX
        k.set_memory_rox(addr, gsize // PAGE_SIZE)      # 2022: set_memory_ro + set_memory_x
        g = Granule(addr, gsize)
        bisect.insort(self.granules, g, key=lambda x: x.addr)
        k.count("mat_granules_new")
        return g

    def alloc(self, size: int, caller: str = "") -> int:
        if size <= 0:
            raise KernelBug(f"module_alloc_type({size})")
        align = self.p.alignment
        for g in self.granules:
            a = g.fit(size, align)
            if a >= 0:
                break
        else:
            g = self._new_granule(size, caller)
            a = g.fit(size, align)
        g.take(a, size)
        self.allocs[a] = (g, size)
        return a

    def free(self, ptr: int) -> None:
        g, size = self.allocs.pop(ptr)
        k = self.k
        with k.poke_source("cache"):
            k.text_poke_set(ptr, size)                  # arch_invalidate_execmem(): INT3
        g.give(ptr, size)
        if g.empty:
            npages = g.size // PAGE_SIZE
            k.set_memory_nx(g.addr, npages)
            k.set_memory_rw(g.addr, npages)
            k.vfree(g.addr)
            self.granules.remove(g)
            k.count("mat_granules_freed")
