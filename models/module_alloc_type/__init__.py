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

    def __init__(self, kernel: Kernel, **params):
        super().__init__(kernel, **params)
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
