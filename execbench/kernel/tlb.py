"""Kernel TLB shootdowns: the broadcast flushes x86 makes for kernel mappings.

Every function here is one broadcast -- an IPI to every CPU that runs a
TLB-flush function there (``on_each_cpu()``) -- and bumps
``tlb_shootdowns`` once, whatever the reason, so the counter is the number
of shootdowns the kernel sends.  Which kind it is:

* :func:`flush_tlb_all` -- ``flush_tlb_all()`` (arch/x86/mm/tlb.c):
  ``on_each_cpu(do_flush_tlb_all)``.  Counted in ``tlb_flush_all`` too.
* :func:`flush_tlb_kernel_range` -- ``flush_tlb_kernel_range(start, end)``
  (arch/x86/mm/tlb.c): more than ``tlb_single_page_flush_ceiling`` (33)
  pages and it *becomes* a full flush, ``on_each_cpu(do_flush_tlb_all)``
  (v6.1-v6.12: ``(end - start) > tlb_single_page_flush_ceiling <<
  PAGE_SHIFT``; 7.2: ``get_flush_tlb_info()`` turns the range into
  ``TLB_FLUSH_ALL`` on the same test) -- one shootdown, counted in
  ``tlb_flush_all``; otherwise ``on_each_cpu(do_kernel_range_flush)``, one
  shootdown counted in ``tlb_flush_range``.
* :func:`cpa_flush_pages` -- ``cpa_flush()`` below the ceiling without
  ``force_flush_all`` (arch/x86/mm/pat/set_memory.c):
  ``on_each_cpu(__cpa_flush_tlb)``, which flushes the changed pages one by
  one on every CPU: still one shootdown, counted in ``tlb_flush_ipis``.

So ``tlb_shootdowns = tlb_flush_all + tlb_flush_range + tlb_flush_ipis``.
``cause`` splits the same total by what sent it (``tlb_shootdowns_<cause>``):
``cpa`` (``cpa_flush()`` of a ``set_memory_*`` call), ``split``
(``__split_large_page()`` flushes everything after installing the new page
table, before the change -- direct map and vmalloc mapping alike),
``collapse`` (v6.15 ``__cpa_collapse_large_pages()``), ``vfree``
(``vm_reset_perms()``'s ``_vm_unmap_aliases()``), ``lazy`` (a purge of
lazily freed vmap areas, :meth:`.machine.Kernel.vm_unmap_aliases`) and
``vunmap`` (``vunmap_range()`` in the v6.13 ROX-cache populate).

Not TLB shootdowns, and not counted here: ``text_poke_sync()`` is
``on_each_cpu(do_sync_core)`` -- a serialising IPI, no TLB flush
(``sync_core_ipis``); ``__text_poke()`` flushes only its private
``poking_mm``, locally.  In 7.2 (Rik van Riel's INVLPGB series, 2025) a
CPU with INVLPGB (AMD) makes the full and the ranged kernel flush with a
broadcast instruction instead of an IPI (``kernel_tlb_flush_all()``,
``kernel_tlb_flush_range()``); the count is the same, only the cost
differs, and the model uses the IPI cost.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .machine import Kernel

TLB_SINGLE_PAGE_FLUSH_CEILING = 33   # arch/x86/mm/tlb.c, v6.1 through 7.2

CAUSES = ("cpa", "split", "collapse", "vfree", "lazy", "vunmap")


def _shootdown(k: "Kernel", cause: str) -> None:
    c = k.counters
    c["tlb_shootdowns"] += 1
    c[f"tlb_shootdowns_{cause}"] += 1


def flush_tlb_all(k: "Kernel", cause: str) -> None:
    """``flush_tlb_all()``."""
    _shootdown(k, cause)
    k.counters["tlb_flush_all"] += 1
    k.tick(k.costs.flush_tlb_all)


def flush_tlb_kernel_range(k: "Kernel", npages: int, cause: str) -> None:
    """``flush_tlb_kernel_range()`` over ``npages`` pages of address space
    (``(end - start) >> PAGE_SHIFT``, which may span far more than what is
    mapped in it)."""
    if npages > TLB_SINGLE_PAGE_FLUSH_CEILING:
        flush_tlb_all(k, cause)
        return
    _shootdown(k, cause)
    k.counters["tlb_flush_range"] += 1
    k.tick(k.costs.flush_ipi_per_page)


def cpa_flush_pages(k: "Kernel") -> None:
    """``on_each_cpu(__cpa_flush_tlb, cpa, 1)``: the page-by-page CPA flush."""
    _shootdown(k, "cpa")
    k.counters["tlb_flush_ipis"] += 1
    k.tick(k.costs.flush_ipi_per_page)


def split_flushes(k: "Kernel", n: int) -> None:
    """``n`` large-page splits, each ending in ``flush_tlb_all()``
    (``__split_large_page()``, set_memory.c v6.1, v6.12, 7.2)."""
    for _ in range(n):
        flush_tlb_all(k, "split")
