"""The execmem API as merged in v6.10 (mm/execmem.c, include/linux/execmem.h,
arch/x86/mm/init.c ``execmem_arch_setup()``; docs/kernel-semantics.md §1, §9).

What the kernel has::

    enum execmem_type { EXECMEM_DEFAULT, EXECMEM_MODULE_TEXT = EXECMEM_DEFAULT,
                        EXECMEM_KPROBES, EXECMEM_FTRACE, EXECMEM_BPF,
                        EXECMEM_MODULE_DATA, EXECMEM_TYPE_MAX };
    struct execmem_range { start, end, fallback_start, fallback_end,
                           pgprot, alignment, flags };
    void *execmem_alloc(enum execmem_type type, size_t size);
    void execmem_free(void *ptr);

* ``__execmem_alloc(range, size)``: ``__vmalloc_node_range(size,
  range->alignment, range->start, range->end, GFP_KERNEL | __GFP_NOWARN,
  range->pgprot, VM_FLUSH_RESET_PERMS, ...)``; on failure it retries in
  ``[fallback_start, fallback_end]`` when that is set.  ``execmem_free()`` is
  ``vfree()``.
* x86 v6.10 ``execmem_arch_setup()`` fills only ``[EXECMEM_DEFAULT]``:
  ``start = MODULES_VADDR + get_module_load_offset()``, ``end =
  MODULES_END``, ``pgprot = PAGE_KERNEL`` (RW+NX), ``alignment =
  MODULE_ALIGN`` (PAGE_SIZE without KASAN), no fallback range.
  ``execmem_init_missing()`` copies it to every other type (MODULE_DATA gets
  PAGE_KERNEL, which on x86 is the same).  So on x86 every type is the old
  ``module_alloc()`` -- except that execmem itself sets
  ``VM_FLUSH_RESET_PERMS``, which is why v6.10's callers no longer call
  ``set_vm_flush_reset_perms()`` (the kprobes and ftrace callers dropped it).

Simplified: KASAN's shadow (``EXECMEM_KASAN_SHADOW``, ``MODULE_ALIGN`` = 32
KiB with generic KASAN) is not modelled -- Debian's kernels do not enable
KASAN.  The fallback range is modelled (it is part of the API) but x86 leaves
it empty, so it is never taken.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from execbench.errors import DesignError
from execbench.kernel import Kernel
from execbench.kernel.layout import MODULES_END, MODULES_LEN
from execbench.units import PAGE_SIZE, page_align

from ..common.api import KernelApi


class ExecmemType(IntEnum):
    """``enum execmem_type`` (include/linux/execmem.h, v6.10)."""

    MODULE_TEXT = 0          # == EXECMEM_DEFAULT
    KPROBES = 1
    FTRACE = 2
    BPF = 3
    MODULE_DATA = 4


@dataclass(frozen=True)
class ExecmemRange:
    """``struct execmem_range``; ``w``/``x`` stand for the pgprot."""

    start: int
    end: int
    fallback_start: int = 0
    fallback_end: int = 0
    w: bool = True                 # PAGE_KERNEL = RW+NX
    x: bool = False
    alignment: int = PAGE_SIZE     # MODULE_ALIGN
    rox_cache: bool = False        # EXECMEM_ROX_CACHE (v6.13+)


@dataclass
class ExecmemInfo:
    """``struct execmem_info``: one range per type."""

    ranges: dict[ExecmemType, ExecmemRange] = field(default_factory=dict)


def x86_execmem_info_610(k: Kernel) -> ExecmemInfo:
    """x86 ``execmem_arch_setup()`` (arch/x86/mm/init.c, v6.10) followed by
    ``execmem_init_missing()``: one range, copied to every type."""
    default = ExecmemRange(start=k.vstart, end=MODULES_END)
    return ExecmemInfo({t: default for t in ExecmemType})


def arm64_execmem_info_610(k: Kernel) -> ExecmemInfo:
    """arm64 ``execmem_arch_setup()`` (arch/arm64/mm/init.c; read in 6.12,
    introduced by 223b5e57d0d5 and e2effa2235d9 in v6.10) then
    ``execmem_init_missing()`` (mm/execmem.c):

    * ``EXECMEM_DEFAULT`` (= MODULE_TEXT): ``[module_direct_base, +128 MiB)``
      with the 2 GiB PLT window as fallback when the direct window exists,
      else the PLT window alone (Debian's RANDOMIZE_MODULE_REGION_FULL with
      KASLR); ``PAGE_KERNEL``; alignment 1 (a byte alignment: page-aligned
      areas anyway);
    * ``EXECMEM_KPROBES``: ``[VMALLOC_START, VMALLOC_END)``, ``PAGE_KERNEL_ROX``;
    * ``EXECMEM_BPF``: ``[VMALLOC_START, VMALLOC_END)``, ``PAGE_KERNEL``;
    * ``EXECMEM_FTRACE`` and ``EXECMEM_MODULE_DATA`` copied from DEFAULT
      (MODULE_DATA with ``PAGE_KERNEL``, the same here).

    Neither range has ``EXECMEM_KASAN_SHADOW`` (arm64 selects KASAN_VMALLOC)
    nor ``EXECMEM_ROX_CACHE`` (no ARCH_HAS_EXECMEM_ROX on arm64)."""
    lay = k.layout
    direct, plt = lay.direct_window, lay.plt_window
    if direct is not None:
        default = ExecmemRange(start=direct[0], end=direct[1],
                               fallback_start=plt[0] if plt else 0, fallback_end=plt[1] if plt else 0)
    else:
        default = ExecmemRange(start=plt[0], end=plt[1])
    vm0, vm1 = lay.default_range()
    return ExecmemInfo({
        ExecmemType.MODULE_TEXT: default,
        ExecmemType.KPROBES: ExecmemRange(start=vm0, end=vm1, w=False, x=True),
        ExecmemType.FTRACE: default,
        ExecmemType.BPF: ExecmemRange(start=vm0, end=vm1),
        ExecmemType.MODULE_DATA: default,
    })


class ExecmemApi(KernelApi):
    """``execmem_alloc()`` / ``execmem_free()`` plus the primitives every
    v6.10 caller still uses itself (``set_memory_*``, ``text_poke*``)."""

    #: v6.15+ x86 ``set_memory_rox()`` passes CPA_COLLAPSE (41d88484c71c
    #: "x86/mm/pat: restore large ROX pages after fragmentation"); v6.10 does not.
    rox_collapse = False

    def __init__(self, kernel: Kernel, info: ExecmemInfo | None = None):
        super().__init__(kernel)
        self.arm64 = kernel.arch.name == "arm64"
        if info is None:
            info = arm64_execmem_info_610(kernel) if self.arm64 else x86_execmem_info_610(kernel)
        self.info = info

    def set_memory_rox(self, addr: int, npages: int) -> None:
        self.k.api("set_memory_rox")
        self.k.set_memory_rox(addr, npages, collapse=self.rox_collapse)

    def _vmalloc(self, r: ExecmemRange, size: int, caller: str) -> int:
        """``__execmem_alloc()``: the range, then the fallback range if set."""
        try:
            return self.k.vmalloc(size, align=r.alignment, start=r.start, end=r.end,
                                  w=r.w, x=r.x, reset_perms=True, caller=caller)
        except DesignError:
            if not r.fallback_start:
                raise
            p = self.k.vmalloc(size, align=r.alignment, start=r.fallback_start,
                               end=r.fallback_end, w=r.w, x=r.x, reset_perms=True,
                               caller=caller)
            if self.arm64:
                self.k.counters["module_fallback_allocs"] += 1
            return p

    def execmem_alloc(self, type_: ExecmemType, size: int, caller: str = "") -> int:
        self.k.api("execmem_alloc")
        return self._alloc(type_, size, caller)

    def execmem_alloc_rw(self, type_: ExecmemType, size: int, caller: str = "") -> int:
        """v6.17 ``execmem_alloc_rw()`` (mm/execmem.c, 7.2): ``execmem_alloc()``
        then ``execmem_force_rw()``, which is the ``return 0`` stub without
        CONFIG_ARCH_HAS_EXECMEM_ROX (arm64 through 7.2): the same allocation.
        The loader calls it only on a machine at v6.17+ (the arm64 7.2
        validation; :class:`~models.execmem.module_loader.ModuleLoader610`)."""
        self.k.api("execmem_alloc_rw")
        return self._alloc(type_, size, caller)

    def _alloc(self, type_: ExecmemType, size: int, caller: str) -> int:
        if self.arm64:
            r = self.info.ranges[type_]
            if page_align(size) > max(r.end - r.start, r.fallback_end - r.fallback_start):
                raise DesignError(f"execmem_alloc({type_.name}, {size}) is larger than the range")
            p = self._vmalloc(r, size, caller or type_.name)
            self.k.kasan_reset_tag()                 # __execmem_alloc(): kasan_reset_tag(p)
            return p
        if page_align(size) > MODULES_LEN:
            raise DesignError(f"execmem_alloc({type_.name}, {size}) is larger than the range")
        return self._vmalloc(self.info.ranges[type_], size, caller or type_.name)

    def execmem_free(self, addr: int | None) -> None:
        """``execmem_free()`` = ``vfree()``; NULL (``addr=None``) does nothing."""
        self.k.api("execmem_free")
        if addr is None:
            self.k.free_null("execmem_free")
            return
        self.k.vfree(addr)
