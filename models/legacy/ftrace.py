"""x86 dynamic ftrace trampolines in v6.1 (arch/x86/kernel/ftrace.c).

``create_trampoline()``: ``alloc_tramp(size)`` = ``module_alloc(size)``;
the caller stub is copied in with ``memcpy`` and fixed up while writable;
then ``set_vm_flush_reset_perms()``, ``set_memory_ro()`` (skipped only
while SYSTEM_BOOTING) and ``set_memory_x()`` over
``DIV_ROUND_UP(size, PAGE_SIZE)`` pages.  ``arch_ftrace_update_trampoline()``
on an existing trampoline re-points its call with ``text_poke_bp(ip, new,
MCOUNT_INSN_SIZE)``.  ``arch_ftrace_trampoline_free()`` -> ``tramp_free()``
= ``module_memfree()``.

Simplified: the call site inside the trampoline is taken to be at its
middle (the exact ``call_offset`` depends on the caller variant); it only
decides which page the poke touches, and a trampoline is under a page.
"""
from __future__ import annotations

from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import pages

from .api import ModuleAllocApi

MCOUNT_INSN_SIZE = 5   # arch/x86/include/asm/ftrace.h


class Ftrace61:
    def __init__(self, kernel: Kernel, api: ModuleAllocApi):
        self.k = kernel
        self.api = api
        self.tramps: dict[str, tuple[int, int]] = {}

    def ops_register(self, ev: Event) -> None:
        a = self.api
        t = a.module_alloc(ev.size, caller="arch_ftrace_update_trampoline")
        self.k.memcpy(t, ev.size)
        a.set_vm_flush_reset_perms(t)
        a.set_memory_ro(t, pages(ev.size))
        a.set_memory_x(t, pages(ev.size))
        self.k.text_claim(t, ev.size)
        self.tramps[ev.obj] = (t, ev.size)

    def ops_update(self, ev: Event) -> None:
        t, size = self.tramps[ev.obj]
        self.api.text_poke_bp(t + max(0, size // 2 - MCOUNT_INSN_SIZE), MCOUNT_INSN_SIZE)

    def ops_unregister(self, ev: Event) -> None:
        t, size = self.tramps.pop(ev.obj)
        self.k.text_release(t, size)
        self.api.module_memfree(t)
