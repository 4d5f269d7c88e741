"""The jitalloc design's exported API, as its users see it.

Text (Kent Overstreet, 80ceffd6b110 "mm: jit/text allocator",
include/linux/jitalloc.h)::

    void *jit_alloc(void *buf, size_t len);     /* RO+X memory, filled from buf if given */
    void  jit_update(void *buf, void *new_buf, size_t len);
    void  jit_free(void *buf);

Three entry points and no flags: callers never see permissions.

Non-text module memory is "not its business" (Kent in ZHEy5SkFwI+dZjOC:
"I'm still not seeing the justification for why this needs to handle
non-text allocations"), so the module loader keeps what v6.4 does for data,
rodata and ro_after_init: ``module_alloc()`` per ``mod_mem_type`` and
``set_memory_ro/nx`` from kernel/module/strict_rwx.c -- inherited from
:class:`~models.common.api.KernelApi` and counted as API calls of the module
user, because that user still needs them.  ``text_poke_bp`` (live patching of
running code: jump labels, ftrace call sites) also stays what it is on x86.
"""
from __future__ import annotations

from execbench.kernel import Kernel

from ..common.module_alloc import ModuleAllocApi
from .slab import JitAllocator


class JitAllocApi(ModuleAllocApi):
    """jit_alloc/jit_update/jit_free; non-text module memory keeps v6.4's
    ``module_alloc()`` (arch/x86/kernel/module.c: RW+NX), inherited."""

    def __init__(self, kernel: Kernel, alloc: JitAllocator):
        super().__init__(kernel)
        self.jit = alloc

    def module_alloc(self, size: int, caller: str = "") -> int:
        """v6.4 ``module_alloc()`` of the machine's architecture."""
        if self.k.arch.name == "arm64":
            from ..common.arm64 import module_alloc_arm64
            self.k.api("module_alloc")
            return module_alloc_arm64(self.k, size, caller)
        return super().module_alloc(size, caller)

    # -- mm/jitalloc.c ---------------------------------------------------------------
    def jit_alloc(self, length: int, buf: bool = False) -> int:
        """``jit_alloc(buf, len)``: ``buf=False`` is ``jit_alloc(NULL, len)``
        (reserve; contents come later with :meth:`jit_update`)."""
        self.k.api("jit_alloc")
        return self.jit.alloc(length, buf)

    def jit_update(self, dst: int, length: int) -> None:
        self.k.api("jit_update")
        self.jit.update(dst, length)

    def jit_update_repeat(self, dst: int, span: int, nbytes: int, count: int) -> None:
        """``count`` ``jit_update()`` calls of ``nbytes`` each inside ``[dst,
        +span)`` -- with ``text_poke`` (x86) each one ``text_poke_copy`` of
        at most two pages: one poke each, accounted in one step."""
        self.k.api_repeat("jit_update", count)
        self.jit.update_repeat(dst, span, nbytes, count)

    def jit_free(self, addr: int | None) -> None:
        """``jit_free(buf)``; the sketch begins ``if (!buf) return;``."""
        self.k.api("jit_free")
        if addr is None:
            self.k.free_null("jit_free")
            return
        self.jit.free(addr)
