"""kprobes' insn slots on ``module_alloc_type`` (Song Liu's v1).

kernel/kprobes.c (patch 1/3): ``alloc_insn_page()`` (weak) and
``free_insn_page()`` become ``module_alloc_type(PAGE_SIZE, MOD_TEXT)`` /
``module_memfree_type(page, MOD_TEXT)``; x86's own ``alloc_insn_page()``
(arch/x86/kernel/kprobes/core.c, patch 3/3) drops its
``set_memory_rox(page, 1)`` because the text allocator returns RO+X.
Slots (:class:`models.common.kprobe_insn_cache.InsnCache`) are written with
``text_poke()`` by ``arch_copy_kprobe()`` / ``arch_prepare_optimized_kprobe()``
as before.  Arming a probe patches core kernel text and is not modelled.
"""
from __future__ import annotations

from execbench.units import PAGE_SIZE

from ..common.kprobes import SlotKprobes

MOD_TEXT = "text"


class KprobesMat(SlotKprobes):
    def _alloc_page(self) -> int:
        return self.api.module_alloc_type(PAGE_SIZE, MOD_TEXT, caller="alloc_insn_page")

    def _free_page(self, page: int) -> None:
        self.api.module_memfree_type(page, MOD_TEXT)
