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

from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SIZE

from ..common.kprobe_insn_cache import MAX_INSN_SIZE, InsnCache
from .api import ModuleAllocTypeApi

MOD_TEXT = "text"


class KprobesMat:
    def __init__(self, kernel: Kernel, api: ModuleAllocTypeApi):
        self.k = kernel
        self.api = api
        self.slots = InsnCache(MAX_INSN_SIZE, self._alloc_page, self._free_page,
                               kernel.count, "kprobe_insn")
        self.opt: InsnCache | None = None
        self.probes: dict[str, list] = {}

    def _alloc_page(self) -> int:
        return self.api.module_alloc_type(PAGE_SIZE, MOD_TEXT, caller="alloc_insn_page")

    def _free_page(self, page: int) -> None:
        self.api.module_memfree_type(page, MOD_TEXT)

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
            self.opt = InsnCache(ev.size, self._alloc_page, self._free_page,
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
