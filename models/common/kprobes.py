"""The kprobes user shared by designs that keep kernel/kprobes.c's
insn-slot caches (v6.1 through v6.17 logic).

``register``: ``__get_insn_slot(&kprobe_insn_slots)`` then
``arch_copy_kprobe()`` writes into the slot with one ``text_poke()`` what
``prepare_singlestep()`` built: the copied instruction plus an INT3
(``insn->length + INT3_INSN_SIZE``; no boost jump under CONFIG_PREEMPTION,
see :mod:`.kprobe_insn_cache`) -- :data:`KPROBE_WRITE` bytes, not the
15-byte slot.  ``optimize``: a slot from ``kprobe_optinsn_slots``, written
by ``arch_prepare_optimized_kprobe()`` with one ``text_poke(slot, buf,
len)``, ``len = TMPL_END_IDX + op->optinsn.size + JMP32_INSN_SIZE`` (the
template, the instructions copied from the probe address -- whole
instructions covering at least the 5 bytes the jump replaces, at most
``MAX_OPTIMIZED_LENGTH`` -- and the jump back): :data:`OPTPROBE_WRITE`
bytes of the 124-byte slot.  ``unregister``: the kprobe slot is freed clean,
the optprobe slot dirty (arch/x86/kernel/kprobes/core.c, opt.c; v6.1,
v6.12, 7.2).  Arming a probe patches core kernel text, outside the module
range, and is not modelled.

The trace says which probes exist, not which instructions they copy, so the
instruction lengths are assumed [assumed: the probe sits after the 5-byte
``__fentry__`` call, on a prologue push of a callee-saved register, which
x86-64 encodes in 2 bytes for r12-r15 (REX + 0x50+r); optimizing copies
three such pushes, 6 bytes >= 5].  The trace's ``size`` (the slot size a
recording saw) is not used: the strides are the kernel's constants.

A design subclasses :class:`SlotKprobes` and provides only what differs:
``_alloc_page()`` (x86 ``alloc_insn_page()`` in that design),
``_free_page(addr)`` and, if not ``text_poke``, ``_write_slot(slot, n)``.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event

from .kprobe_insn_cache import (INT3_INSN_SIZE, JMP32_INSN_SIZE, MAX_INSN_SIZE,
                                MAX_OPTINSN_SIZE, TMPL_END_IDX, InsnCache)

#: length of the probed instruction [assumed, see the module docstring]
PROBED_INSN_LEN = 2
#: bytes copy_optimized_instructions() copies (>= JMP32_INSN_SIZE) [assumed]
OPT_COPIED_LEN = 6
#: arch_copy_kprobe(): insn + INT3 = 2 + 1 = 3 bytes
KPROBE_WRITE = PROBED_INSN_LEN + INT3_INSN_SIZE
#: arch_prepare_optimized_kprobe(): TMPL_END_IDX + copied + JMP32 = 100 + 6 + 5 = 111 bytes
OPTPROBE_WRITE = TMPL_END_IDX + OPT_COPIED_LEN + JMP32_INSN_SIZE


class SlotKprobes:
    def __init__(self, kernel: Kernel, api):
        self.k = kernel
        self.api = api
        self.slots = InsnCache(MAX_INSN_SIZE, self._alloc_page, self._free_page,
                               kernel.count, "kprobe_insn")
        self.opt = InsnCache(MAX_OPTINSN_SIZE, self._alloc_page, self._free_page,
                             kernel.count, "kprobe_optinsn")
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
        self._write_slot(slot, KPROBE_WRITE)
        self.k.text_claim(slot, KPROBE_WRITE)
        self.probes[ev.obj] = [slot, KPROBE_WRITE, None, 0]

    def optimize(self, ev: Event) -> None:
        slot = self.opt.get()
        self._write_slot(slot, OPTPROBE_WRITE)
        self.k.text_claim(slot, OPTPROBE_WRITE)
        p = self.probes[ev.obj]
        p[2], p[3] = slot, OPTPROBE_WRITE

    def unregister(self, ev: Event) -> None:
        slot, n, oslot, on = self.probes.pop(ev.obj)
        self.k.text_release(slot, n)
        self.slots.free(slot, dirty=False)         # free_insn_slot(.., boostable = 0)
        if oslot is not None:
            self.k.text_release(oslot, on)
            self.opt.free(oslot, dirty=True)
