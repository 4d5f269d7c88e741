"""``legacy``: the v6.1 kernel as shipped -- ``module_alloc()`` for modules,
trampolines and kprobe pages, ``bpf_prog_pack`` for BPF programs, and every
user calling ``set_memory_*`` itself.

Sources, v6.1: arch/x86/kernel/module.c ``module_alloc()``;
kernel/module/main.c + strict_rwx.c (module layout and permissions);
kernel/bpf/core.c (``bpf_prog_pack``), trampoline.c, dispatcher.c;
arch/x86/kernel/ftrace.c ``create_trampoline()``; kernel/kprobes.c +
arch/x86/kernel/kprobes/core.c ``alloc_insn_page()``.  The rules are listed
with their sources in docs/kernel-semantics.md ("Module loader", "BPF"); each
user module's docstring says what it follows and simplifies.

Parameter ``bpf_prog_pack`` (default True): False gives v5.17's per-program
``bpf_jit_binary_alloc`` path that ``bpf_prog_pack`` (v5.18) replaced.
Parameter ``bpf_prog_pack_huge`` (default False): True maps each 2 MiB pack
with one PMD leaf (v5.18-rc1..rc3; see :func:`.bpf.pack_ops_v61`).
"""
from __future__ import annotations

from execbench.design import Design
from execbench.kernel import Kernel

from ..common.load_work import check_loader

from .api import ModuleAllocApi
from .bpf import Bpf61
from .ftrace import Ftrace61
from .kprobes import Kprobes61
from .module_loader import ModuleLoader61


class Legacy(Design):
    name = "legacy"
    title = "v6.1: module_alloc + bpf_prog_pack, callers flip permissions"
    source = "torvalds/linux v6.1 (kernel/module/, kernel/bpf/core.c, arch/x86/kernel/{module,ftrace}.c, kernel/kprobes.c)"
    kernel_version = (6, 1)
    #: loader "rw": module memory is RW+NX until complete_formation(), every
    #: load-time write a plain store (models/common/load_work.py); the only value
    defaults = {"bpf_prog_pack": True, "bpf_prog_pack_huge": False, "loader": "rw"}

    def __init__(self, kernel: Kernel, **params):
        super().__init__(kernel, **params)
        api = ModuleAllocApi(kernel)
        check_loader(self.name, self.params["loader"], ("rw",))
        self.module = ModuleLoader61(kernel, api)
        self.bpf = Bpf61(kernel, api, use_pack=self.params["bpf_prog_pack"],
                         pack_huge=self.params["bpf_prog_pack_huge"])
        self.ftrace = Ftrace61(kernel, api)
        self.kprobe = Kprobes61(kernel, api)
