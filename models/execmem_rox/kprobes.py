"""kprobes insn pages on the ROX cache (v6.17, 36de1e4238c1
"x86/kprobes: enable EXECMEM_ROX_CACHE for kprobes allocations").

EXECMEM_KPROBES gets ``PAGE_KERNEL_ROX`` and the ROX cache, and the patch
deletes x86's ``alloc_insn_page()`` override (arch/x86/kernel/kprobes/core.c,
18 lines removed per the series' diffstat: the ``execmem_alloc`` +
``set_memory_rox(page, 1)`` pair), leaving kernel/kprobes.c's generic
``alloc_insn_page()`` = ``execmem_alloc(EXECMEM_KPROBES, PAGE_SIZE)``: a 4 KiB
piece of a 2 MiB ROX block, no ``set_memory_*`` call.  Slots are written with
``text_poke()`` as before.  Checked in the 7.2.13 tree: kernel/kprobes.c has
that generic ``alloc_insn_page()`` and arch/x86/kernel/kprobes/ no override;
``arch_copy_kprobe()`` and ``__arch_prepare_optimized_kprobe()`` write the slot
with one ``text_poke()`` each.  Before v6.17: v6.10's
(:mod:`models.execmem.kprobes`).
"""
from __future__ import annotations

from execbench.units import PAGE_SIZE

from ..execmem.api import ExecmemType
from ..execmem.kprobes import Kprobes610


class KprobesRox(Kprobes610):
    def _alloc_page(self) -> int:
        return self.api.execmem_alloc(ExecmemType.KPROBES, PAGE_SIZE, caller="alloc_insn_page")
