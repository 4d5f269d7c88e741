"""The x86 dynamic-ftrace-trampoline user, around per-design hooks
(arch/x86/kernel/ftrace.c).

``ops_register``: ``create_trampoline()`` allocates (``alloc_tramp``), copies
the caller stub in and makes it executable -- how depends on the design, so
it is ``_create(size) -> addr``.  ``ops_update``: an existing trampoline's
call is re-pointed with ``text_poke_bp(ip, new, MCOUNT_INSN_SIZE)``
(``arch_ftrace_update_trampoline()``; overridable as ``_update_call``).
``ops_unregister``: ``arch_ftrace_trampoline_free()`` -> ``tramp_free()``
(``_free(addr)``).

Simplified: the call site inside the trampoline is taken to be at its middle
(the exact ``call_offset`` depends on the caller variant); it only decides
which page the poke touches, and a trampoline is under a page.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event

MCOUNT_INSN_SIZE = 5   # arch/x86/include/asm/ftrace.h


class FtraceTrampolines:
    def __init__(self, kernel: Kernel, api):
        self.k = kernel
        self.api = api
        self.tramps: dict[str, tuple[int, int]] = {}

    def _create(self, size: int) -> int:
        raise NotImplementedError

    def _free(self, t: int) -> None:
        raise NotImplementedError

    def _update_call(self, site: int, n: int) -> None:
        self.api.text_poke_bp(site, n)

    def ops_register(self, ev: Event) -> None:
        t = self._create(ev.size)
        self.k.text_claim(t, ev.size)
        self.tramps[ev.obj] = (t, ev.size)

    def ops_update(self, ev: Event) -> None:
        t, size = self.tramps[ev.obj]
        self._update_call(t + max(0, size // 2 - MCOUNT_INSN_SIZE), min(MCOUNT_INSN_SIZE, size))

    def ops_unregister(self, ev: Event) -> None:
        t, size = self.tramps.pop(ev.obj)
        self.k.text_release(t, size)
        self._free(t)
