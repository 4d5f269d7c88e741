"""v6.1's executable-memory "API": ``module_alloc()`` / ``module_memfree()``
plus the permission and patching primitives every user calls itself.

``module_alloc()`` (arch/x86/kernel/module.c, v6.1)::

    p = __vmalloc_node_range(size, MODULE_ALIGN,
                             MODULES_VADDR + get_module_load_offset(),
                             MODULES_END, gfp_mask, PAGE_KERNEL,
                             VM_DEFER_KMEMLEAK, NUMA_NO_NODE,
                             __builtin_return_address(0));

``PAGE_KERNEL`` is RW+NX; ``MODULE_ALIGN`` is PAGE_SIZE without KASAN.  The
caller sets ``VM_FLUSH_RESET_PERMS`` itself (``set_vm_flush_reset_perms``)
before it changes permissions.  ``module_memfree()`` is ``vfree()``, which
returns at once for NULL (``addr=None``).
"""
from __future__ import annotations

from execbench.errors import OutOfMemory
from execbench.kernel.layout import MODULES_LEN
from execbench.units import PAGE_SIZE, page_align

from .api import KernelApi


class ModuleAllocApi(KernelApi):
    def module_alloc(self, size: int, caller: str = "") -> int:
        self.k.api("module_alloc")
        if size == 0:       # __vmalloc_node_range(): "if (WARN_ON_ONCE(!size)) return NULL;"
            raise OutOfMemory("module_alloc(0): __vmalloc_node_range() warns and returns NULL")
        if page_align(size) > MODULES_LEN:      # __vmalloc_node_range() finds no area: NULL
            raise OutOfMemory(f"module_alloc({size}) is larger than MODULES_LEN")
        return self.k.vmalloc(size, align=PAGE_SIZE, w=True, x=False, caller=caller)

    def module_memfree(self, addr: int | None) -> None:
        self.k.api("module_memfree")
        if addr is None:
            self.k.free_null("module_memfree")
            return
        self.k.vfree(addr)


class ModuleAllocApiArm64(ModuleAllocApi):
    """arm64 ``module_alloc()`` (arch/arm64/kernel/module.c, v6.1 - v6.4):
    the direct window, then the 2 GiB fallback window, then
    ``kasan_reset_tag()`` (:func:`models.common.arm64.module_alloc_arm64`)."""

    def module_alloc(self, size: int, caller: str = "") -> int:
        from .arm64 import module_alloc_arm64
        self.k.api("module_alloc")
        return module_alloc_arm64(self.k, size, caller)
