"""kprobes' instruction slots under jitalloc.

The kprobe insn-slot cache (kernel/kprobes.c) exists to carve 15-byte
(``MAX_INSN_SIZE``) slots out of RO+X pages; jitalloc's 16-byte class does
nearly the same -- 256 objects per 4 KiB ROX page, first free slot -- so by
default (``kprobe_cache=False``) the cache goes away: ``arch_copy_kprobe()``
takes ``jit_alloc(NULL, MAX_INSN_SIZE)`` (the slot is taken before the
instruction is decoded, so the size is the maximum, as with the cache),
prepares the copied instruction + INT3 (its rip-relative displacement
depends on the slot address) in a buffer and writes those bytes with
``jit_update`` (x86 used ``text_poke`` for the same write); optprobe detour
buffers take ``jit_alloc(NULL, MAX_OPTINSN_SIZE)`` the same way and write
the detour; unregistering ``jit_free``s both.  The bytes written are
:data:`models.common.kprobes.KPROBE_WRITE` and ``OPTPROBE_WRITE``.  What goes away with the cache: the
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

from ..common.kprobe_insn_cache import MAX_INSN_SIZE, MAX_OPTINSN_SIZE
from ..common.kprobes import KPROBE_WRITE, OPTPROBE_WRITE, SlotKprobes
from .api import JitAllocApi


def _write(k: Kernel, api: JitAllocApi, slot: int, n: int) -> None:
    k.memcpy_elsewhere(n)          # prepare the instruction in a buffer
    api.jit_update(slot, n)


class KprobesJitCached(SlotKprobes):
    """``kprobe_cache=True``: kernel/kprobes.c's caches over jitalloc pages."""

    def _alloc_page(self) -> int:
        return self.api.jit_alloc(PAGE_SIZE)

    def _free_page(self, page: int) -> None:
        self.api.jit_free(page)

    def _write_slot(self, slot: int, n: int) -> None:
        _write(self.k, self.api, slot, n)


class KprobesJit:
    """Default: every slot is its own ``jit_alloc``."""

    def __init__(self, kernel: Kernel, api: JitAllocApi):
        self.k = kernel
        self.api = api
        self.probes: dict[str, list] = {}

    def _slot(self, size: int, n: int) -> int:
        slot = self.api.jit_alloc(size)
        _write(self.k, self.api, slot, n)
        self.k.text_claim(slot, n)
        return slot

    def register(self, ev: Event) -> None:
        self.probes[ev.obj] = [self._slot(MAX_INSN_SIZE, KPROBE_WRITE), KPROBE_WRITE, None, 0]

    def optimize(self, ev: Event) -> None:
        p = self.probes[ev.obj]
        p[2], p[3] = self._slot(MAX_OPTINSN_SIZE, OPTPROBE_WRITE), OPTPROBE_WRITE

    def unregister(self, ev: Event) -> None:
        slot, n, oslot, on = self.probes.pop(ev.obj)
        self.k.text_release(slot, n)
        self.api.jit_free(slot)
        if oslot is not None:
            self.k.text_release(oslot, on)
            self.api.jit_free(oslot)


class KprobesJitArm64(KprobesJit):
    """arm64: an 8-byte slot (the instruction + ``BRK64_OPCODE_KPROBES_SS``,
    arch/arm64/kernel/probes/kprobes.c ``arch_prepare_ss_slot()``) is
    ``jit_alloc(NULL, 8)`` (the 16-byte class) written with one
    ``jit_update``; arm64 has no optprobes, so ``optimize`` does nothing."""

    def register(self, ev: Event) -> None:
        from ..common.arm64 import ARM64_KPROBE_SLOT
        self.probes[ev.obj] = [self._slot(ARM64_KPROBE_SLOT, ARM64_KPROBE_SLOT), ARM64_KPROBE_SLOT,
                               None, 0]

    def optimize(self, ev: Event) -> None:
        self.k.count("kprobe_optimize_unsupported")
