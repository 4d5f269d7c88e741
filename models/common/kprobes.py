"""The kprobes user shared by designs that keep kernel/kprobes.c's
insn-slot caches (v6.1 through v6.17 logic).

``register``: ``__get_insn_slot(&kprobe_insn_slots)`` then
``arch_copy_kprobe()`` writes the copied instruction into the slot
(``text_poke()`` on x86); ``optimize``: a slot from
``kprobe_optinsn_slots`` written by ``arch_prepare_optimized_kprobe()``;
``unregister``: both slots freed dirty (:mod:`.kprobe_insn_cache`).
Arming a probe patches core kernel text, outside the module range, and is
not modelled.

A design subclasses :class:`SlotKprobes` and provides only what differs:
``_alloc_page()`` (x86 ``alloc_insn_page()`` in that design),
``_free_page(addr)`` and, if not ``text_poke``, ``_write_slot(slot, n)``.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event

from .kprobe_insn_cache import MAX_INSN_SIZE, InsnCache


class SlotKprobes:
    def __init__(self, kernel: Kernel, api):
        self.k = kernel
        self.api = api
        self.slots = InsnCache(MAX_INSN_SIZE, self._alloc_page, self._free_page,
                               kernel.count, "kprobe_insn")
        self.opt: InsnCache | None = None
        self.probes: dict[str, list] = {}

    # -- what a design provides ---------------------------------------------------
    def _alloc_page(self) -> int:
        raise NotImplementedError

    def _free_page(self, page: int) -> None:
        raise NotImplementedError

    def _write_slot(self, slot: int, n: int) -> None:
        self.api.text_poke(slot, n)

    # -- the user ------------------------------------------------------------------
    def register(self, ev: Event) -> None:
        slot = self.slots.get()
        n = min(ev.size, MAX_INSN_SIZE)
        self._write_slot(slot, n)
        self.k.text_claim(slot, n)
        self.probes[ev.obj] = [slot, n, None, 0]

    def optimize(self, ev: Event) -> None:
        if self.opt is None:
            # kprobe_optinsn_slots.insn_size is fixed per arch (MAX_OPTINSN_SIZE);
            # the first recorded optprobe size stands for it.
            self.opt = InsnCache(ev.size, self._alloc_page, self._free_page,
                                 self.k.count, "kprobe_optinsn")
        slot = self.opt.get()
        n = min(ev.size, self.opt.insn_size)
        self._write_slot(slot, n)
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
