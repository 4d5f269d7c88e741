"""kprobes' insn slots in v6.1 (kernel/kprobes.c, arch/x86/kernel/kprobes/).

Slots come from :class:`models.common.kprobe_insn_cache.InsnCache`; x86
``alloc_insn_page()`` is ``module_alloc(PAGE_SIZE)`` +
``set_vm_flush_reset_perms`` + ``set_memory_ro`` + ``set_memory_x`` ("First
make the page read-only, and only then make it executable"), the page is
freed with ``module_memfree``.  ``arch_copy_kprobe()`` writes the copied
instruction with ``text_poke()``; ``arch_prepare_optimized_kprobe()`` writes
the optprobe detour buffer with ``text_poke()`` too.  Arming the probe
patches core kernel text, outside the module range, and is not modelled.
"""
from __future__ import annotations

from execbench.units import PAGE_SIZE

from ..common.kprobes import SlotKprobes


class Kprobes61(SlotKprobes):
    def _alloc_page(self) -> int:
        a = self.api
        page = a.module_alloc(PAGE_SIZE, caller="alloc_insn_page")
        a.set_vm_flush_reset_perms(page)
        a.set_memory_ro(page, 1)
        a.set_memory_x(page, 1)
        return page

    def _free_page(self, page: int) -> None:
        self.api.module_memfree(page)
