"""``jitalloc``: Kent Overstreet's "mm: jit/text allocator" (May 2023).

Sources, point by point (docs/kernel-semantics.md §9):

* Allocator: commit 80ceffd6b110 "mm: jit/text allocator" (mm/jitalloc.c,
  include/linux/jitalloc.h) as quoted in Message-ID
  ZHEy5SkFwI+dZjOC@moria.home.lan -- :mod:`.slab`.  Power-of-two slabs of
  16..2048 bytes, one 4 KiB page each made ``set_memory_rox`` once at
  creation, first free slot of the first partial slab, one global
  ``jit_alloc_lock``; larger requests are page-granular ``module_alloc`` +
  ``set_memory_rox``; an empty slab is released.
* ``jit_update``: ``text_poke_copy`` on x86 (the commit); option
  ``text_poke=False`` models the ``jitalloc_update()`` fallback sketched in
  ZHF21CSxyjQy9C7F@moria.home.lan (lock; unprotect; memcpy; protect), with
  ``fallback_lock`` and ``fallback_unprotect`` ("nx_rw" | "rw") because the
  sketch leaves both open -- see :mod:`.slab` for what is counted.
* Exported surface (:mod:`.api`): ``jit_alloc``, ``jit_update``,
  ``jit_free``; no flags, no permission calls for text users.
* Users: modules (:mod:`.module_loader`, an **extrapolation**: Kent's
  commit scopes jitalloc to BPF, ftrace trampolines and bcachefs; module text
  on jit_alloc is the project's reading.  Parameter ``loader``: ``staged``,
  the default -- one jit_update of an image built in a temporary buffer --
  or ``inplace`` -- one jit_update per write; data/rodata/ro_after_init as
  in v6.4), BPF (:mod:`.bpf`: programs, trampolines and the dispatcher directly
  on jit_alloc; ``bpf_prog_pack=True`` keeps the pack on top), ftrace
  (:mod:`.ftrace`), kprobes (:mod:`.kprobes`: slots are jit_alloc(16)
  objects; ``kprobe_cache=True`` keeps the insn-slot cache).
* Kernel version: the series sits on v6.4-rc (v6.2+ CPA rules,
  ``set_memory_rox`` exists).

On arm64 (``--arch arm64``) -- an **extrapolation** (Kent posted no arm64
code): slabs over arm64's v6.4 ``module_alloc()`` (direct window + 2 GiB
fallback); ``jit_update`` = ``aarch64_insn_copy()`` with ``text_poke=True``
(arm64 has it from v6.9: used at this v6.4 base as a backport, counted in
``arm64_backported_calls``), or Kent's unprotect/memcpy/protect fallback with
``text_poke=False`` -- on arm64 ``set_memory_rox`` is ``set_memory_ro`` +
``set_memory_x`` and the new code needs a ``flush_icache_range()`` IPI; the
arm64 callers around it (no ftrace trampolines, 8-byte kprobe slots, no
optprobes, no dispatcher) as in models/common/arm64.py.

Simplified (and why): the sketch's leak of an empty slab's vmalloc area is
modelled as ``vfree`` (its evident intent); ``len < 16`` uses the 16-byte
class (the sketch computes ``ilog2(0)``); no huge pages, NUMA or per-type
ranges -- the sketch has none.
"""
from __future__ import annotations

from execbench.design import Design
from execbench.errors import DesignError
from execbench.kernel import Kernel

from .api import JitAllocApi
from .bpf import BpfJit
from .ftrace import FtraceJit
from .kprobes import KprobesJit, KprobesJitCached
from .module_loader import ModuleLoaderJit
from .slab import JitAllocator


class JitAlloc(Design):
    name = "jitalloc"
    title = ("Kent Overstreet's jit_alloc/jit_update/jit_free: 16-2048 B ROX slabs, text_poke "
             "writes; module text on jitalloc is an extrapolation")
    source = ("80ceffd6b110 'mm: jit/text allocator' in ZHEy5SkFwI+dZjOC@moria.home.lan; "
              "jitalloc_update fallback ZHF21CSxyjQy9C7F@moria.home.lan; v6.4 module loader "
              "(module text: extrapolated)")
    kernel_version = (6, 4)
    defaults = {"text_poke": True, "fallback_lock": True, "fallback_unprotect": "nx_rw",
                "bpf_prog_pack": False, "kprobe_cache": False, "loader": "staged"}

    @classmethod
    def loader_note(cls, params=None) -> str:
        return "extrapolation (module text on jitalloc is the project's reading)"

    @classmethod
    def arch_note(cls, arch: str, params=None) -> str:
        if arch == "arm64":
            tp = (params or {}).get("text_poke", cls.defaults["text_poke"])
            return ("extrapolation (aarch64_insn_copy, v6.9, as jit_update at v6.4)" if tp
                    else "extrapolation (Kent's unprotect/memcpy/protect fallback)")
        return ""

    def __init__(self, kernel: Kernel, **params):
        super().__init__(kernel, **params)
        p = self.params
        if kernel.arch.name == "arm64":
            self._init_arm64(kernel, p)
            return
        self.allocator = JitAllocator(kernel, text_poke=p["text_poke"], fallback_lock=p["fallback_lock"],
                                      fallback_unprotect=p["fallback_unprotect"])
        api = JitAllocApi(kernel, self.allocator)
        self.module = ModuleLoaderJit(kernel, api, text_poke=p["text_poke"], loader=p["loader"])
        self.bpf = BpfJit(kernel, api, use_pack=p["bpf_prog_pack"])
        self.ftrace = FtraceJit(kernel, api, text_poke=p["text_poke"])
        self.kprobe = (KprobesJitCached(kernel, api) if p["kprobe_cache"] else KprobesJit(kernel, api))

    def _init_arm64(self, kernel: Kernel, p: dict) -> None:
        from ..common.arm64 import NoFtraceTrampolines
        from .bpf import BpfJitArm64
        from .kprobes import KprobesJitArm64
        if p["text_poke"]:
            kernel.backports.add("aarch64_insn_copy")
        self.allocator = JitAllocator(kernel, text_poke=p["text_poke"], fallback_lock=p["fallback_lock"],
                                      fallback_unprotect=p["fallback_unprotect"])
        api = JitAllocApi(kernel, self.allocator)
        self.module = ModuleLoaderJit(kernel, api, text_poke=p["text_poke"], loader=p["loader"])
        self.bpf = BpfJitArm64(kernel, api, use_pack=p["bpf_prog_pack"])
        self.ftrace = NoFtraceTrampolines(kernel)
        if p["kprobe_cache"]:
            raise DesignError("jitalloc: kprobe_cache=true on arm64 is not modelled (the cache's "
                              "x86 slot strides); the default keeps one jit_alloc per slot")
        self.kprobe = KprobesJitArm64(kernel, api)
