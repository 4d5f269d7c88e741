"""``module_alloc_type()`` and friends, driven by ``struct mod_alloc_params``.

Follows kernel/module/main.c from Song Liu's "[PATCH 1/3] module: Introduce
module_alloc_type" (20230526051529.3387103-2-song@kernel.org, against
v6.4-rc):

* ``module_alloc_type(size, type)``: MOD_ALLOC_FALLBACK -> ``module_alloc()``
  (which x86's patch 3/3 turns into ``WARN(true, "x86 should not use
  module_alloc")``: an error here).  Otherwise for each ``vmp[i]`` with
  ``start != end``: ``__vmalloc_node_range(size, alignment, start, end,
  gfp, pgprot, vm_flags)``; on failure try the next; then **always**
  ``set_vm_flush_reset_perms(ptr)`` ("size is not available in
  module_memfree_type"), then with MOD_ALLOC_SET_MEMORY
  ``module_memory_enable_protection(ptr, size, type)``.
* ``module_memory_enable_protection()`` (npages = DIV_ROUND_UP(len,
  PAGE_SIZE)): TEXT/INIT_TEXT ``set_memory_rox``; DATA/INIT_DATA
  ``set_memory_nx``; RODATA ``set_memory_nx`` + ``set_memory_ro`` (the
  patch lists only MOD_RODATA: INIT_RODATA falls to its ``default:``
  WARN_ONCE and gets nothing -- modelled as such, see below);
  RO_AFTER_INIT ``set_memory_ro``.
* ``module_memory_disable_protection()``: TEXT/INIT_TEXT ``set_memory_nx`` +
  ``set_memory_rw``; RODATA/RO_AFTER_INIT ``set_memory_rw``; DATA/INIT_DATA
  nothing.
* ``module_memfree_type(ptr, type)`` = ``module_memfree(ptr)`` = ``vfree``.
* ``module_memory_fill_type`` / ``_invalidate_type``: ``params->fill`` /
  ``->invalidate`` if set, else ``memcpy`` / ``memset(0)``.
* ``granularity`` is stored and never read in v1.

Found while modelling: the text allocator has VM_ALLOW_HUGE_VMAP, so a
request of 2 MiB or more gets an area rounded up to whole PMDs
(mm/vmalloc.c ``__vmalloc_node_range()``: ``size = ALIGN(real_size, 1UL <<
shift)``), all mapped PAGE_KERNEL_EXEC, while ``set_memory_rox`` covers only
``DIV_ROUND_UP(size, PAGE_SIZE)`` pages: the tail stays **RW+X** for the
area's lifetime (counted as ``mat_huge_tail_pages``).  BPF packs are exactly
2 MiB and have no tail; module text over 2 MiB does.

``granularity > alignment`` (the ``module_alloc_type_pmd`` configuration)
routes the type to a :class:`~.granules.GranulePool` instead -- behaviour the
header comment promises and v1 does not implement (see :mod:`.granules`).

Simplified: KASAN is off (``MOD_ALLOC_KASAN_MODULE_SHADOW`` ->
``kasan_alloc_module_shadow()`` is a no-op without CONFIG_KASAN, and
MODULE_ALIGN is then PAGE_SIZE); ``gfp_mask`` is GFP_KERNEL everywhere.
"""
from __future__ import annotations

from execbench.errors import DesignError, OutOfMemory
from execbench.kernel import Kernel
from execbench.units import pages

from .configs import (MOD_ALLOC_FALLBACK, MOD_ALLOC_KASAN_RESET_TAG, MOD_ALLOC_SET_MEMORY, VM_ALLOW_HUGE_VMAP,
                      VM_FLUSH_RESET_PERMS, VM_NO_GUARD, ModAllocParams)
from .granules import GranulePool

TEXT_TYPES = ("text", "init_text")
#: why a page of each type is W+X while it is (wx_page_ns_<cause>): text and
#: rodata only until the allocator's own set_memory_*; data types until the
#: loader's set_memory_nx; init rodata until it is freed (no case for it in
#: module_memory_enable_protection()).  The PMD-rounded tail of a huge text
#: area is tagged huge_tail by the kernel itself.
WX_CAUSE = {"text": "alloc_window", "init_text": "alloc_window", "rodata": "alloc_window",
            "data": "data_until_nx", "init_data": "data_until_nx",
            "ro_after_init": "data_until_nx", "init_rodata": "init_rodata"}


class ModAllocators:
    """``struct mod_allocators`` for one kernel, after ``module_alloc_type_init()``."""

    def __init__(self, kernel: Kernel, allocators: dict[str, ModAllocParams]):
        self.k = kernel
        self.types = dict(allocators)
        self.pools: dict[str, GranulePool] = {}
        for p in {id(p): p for p in self.types.values()}.values():
            if p.granularity > p.alignment:
                self.pools[p.name] = GranulePool(kernel, p)

    def params(self, type_: str) -> ModAllocParams:
        try:
            return self.types[type_]
        except KeyError:
            raise DesignError(f"module_alloc_type: unknown mod_mem_type {type_!r}") from None

    def set_memory(self, type_: str) -> bool:
        """Does the type's allocator protect memory itself (MOD_ALLOC_SET_MEMORY)?"""
        return self.params(type_).has(MOD_ALLOC_SET_MEMORY)

    def pool_of(self, type_: str) -> GranulePool | None:
        return self.pools.get(self.params(type_).name)

    # -- module_alloc_type / module_memfree_type ------------------------------------
    def alloc(self, size: int, type_: str, caller: str = "") -> int:
        p = self.params(type_)
        if p.has(MOD_ALLOC_FALLBACK):
            raise DesignError("module_alloc_type: MOD_ALLOC_FALLBACK -> module_alloc(), "
                              "which x86 makes WARN(\"x86 should not use module_alloc\") and fail")
        pool = self.pools.get(p.name)
        if pool is not None:
            return pool.alloc(size, caller)
        k = self.k
        for i, vmp in enumerate(p.vmp):
            if vmp.unused:
                continue
            try:
                with k.wx_cause(WX_CAUSE.get(type_, "alloc_window")):
                    ptr = k.vmalloc(size, align=p.alignment, start=vmp.start, end=vmp.end,
                                    w=vmp.w, x=vmp.x, huge=VM_ALLOW_HUGE_VMAP in vmp.vm_flags,
                                    reset_perms=VM_FLUSH_RESET_PERMS in vmp.vm_flags,
                                    guard=VM_NO_GUARD not in vmp.vm_flags, caller=caller)
            except OutOfMemory:
                continue                  # "on failure try the next address space"
            if i and k.arch.name == "arm64":
                k.counters["module_fallback_allocs"] += 1
            if p.has(MOD_ALLOC_KASAN_RESET_TAG):
                k.kasan_reset_tag()
            k.set_vm_flush_reset_perms(ptr)
            if p.has(MOD_ALLOC_SET_MEMORY):
                self.enable_protection(ptr, size, type_)
                tail = k.find_area(ptr).npages - pages(size)
                if tail:
                    # VM_ALLOW_HUGE_VMAP rounded the area up to whole PMDs, all
                    # mapped with pgprot; enable_protection covered DIV_ROUND_UP(
                    # size, PAGE_SIZE) pages only: the tail keeps PAGE_KERNEL_EXEC.
                    k.count("mat_huge_tail_pages", tail)
            return ptr
        # every vmp failed: module_alloc_type() returns NULL, the caller -ENOMEM
        raise OutOfMemory(f"module_alloc_type({size}, {type_}) failed in every address space")

    def free(self, ptr: int, type_: str) -> None:
        pool = self.pool_of(type_)
        if pool is not None and pool.owns(ptr):
            pool.free(ptr)
        else:
            self.k.vfree(ptr)             # module_memfree() -> vfree()

    # -- protection -------------------------------------------------------------------
    def enable_protection(self, ptr: int, length: int, type_: str) -> None:
        """``module_memory_enable_protection()``."""
        k, n = self.k, pages(length)
        if type_ in TEXT_TYPES:
            k.set_memory_rox(ptr, n)
        elif type_ in ("data", "init_data"):
            k.set_memory_nx(ptr, n)
        elif type_ == "rodata":
            k.set_memory_nx(ptr, n)
            k.set_memory_ro(ptr, n)
        elif type_ == "ro_after_init":
            k.set_memory_ro(ptr, n)
        else:
            # MOD_INIT_RODATA is missing from the patch's switch: default ->
            # WARN_ONCE("Unknown mod_mem_type"), no permission change.
            k.count("mat_enable_protection_unknown_type")

    def disable_protection(self, ptr: int, length: int, type_: str) -> None:
        """``module_memory_disable_protection()``."""
        k, n = self.k, pages(length)
        if type_ in TEXT_TYPES:
            k.set_memory_nx(ptr, n)
            k.set_memory_rw(ptr, n)
        elif type_ in ("rodata", "ro_after_init"):
            k.set_memory_rw(ptr, n)
        elif type_ not in ("data", "init_data"):
            k.count("mat_disable_protection_unknown_type")

    # -- fill / invalidate ----------------------------------------------------------------
    def fill(self, dst: int, length: int, type_: str) -> None:
        """``module_memory_fill_type()``: ``params->fill`` or memcpy."""
        if length <= 0:
            return
        if self.params(type_).fill == "text_poke_copy":
            self.k.text_poke_copy(dst, length)
        else:
            self.k.memcpy(dst, length)

    def invalidate(self, ptr: int, length: int, type_: str) -> None:
        """``module_memory_invalidate_type()``: ``params->invalidate`` or memset 0."""
        if length <= 0:
            return
        if self.params(type_).invalidate == "text_poke_set":
            self.k.text_poke_set(ptr, length)
        else:
            self.k.memcpy(ptr, length)


