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

from .api import JitAllocApi
from ..common.ftrace import FtraceTrampolines


class FtraceJit(FtraceTrampolines):
    def __init__(self, kernel: Kernel, api: JitAllocApi, text_poke: bool = True):
        super().__init__(kernel, api)
        self.text_poke = text_poke

    def _create(self, size: int) -> int:
        t = self.api.jit_alloc(size)
        self.k.memcpy_elsewhere(size)
        self.api.jit_update(t, size)
        return t

    def _free(self, t: int) -> None:
        self.api.jit_free(t)

    def _update_call(self, site: int, n: int) -> None:
        if self.text_poke:
            self.api.text_poke_bp(site, n)
        else:
            self.api.jit_update(site, n)
