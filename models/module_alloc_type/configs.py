"""The allocator parameter sets, as data: ``struct mod_alloc_params``.

Song Liu, "[PATCH 1/3] module: Introduce module_alloc_type"
(20230526051529.3387103-2-song@kernel.org), include/linux/moduleloader.h::

    enum mod_alloc_params_flags {
        MOD_ALLOC_FALLBACK            = (1 << 0),  /* Fallback to module_alloc() */
        MOD_ALLOC_KASAN_MODULE_SHADOW = (1 << 1),  /* Calls kasan_alloc_module_shadow() */
        MOD_ALLOC_KASAN_RESET_TAG     = (1 << 2),  /* Calls kasan_reset_tag() */
        MOD_ALLOC_SET_MEMORY          = (1 << 3),  /* The allocator calls set_memory_ on
                                                    * memory before returning it to the
                                                    * caller ... */
    };
    #define MOD_MAX_ADDR_SPACES 2
    struct vmalloc_params { start, end, gfp_mask, pgprot, vm_flags };
    struct mod_alloc_params { flags, granularity, alignment,
                              vmp[MOD_MAX_ADDR_SPACES], fill, invalidate };

and "[PATCH 3/3] x86/module: Use module_alloc_type"
(20230526051529.3387103-4-song@kernel.org), arch/x86/kernel/module.c
``module_alloc_type_init()``: three allocator objects --

* ``x86_mod_allocator_text`` (MOD_TEXT, MOD_INIT_TEXT):
  KASAN_MODULE_SHADOW | SET_MEMORY, granularity PAGE_SIZE, alignment
  MODULE_ALIGN, fill ``text_poke_copy``, invalidate ``text_poke_set(0xcc)``,
  vmp[0] = [MODULES_VADDR + get_module_load_offset(), MODULES_END),
  PAGE_KERNEL_EXEC, VM_FLUSH_RESET_PERMS | VM_DEFER_KMEMLEAK |
  VM_ALLOW_HUGE_VMAP;
* ``x86_mod_allocator_rw_data`` (MOD_DATA, MOD_INIT_DATA, MOD_RO_AFTER_INIT):
  KASAN_MODULE_SHADOW only, no fill/invalidate (memcpy / memset 0),
  PAGE_KERNEL_EXEC, VM_FLUSH_RESET_PERMS | VM_DEFER_KMEMLEAK;
* ``x86_mod_allocator_ro_data`` (MOD_RODATA, MOD_INIT_RODATA): like text but
  without VM_ALLOW_HUGE_VMAP.

No second address space on x86 (vmp[1] is all zero: ``start == end`` ->
skipped).  MODULE_ALIGN is PAGE_SIZE without KASAN.

``X86_TEXT_PMD`` is *not* in the series: it is the configuration the
header comment describes ("If @granularity > @alignment the allocation can
reuse free space in previously allocated pages") for ``granularity =
PMD_SIZE``, with the backing taken the way Song's 2022 ``execmem_alloc``
took it (v5, 20221128190245.2337461-2-song@kernel.org, mm/vmalloc.c
``execmem_alloc()`` / ``move_vmap_to_free_text_tree()``): PAGE_KERNEL
(RW+NX while it is being zeroed, then RO+X), VM_ALLOW_HUGE_VMAP |
VM_NO_GUARD.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from execbench.units import PAGE_SIZE, PMD_SIZE

MOD_ALLOC_FALLBACK = 1 << 0
MOD_ALLOC_KASAN_MODULE_SHADOW = 1 << 1
MOD_ALLOC_KASAN_RESET_TAG = 1 << 2
MOD_ALLOC_SET_MEMORY = 1 << 3
FLAG_NAMES = {MOD_ALLOC_FALLBACK: "MOD_ALLOC_FALLBACK",
              MOD_ALLOC_KASAN_MODULE_SHADOW: "MOD_ALLOC_KASAN_MODULE_SHADOW",
              MOD_ALLOC_KASAN_RESET_TAG: "MOD_ALLOC_KASAN_RESET_TAG",
              MOD_ALLOC_SET_MEMORY: "MOD_ALLOC_SET_MEMORY"}
MOD_MAX_ADDR_SPACES = 2
MODULE_ALIGN = PAGE_SIZE          # arch/x86/include/asm/module.h without KASAN

VM_FLUSH_RESET_PERMS = "VM_FLUSH_RESET_PERMS"
VM_DEFER_KMEMLEAK = "VM_DEFER_KMEMLEAK"
VM_ALLOW_HUGE_VMAP = "VM_ALLOW_HUGE_VMAP"
VM_NO_GUARD = "VM_NO_GUARD"


@dataclass(frozen=True)
class VmallocParams:
    """``struct vmalloc_params``.  ``start``/``end`` of None mean
    ``MODULES_VADDR + get_module_load_offset()`` / ``MODULES_END`` (known
    only once the simulated kernel has drawn its KASLR offset); ``w``/``x``
    is the pgprot (PAGE_KERNEL_EXEC = w+x, PAGE_KERNEL = w)."""

    start: int | None = None
    end: int | None = None
    w: bool = True
    x: bool = True
    vm_flags: frozenset[str] = frozenset()

    @property
    def unused(self) -> bool:
        """``vmp->start == vmp->end``: the address space is skipped."""
        return self.start is not None and self.start == self.end


@dataclass(frozen=True)
class ModAllocParams:
    """``struct mod_alloc_params`` (plus a name for reports).  ``fill`` /
    ``invalidate`` name the callback; None is the default memcpy / memset 0."""

    name: str
    flags: int
    granularity: int
    alignment: int
    vmp: tuple[VmallocParams, ...]
    fill: str | None = None
    invalidate: str | None = None

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def flag_names(self) -> list[str]:
        return [n for f, n in FLAG_NAMES.items() if self.flags & f]


_X86_VMP_TEXT = VmallocParams(w=True, x=True, vm_flags=frozenset(
    {VM_FLUSH_RESET_PERMS, VM_DEFER_KMEMLEAK, VM_ALLOW_HUGE_VMAP}))
_X86_VMP_DATA = VmallocParams(w=True, x=True, vm_flags=frozenset(
    {VM_FLUSH_RESET_PERMS, VM_DEFER_KMEMLEAK}))

X86_TEXT = ModAllocParams("text", MOD_ALLOC_KASAN_MODULE_SHADOW | MOD_ALLOC_SET_MEMORY,
                          PAGE_SIZE, MODULE_ALIGN, (_X86_VMP_TEXT,),
                          fill="text_poke_copy", invalidate="text_poke_set")
X86_RW_DATA = ModAllocParams("rw_data", MOD_ALLOC_KASAN_MODULE_SHADOW,
                             PAGE_SIZE, MODULE_ALIGN, (_X86_VMP_DATA,))
X86_RO_DATA = ModAllocParams("ro_data", MOD_ALLOC_KASAN_MODULE_SHADOW | MOD_ALLOC_SET_MEMORY,
                             PAGE_SIZE, MODULE_ALIGN, (_X86_VMP_DATA,),
                             fill="text_poke_copy", invalidate="text_poke_set")

#: granularity = PMD_SIZE on text: 2 MiB RO+X granules shared by sub-allocations
X86_TEXT_PMD = replace(
    X86_TEXT, name="text_pmd", granularity=PMD_SIZE,
    vmp=(VmallocParams(w=True, x=False, vm_flags=frozenset({VM_ALLOW_HUGE_VMAP, VM_NO_GUARD})),))


def x86_allocators(text: ModAllocParams = X86_TEXT) -> dict[str, ModAllocParams]:
    """``module_alloc_type_init()``: mod_mem_type -> its allocator."""
    return {"text": text, "init_text": text,
            "data": X86_RW_DATA, "init_data": X86_RW_DATA, "ro_after_init": X86_RW_DATA,
            "rodata": X86_RO_DATA, "init_rodata": X86_RO_DATA}


#: the configurations a design id selects
CONFIGS: dict[str, dict[str, ModAllocParams]] = {
    "x86": x86_allocators(X86_TEXT),
    "x86_pmd": x86_allocators(X86_TEXT_PMD),
}


def arm64_allocators(k) -> dict[str, ModAllocParams]:
    """**Our reading** of an arm64 ``module_alloc_type_init()`` -- v1 posted
    only x86's.  The cover letter (20230526051529.3387103-1-song@kernel.org)
    gives the parameters arm64 needs -- "KASAN module shadow", "kasan_reset_tag()",
    "preferred and secondary module address ranges" -- and ``struct
    mod_alloc_params`` has a field for each.  Translating the v6.4 arm64
    ``module_alloc()`` (arch/arm64/kernel/module.c, the tree the series was
    based on; the same code as 6.1) field by field:

    * every type: ``vmp[0] = [module_alloc_base, module_alloc_base + SZ_128M)``
      (``MODULES_END`` as the end with generic/SW_TAGS KASAN), ``vmp[1] =
      [module_alloc_base, module_alloc_base + SZ_2G)`` (``ARM64_MODULE_PLTS``),
      ``MOD_ALLOC_KASAN_MODULE_SHADOW | MOD_ALLOC_KASAN_RESET_TAG``,
      ``granularity = alignment = MODULE_ALIGN`` (PAGE_SIZE: arm64's forced
      KASAN_VMALLOC keeps it so); the window bounds are the machine's
      (execbench/kernel/arch/arm64.py);
    * pgprot ``PAGE_KERNEL_EXEC`` and ``VM_FLUSH_RESET_PERMS`` as in x86's v1
      (arm64's ``module_alloc()`` has no ``VM_ALLOW_HUGE_VMAP``, so neither
      does this; ``VM_DEFER_KMEMLEAK`` on the first window as there);
    * text and rodata: ``MOD_ALLOC_SET_MEMORY`` with ``fill`` / ``invalidate``
      the arm64 counterparts of ``text_poke_copy`` / ``text_poke_set`` --
      ``aarch64_insn_copy()`` / ``aarch64_insn_set()``, which arm64 has only
      from v6.9: modelled as if backported (``arm64_backported_calls``).

    With KASAN_VMALLOC forced on arm64, ``MOD_ALLOC_KASAN_MODULE_SHADOW`` is
    the no-op ``kasan_alloc_module_shadow()`` and ``MOD_ALLOC_KASAN_RESET_TAG``
    changes no page state: the flags are real but move no number (the tag
    reset counts in ``kasan_reset_tag_calls`` with SW/HW_TAGS)."""
    (_, d0, d1), (_, f0, f1) = k.layout.windows[0], k.layout.windows[1]
    vmp0 = VmallocParams(start=d0, end=d1, w=True, x=True,
                         vm_flags=frozenset({VM_FLUSH_RESET_PERMS, VM_DEFER_KMEMLEAK}))
    vmp1 = VmallocParams(start=f0, end=f1, w=True, x=True, vm_flags=frozenset({VM_FLUSH_RESET_PERMS}))
    base = MOD_ALLOC_KASAN_MODULE_SHADOW | MOD_ALLOC_KASAN_RESET_TAG
    text = ModAllocParams("text", base | MOD_ALLOC_SET_MEMORY, PAGE_SIZE, MODULE_ALIGN, (vmp0, vmp1),
                          fill="text_poke_copy", invalidate="text_poke_set")
    rw = ModAllocParams("rw_data", base, PAGE_SIZE, MODULE_ALIGN, (vmp0, vmp1))
    ro = ModAllocParams("ro_data", base | MOD_ALLOC_SET_MEMORY, PAGE_SIZE, MODULE_ALIGN, (vmp0, vmp1),
                        fill="text_poke_copy", invalidate="text_poke_set")
    return {"text": text, "init_text": text, "data": rw, "init_data": rw, "ro_after_init": rw,
            "rodata": ro, "init_rodata": ro}
