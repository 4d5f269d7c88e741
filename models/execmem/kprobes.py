"""kprobes' insn slots in v6.10 (kernel/kprobes.c, arch/x86/kernel/kprobes/core.c).

Slots come from :class:`models.common.kprobe_insn_cache.InsnCache`.  x86
``alloc_insn_page()`` = ``execmem_alloc(EXECMEM_KPROBES, PAGE_SIZE)`` then
``set_memory_rox(page, 1)`` (v6.2+: one call instead of ro then x; no
``set_vm_flush_reset_perms`` since execmem sets VM_FLUSH_RESET_PERMS);
``free_insn_page()`` = ``execmem_free()``.  The copied instruction and the
optprobe detour buffer are written with ``text_poke()``.
"""
from __future__ import annotations

from execbench.units import PAGE_SIZE

from ..common.kprobes import SlotKprobes
from .api import ExecmemType


class Kprobes610(SlotKprobes):
    def _alloc_page(self) -> int:
        page = self.api.execmem_alloc(ExecmemType.KPROBES, PAGE_SIZE, caller="alloc_insn_page")
        self.api.set_memory_rox(page, 1)
        return page

    def _free_page(self, page: int) -> None:
        self.api.execmem_free(page)
