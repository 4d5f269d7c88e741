"""The kprobe instruction-slot cache (kernel/kprobes.c, v6.1).

``struct kprobe_insn_cache`` hands out fixed-size slots from whole pages:

* ``slots_per_page = PAGE_SIZE / insn_size``.  ``kprobe_insn_slots.insn_size
  = MAX_INSN_SIZE`` (kernel/kprobes.c), and on x86 that is
  arch/x86/include/asm/insn.h's ``MAX_INSN_SIZE`` = 15 (asm/kprobes.h
  includes it and defines none of its own; v6.1, v6.12, 7.2) -> 273 slots
  of 15 bytes.  Optprobes use ``kprobe_optinsn_slots`` with ``insn_size =
  MAX_OPTINSN_SIZE`` = :data:`MAX_OPTINSN_SIZE` = 124 -> 33 slots.  Both
  strides are what the QEMU recordings' ``__get_insn_slot`` saw
  (``insn_size=15``, ``insn_size=124``; slots 0x0f and 0x7c apart).
* ``__get_insn_slot()``: walk the pages in list order (new pages are added at
  the head with ``list_add_rcu``), take the first page with ``nused <
  slots_per_page`` and its first SLOT_CLEAN slot; if none and there is
  garbage, ``collect_garbage_slots()`` and retry; else ``c->alloc()`` a page.
* ``__free_insn_slot(c, slot, dirty)``: dirty -> mark SLOT_DIRTY and, once
  ``++nr_garbage > slots_per_page``, collect; clean -> ``collect_one_slot()``.
  x86 frees a kprobe slot with ``dirty = p->ainsn.boostable``
  (``arch_remove_kprobe()``) and an optprobe slot dirty
  (``arch_remove_optimized_kprobe()`` -> ``__arch_remove_optimized_kprobe(op,
  1)``).  ``prepare_singlestep()`` boosts only ``if
  (!IS_ENABLED(CONFIG_PREEMPTION) && ...)``, and x86 distribution kernels
  have CONFIG_PREEMPTION (PREEMPT_DYNAMIC is ``default y if
  HAVE_PREEMPT_DYNAMIC_CALL`` and selects PREEMPT_BUILD -> PREEMPTION,
  kernel/Kconfig.preempt), so kprobe slots are freed clean (the recordings
  show ``dirty=0`` for every kprobe slot, ``dirty=1`` for every optprobe
  slot).
* ``collect_one_slot()``: ``nused--``; a page whose ``nused`` reaches 0 is
  freed (``c->free``) unless it is the only page -- "We keep the last one so
  there is always a free slot on hand."

The page allocator underneath and how a slot is written are the design's.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from execbench.units import PAGE_SIZE

CLEAN, USED, DIRTY = 0, 1, 2
MAX_INSN_SIZE = 15            # arch/x86/include/asm/insn.h (v6.1, v6.12, 7.2)
INT3_INSN_SIZE = 1            # arch/x86/include/asm/text-patching.h
JMP32_INSN_SIZE = 5           # idem
DISP32_SIZE = 4               # idem
MAX_OPTIMIZED_LENGTH = MAX_INSN_SIZE + DISP32_SIZE     # asm/kprobes.h: 19
#: ``TMPL_END_IDX`` = optprobe_template_end - optprobe_template_entry
#: (arch/x86/kernel/kprobes/opt.c, x86-64, no CONFIG_FRAME_POINTER), byte by
#: byte: pushq $__KERNEL_DS 2 (6a 18), pushq %rsp 1, pushfq 1, NOP3 3;
#: SAVE_REGS_STRING (kprobes/common.h): subq $24,%rsp 4, 5 one-byte pushes
#: (rdi rsi rdx rcx rax), 4 REX pushes r8-r11 8, rbx rbp 2, r12-r15 8 = 27;
#: movq %rsp,%rsi 3; NOP5 x 3 = 15; movq 18*8(%rsp),%rdx and movq %rdx,
#: 20*8(%rsp) (disp32) 8 + 8; RESTORE_REGS_STRING: the 15 pops 2+2+2+2+1+1
#: +2+2+2+2+1+1+1+1+1 = 23, addq $24,%rsp 4; addq $16,%rsp 4; popfq 1.
#: 7 + 27 + 3 + 15 + 16 + 27 + 4 + 1 = 100.
TMPL_END_IDX = 100
#: ``MAX_OPTINSN_SIZE`` = TMPL_END_IDX + MAX_OPTIMIZED_LENGTH + JMP32_INSN_SIZE
#: = 100 + 19 + 5 = 124 (asm/kprobes.h; the recordings' insn_size=124).
MAX_OPTINSN_SIZE = TMPL_END_IDX + MAX_OPTIMIZED_LENGTH + JMP32_INSN_SIZE


class _Page:
    __slots__ = ("addr", "slots", "nused", "ngarbage")

    def __init__(self, addr: int, n: int):
        self.addr = addr
        self.slots = np.zeros(n, dtype=np.int8)
        self.nused = 0
        self.ngarbage = 0


class InsnCache:
    def __init__(self, insn_size: int, alloc_page: Callable[[], int],
                 free_page: Callable[[int], None], counter: Callable[[str], None], name: str):
        self.insn_size = insn_size
        self.per_page = PAGE_SIZE // insn_size
        self.alloc_page = alloc_page
        self.free_page = free_page
        self.count = counter
        self.name = name
        self.pages: list[_Page] = []
        self.nr_garbage = 0

    def get(self) -> int:
        """``__get_insn_slot()``: address of a free slot."""
        while True:
            for kip in self.pages:
                if kip.nused < self.per_page:
                    idx = int(np.flatnonzero(kip.slots == CLEAN)[0])
                    kip.slots[idx] = USED
                    kip.nused += 1
                    return kip.addr + idx * self.insn_size
            if self.nr_garbage and self._collect_garbage():
                continue
            addr = self.alloc_page()
            self.pages.insert(0, _Page(addr, self.per_page))
            self.count(f"{self.name}_pages_new")

    def free(self, slot: int, dirty: bool = True) -> None:
        """``__free_insn_slot()``."""
        for kip in self.pages:
            if kip.addr <= slot < kip.addr + PAGE_SIZE:
                break
        else:
            raise KeyError(f"free_insn_slot: {slot:#x} is in no page of {self.name}")
        idx = (slot - kip.addr) // self.insn_size
        if dirty:
            kip.slots[idx] = DIRTY
            kip.ngarbage += 1
            self.nr_garbage += 1
            if self.nr_garbage > self.per_page:
                self._collect_garbage()
        else:
            self._collect_one(kip, idx)

    def _collect_one(self, kip: _Page, idx: int) -> None:
        kip.slots[idx] = CLEAN
        kip.nused -= 1
        if kip.nused == 0 and len(self.pages) > 1:
            self.pages.remove(kip)
            self.free_page(kip.addr)
            self.count(f"{self.name}_pages_freed")

    def _collect_garbage(self) -> bool:
        """``collect_garbage_slots()`` (after synchronize_rcu())."""
        for kip in list(self.pages):
            if kip.ngarbage == 0:
                continue
            kip.ngarbage = 0
            for idx in np.flatnonzero(kip.slots == DIRTY):
                self._collect_one(kip, int(idx))
        self.nr_garbage = 0
        return True
