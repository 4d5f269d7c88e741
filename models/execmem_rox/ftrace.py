"""x86 ftrace trampolines on the ROX cache (v6.17, 5d79c2be5081
"x86/ftrace: enable EXECMEM_ROX_CACHE for ftrace allocations").

The patch changes only ``alloc_tramp()``: ``execmem_alloc(EXECMEM_FTRACE,
size)`` becomes ``execmem_alloc_rw(EXECMEM_FTRACE, size)`` (a page-granular
piece of a 2 MiB ROX block, made temporarily RW+NX by execmem), and
``create_trampoline()`` still ends with ``set_memory_rox(trampoline,
npages)`` -- which, with CPA_COLLAPSE (v6.15+), re-forms the 2 MiB leaf.
Before v6.17 trampolines are v6.10's (:mod:`models.execmem.ftrace`).
"""
from __future__ import annotations

from execbench.units import pages

from ..execmem.api import ExecmemType
from ..execmem.ftrace import Ftrace610


class FtraceRox(Ftrace610):
    def _create(self, size: int) -> int:
        t = self.api.execmem_alloc_rw(ExecmemType.FTRACE, size, caller="arch_ftrace_update_trampoline")
        self.k.memcpy(t, size)
        self.api.set_memory_rox(t, pages(size))
        return t
