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

from execbench.units import pages

from ..common.ftrace import FtraceTrampolines


class Ftrace61(FtraceTrampolines):
    def _create(self, size: int) -> int:
        a = self.api
        t = a.module_alloc(size, caller="arch_ftrace_update_trampoline")
        self.k.memcpy(t, size)
        a.set_vm_flush_reset_perms(t)
        a.set_memory_ro(t, pages(size))
        a.set_memory_x(t, pages(size))
        return t

    def _free(self, t: int) -> None:
        self.api.module_memfree(t)
