"""``execmem_rox``: execmem with the ROX cache for module text, as x86 ships it
today -- v7.2 (Debian sid's 7.2.13), the default -- with a ``version``
switch for v6.13 (rc only, never shipped on x86), v6.15 (the first release
that shipped the cache on x86) and v6.17.

Why 7.2 is the default: it is the kernel kernel developers compare against
now, and it is validated against a real 7.2.13 kernel booted under QEMU
(``workloads/data/qemu/qemu-7.2-generic``, ``python -m
execbench.validation``): execmem_alloc calls and bytes by type, 2 MiB cache
blocks, set_memory_ro/rw/nx/rox calls and pages, __text_poke calls, INT3
sites, execmem frees (NULL frees included) and vmap areas agree within 5 %
after the boot-time pack and cache block.  Why 6.13 is labelled: the cache was
merged for v6.13-rc1 (5185e7f9f3bd selects ``ARCH_HAS_EXECMEM_ROX`` on
x86-64), but a9bbe3413331 "x86: Disable EXECMEM_ROX support" removed that
select through tip x86/urgent in January 2025, before v6.13 final, so no
released v6.13 or v6.14 kernel uses the cache on x86.  64f6a4e10c05 "x86:
re-enable EXECMEM_ROX support" (series 20250126074733.1384926-*-rppt@kernel.org,
with the remap-RW module loader) re-enabled it for v6.15; 47410d839fcd later
made the select depend on ``STRICT_MODULE_RWX`` (7.2.13's arch/x86/Kconfig:
``select ARCH_HAS_EXECMEM_ROX if X86_64 && STRICT_MODULE_RWX``).
``version=6.13`` stays for the design argument of late 2024 (the v4/v7 patch
text), labelled rc only.

Sources (docs/kernel-semantics.md §2, §3, §6, §8, §9):

* the cache -- mm/execmem.c ``execmem_cache_{alloc,populate,free,clean}``,
  series "x86/module: use large ROX pages for text allocations"
  (20241007062858.44248-1-rppt@kernel.org), x86 5185e7f9f3bd -- :mod:`.cache`;
* the API and x86 ranges -- :mod:`.api`;
* module text through a writable shadow and one ``text_poke_copy`` (v6.13),
  or temporary RW + ``set_memory_rox(CPA_COLLAPSE)`` (v6.15,
  20250126074733.1384926-*-rppt@kernel.org; 41d88484c71c) --
  :mod:`.module_loader`;
* v6.17 (20250709134933.3848895-1-rppt@kernel.org): every module type from
  ``execmem_alloc_rw()``, ftrace trampolines and kprobe insn pages on the
  cache too -- :mod:`.ftrace`, :mod:`.kprobes`;
* v7.2 (Debian 7.2.13, read: mm/execmem.c, arch/x86/mm/init.c
  ``execmem_arch_setup()``, kernel/module/main.c + strict_rwx.c,
  arch/x86/mm/pat/set_memory.c, arch/x86/kernel/alternative.c,
  kernel/kprobes.c, arch/x86/kernel/kprobes/, arch/x86/kernel/ftrace.c,
  kernel/bpf/core.c): v6.17's flows, checked rule by rule --
  every module type from ``execmem_alloc_rw()`` (``module_memory_alloc()``),
  text restored with ``execmem_restore_rox()`` = ``set_memory_rox()``, which
  passes CPA_COLLAPSE so ``cpa_collapse_large_pages()`` re-forms the 2 MiB
  leaf of the CPA's own (vmalloc) addresses -- never the direct map, whose
  alias was split; one cache for module text, kprobe insn pages (generic
  ``alloc_insn_page()`` = ``execmem_alloc(EXECMEM_KPROBES, PAGE_SIZE)``, x86
  has no override) and ftrace trampolines (``alloc_tramp()`` =
  ``execmem_alloc_rw(EXECMEM_FTRACE)``, then ``set_memory_rox``); freed text
  refilled with INT3 under force_rw/restore_rox and returned by the clean
  worker only as whole 2 MiB blocks; ``do_free_init()`` calls
  ``execmem_free()`` on all three init pointers (NULL ones included).  What
  differs from v6.17: the text-poke entry points are named
  ``smp_text_poke_single()`` / ``smp_text_poke_batch_add()`` (9586ae48e785,
  732c7c33a0c1, tip x86/alternatives, merged for v6.16 -- the model's v6.17
  already uses the new names), ``.static_call_sites`` is ro_after_init
  (60b57b9cb002, v6.16: the module *layout*, recorded per kernel version by
  the module recorder), and the cache populates and takes the new block's
  first allocation under one hold of its mutex (:mod:`.cache`; no effect on a
  sequential replay).  ITS thunk pages (arch/x86/kernel/alternative.c
  ``its_alloc()``, one ``execmem_alloc_rw(EXECMEM_MODULE_TEXT, PAGE_SIZE)``
  per module on CPUs with ``X86_FEATURE_INDIRECT_THUNK_ITS``) are not
  modelled: the trace has no such event and the recorded QEMU guest made none
  (its module-text allocations match the model's one for one);
* BPF never uses the cache on x86: v6.10's ``bpf_prog_pack`` on
  ``execmem_alloc(EXECMEM_BPF)`` (:mod:`models.execmem.bpf`), with
  CPA_COLLAPSE on its ``set_memory_rox`` from v6.15.

``loader`` (default: the one ``version`` shipped -- ``staged`` for 6.13,
``temp_rw`` from 6.15; ``staged``/``inplace`` elsewhere are labelled
what-ifs): :mod:`.module_loader`, :mod:`models.common.load_work`.

Which mappings ``cpa_collapse_large_pages()`` collapses: the CPA's own
(vmalloc) addresses only -- read in 7.2's set_memory.c.  v6.13 follows the
v4/v7 patch text and the rc code.

Simplified: the cache's clean worker runs synchronously after each free; KASAN
and the unused fallback range are left out; the CPA rules are v6.2+'s for
every version (CPA_COLLAPSE is passed explicitly from v6.15).
"""
from __future__ import annotations

from execbench.design import Design
from execbench.errors import DesignError
from execbench.kernel import Kernel

from ..execmem.bpf import Bpf610
from ..execmem.ftrace import Ftrace610
from ..execmem.kprobes import Kprobes610
from .api import VERSIONS, ExecmemRoxApi
from .ftrace import FtraceRox
from .kprobes import KprobesRox
from .module_loader import ModuleLoaderRox, default_loader


class ExecmemRox(Design):
    name = "execmem_rox"
    title = ("v7.2: execmem ROX cache -- module text, kprobes and ftrace in shared 2 MiB ROX blocks "
             "(version=6.15/6.17; 6.13: rc only, never shipped on x86)")
    source = ("mm/execmem.c + arch/x86/mm/init.c after 5185e7f9f3bd (v6.13); "
              "20241007062858.44248-1-rppt@kernel.org, 20250126074733.1384926-*-rppt@kernel.org (v6.15), "
              "20250709134933.3848895-1-rppt@kernel.org (v6.17); Debian 7.2.13 (v7.2)")
    kernel_version = (7, 2)
    defaults = {"version": (7, 2), "loader": ""}      # "": the version's own (default_loader)

    @classmethod
    def arch_support(cls, arch: str) -> str | None:
        if arch == "arm64":
            return ("no ARCH_HAS_EXECMEM_ROX: only arch/x86/Kconfig selects it (v6.13 through 7.2), "
                    "and arm64's execmem ranges carry no EXECMEM_ROX_CACHE")
        return None
    #: versions that no released x86 kernel ran (shown beside the version in reports)
    UNSHIPPED = {(6, 13): "rc only, never shipped on x86 (a9bbe3413331)"}

    @classmethod
    def loader_note(cls, params=None) -> str:
        p = params or {}
        version = tuple(p.get("version", cls.defaults["version"]))
        loader = p.get("loader") or default_loader(version)
        return "" if loader == default_loader(version) else \
            f"what-if (v{'.'.join(map(str, version))} shipped {default_loader(version)})"

    @classmethod
    def kernel_for(cls, params=None) -> tuple[int, int]:
        """The release ``version`` selects (the CPA rules are v6.2+'s for all)."""
        return tuple((params or {}).get("version", cls.defaults["version"]))

    def __init__(self, kernel: Kernel, **params):
        super().__init__(kernel, **params)
        version = tuple(self.params["version"])
        if version not in VERSIONS:
            raise DesignError(f"execmem_rox: version must be one of "
                              f"{', '.join('.'.join(map(str, v)) for v in VERSIONS)}, not {version}")
        self.params["version"] = version
        api = ExecmemRoxApi(kernel, version)
        self.module = ModuleLoaderRox(kernel, api, loader=self.params["loader"])
        self.params["loader"] = self.module.loader
        self.bpf = Bpf610(kernel, api)
        if version >= (6, 17):
            self.ftrace = FtraceRox(kernel, api)
            self.kprobe = KprobesRox(kernel, api)
        else:
            self.ftrace = Ftrace610(kernel, api)
            self.kprobe = Kprobes610(kernel, api)
