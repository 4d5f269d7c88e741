"""x86 dynamic ftrace trampolines under jitalloc (Kent's commit message
names "ftrace trampolines" as a user).

``create_trampoline()`` (arch/x86/kernel/ftrace.c): ``alloc_tramp(size)``
becomes ``jit_alloc(NULL, size)``; the caller stub is copied into a
temporary buffer and its ``call`` and rip-relative ``ftrace_ops`` load are
fixed up for the final address there; one ``jit_update`` writes it; the
``set_memory_ro/x`` (v6.2+: ``set_memory_rox``) at the end disappears.
``arch_ftrace_update_trampoline()`` on a live trampoline re-points its call
with ``text_poke_bp`` on x86, or ``jit_update`` of those bytes where there is
no text_poke.  ``tramp_free()`` becomes ``jit_free``.  A trampoline of a few
hundred bytes lands in the 256- or 512-byte class.

Simplified (as in the legacy model): the call site is taken to be at the
trampoline's middle.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event

from .api import JitAllocApi

MCOUNT_INSN_SIZE = 5   # arch/x86/include/asm/ftrace.h


class FtraceJit:
    def __init__(self, kernel: Kernel, api: JitAllocApi, text_poke: bool = True):
        self.k = kernel
        self.api = api
        self.text_poke = text_poke
        self.tramps: dict[str, tuple[int, int]] = {}

    def ops_register(self, ev: Event) -> None:
        t = self.api.jit_alloc(ev.size)
        self.k.memcpy_elsewhere(ev.size)
        self.api.jit_update(t, ev.size)
        self.k.text_claim(t, ev.size)
        self.tramps[ev.obj] = (t, ev.size)

    def ops_update(self, ev: Event) -> None:
        t, size = self.tramps[ev.obj]
        site = t + max(0, size // 2 - MCOUNT_INSN_SIZE)
        if self.text_poke:
            self.api.text_poke_bp(site, MCOUNT_INSN_SIZE)
        else:
            self.api.jit_update(site, MCOUNT_INSN_SIZE)

    def ops_unregister(self, ev: Event) -> None:
        t, size = self.tramps.pop(ev.obj)
        self.k.text_release(t, size)
        self.api.jit_free(t)
