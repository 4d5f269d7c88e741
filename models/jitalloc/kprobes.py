"""kprobes' instruction slots under jitalloc.

The kprobe insn-slot cache (kernel/kprobes.c) exists to carve 16-byte
(``MAX_INSN_SIZE``) slots out of RO+X pages; jitalloc's 16-byte class does
the same -- 256 objects per 4 KiB ROX page, first free slot -- so by default
(``kprobe_cache=False``) the cache goes away: ``arch_copy_kprobe()`` takes
``jit_alloc(NULL, MAX_INSN_SIZE)``, prepares the copied instruction (its
rip-relative displacement depends on the slot address) in a buffer and
writes it with ``jit_update`` (x86 used ``text_poke`` for the same write);
optprobe detour buffers take ``jit_alloc(NULL, size)`` the same way;
unregistering ``jit_free``s both.  What goes away with the cache: the
"keep the last page" rule and the dirty-slot garbage collection (the
``synchronize_rcu()`` a caller must still do before ``jit_free`` costs time,
not memory, and is not modelled).

``kprobe_cache=True`` keeps :class:`models.common.kprobe_insn_cache.InsnCache`
with its pages from ``jit_alloc(NULL, PAGE_SIZE)`` (page-granular ROX) and
slots written with ``jit_update``.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SIZE

from ..common.kprobe_insn_cache import MAX_INSN_SIZE, InsnCache
from .api import JitAllocApi


class KprobesJit:
    def __init__(self, kernel: Kernel, api: JitAllocApi, use_cache: bool = False):
        self.k = kernel
        self.api = api
        self.use_cache = use_cache
        self.slots = (InsnCache(MAX_INSN_SIZE, self._alloc_page, api.jit_free, kernel.count,
                                "kprobe_insn") if use_cache else None)
        self.opt: InsnCache | None = None
        self.probes: dict[str, list] = {}

    def _alloc_page(self) -> int:
        return self.api.jit_alloc(PAGE_SIZE)

    def _get(self, cache: InsnCache | None, size: int) -> int:
        return cache.get() if cache is not None else self.api.jit_alloc(size)

    def register(self, ev: Event) -> None:
        n = min(ev.size, MAX_INSN_SIZE)
        slot = self._get(self.slots, MAX_INSN_SIZE)
        self.k.memcpy_elsewhere(n)
        self.api.jit_update(slot, n)
        self.k.text_claim(slot, n)
        self.probes[ev.obj] = [slot, n, None, 0]

    def optimize(self, ev: Event) -> None:
        if self.use_cache and self.opt is None:
            # kprobe_optinsn_slots.insn_size is fixed per arch; the first
            # recorded optprobe size stands for it (as in the legacy model)
            self.opt = InsnCache(ev.size, self._alloc_page, self.api.jit_free,
                                 self.k.count, "kprobe_optinsn")
        n = min(ev.size, self.opt.insn_size) if self.use_cache else ev.size
        slot = self._get(self.opt, ev.size)
        self.k.memcpy_elsewhere(n)
        self.api.jit_update(slot, n)
        self.k.text_claim(slot, n)
        p = self.probes[ev.obj]
        p[2], p[3] = slot, n

    def unregister(self, ev: Event) -> None:
        slot, n, oslot, on = self.probes.pop(ev.obj)
        self.k.text_release(slot, n)
        if self.use_cache:
            self.slots.free(slot, dirty=True)
        else:
            self.api.jit_free(slot)
        if oslot is not None:
            self.k.text_release(oslot, on)
            if self.use_cache:
                self.opt.free(oslot, dirty=True)
            else:
                self.api.jit_free(oslot)
