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
        self.bpf = Bpf610(kernel, api)
        self.ftrace = Ftrace610(kernel, api)
        self.kprobe = Kprobes610(kernel, api)
