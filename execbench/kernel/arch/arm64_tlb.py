"""arm64 TLB invalidation of kernel mappings: broadcast TLBIs, no IPIs.

arch/arm64/include/asm/tlbflush.h:

* ``flush_tlb_all()`` = ``TLBI VMALLE1IS`` + ``DSB ISH``: broadcast in the
  inner-shareable domain by the interconnect; no IPI.  Counted in
  ``tlb_flush_all``.
* ``flush_tlb_kernel_range(start, end)``: 6.1 and 6.12 -- ``(end - start) >
  MAX_TLBI_OPS * PAGE_SIZE`` (``MAX_DVM_OPS`` in 6.12; both
  ``PTRS_PER_PTE`` = 512) becomes ``flush_tlb_all()``, else one ``TLBI
  VAALE1IS`` per page.  From v6.13 (a923705c69f7 "arm64: optimize flush tlb
  kernel range", 7ffc13e23395 "arm64: tlbflush: add
  __flush_tlb_range_limit_excess()"; 7.2 read): with ``FEAT_TLBIRANGE``
  range TLBIs up to ``MAX_TLBI_RANGE_PAGES`` (``__TLBI_RANGE_PAGES(31, 3)``
  = 2,097,152 pages), without it ``pages >= MAX_DVM_OPS`` already becomes a
  full flush (``KernelConfig.tlbi_range``).

Counting, so that reports can put arm64 beside x86 without calling a TLBI an
IPI: every ``flush_tlb_kernel_range()`` or ``flush_tlb_all()`` is one
broadcast invalidation and counts in ``tlb_shootdowns`` (and
``tlb_shootdowns_<cause>``) as on x86 -- on arm64 those are broadcast TLBI
sequences, not IPIs; ``tlb_flush_ipis`` stays 0.  ``tlbi_range_calls`` counts
the range flushes that stayed ranges and ``tlbi_pages`` the pages they
invalidated (with range TLBIs: the pages covered).  Cause ``fixmap`` (arm64
only) is ``clear_fixmap()`` after every text write
(arch/arm64/mm/fixmap.c ``__set_fixmap()`` / 6.1 mm/mmu.c: ``pte_clear`` +
``flush_tlb_kernel_range(addr, addr + PAGE_SIZE)``).

Large-leaf splits: none with the rodata=full linear map (page-mapped from
boot).  With BBML2 (v6.18+) ``split_kernel_leaf_mapping()`` changes the
block size in place without break-before-make -- the point of
``BBML2_NOABORT`` (arch/arm64/mm/mmu.c, 7.2) -- so a split sends no TLBI of
its own; the permission change that caused it flushes afterwards.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..tlb import CAUSES as X86_CAUSES

if TYPE_CHECKING:
    from ..machine import Kernel

#: MAX_TLBI_OPS (6.1) / MAX_DVM_OPS (6.12, 7.2) = PTRS_PER_PTE with 4 KiB pages
TLB_SINGLE_PAGE_FLUSH_CEILING = 512
#: __TLBI_RANGE_PAGES(31, 3) = (31 + 1) << (5 * 3 + 1)
MAX_TLBI_RANGE_PAGES = 32 << 16
CAUSES = X86_CAUSES + ("fixmap",)


def _excess(k: "Kernel", npages: int) -> bool:
    if k.version < (6, 13):
        return npages > TLB_SINGLE_PAGE_FLUSH_CEILING
    if k.config.tlbi_range:
        return npages > MAX_TLBI_RANGE_PAGES
    return npages >= TLB_SINGLE_PAGE_FLUSH_CEILING


def _broadcast(k: "Kernel", cause: str, n: int = 1) -> None:
    c = k.counters
    c["tlb_shootdowns"] += n
    c[f"tlb_shootdowns_{cause}"] += n


def flush_tlb_all(k: "Kernel", cause: str) -> None:
    """``flush_tlb_all()``: ``TLBI VMALLE1IS``."""
    _broadcast(k, cause)
    k.counters["tlb_flush_all"] += 1
    k.tick(k.costs.flush_tlb_all)


def flush_tlb_kernel_range(k: "Kernel", npages: int, cause: str, count: int = 1) -> None:
    """``count`` calls of ``flush_tlb_kernel_range()`` over ``npages`` pages each."""
    if _excess(k, npages):
        for _ in range(count):
            flush_tlb_all(k, cause)
        return
    c = k.counters
    _broadcast(k, cause, count)
    c["tlb_flush_range"] += count
    c["tlbi_range_calls"] += count
    c["tlbi_pages"] += npages * count
    per = k.costs.tlbi_page if (k.version < (6, 13) or not k.config.tlbi_range) else k.costs.tlbi_page / max(npages, 1)
    k.tick(count * npages * per)


def split_flushes(k: "Kernel", n: int) -> None:
    """Linear-map leaf splits send no TLBI of their own (module doc)."""
