"""``execmem_rox``: execmem with the ROX cache for module text, as x86 first
shipped it in v6.15, with a ``version`` switch for v6.13 (rc only, never
shipped on x86), v6.17 and v7.2 (the kernel as it ships in Debian sid,
7.2.13).

Why v6.15 is the default: the cache was merged for v6.13-rc1 (5185e7f9f3bd
selects ``ARCH_HAS_EXECMEM_ROX`` on x86-64), but a9bbe3413331 "x86: Disable
EXECMEM_ROX support" removed that select through tip x86/urgent in January
2025, before v6.13 final, so no released v6.13 or v6.14 kernel uses the
cache on x86.  64f6a4e10c05 "x86: re-enable EXECMEM_ROX support" (series
20250126074733.1384926-*-rppt@kernel.org, with the remap-RW module loader)
re-enabled it for v6.15; 47410d839fcd later made the select depend on
``STRICT_MODULE_RWX`` (7.2.13's arch/x86/Kconfig: ``select
ARCH_HAS_EXECMEM_ROX if X86_64 && STRICT_MODULE_RWX``).  ``version=6.13``
stays for the design argument of late 2024 (the v4/v7 patch text), labelled
rc only.

Sources (docs/kernel-semantics.md §2, §3, §6, §8, §9):

* the cache -- mm/execmem.c ``execmem_cache_{alloc,populate,free,clean}``,
  series "x86/module: use large ROX pages for text allocations"
  (20241007062858.44248-1-rppt@kernel.org), x86 5185e7f9f3bd -- :mod:`.cache`;
* the API and x86 ranges -- :mod:`.api`;
* module text through a writable shadow and one ``text_poke_copy`` (v6.13),
  or temporary RW + ``set_memory_rox(CPA_COLLAPSE)`` (v6.15,
  20250126074733.1384926-*-rppt@kernel.org; 41d88484c71c) --
  :mod:`.module_loader`;
* v6.17 (20250709134933.3848895-1-rppt@kernel.org): ftrace trampolines
  and kprobe insn pages on the cache too -- :mod:`.ftrace`, :mod:`.kprobes`;
* v7.2 (Debian 7.2.13: mm/execmem.c, arch/x86/mm/init.c, kernel/module/main.c
  + strict_rwx.c, kernel/kprobes.c, arch/x86/kernel/ftrace.c,
  kernel/bpf/core.c, read): v6.17's flows unchanged -- every module type from
  ``execmem_alloc_rw()``, text restored with ``execmem_restore_rox()``; one
  cache for module text, kprobe insn pages (generic ``alloc_insn_page()``)
  and ftrace trampolines (``alloc_tramp()`` = ``execmem_alloc_rw``); freed
  text refilled with INT3 under force_rw/restore_rox and returned by the
  clean worker; the text-poke entry points renamed ``smp_text_poke_*``
  (v6.16).  What 7.2 changed inside those functions is listed in
  :mod:`.cache`, :mod:`.api`, :mod:`.module_loader`; ITS thunk pages
  (arch/x86/kernel/alternative.c ``its_alloc()``, one
  ``execmem_alloc_rw(EXECMEM_MODULE_TEXT, PAGE_SIZE)`` per module on CPUs
  with ``X86_FEATURE_INDIRECT_THUNK_ITS``) are not modelled: the trace has no
  such event and the QEMU guest CPU does not enable the mitigation;
* BPF never uses the cache on x86: v6.10's ``bpf_prog_pack`` on
  ``execmem_alloc(EXECMEM_BPF)`` (:mod:`models.execmem.bpf`), with
  CPA_COLLAPSE on its ``set_memory_rox`` from v6.15.

``loader`` (default: the one ``version`` shipped -- ``staged`` for 6.13,
``temp_rw`` from 6.15; ``staged``/``inplace`` elsewhere are labelled
what-ifs): :mod:`.module_loader`, :mod:`models.common.load_work`.

``version`` (default ``6.15``): the v6.15 remap-RW flow is verified from
the merged code and the patch text, but which mappings
``cpa_collapse_large_pages()`` collapses is not (we collapse the vmalloc
mapping only).  v6.13 follows the v4/v7 patch text and the rc code.

Simplified: the cache's clean worker runs synchronously after each free; KASAN
and the unused fallback range are left out; the kernel model runs v6.13's CPA
rules for every version (v6.2+ rules; CPA_COLLAPSE is passed explicitly).
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
    title = ("v6.15+: execmem ROX cache -- module text in shared 2 MiB ROX blocks "
             "(version=6.13: rc only, never shipped on x86)")
    source = ("mm/execmem.c + arch/x86/mm/init.c after 5185e7f9f3bd (v6.13); "
              "20241007062858.44248-1-rppt@kernel.org, 20250126074733.1384926-*-rppt@kernel.org (v6.15), "
              "20250709134933.3848895-1-rppt@kernel.org (v6.17)")
    kernel_version = (6, 15)
    defaults = {"version": (6, 15), "loader": ""}      # "": the version's own (default_loader)
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
