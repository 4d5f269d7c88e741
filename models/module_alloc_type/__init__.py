"""``module_alloc_type`` and ``module_alloc_type_pmd``: Song Liu's type-aware
module allocator, "[PATCH 0/3] Type aware module allocator" (May 2023,
20230526051529.3387103-1-song@kernel.org), x86 configuration, on v6.4-rc.

Both designs are the same code (:mod:`.allocator`, the users in
:mod:`.module_loader`, :mod:`.bpf`, :mod:`.ftrace`, :mod:`.kprobes`) driven by
``struct mod_alloc_params`` data (:mod:`.configs`):

* ``module_alloc_type`` -- v1 as posted (patches 1/3 and 3/3,
  ...-2- and ...-4-song@kernel.org): three x86 allocators (text, rw_data,
  ro_data), all PAGE_KERNEL_EXEC; ``granularity`` stored but never read, so
  every call is its own page-granular ``__vmalloc_node_range``; text made
  RO+X (``set_memory_rox``) and rodata NX+RO by the allocator
  (MOD_ALLOC_SET_MEMORY); data, ro_after_init and init data stay RW+**X**
  until the loader's ``set_memory_nx`` at ``complete_formation()`` (and, as
  posted, init rodata until it is freed, and the PMD-rounded tail of a
  >= 2 MiB text area for its lifetime -- see :mod:`.allocator`); every write into
  text/rodata goes through ``fill`` = ``text_poke_copy`` and the per-item
  loader writes become ``text_poke``s (relocations, alternatives sites,
  ORC and mcount sort swaps, the ``__fentry__`` -> NOP conversions --
  thousands per module); BPF keeps
  ``bpf_prog_pack`` on top, trampolines pay ``force_unprotect`` +
  ``force_protect`` per generation; kprobe pages and ftrace trampolines come
  RO+X and are written by text poking.
* ``module_alloc_type_pmd`` -- the header comment's intent ("If
  @granularity > @alignment the allocation can reuse free space in
  previously allocated pages"), which v1 did **not** implement: the text
  allocator gets ``granularity = PMD_SIZE`` and sub-allocates MODULE_ALIGN
  (4 KiB)-aligned pieces from shared 2 MiB RO+X PMD-mapped granules
  (:mod:`.granules`, after Song's 2022 ``execmem_alloc``), returning a
  granule as soon as it is empty.  rw_data and ro_data are unchanged.

Parameters: ``loader`` (``inplace``, the default: v1 as posted; ``staged``:
a what-if, the image built in a writable copy and written with one fill
per area -- :mod:`models.common.load_work`), ``rethunk`` (X86_FEATURE_RETHUNK
on the replayed CPU: then ``create_trampoline()`` as posted stores the
return-thunk jump into the read-only trampoline, a ``faults_as_posted``;
default False, see :mod:`.ftrace`).

What v1 as posted would fault on, checked against the v6.4-rc code its
diffs apply to (``faults_as_posted``): counted -- the dispatcher's RO+X
``rw_image`` (:mod:`.bpf`) and the RETHUNK store (:mod:`.ftrace`); real but
not countable from the trace -- ``apply_alternatives()`` still ends each
site with ``optimize_nops(instr, a->instrlen)``, whose ``add_nops()``
memcpy()s long NOPs over any run of two or more single-byte NOPs in the
module's (now RO+X) text, and ``apply_returns()`` ->
``__static_call_fixup()`` -> ``__static_call_transform(.., modinit=true)``
-> ``text_poke_early()`` (a memcpy) on each static-call NULL trampoline a
module defines; whether a site has such a NOP run, or is such a
trampoline, depends on its bytes and the CPU's feature bits, which the
trace does not carry (docs/kernel-semantics.md, "What v1 as posted would
fault on").

On arm64 (``--arch arm64``) -- **our reading**, since v1 posted only x86's
configuration: :func:`.configs.arm64_allocators` (the preferred and
secondary module windows, KASAN shadow and tag-reset flags the cover letter
names, fill/invalidate as ``aarch64_insn_copy``/``aarch64_insn_set``
backported from v6.9); the loader's per-item writes become one
``aarch64_insn_patch_text_nosync()`` per item and each relocation section
ends with a ``flush_icache_range()`` IPI (x86's ``text_poke_sync()``).  The
series changed only the generic (``__weak``) ``bpf_jit_alloc_exec()`` and
``alloc_insn_page()``; arm64 overrides both, so BPF programs, trampolines and
kprobe pages stay arm64 v6.4's (models/common/arm64.py) and only the
dispatcher's pack comes from ``module_alloc_type(MOD_TEXT)`` -- where arm64's
``jit_fill_hole()``, a plain store, would fault on the RO+X pack
(``faults_as_posted_dispatcher_fill``; modelled with ``aarch64_insn_set``).
``module_alloc_type_pmd`` does not exist on arm64: its 2 MiB granules are
PMD-mapped, and ``set_memory_rox`` on them fails (-EINVAL from
``apply_to_pmd_range()``, mm/memory.c; from v6.16 ``change_memory_common()``
refuses VM_ALLOW_HUGE_VMAP areas outright).

Kernel version for CPA rules: (6, 4) -- the series is against v6.4-rc
(per-type module memory, ``set_memory_rox`` exists).  What each part
simplifies is in its module docstring; :data:`.api.INTERFACE` lists the
exported surface (entry points, parameters, flags).
"""
from __future__ import annotations

from dataclasses import replace

from execbench.design import Design
from execbench.errors import DesignError
from execbench.units import PAGE_SIZE
from execbench.kernel import Kernel

from .allocator import ModAllocators
from .api import INTERFACE, ModuleAllocTypeApi
from .bpf import BpfMat
from .configs import CONFIGS, MODULE_ALIGN
from .ftrace import FtraceMat
from .kprobes import KprobesMat
from .module_loader import ModuleLoaderMat

SERIES = "Song Liu, [PATCH 0/3] Type aware module allocator, 20230526051529.3387103-1-song@kernel.org"


class _ModuleAllocTypeBase(Design):
    kernel_version = (6, 4)
    interface = INTERFACE
    config = "x86"
    defaults = {"loader": "inplace", "rethunk": False}

    @classmethod
    def loader_note(cls, params=None) -> str:
        loader = (params or {}).get("loader", cls.defaults["loader"])
        return "" if loader == "inplace" else "what-if (v1 as posted writes in place)"

    @classmethod
    def arch_note(cls, arch: str, params=None) -> str:
        if arch == "arm64":
            return "our reading (v1 posted only x86's configuration)"
        return ""

    def __init__(self, kernel: Kernel, **params):
        super().__init__(kernel, **params)
        if kernel.arch.name == "arm64":
            self._init_arm64(kernel)
            return
        allocators = dict(CONFIGS[self.config])
        align = self.params.get("text_alignment")
        if align is not None:
            if align <= 0 or align % PAGE_SIZE:
                # x86 arch_prepare_bpf_trampoline() unprotects ``image & PAGE_MASK``
                # for PAGE_SIZE and writes the whole image in place: a trampoline
                # that is not page-aligned and alone in its page would be written
                # partly through a read-only mapping (and its neighbours exposed).
                raise DesignError(f"{self.name}: text_alignment={align} must be a positive "
                                  f"multiple of PAGE_SIZE (force_unprotect works on whole pages)")
            text = replace(allocators["text"], alignment=int(align))
            allocators.update(text=text, init_text=text)
        self.allocators = ModAllocators(kernel, allocators)     # module_alloc_type_init()
        api = ModuleAllocTypeApi(kernel, self.allocators)
        self.module = ModuleLoaderMat(kernel, api, loader=self.params["loader"])
        self.bpf = BpfMat(kernel, api)
        self.ftrace = FtraceMat(kernel, api, rethunk=self.params["rethunk"])
        self.kprobe = KprobesMat(kernel, api)


    def _init_arm64(self, kernel: Kernel) -> None:
        from ..common.arm64 import (Arm64Kprobes, Bpf61Arm64, NoFtraceTrampolines,
                                    bpf_jit_alloc_exec_arm64, kprobe_page_61)
        from ..common.bpf_prog_pack import PackOps
        from .configs import arm64_allocators
        if self.params.get("text_alignment") not in (None, MODULE_ALIGN):
            raise DesignError(f"{self.name}: text_alignment is an x86 PMD-granule parameter")
        kernel.backports.add("aarch64_insn_copy")     # fill/invalidate: v6.9 functions, labelled
        self.allocators = ModAllocators(kernel, arm64_allocators(kernel))
        api = ModuleAllocTypeApi(kernel, self.allocators)
        self.module = ModuleLoaderMat(kernel, api, loader=self.params["loader"])

        def fill_pack(addr: int, n: int) -> None:
            # arm64 jit_fill_hole() is memset32() into RO+X memory: a fault as posted
            kernel.count("faults_as_posted")
            kernel.count("faults_as_posted_dispatcher_fill")
            api.text_poke_set(addr, n)

        pack_ops = PackOps(
            alloc_exec=lambda size: api.module_alloc_type(size, "text", caller="bpf_prog_pack_alloc"),
            free_exec=lambda addr: api.module_memfree_type(addr, "text"),
            fill=fill_pack, set_reset_perms=lambda addr: None,
            protect=lambda addr, npages: api.module_memory_protect(addr, npages * PAGE_SIZE, "text"),
            text_copy=lambda addr, n: None, invalidate=lambda addr, n: None)
        self.bpf = Bpf61Arm64(kernel, api, lambda size: bpf_jit_alloc_exec_arm64(kernel, size),
                              lambda addr: kernel.vfree(addr), pack_ops, numa_nodes=kernel.config.numa_nodes)
        self.ftrace = NoFtraceTrampolines(kernel)
        self.kprobe = Arm64Kprobes(kernel, api, lambda: kprobe_page_61(kernel), lambda addr: kernel.vfree(addr))


class ModuleAllocType(_ModuleAllocTypeBase):
    name = "module_alloc_type"
    title = "Song Liu v1 (May 2023): per-type allocators, page-granular, text RO+X + text_poke"
    source = SERIES + " (patches 1/3, 3/3 as posted)"
    config = "x86"


class ModuleAllocTypePmd(_ModuleAllocTypeBase):
    name = "module_alloc_type_pmd"
    title = "module_alloc_type with granularity=PMD_SIZE on text: shared 2 MiB RO+X granules"
    source = SERIES + " header-comment intent + 2022 execmem_alloc (20221128190245.2337461-2-song@kernel.org)"
    config = "x86_pmd"
    defaults = {"text_alignment": MODULE_ALIGN, **_ModuleAllocTypeBase.defaults}

    @classmethod
    def arch_support(cls, arch: str) -> str | None:
        if arch == "arm64":
            return ("its 2 MiB granules are PMD-mapped and set_memory_rox() on them fails "
                    "(-EINVAL: apply_to_pmd_range() refuses leaf PMDs, mm/memory.c; "
                    "change_memory_common() refuses huge vmalloc areas from v6.16)")
        return None
