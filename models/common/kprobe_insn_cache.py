"""The kprobe instruction-slot cache (kernel/kprobes.c, v6.1).

``struct kprobe_insn_cache`` hands out fixed-size slots from whole pages:

* ``slots_per_page = PAGE_SIZE / insn_size``; x86 ``MAX_INSN_SIZE`` = 16 ->
  256 slots (``kprobe_insn_slots``); optprobes use a second cache
  (``kprobe_optinsn_slots``) whose ``insn_size`` is the optprobe detour size.
* ``__get_insn_slot()``: walk the pages in list order (new pages are added at
  the head with ``list_add_rcu``), take the first page with ``nused <
  slots_per_page`` and its first SLOT_CLEAN slot; if none and there is
  garbage, ``collect_garbage_slots()`` and retry; else ``c->alloc()`` a page.
* ``__free_insn_slot(c, slot, dirty)``: dirty -> mark SLOT_DIRTY and, once
  ``++nr_garbage > slots_per_page``, collect; clean -> ``collect_one_slot()``.
  x86 frees kprobe slots with ``dirty = p->ainsn.boostable`` and optprobe
  slots dirty; we treat every slot as dirty (most probed instructions are
  boostable).
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
MAX_INSN_SIZE = 16    # arch/x86/include/asm/kprobes.h


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
