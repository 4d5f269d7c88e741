"""Direct-map and remapping primitives the v6.13 execmem ROX cache uses.

``execmem_cache_populate()`` (mm/execmem.c, v6.13; docs/kernel-semantics.md §3, §9; series "x86/module: use large ROX pages for text allocations",
Message-ID 20241007062858.44248-1-rppt@kernel.org) does, for a fresh
PMD-mapped RW area filled with INT3::

    vunmap_range(start, end);
    execmem_set_direct_map_valid(vm, false);   /* per 2 MiB chunk */
    vmap_pages_range_noflush(start, end, PAGE_KERNEL_ROX, vm->pages, PMD_SHIFT);

and ``execmem_cache_clean()`` undoes the direct-map part with
``execmem_set_direct_map_valid(vm, true)`` before ``vfree()``.

* :func:`set_direct_map_valid` -- x86 ``set_direct_map_valid_noflush(page,
  nr, valid)`` (arch/x86/mm/pat/set_memory.c, v6.13) = ``__set_pages_p`` /
  ``__set_pages_np`` over ``nr`` frames of the direct map: a CPA on the
  direct map itself (no alias processing, no flush -- "noflush");
  ``__set_pages_p`` sets ``_PAGE_PRESENT | _PAGE_RW``, so making frames valid
  also undoes a read-only alias (v6.15's ROX cache relies on this).  With
  ``nr`` = 512 frames of a naturally aligned order-9 block the change covers
  a whole 2 MiB leaf, so only a covering 1 GiB leaf has to split
  (``should_split_large_page()`` keeps a 2 MiB leaf that changes as a whole).
* :func:`vmap_remap` -- ``vunmap_range()`` + ``vmap_pages_range_noflush()``
  with a new pgprot over the same pages and leaf size: the vmalloc PTEs/PMDs
  change without ``set_memory_*`` (no CPA call is counted), and
  ``vunmap_range()``'s ``flush_tlb_kernel_range()`` over 512+ pages is a
  full flush (more than ``tlb_single_page_flush_ceiling`` pages,
  arch/x86/mm/tlb.c): one shootdown, :mod:`.tlb`.
* A split made by ``set_direct_map_valid_noflush()`` is still
  ``__split_large_page()``, whose ``flush_tlb_all()`` "noflush" does not
  skip: one shootdown per split.

Simplified: the order of the steps inside populate is kept, but the moment
between unmap and remap (when the range is not mapped at all) is not a
separate state -- nothing can run in it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import KernelBug
from . import tlb
from .pagetable import PRESENT, W, X

if TYPE_CHECKING:
    from .machine import Kernel


def set_direct_map_valid(k: "Kernel", frames: np.ndarray, valid: bool) -> None:
    """``set_direct_map_valid_noflush()`` over ``frames`` (a whole aligned
    2 MiB block, or several)."""
    if frames.size == 0:
        return
    whole = frames.size % 512 == 0 and bool(np.all(frames.reshape(-1, 512)[:, 0] % 512 == 0))
    n1, n2 = k.phys.split_for(frames, whole_2m=whole)
    k.phys.alias_invalid[frames] = not valid
    if valid:
        k.phys.alias_ro[frames] = False     # __set_pages_p sets _PAGE_PRESENT | _PAGE_RW
    k.count("direct_map_invalid_calls" if not valid else "direct_map_valid_calls")
    k.count("direct_map_invalid_pages" if not valid else "direct_map_valid_pages", int(frames.size))
    k.tick(k.costs.cpa_call + k.costs.cpa_page * frames.size
           + k.costs.split_large_page * (n1 + n2))
    tlb.split_flushes(k, n1 + n2)


def vmap_remap(k: "Kernel", lo: int, npages: int, w: bool, x: bool) -> None:
    """Remap pages ``[lo, lo+npages)`` of the range with a new pgprot, same
    frames and leaf size; ``vunmap_range()`` flushes the range
    (``flush_tlb_kernel_range()``)."""
    pt = k.pt
    if lo < 0 or lo + npages > pt.n_pages or not np.all(pt.flags[lo:lo + npages] & PRESENT):
        raise KernelBug(f"vmap_remap of unmapped pages {lo}..{lo + npages}")
    set_bits = (W if w else 0) | (X if x else 0)
    clr_bits = (0 if w else W) | (0 if x else X)
    pt.change(lo, npages, int(set_bits), int(clr_bits))
    k.note_wx()
    k.counters["vmap_remaps"] = k.counters.get("vmap_remaps", 0) + 1
    k.tick(k.costs.vfree_call + k.costs.vmalloc_call)   # the unmap and the remap walks
    tlb.flush_tlb_kernel_range(k, npages, "vunmap")
