"""x86 dynamic ftrace trampolines in v6.10 (arch/x86/kernel/ftrace.c).

``create_trampoline()``: ``alloc_tramp(size)`` = ``execmem_alloc(
EXECMEM_FTRACE, size)`` (RW+NX, VM_FLUSH_RESET_PERMS set by execmem); the
caller stub is copied in (``copy_from_kernel_nofault``) and fixed up with
plain stores; then one ``set_memory_rox(trampoline, npages)`` (v6.2+: the
merge of "mm: Introduce set_memory_rox()" replaced
``set_vm_flush_reset_perms`` + ``set_memory_ro`` + ``set_memory_x``).
``arch_ftrace_update_trampoline()`` on an existing trampoline re-points its
call with ``text_poke_bp``; ``tramp_free()`` = ``execmem_free()``.

Simplified as in ``legacy``: the call site is taken to be at the middle of
the trampoline (it only decides which page the poke touches).
"""
from __future__ import annotations

from execbench.units import pages

from .api import ExecmemType
from ..common.ftrace import FtraceTrampolines


class Ftrace610(FtraceTrampolines):
    def _create(self, size: int) -> int:
        t = self.api.execmem_alloc(ExecmemType.FTRACE, size, caller="arch_ftrace_update_trampoline")
        self.k.memcpy(t, size)
        self.api.set_memory_rox(t, pages(size))
        return t

    def _free(self, t: int) -> None:
        self.api.execmem_free(t)
