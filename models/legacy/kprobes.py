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

from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SIZE

from ..common.kprobe_insn_cache import MAX_INSN_SIZE, InsnCache
from .api import ModuleAllocApi


class Kprobes61:
    def __init__(self, kernel: Kernel, api: ModuleAllocApi):
        self.k = kernel
        self.api = api
        self.slots = InsnCache(MAX_INSN_SIZE, self._alloc_page, api.module_memfree,
                               kernel.count, "kprobe_insn")
        self.opt: InsnCache | None = None
        self.probes: dict[str, list] = {}

    def _alloc_page(self) -> int:
        a = self.api
        page = a.module_alloc(PAGE_SIZE, caller="alloc_insn_page")
        a.set_vm_flush_reset_perms(page)
        a.set_memory_ro(page, 1)
        a.set_memory_x(page, 1)
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
            # the first recorded optprobe size stands for it.
            self.opt = InsnCache(ev.size, self._alloc_page, self.api.module_memfree,
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
