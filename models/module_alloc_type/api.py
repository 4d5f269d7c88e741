"""The exported API of Song Liu's type-aware module allocator, as counted calls.

include/linux/moduleloader.h in "[PATCH 1/3] module: Introduce
module_alloc_type" (20230526051529.3387103-2-song@kernel.org)::

    void *module_alloc_type(size_t size, enum mod_mem_type type);
    void module_memfree_type(void *ptr, enum mod_mem_type type);
    void module_memory_fill_type(void *dst, void *src, size_t len, enum mod_mem_type type);
    void module_memory_invalidate_type(void *ptr, size_t len, enum mod_mem_type type);
    void module_memory_protect(void *ptr, size_t len, enum mod_mem_type type);
    void module_memory_unprotect(void *ptr, size_t len, enum mod_mem_type type);
    void module_memory_force_protect(void *ptr, size_t len, enum mod_mem_type type);
    void module_memory_force_unprotect(void *ptr, size_t len, enum mod_mem_type type);
    void module_alloc_type_init(struct mod_allocators *allocators);

``module_memory_protect/unprotect`` are no-ops for a type whose allocator
has MOD_ALLOC_SET_MEMORY ("This is a no-op with MOD_ALLOC_SET_MEMORY");
``force_*`` always act ("Should only be used by arch code in cases where
text_poke like solution is not ready yet").  The users also keep calling
the primitives they called before (``text_poke*``,
``set_vm_flush_reset_perms``, the loader's ``set_memory_*`` in
strict_rwx.c), inherited from :class:`KernelApi`.  ``src`` is not modelled
(only where and how many bytes are written matters).

:data:`INTERFACE` is the design's surface for reports: entry points,
parameters and flags as the header declares them.
"""
from __future__ import annotations

from execbench.kernel import Kernel

from ..common.api import KernelApi
from .allocator import ModAllocators

INTERFACE: dict[str, tuple[str, ...]] = {
    "entry_points": ("module_alloc_type", "module_memfree_type", "module_memory_fill_type",
                     "module_memory_invalidate_type", "module_memory_protect",
                     "module_memory_unprotect", "module_memory_force_protect",
                     "module_memory_force_unprotect", "module_alloc_type_init"),
    "parameters": ("size", "type (enum mod_mem_type)", "ptr", "dst", "src", "len",
                   "struct mod_alloc_params: flags, granularity, alignment, "
                   "vmp[MOD_MAX_ADDR_SPACES=2] {start, end, gfp_mask, pgprot, vm_flags}, "
                   "fill, invalidate"),
    "flags": ("MOD_ALLOC_FALLBACK", "MOD_ALLOC_KASAN_MODULE_SHADOW",
              "MOD_ALLOC_KASAN_RESET_TAG", "MOD_ALLOC_SET_MEMORY"),
}


class ModuleAllocTypeApi(KernelApi):
    def __init__(self, kernel: Kernel, allocators: ModAllocators):
        super().__init__(kernel)
        self.a = allocators

    def module_alloc_type(self, size: int, type_: str, caller: str = "") -> int:
        self.k.api("module_alloc_type")
        return self.a.alloc(size, type_, caller)

    def module_memfree_type(self, ptr: int | None, type_: str) -> None:
        """``module_memfree_type()`` = ``module_memfree()`` = ``vfree()``;
        NULL (``ptr=None``) does nothing."""
        self.k.api("module_memfree_type")
        if ptr is None:
            self.k.free_null("module_memfree_type")
            return
        self.a.free(ptr, type_)

    def module_memory_fill_type(self, dst: int, length: int, type_: str) -> None:
        self.k.api("module_memory_fill_type")
        self.a.fill(dst, length, type_)

    def module_memory_invalidate_type(self, ptr: int, length: int, type_: str) -> None:
        self.k.api("module_memory_invalidate_type")
        self.a.invalidate(ptr, length, type_)

    def module_memory_protect(self, ptr: int, length: int, type_: str) -> None:
        self.k.api("module_memory_protect")
        if not self.a.set_memory(type_):
            self.a.enable_protection(ptr, length, type_)

    def module_memory_unprotect(self, ptr: int, length: int, type_: str) -> None:
        self.k.api("module_memory_unprotect")
        if not self.a.set_memory(type_):
            self.a.disable_protection(ptr, length, type_)

    def module_memory_force_protect(self, ptr: int, length: int, type_: str) -> None:
        self.k.api("module_memory_force_protect")
        self.a.enable_protection(ptr, length, type_)

    def module_memory_force_unprotect(self, ptr: int, length: int, type_: str) -> None:
        self.k.api("module_memory_force_unprotect")
        self.a.disable_protection(ptr, length, type_)

    # primitives the v1 users call directly that KernelApi lacks
    def text_poke_sync(self) -> None:
        self.k.api("text_poke_sync")
        self.k.text_poke_sync()

    def text_poke_sync_repeat(self, count: int) -> None:
        """``count`` ``text_poke_sync()`` calls (one per relocation section)."""
        self.k.api_repeat("text_poke_sync", count)
        self.k.text_poke_sync_repeat(count)

    def text_poke_repeat(self, entry: str, addr: int, span: int, nbytes: int, count: int) -> None:
        """``count`` calls of ``entry`` (``text_poke`` / ``text_poke_copy``),
        each writing ``nbytes`` inside ``[addr, +span)``."""
        self.k.api_repeat(entry, count)
        self.k.text_poke_repeat(addr, span, nbytes, count)
