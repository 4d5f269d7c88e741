"""execmem with the ROX cache: the API as of v6.13, v6.15, v6.17 and v7.2 on x86.

* x86 ``execmem_arch_setup()`` (arch/x86/mm/init.c, v6.13, 5185e7f9f3bd
  "x86/module: enable ROX caches for module text on 64 bit"):
  ``[EXECMEM_MODULE_TEXT] = { .flags = EXECMEM_KASAN_SHADOW |
  EXECMEM_ROX_CACHE, .pgprot = PAGE_KERNEL_ROX }``; KPROBES..BPF and
  MODULE_DATA ``PAGE_KERNEL``; one range ``[MODULES_VADDR + offset,
  MODULES_END)``, ``MODULE_ALIGN``.  v6.17 (Message-ID
  20250709134933.3848895-1-rppt@kernel.org; 5d79c2be5081, 36de1e4238c1)
  gives EXECMEM_FTRACE and EXECMEM_KPROBES the ROX cache too.
* ``execmem_alloc(type, size)``: ``PAGE_ALIGN(size)``; ROX_CACHE types come
  from :class:`~.cache.ExecmemCache`, the rest are v6.10's vmalloc.
  ``execmem_free()``: the cache if the pointer is busy there, else vfree.
* v6.13-v6.16 ``execmem_update_copy(dst, src, size)`` = ``text_poke_copy``.
* v6.15 ``execmem_make_temp_rw(ptr, size)`` = ``set_memory_nx`` then
  ``set_memory_rw`` over the caller's pages; ``execmem_restore_rox(ptr,
  size)`` = ``set_memory_rox`` -- which since 41d88484c71c passes
  CPA_COLLAPSE, so every ``set_memory_rox`` in a v6.15+ design collapses.
* v6.17 ``execmem_alloc_rw(type, size)`` = ``execmem_alloc()`` +
  ``execmem_force_rw()`` (``execmem_make_temp_rw`` renamed and made static);
  the module loader now uses it for every ``mod_mem_type``; callers restore
  ROX with ``execmem_restore_rox()``/``set_memory_rox()``.
* v7.2 (Debian 7.2.13 source, mm/execmem.c, read in full): the same API as
  v6.17 -- ``execmem_alloc()``, ``execmem_alloc_rw()`` (``execmem_alloc()`` +
  the static ``execmem_force_rw()`` = ``set_memory_nx`` + ``set_memory_rw``),
  ``execmem_restore_rox()`` (``set_memory_rox``), ``execmem_free()``
  (``execmem_cache_free()`` else ``vfree``), ``execmem_is_rox()``; there is no
  ``execmem_update_copy()`` and no ``execmem_make_temp_rw()`` any more.  x86
  ``execmem_arch_setup()`` (arch/x86/mm/init.c, 7.2) gives MODULE_TEXT,
  KPROBES and FTRACE ``EXECMEM_KASAN_SHADOW | EXECMEM_ROX_CACHE`` when
  ``X86_FEATURE_PSE`` (else the pre-6.13 RW ranges); BPF and MODULE_DATA
  ``PAGE_KERNEL`` without the cache -- as v6.17.  ``execmem_free(NULL)``
  (``do_free_init()`` for an absent init area) finds nothing in
  ``busy_areas`` and ``vfree(NULL)`` returns at once: no work, counted as
  ``execmem_free_null`` (and ``free_null_calls``) by the module loader.
* Text-poke names: Ingo Molnar's x86/alternatives rework (tip
  x86/alternatives, April 2025, merged for v6.16; series
  20250411054105.2341982-1-mingo@kernel.org) renamed ``text_poke_bp()`` to
  ``smp_text_poke_single()`` (9586ae48e785) and ``text_poke_queue()`` /
  ``text_poke_finish()`` to ``smp_text_poke_batch_add()`` /
  ``smp_text_poke_batch_finish()`` (732c7c33a0c1, e8d7b8c2bbcd); since
  c8976ade0c1b ``smp_text_poke_single()`` is ``smp_text_poke_batch_add()`` +
  ``smp_text_poke_batch_finish()`` (arch/x86/kernel/alternative.c, 7.2).  Same
  INT3-breakpoint protocol; from v6.17 the API entry point is recorded under
  the new name.
"""
from __future__ import annotations

from dataclasses import replace

from execbench.kernel import Kernel
from execbench.kernel.layout import MODULES_END
from execbench.units import page_align, pages

from ..execmem.api import ExecmemApi, ExecmemInfo, ExecmemRange, ExecmemType
from .cache import ExecmemCache

VERSIONS = ((6, 13), (6, 15), (6, 17), (7, 2))


def x86_execmem_info_rox(k: Kernel, version: tuple[int, int]) -> ExecmemInfo:
    base = ExecmemRange(start=k.vstart, end=MODULES_END)
    rox = replace(base, w=False, x=True, rox_cache=True)     # PAGE_KERNEL_ROX
    ranges = {t: base for t in ExecmemType}
    ranges[ExecmemType.MODULE_TEXT] = rox
    if version >= (6, 17):
        ranges[ExecmemType.FTRACE] = rox
        ranges[ExecmemType.KPROBES] = rox
    return ExecmemInfo(ranges)


class ExecmemRoxApi(ExecmemApi):
    def __init__(self, kernel: Kernel, version: tuple[int, int]):
        super().__init__(kernel, x86_execmem_info_rox(kernel, version))
        self.version = version
        self.rox_collapse = version >= (6, 15)
        r = self.info.ranges[ExecmemType.MODULE_TEXT]
        self.cache = ExecmemCache(kernel, r.start, r.end, version)

    def execmem_is_rox(self, type_: ExecmemType) -> bool:
        self.k.api("execmem_is_rox")
        return self.info.ranges[type_].rox_cache

    def execmem_alloc(self, type_: ExecmemType, size: int, caller: str = "") -> int:
        if not self.info.ranges[type_].rox_cache:
            return super().execmem_alloc(type_, size, caller)
        self.k.api("execmem_alloc")
        return self.cache.alloc(page_align(size))

    def _invalidate(self, addr: int, size: int) -> None:
        """What ``execmem_cache_free()`` does to the freed range: v6.13-v6.16
        ``execmem_fill_trapping_insns(ptr, size, writable=false)``
        (``text_poke_set``); v6.17 ``__execmem_cache_free()``."""
        k = self.k
        if self.version >= (6, 17):      # force_rw, memset INT3, restore_rox
            self._force_rw(addr, size)
            k.memcpy(addr, size)
            k.set_memory_rox(addr, pages(size), collapse=True)
        else:
            with k.poke_source("cache"):
                k.text_poke_set(addr, size)

    def execmem_free(self, addr: int | None) -> None:
        self.k.api("execmem_free")
        if addr is None:                 # not in busy_areas, then vfree(NULL)
            self.k.free_null("execmem_free")
            return
        if not self.cache.free(addr, self._invalidate):
            self.k.vfree(addr)

    def text_poke_bp(self, addr: int, nbytes: int) -> None:
        """``text_poke_bp()``; ``smp_text_poke_single()`` from v6.16 (same
        INT3 protocol, arch/x86/kernel/alternative.c)."""
        if self.version < (6, 17):
            return super().text_poke_bp(addr, nbytes)
        self.k.api("smp_text_poke_single")
        self.k.text_poke_bp(addr, nbytes)

    # -- v6.13-v6.16 -------------------------------------------------------------------
    def execmem_update_copy(self, dst: int, size: int) -> None:
        self.k.api("execmem_update_copy")
        self.k.text_poke_copy(dst, size)

    def text_poke_repeat(self, addr: int, span: int, nbytes: int, count: int) -> None:
        """``count`` ``text_poke()`` calls of ``nbytes`` inside ``[addr, +span)``
        (v6.13's ``__fentry__`` conversion; the ``inplace`` what-if)."""
        self.k.api_repeat("text_poke", count)
        self.k.text_poke_repeat(addr, span, nbytes, count)

    # -- v6.15+ --------------------------------------------------------------------------
    def _force_rw(self, addr: int, size: int) -> None:
        n = pages(size)
        self.k.set_memory_nx(addr, n)
        self.k.set_memory_rw(addr, n)

    def execmem_make_temp_rw(self, addr: int, size: int) -> None:
        self.k.api("execmem_make_temp_rw")
        self._force_rw(addr, size)

    def execmem_restore_rox(self, addr: int, size: int) -> None:
        self.k.api("execmem_restore_rox")
        self.k.set_memory_rox(addr, pages(size), collapse=True)

    # -- v6.17 ----------------------------------------------------------------------------
    def execmem_alloc_rw(self, type_: ExecmemType, size: int, caller: str = "") -> int:
        """``execmem_alloc()`` then ``execmem_force_rw()`` -- for every type
        (the v6.17 patch calls it unconditionally; on memory that is already
        RW+NX the two CPA calls change nothing)."""
        self.k.api("execmem_alloc_rw")
        r = self.info.ranges[type_]
        if r.rox_cache:
            p = self.cache.alloc(page_align(size))
        else:
            p = self._vmalloc(r, size, caller or type_.name)
        self._force_rw(p, page_align(size))
        return p
