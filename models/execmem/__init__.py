"""``execmem``: the executable-memory API merged in v6.10, on x86.

Sources (v6.10; docs/kernel-semantics.md §1, §6-§9):

* API: mm/execmem.c ``execmem_alloc()``/``execmem_free()``,
  include/linux/execmem.h ``enum execmem_type``/``struct execmem_range``,
  arch/x86/mm/init.c ``execmem_arch_setup()`` -- :mod:`.api`.
* Modules: kernel/module/main.c ``module_memory_alloc()`` (one area per
  ``enum mod_mem_type``, v6.4 layout) and kernel/module/strict_rwx.c
  (``set_memory_rox`` on text, ``set_memory_ro`` on rodata, ``set_memory_nx``
  on data) -- :mod:`.module_loader`.
* BPF: kernel/bpf/core.c ``bpf_prog_pack`` on ``execmem_alloc(EXECMEM_BPF)``
  with ``set_memory_rox``; trampolines in packs since v6.8 (3ba026fca878);
  dispatcher as in v6.1 -- :mod:`.bpf`.
* ftrace: arch/x86/kernel/ftrace.c ``create_trampoline()`` on
  ``execmem_alloc(EXECMEM_FTRACE)`` + ``set_memory_rox`` -- :mod:`.ftrace`.
* kprobes: ``alloc_insn_page()`` on ``execmem_alloc(EXECMEM_KPROBES)`` +
  ``set_memory_rox`` -- :mod:`.kprobes`.

On arm64 (``--arch arm64``): arm64's ``execmem_info`` (:func:`.api.
arm64_execmem_info_610`: the direct window with the 2 GiB PLT window as
fallback, or the PLT window alone; KPROBES ROX and BPF in the vmalloc area),
the same loader with ``set_memory_rox`` = ``set_memory_ro`` +
``set_memory_x`` (arm64 has no native one) and PLT entries by distance, BPF
on ``bpf_prog_pack`` written with ``aarch64_insn_copy()`` (both from v6.9),
kprobe pages ``execmem_alloc(EXECMEM_KPROBES)`` + ``set_memory_rox`` with
8-byte slots and no optprobes, and no ftrace trampolines
(models/common/arm64.py).

On x86 this is behaviourally v6.1's ``module_alloc()`` plus the v6.4
per-type module layout and the v6.2 CPA rules: every allocation is 4 KiB
mapped RW+NX memory and each caller flips permissions itself.  What it
simplifies is listed in each module (KASAN shadow, the ftrace call-site
offset, the kernel-text pokes every design shares).
"""
from __future__ import annotations

from execbench.design import Design
from execbench.kernel import Kernel

from ..common.load_work import check_loader

from .api import ExecmemApi
from .bpf import Bpf610
from .ftrace import Ftrace610
from .kprobes import Kprobes610
from .module_loader import ModuleLoader610


class Execmem(Design):
    name = "execmem"
    title = "v6.10: execmem_alloc per type (x86: one RW+NX range), callers flip permissions"
    source = ("torvalds/linux v6.10 mm/execmem.c, arch/x86/mm/init.c, kernel/module/{main,strict_rwx}.c, "
              "kernel/bpf/{core,trampoline}.c, arch/x86/kernel/{ftrace.c,kprobes/core.c}")
    kernel_version = (6, 10)
    #: loader "rw": every load-time write a plain store into RW+NX memory
    #: (models/common/load_work.py); the only value
    defaults: dict = {"loader": "rw"}

    def __init__(self, kernel: Kernel, **params):
        super().__init__(kernel, **params)
        api = ExecmemApi(kernel)
        check_loader(self.name, self.params["loader"], ("rw",))
        self.module = ModuleLoader610(kernel, api)
        if kernel.arch.name == "arm64":
            from execbench.units import PAGE_SIZE
            from ..common.arm64 import Arm64Kprobes, NoFtraceTrampolines, PackedBpfArm64
            from .api import ExecmemType

            def kprobe_page() -> int:                  # arm64 alloc_insn_page() (6.12)
                page = api.execmem_alloc(ExecmemType.KPROBES, PAGE_SIZE, caller="alloc_insn_page")
                api.set_memory_rox(page, 1)
                return page

            self.bpf = PackedBpfArm64(
                kernel, api, lambda size: api.execmem_alloc(ExecmemType.BPF, size, caller="bpf_prog_pack_alloc"),
                api.execmem_free, numa_nodes=kernel.config.numa_nodes)
            self.ftrace = NoFtraceTrampolines(kernel)
            self.kprobe = Arm64Kprobes(kernel, api, kprobe_page, api.execmem_free)
            return
        self.bpf = Bpf610(kernel, api)
        self.ftrace = Ftrace610(kernel, api)
        self.kprobe = Kprobes610(kernel, api)
