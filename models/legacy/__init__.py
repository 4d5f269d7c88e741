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

On arm64 (``--arch arm64``) the same v6.1 kernel as Debian ships it for arm64:
arch/arm64/kernel/module.c ``module_alloc()`` (direct window + 2 GiB
fallback, PLTs by distance), the same generic loader (strict_rwx.c) whose
``set_memory_*`` calls arm64 prices with ``change_memory_common()``, and the
arm64 callers (models/common/arm64.py): BPF programs and trampolines on
``bpf_jit_alloc_exec()`` = ``vmalloc()`` one page-rounded area each (arm64
uses ``bpf_prog_pack`` only from v6.9, so both values of ``bpf_prog_pack``
give this shipped path), a dispatcher that allocates and never writes, no
ftrace trampolines, 8-byte kprobe slots on ROX vmalloc pages, no optprobes.
``bpf_prog_pack_huge`` does not exist there (refused).
"""
from __future__ import annotations

from execbench.design import Design
from execbench.errors import DesignError
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

    @classmethod
    def arch_note(cls, arch: str, params=None) -> str:
        if arch == "arm64":
            return "as shipped (arm64 6.1: no bpf_prog_pack for programs)"
        return ""

    def __init__(self, kernel: Kernel, **params):
        super().__init__(kernel, **params)
        check_loader(self.name, self.params["loader"], ("rw",))
        if kernel.arch.name == "arm64":
            self._init_arm64(kernel)
            return
        api = ModuleAllocApi(kernel)
        self.module = ModuleLoader61(kernel, api)
        self.bpf = Bpf61(kernel, api, use_pack=self.params["bpf_prog_pack"],
                         pack_huge=self.params["bpf_prog_pack_huge"])
        self.ftrace = Ftrace61(kernel, api)
        self.kprobe = Kprobes61(kernel, api)

    def _init_arm64(self, kernel: Kernel) -> None:
        from ..common.arm64 import (Arm64Kprobes, Bpf61Arm64, NoFtraceTrampolines,
                                    bpf_jit_alloc_exec_arm64, kprobe_page_61, pack_ops_61_arm64)
        from ..common.module_alloc import ModuleAllocApiArm64
        if self.params["bpf_prog_pack_huge"]:
            raise DesignError("legacy: bpf_prog_pack_huge does not exist on arm64 (the arm64 BPF JIT "
                              "uses bpf_prog_pack from v6.9; 6.1 allocates each program with vmalloc)")
        api = ModuleAllocApiArm64(kernel)
        self.module = ModuleLoader61(kernel, api)
        pack_ops = pack_ops_61_arm64(api, kernel,
                                     lambda size: api.module_alloc(size, caller="bpf_prog_pack_alloc"),
                                     api.module_memfree)
        self.bpf = Bpf61Arm64(kernel, api, lambda size: bpf_jit_alloc_exec_arm64(kernel, size),
                              lambda addr: kernel.vfree(addr), pack_ops, numa_nodes=kernel.config.numa_nodes)
        self.ftrace = NoFtraceTrampolines(kernel)
        self.kprobe = Arm64Kprobes(kernel, api, lambda: kprobe_page_61(kernel), lambda addr: kernel.vfree(addr))
