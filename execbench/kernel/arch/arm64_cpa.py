"""``set_memory_*`` on arm64: ``change_memory_common()`` (arch/arm64/mm/pageattr.c).

Read in 6.1.176 and 6.12.117 (the same logic), with the later changes named
where they apply by version:

1. ``find_vm_area(addr)``: ``-EINVAL`` unless one ``VM_ALLOC`` area covers
   ``[addr, addr + numpages * PAGE_SIZE)`` (``area->size`` includes the guard
   page).  So only vmalloc memory -- a NULL base (an absent module area)
   returns ``-EINVAL`` at once, with no flush and no purge.  From v6.16
   (fcf8dda8cc48 "arm64: pageattr: Explicitly bail out when changing
   permissions for vmalloc_huge mappings") an area with ``VM_ALLOW_HUGE_VMAP``
   is refused too.  Before that a PMD-mapped area got as far as
   ``apply_to_page_range()``, whose ``apply_to_pmd_range()`` returns
   ``-EINVAL`` on a leaf PMD (``WARN_ON_ONCE(pmd_leaf(*pmd))``, mm/memory.c
   6.1) after the alias loop and before the flush, which
   ``__change_memory_common()`` makes whatever the result.  Each refusal
   counts in ``set_memory_einval``.
2. ``numpages == 0`` returns 0 here: no purge, no flush.
3. With ``rodata_full`` (``RODATA_FULL_DEFAULT_ENABLED=y`` in Debian 6.1 and
   6.12; the default in 7.2) and a change of ``PTE_RDONLY`` (ro/rw only), the
   linear-map alias of **every page of the area** (``area->nr_pages``; only
   the requested ones from v6.19, 37cb0aab9068) gets the same change: one
   ``__change_memory_common()`` per page, each ending in
   ``flush_tlb_kernel_range()`` of that page (``linear_alias_pages``).
4. ``vm_unmap_aliases()`` (lazily freed vmap areas: one purge flush if any
   wait).
5. ``__change_memory_common()``: the PTEs, then ``flush_tlb_kernel_range(start,
   start + size)`` -- **always**, changed or not (x86's CPA flushes only on a
   change).

``set_memory_rox()`` has no arm64 implementation: include/linux/set_memory.h
(v6.2+) makes it ``set_memory_ro()`` then ``set_memory_x()``, two calls.

The linear map: with rodata=full it is page-mapped from boot
(arch/arm64/mm/mmu.c ``map_mem()``: ``NO_BLOCK_MAPPINGS | NO_CONT_MAPPINGS``
when ``can_set_direct_map()``), so nothing splits.  With ``linear_map="bbml2"``
(v6.18+, a CPU with ``BBML2_NOABORT``) the alias change first splits the
leaves over the changed page (``split_kernel_leaf_mapping()``); simplified:
a 1 GiB leaf into 2 MiB leaves and a 2 MiB leaf into 4 KiB pages as on x86,
without the intermediate contiguous levels.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...errors import KernelBug
from ..cpa import KINDS
from ..pagetable import PRESENT, W
from . import arm64_tlb

if TYPE_CHECKING:
    from ..machine import Kernel

__all__ = ["KINDS", "set_memory", "direct_map_touch"]


def direct_map_touch(k: "Kernel", frames: np.ndarray, whole_2m: bool) -> None:
    """Split linear-map leaves over ``frames`` before changing them: nothing
    with the page-mapped linear map; BBML2 splits, without a flush of
    their own (:mod:`.arm64_tlb`)."""
    if k.config.linear_map == "ptes" or frames.size == 0:
        return
    n1, n2 = k.phys.split_for(frames, whole_2m=whole_2m)
    if n1 or n2:
        k.tick(k.costs.split_large_page * (n1 + n2))


def _area_at(k: "Kernel", addr: int):
    """``find_vm_area(addr)``: the area starting at or containing ``addr``, or None."""
    if not addr:
        return None
    try:
        return k.find_area(addr)
    except KernelBug:
        return None


def set_memory(k: "Kernel", kind: str, addr: int, npages: int, collapse: bool = False) -> None:
    if kind == "rox":
        if k.version < (6, 2):
            raise KernelBug("set_memory_rox() does not exist before v6.2; use ro then x")
        # include/linux/set_memory.h: the generic set_memory_rox()
        set_memory(k, "ro", addr, npages)
        set_memory(k, "x", addr, npages)
        return
    set_bits, clr_bits = KINDS[kind]
    c = k.counters
    c["cpa_calls"] += 1
    c[f"cpa_calls_{kind}"] += 1
    c[f"cpa_pages_{kind}"] += npages
    c["cpa_pages_req"] += npages
    k.tick(k.costs.cpa_call)
    area = _area_at(k, addr)
    p = k.page_of(addr) if area is not None else -1
    if area is None or p + npages > area.start + area.npages + area.guard:
        c["set_memory_einval"] += 1
        return
    huge_refused = area.huge and k.version >= (6, 16)
    if huge_refused:
        c["set_memory_einval"] += 1
        return
    if npages <= 0:
        return
    lo, hi = p, p + npages
    pt = k.pt
    if not (pt.flags[lo:hi] & PRESENT).all():
        raise KernelBug(f"set_memory_{kind}({addr:#x}, {npages}) on unmapped memory")
    alias_changed = False
    if kind in ("ro", "rw"):
        # rodata_full: the linear alias of every page of the area (v6.19: the requested ones)
        a0, a1 = (lo, hi) if k.version >= (6, 19) else (area.start, area.start + area.npages)
        frames = pt.pfn[a0:a1].copy()
        frames = frames[frames >= 0]
        direct_map_touch(k, frames, whole_2m=False)
        before = k.phys.alias_ro[frames].copy()
        k.phys.alias_ro[frames] = kind == "ro"
        alias_changed = bool((before != (kind == "ro")).any())
        c["linear_alias_pages"] += int(frames.size)
        k.tick(k.costs.cpa_page * frames.size)
        arm64_tlb.flush_tlb_kernel_range(k, 1, "cpa", count=int(frames.size))
    k.vm_unmap_aliases()
    if area.huge:
        # apply_to_pmd_range(): WARN_ON_ONCE(pmd_leaf(*pmd)) -> -EINVAL, no PTE
        # changes; __change_memory_common() still flushes the range
        c["set_memory_einval"] += 1
        arm64_tlb.flush_tlb_kernel_range(k, npages, "cpa")
        return
    changed = pt.change(lo, npages, set_bits, clr_bits)
    n_changed = int(changed.sum())
    k.note_wx()
    c["cpa_pages"] += n_changed
    k.tick(k.costs.cpa_page * npages)
    if n_changed or alias_changed:
        c["cpa_calls_effective"] += 1
    arm64_tlb.flush_tlb_kernel_range(k, npages, "cpa")
