"""kprobes' insn slots in v6.10 (kernel/kprobes.c, arch/x86/kernel/kprobes/core.c).

Slots come from :class:`models.common.kprobe_insn_cache.InsnCache`.  x86
``alloc_insn_page()`` = ``execmem_alloc(EXECMEM_KPROBES, PAGE_SIZE)`` then
``set_memory_rox(page, 1)`` (v6.2+: one call instead of ro then x; no
``set_vm_flush_reset_perms`` since execmem sets VM_FLUSH_RESET_PERMS);
``free_insn_page()`` = ``execmem_free()``.  The copied instruction and the
optprobe detour buffer are written with ``text_poke()``.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SIZE

from ..common.kprobe_insn_cache import MAX_INSN_SIZE, InsnCache
from .api import ExecmemApi, ExecmemType


class Kprobes610:
    def __init__(self, kernel: Kernel, api: ExecmemApi):
        self.k = kernel
        self.api = api
        self.slots = InsnCache(MAX_INSN_SIZE, self._alloc_page, api.execmem_free,
                               kernel.count, "kprobe_insn")
        self.opt: InsnCache | None = None
        self.probes: dict[str, list] = {}

    def _alloc_page(self) -> int:
        page = self.api.execmem_alloc(ExecmemType.KPROBES, PAGE_SIZE, caller="alloc_insn_page")
        self.api.set_memory_rox(page, 1)
        return page

    def register(self, ev: Event) -> None:
        slot = self.slots.get()
        n = min(ev.size, MAX_INSN_SIZE)
        self.api.text_poke(slot, n)
        self.k.text_claim(slot, n)
        self.probes[ev.obj] = [slot, n, None, 0]

    def optimize(self, ev: Event) -> None:
        if self.opt is None:
            # kprobe_optinsn_slots.insn_size is fixed per arch (MAX_OPTINSN_SIZE);
            # the first recorded optprobe size stands for it (as in legacy).
            self.opt = InsnCache(ev.size, self._alloc_page, self.api.execmem_free,
                                 self.k.count, "kprobe_optinsn")
        slot = self.opt.get()
        n = min(ev.size, self.opt.insn_size)
        self.api.text_poke(slot, n)
        self.k.text_claim(slot, n)
        p = self.probes[ev.obj]
        p[2], p[3] = slot, n

    def unregister(self, ev: Event) -> None:
        slot, n, oslot, on = self.probes.pop(ev.obj)
        self.k.text_release(slot, n)
        self.slots.free(slot, dirty=True)
        if oslot is not None:
            self.k.text_release(oslot, on)
            self.opt.free(oslot, dirty=True)
