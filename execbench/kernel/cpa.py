"""``set_memory_*``: change_page_attr (arch/x86/mm/pat/set_memory.c).

Rules modelled, by kernel version (:attr:`Kernel.version`):

* One call = one ``change_page_attr_set_clr()``; it is counted even when it
  covers 0 pages or changes nothing (the v6.1 loader makes such calls, and
  a kprobe on ``set_memory_ro`` sees them).
* A page "changes" when its vmalloc PTE bits differ afterwards.  Nothing
  changed -> no flush (``cpa_flush()`` returns early without CPA_FLUSHTLB).
* Aliases: for a vmalloc address CPA also changes the direct-map alias of
  each backing frame (``cpa_process_alias()``).  The alias never takes X
  ("Directmap always has NX set"), so only RW/RO changes reach it.  v6.1:
  ``change_page_attr_set_clr()`` skips alias processing for pure NX/X
  changes ("No alias checking for _NX bit modifications").  v6.2+
  (d597416683d5 "x86/mm: Inhibit _PAGE_NX changes from cpa_process_alias()")
  processes aliases for every change but strips NX from the alias mask.
* A frame whose alias permission changes while a 1 GiB or 2 MiB leaf maps it
  splits that leaf (``split_large_page()``), unless the change covers the
  whole 2 MiB leaf (a PMD-mapped vmalloc area: the alias change arrives as
  one 512-page chunk and ``should_split_large_page()`` keeps the leaf).
* Flush: alias processed (``force_flush_all``) or more than
  ``tlb_single_page_flush_ceiling`` (33) pages -> ``flush_tlb_all()``;
  otherwise an IPI to all CPUs flushing page by page.  Both are broadcast
  IPIs -- one TLB shootdown each (:mod:`.tlb`); ``tlb_flush_all`` counts the
  former.  In v6.2+ this makes X/NX changes on vmalloc memory end in
  ``flush_tlb_all()`` too (docs/kernel-semantics.md §2).
* Every split of a large leaf (direct map or vmalloc PMD) is
  ``__split_large_page()``, which ends in its own ``flush_tlb_all()``
  before the change is made: one more shootdown per split.
* Before anything else ``change_page_attr_set_clr()`` calls
  ``vm_unmap_aliases()`` (v6.1, v6.12, 7.2): lazily freed vmap areas are
  purged with one flush (:meth:`.machine.Kernel.vm_unmap_aliases`), even by
  a call that covers 0 pages or changes nothing.
* ``cpa_calls_effective`` counts the calls that changed at least one PTE
  (and with it, for RW changes, the direct-map alias): exactly the calls
  that set ``CPA_FLUSHTLB`` and so reach ``cpa_flush()``.
* ``set_memory_rox()`` (v6.2+, b38994948567 "x86/mm: Implement native
  set_memory_rox()") clears RW and NX in one call.  ``collapse=True`` is
  v6.15's CPA_COLLAPSE (41d88484c71c "x86/mm/pat: restore large ROX pages
  after fragmentation"): a 2 MiB block of the vmalloc range whose 512 PTEs
  now agree is collapsed back to one PMD leaf, with one more global flush.
* A PMD-mapped vmalloc block only partly covered by a change is split into
  PTEs first (``split_large_page()`` on the vmalloc mapping).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import KernelBug
from ..units import PAGES_PER_PMD
from . import tlb
from .pagetable import HUGE, PRESENT, W, X
from .tlb import TLB_SINGLE_PAGE_FLUSH_CEILING

if TYPE_CHECKING:
    from .machine import Kernel

#: kind -> (bits set, bits cleared)
KINDS: dict[str, tuple[int, int]] = {
    "ro": (0, int(W)),
    "rw": (int(W), 0),
    "x": (int(X), 0),
    "nx": (0, int(X)),
    "rox": (int(X), int(W)),
}


def flush_all(k: "Kernel", cause: str = "cpa") -> None:
    """``flush_tlb_all()`` (:func:`.tlb.flush_tlb_all`)."""
    tlb.flush_tlb_all(k, cause)


def direct_map_touch(k: "Kernel", frames: np.ndarray, whole_2m: bool) -> None:
    """Split the large direct-map leaves over ``frames`` before changing
    them; each split ends in ``flush_tlb_all()``."""
    n1, n2 = k.phys.split_for(frames, whole_2m=whole_2m)
    if n1 or n2:
        k.tick(k.costs.split_large_page * (n1 + n2))
        tlb.split_flushes(k, n1 + n2)


def set_memory(k: "Kernel", kind: str, addr: int, npages: int, collapse: bool = False) -> None:
    if kind == "rox" and k.version < (6, 2):
        raise KernelBug("set_memory_rox() does not exist before v6.2; use ro then x")
    set_bits, clr_bits = KINDS[kind]
    c = k.counters
    c["cpa_calls"] += 1
    c[f"cpa_calls_{kind}"] += 1
    c[f"cpa_pages_{kind}"] += npages
    c["cpa_pages_req"] += npages
    k.tick(k.costs.cpa_call)
    k.vm_unmap_aliases()
    if npages <= 0:
        return
    pt = k.pt
    lo = k.page_of(addr)
    hi = lo + npages
    if lo < 0 or hi > pt.n_pages or not (pt.flags[lo:hi] & PRESENT).all():
        raise KernelBug(f"set_memory_{kind}({addr:#x}, {npages}) on unmapped memory")

    # Split PMD leaves of the vmalloc mapping that the change covers only partly.
    b0, b1 = lo // PAGES_PER_PMD, (hi - 1) // PAGES_PER_PMD
    for b in range(b0, b1 + 1) if (pt.blk_huge[b0] if b0 == b1 else pt.blk_huge[b0:b1 + 1].any()) else ():
        if pt.blk_huge[b]:
            blo, bhi = b * PAGES_PER_PMD, (b + 1) * PAGES_PER_PMD
            f = pt.flags[blo:bhi]
            new = (f | np.uint8(set_bits)) & np.uint8(~clr_bits & 0xFF)
            partial = lo > blo or hi < bhi
            if partial and np.any(new[max(lo, blo) - blo:min(hi, bhi) - blo] !=
                                  f[max(lo, blo) - blo:min(hi, bhi) - blo]):
                pt.set_huge(b, False)
                c["vmalloc_pmd_splits"] += 1
                k.tick(k.costs.split_large_page)
                tlb.split_flushes(k, 1)

    touches_rw = bool((set_bits | clr_bits) & W)
    old_w = (pt.flags[lo:hi] & W) != 0 if touches_rw else None
    changed = pt.change(lo, npages, set_bits, clr_bits)
    n_changed = int(changed.sum())
    k.note_wx()
    c["cpa_pages"] += n_changed
    k.tick(k.costs.cpa_page * npages)

    alias_processed = touches_rw or k.version >= (6, 2)
    alias_changed = False
    if touches_rw:
        w_changed = changed & (old_w != ((pt.flags[lo:hi] & W) != 0))
        if w_changed.any():
            alias_changed = True
            idx = np.flatnonzero(w_changed) + lo
            huge_pages = (pt.flags[idx] & HUGE) != 0
            whole = np.zeros(idx.size, dtype=bool)
            if huge_pages.any():
                # blocks fully inside [lo, hi) keep their 2 MiB direct-map leaf
                blk = idx // PAGES_PER_PMD
                whole = huge_pages & (blk * PAGES_PER_PMD >= lo) & ((blk + 1) * PAGES_PER_PMD <= hi)
            frames = pt.pfn[idx]
            direct_map_touch(k, frames[~whole], whole_2m=False)
            direct_map_touch(k, frames[whole], whole_2m=True)
            k.phys.alias_ro[frames] = not (set_bits & W)

    if n_changed or alias_changed:            # CPA_FLUSHTLB: cpa_flush()
        c["cpa_calls_effective"] += 1
        if alias_processed or npages > TLB_SINGLE_PAGE_FLUSH_CEILING:
            flush_all(k)
        else:
            tlb.cpa_flush_pages(k)

    # cpa_flush() ends in cpa_collapse_large_pages() (v6.15): only a call
    # that changed something gets there
    if collapse and kind == "rox" and (n_changed or alias_changed):
        _collapse(k, lo, hi)


def _collapse(k: "Kernel", lo: int, hi: int) -> None:
    """v6.15 ``cpa_collapse_large_pages()`` for the vmalloc mapping: re-form
    PMD leaves over aligned 2 MiB blocks whose 512 PTEs are present, share
    permissions and map physically contiguous, aligned frames."""
    pt = k.pt
    collapsed = 0
    for b in range(lo // PAGES_PER_PMD, (hi - 1) // PAGES_PER_PMD + 1):
        if pt.blk_huge[b]:
            continue
        blo, bhi = b * PAGES_PER_PMD, (b + 1) * PAGES_PER_PMD
        f = pt.flags[blo:bhi]
        pfn = pt.pfn[blo:bhi]
        if (np.all(f & PRESENT) and np.all(f == f[0]) and pfn[0] % PAGES_PER_PMD == 0
                and np.all(np.diff(pfn) == 1)):
            pt.set_huge(b, True)
            collapsed += 1
    if collapsed:
        k.counters["vmalloc_pmd_collapses"] += collapsed
        flush_all(k, "collapse")
