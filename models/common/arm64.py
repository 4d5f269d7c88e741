"""The parts of the arm64 kernel every design shares, by release.

Each design's ``__init__`` builds these on an arm64 machine
(``kernel.arch.name == "arm64"``) where the arm64 kernel differs from x86-64
in what the *callers* do -- not in what a primitive costs, which the
simulated kernel already decides (execbench/kernel/arch/).  Sources are
Debian's 6.1.176 and 6.12.117 trees (docs/arm64.md).

* :func:`module_alloc_arm64` -- arch/arm64/kernel/module.c ``module_alloc()``
  (v6.1 - v6.4): the direct window, then the 2 GiB fallback window; counts
  ``module_fallback_allocs``.
* :class:`NoFtraceTrampolines` -- arm64 has no per-ops dynamic trampolines
  (arch/arm64/kernel/ftrace.c has no ``arch_ftrace_update_trampoline()``):
  registering an ``ftrace_ops`` makes no executable memory; call sites branch
  to the one ``ftrace_caller`` in the image (or a module's ftrace PLT).
* :class:`Arm64Kprobes` -- 8-byte insn slots (``MAX_INSN_SIZE`` 2 x u32:
  512 per page), each written by two ``aarch64_insn_patch_text_nosync()``
  (``arch_prepare_ss_slot()``: the instruction, then
  ``BRK64_OPCODE_KPROBES_SS``); no optprobes (arm64 does not select
  ``HAVE_OPTPROBES``), so an ``optimize`` event does nothing; slots are
  freed clean (``arch_remove_kprobe()``: ``free_insn_slot(.., 0)``).
* :class:`Bpf61Arm64` -- BPF before arm64 used ``bpf_prog_pack`` (v6.9):
  programs ``bpf_jit_binary_alloc()`` on ``bpf_jit_alloc_exec()`` =
  ``kasan_reset_tag(vmalloc(size))``, trampolines one ``bpf_jit_alloc_exec(
  PAGE_SIZE)`` page each, and a dispatcher that is never written.
* :class:`PackedBpfArm64` -- v6.9+: programs and trampolines on
  ``bpf_prog_pack``, written with ``aarch64_insn_copy()``.
"""
from __future__ import annotations

from execbench.errors import DesignError, OutOfMemory
from execbench.kernel import Kernel
from execbench.trace import Event
from execbench.units import PAGE_SIZE, page_align, pages, round_up

from .bpf_prog_pack import BPF_BINARY_HEADER, BpfProgPack, JitBinaryPack, PackOps
from .bpf_users import PackedPrograms, TrampolineTable
from .kprobe_insn_cache import InsnCache

#: arch/arm64/include/asm/kprobes.h MAX_INSN_SIZE (2) x sizeof(kprobe_opcode_t) (u32)
ARM64_KPROBE_SLOT = 8
#: bpf_jit_binary_alloc(): "allow at least 128 extra bytes" (kernel/bpf/core.c, v6.1)
BPF_JIT_SLACK = 128
#: arm64 bpf_int_jit_compile() passes alignment sizeof(u32) to bpf_jit_binary_alloc()
BPF_ARM64_ALIGN = 4


def module_alloc_arm64(k: Kernel, size: int, caller: str = "", count: bool = True) -> int:
    """arch/arm64/kernel/module.c ``module_alloc()`` (v6.1 - v6.4)::

        p = __vmalloc_node_range(size, MODULE_ALIGN, module_alloc_base,
                                 module_alloc_end, gfp | __GFP_NOWARN, PAGE_KERNEL, ...);
        if (!p && ARM64_MODULE_PLTS && ...)
            p = __vmalloc_node_range(size, MODULE_ALIGN, module_alloc_base,
                                     module_alloc_base + SZ_2G, GFP_KERNEL, PAGE_KERNEL, 0, ...);
        ... kasan_alloc_module_shadow() ...; return kasan_reset_tag(p);

    ``kasan_alloc_module_shadow()`` is the no-op of include/linux/kasan.h:
    arm64 selects KASAN_VMALLOC whenever KASAN is on, and the shadow comes
    with each vmalloc area instead (``kasan_shadow_bytes``).  The window
    bounds are the layout's (execbench/kernel/arch/arm64.py)."""
    if size == 0:
        raise OutOfMemory("module_alloc(0): __vmalloc_node_range() warns and returns NULL")
    lay = k.layout
    (_, d0, d1), (_, f0, f1) = lay.windows[0], lay.windows[1]
    if page_align(size) > f1 - f0:
        raise OutOfMemory(f"module_alloc({size}) is larger than the 2 GiB window")
    try:
        p = k.vmalloc(size, align=PAGE_SIZE, start=d0, end=d1, w=True, x=False, caller=caller)
    except OutOfMemory:
        p = k.vmalloc(size, align=PAGE_SIZE, start=f0, end=f1, w=True, x=False, caller=caller)
        if count:
            k.counters["module_fallback_allocs"] += 1
    k.kasan_reset_tag()
    return p


def bpf_jit_alloc_exec_arm64(k: Kernel, size: int, caller: str = "bpf_jit_alloc_exec") -> int:
    """arm64 ``bpf_jit_alloc_exec()`` (arch/arm64/net/bpf_jit_comp.c, 6.1):
    ``kasan_reset_tag(vmalloc(size))`` -- the vmalloc area, ``PAGE_KERNEL``,
    no ``VM_FLUSH_RESET_PERMS`` until the caller sets it."""
    p = k.vmalloc(size, align=PAGE_SIZE, w=True, x=False, caller=caller)
    k.kasan_reset_tag()
    return p


class NoFtraceTrampolines:
    """ftrace on arm64: no per-ops trampolines (module doc).  The events
    are kept (they are the workload's) and counted
    (``ftrace_ops_no_trampoline``), but make and free no executable memory;
    the call-site patches they cause are in the kernel image, outside the
    modelled windows, the same in every design."""

    def __init__(self, kernel: Kernel, api=None):
        self.k = kernel

    def ops_register(self, ev: Event) -> None:
        self.k.count("ftrace_ops_no_trampoline")

    def ops_update(self, ev: Event) -> None:
        pass

    def ops_unregister(self, ev: Event) -> None:
        pass


class Arm64Kprobes:
    """kprobe insn slots on arm64 (module doc); ``alloc_page`` /
    ``free_page`` are the design's ``alloc_insn_page()`` / ``free_insn_page()``,
    ``write`` how a slot is written (default ``aarch64_insn_patch_text_nosync``
    per instruction, i.e. the kernel's ``text_poke`` on arm64)."""

    def __init__(self, kernel: Kernel, api, alloc_page, free_page, write=None):
        self.k = kernel
        self.api = api
        self.write = write or api.text_poke
        self.slots = InsnCache(ARM64_KPROBE_SLOT, alloc_page, free_page, kernel.count, "kprobe_insn")
        self.probes: dict[str, int] = {}

    def register(self, ev: Event) -> None:
        slot = self.slots.get()
        self.write(slot, ARM64_KPROBE_SLOT)            # arch_prepare_ss_slot(): 2 instructions
        self.k.text_claim(slot, ARM64_KPROBE_SLOT)
        self.probes[ev.obj] = slot

    def optimize(self, ev: Event) -> None:
        """No optprobes on arm64: ``optimize_kprobe()`` is not built."""
        self.k.count("kprobe_optimize_unsupported")

    def unregister(self, ev: Event) -> None:
        slot = self.probes.pop(ev.obj)
        self.k.text_release(slot, ARM64_KPROBE_SLOT)
        self.slots.free(slot, dirty=False)


def kprobe_page_61(k: Kernel) -> int:
    """arm64 ``alloc_insn_page()`` (6.1): ``__vmalloc_node_range(PAGE_SIZE, 1,
    VMALLOC_START, VMALLOC_END, GFP_KERNEL, PAGE_KERNEL_ROX,
    VM_FLUSH_RESET_PERMS, ...)`` -- born read-only and executable, no
    ``set_memory_*``."""
    return k.vmalloc(PAGE_SIZE, w=False, x=True, reset_perms=True, caller="alloc_insn_page")


class Arm64Dispatcher:
    """The BPF dispatcher on arm64: kernel/bpf/dispatcher.c is generic, so the
    first update allocates ``d->image = bpf_prog_pack_alloc(PAGE_SIZE, ...)``
    and ``d->rw_image = bpf_jit_alloc_exec(PAGE_SIZE)``, but arm64 has only
    the ``__weak`` ``arch_prepare_bpf_dispatcher()`` returning -ENOTSUPP
    (6.1, 6.12, 7.2), so ``bpf_dispatcher_update()`` returns before any copy:
    the memory is held and never written (``bpf_dispatcher_unsupported``)."""

    def _dispatcher_new(self) -> tuple[int, int | None]:
        raise NotImplementedError

    def dispatcher_update(self, ev: Event) -> None:
        if ev.obj not in self.dispatchers:
            with self.k.poke_source("dispatcher"):
                self.dispatchers[ev.obj] = list(self._dispatcher_new())
        self.k.count("bpf_dispatcher_unsupported")


class Bpf61Arm64(TrampolineTable, Arm64Dispatcher):
    """BPF on arm64 before v6.9 (module doc).

    * Programs (arch/arm64/net/bpf_jit_comp.c ``bpf_int_jit_compile()``, 6.1):
      ``bpf_jit_binary_alloc(image_size, &image_ptr, sizeof(u32),
      jit_fill_hole)`` -- ``size = round_up(proglen + sizeof(*hdr) + 128,
      PAGE_SIZE)`` on ``bpf_jit_alloc_exec()``, filled with
      ``AARCH64_BREAK_FAULT`` while RW, the image at a random 4-byte-aligned
      offset below ``min(size - (proglen + hdr), PAGE_SIZE - hdr)``; JITed in
      place; ``bpf_flush_icache()`` = ``flush_icache_range()`` (one
      ``kick_all_cpus_sync()`` IPI); ``bpf_jit_binary_lock_ro()`` =
      ``set_vm_flush_reset_perms`` + ``set_memory_ro`` + ``set_memory_x``.
      Freed with ``bpf_jit_free_exec()`` = ``vfree()``.
    * Trampolines (kernel/bpf/trampoline.c 6.1 ``bpf_tramp_image_alloc()`` +
      arm64 ``arch_prepare_bpf_trampoline()``): ``bpf_jit_alloc_exec(
      PAGE_SIZE)``, ``set_vm_flush_reset_perms``, ``jit_fill_hole()`` + the
      code in place, ``bpf_flush_icache()``, then ``set_memory_ro`` +
      ``set_memory_x`` of the page.
    * Dispatcher: :class:`Arm64Dispatcher`; its pack comes from
      ``dispatcher_pack(size)`` (6.1 ``alloc_new_pack()`` uses
      ``module_alloc()``; a design may change it).

    ``alloc_exec(size)`` is the design's ``bpf_jit_alloc_exec``."""

    def __init__(self, kernel: Kernel, api, alloc_exec, free_exec, pack_ops: PackOps,
                 numa_nodes: int = 1):
        self.k = kernel
        self.api = api
        self.alloc_exec = alloc_exec
        self.free_exec = free_exec
        self.pack = BpfProgPack(pack_ops, kernel.count, kernel.lock, numa_nodes=numa_nodes)
        self.rng = kernel.rng_for("bpf_jit_hole_v517")
        self.progs: dict[str, tuple[int, int, int, int]] = {}
        self.tramps: dict[str, tuple[int, int]] = {}
        self.dispatchers: dict[str, list] = {}

    def prog_load(self, ev: Event) -> None:
        a, k = self.api, self.k
        size = round_up(ev.size + BPF_BINARY_HEADER + BPF_JIT_SLACK, PAGE_SIZE)
        hdr = self.alloc_exec(size)
        k.memcpy(hdr, size)                               # jit_fill_hole()
        hole = min(size - (ev.size + BPF_BINARY_HEADER), PAGE_SIZE - BPF_BINARY_HEADER)
        start = int(self.rng.integers(hole)) & ~(BPF_ARM64_ALIGN - 1)
        image = hdr + BPF_BINARY_HEADER + start
        k.memcpy(image, ev.size)                          # the JIT writes in place
        a.text_poke_sync()                                # bpf_flush_icache()
        a.set_vm_flush_reset_perms(hdr)                   # bpf_jit_binary_lock_ro()
        a.set_memory_ro(hdr, pages(size))
        a.set_memory_x(hdr, pages(size))
        k.text_claim(image, ev.size)
        self.progs[ev.obj] = (hdr, size, image, ev.size)

    def prog_unload(self, ev: Event) -> None:
        hdr, size, image, proglen = self.progs.pop(ev.obj)
        self.k.text_release(image, proglen)
        self.free_exec(hdr)

    def _tramp_image(self, size: int) -> int:
        a, k = self.api, self.k
        image = self.alloc_exec(PAGE_SIZE)
        a.set_vm_flush_reset_perms(image)
        k.memcpy(image, PAGE_SIZE)                        # jit_fill_hole() + the code, in place
        a.text_poke_sync()                                # bpf_flush_icache()
        a.set_memory_ro(image, 1)
        a.set_memory_x(image, 1)
        k.text_claim(image, size)
        return image

    def _tramp_free(self, image: int, size: int) -> None:
        self.k.text_release(image, size)
        self.free_exec(image)

    def _dispatcher_new(self) -> tuple[int, int]:
        image = self.pack.alloc(PAGE_SIZE)
        try:
            rw = self.alloc_exec(PAGE_SIZE)
        except OutOfMemory:
            self.pack.free(image, PAGE_SIZE)
            raise
        return image, rw


def pack_ops_61_arm64(api, k: Kernel, module_alloc, module_memfree) -> PackOps:
    """v6.1 ``alloc_new_pack()`` on arm64: ``module_alloc(BPF_PROG_PACK_SIZE)``,
    ``bpf_fill_ill_insns()`` (arm64 ``jit_fill_hole()``: plain stores while
    RW), ``set_vm_flush_reset_perms``, ``set_memory_ro`` + ``set_memory_x``;
    ``bpf_prog_pack_free()`` invalidates with ``bpf_arch_text_invalidate()``,
    which arm64 6.1 leaves as the ``__weak`` -ENOTSUPP stub (no write)."""
    def protect(addr: int, npages: int) -> None:
        api.set_memory_ro(addr, npages)
        api.set_memory_x(addr, npages)

    return PackOps(alloc_exec=module_alloc, free_exec=module_memfree, fill=k.memcpy,
                   set_reset_perms=api.set_vm_flush_reset_perms, protect=protect,
                   text_copy=lambda addr, n: None, invalidate=lambda addr, n: None)


class PackedBpfArm64(PackedPrograms, TrampolineTable, Arm64Dispatcher):
    """BPF on arm64 from v6.9 (arch/arm64/net/bpf_jit_comp.c and
    kernel/bpf/core.c, read in 6.12):

    * ``alloc_new_pack()``: ``bpf_jit_alloc_exec(BPF_PROG_PACK_SIZE)`` (v6.10:
      ``execmem_alloc(EXECMEM_BPF)``, the vmalloc area, 4 KiB PTEs),
      ``jit_fill_hole()`` while RW, ``set_vm_flush_reset_perms``,
      ``set_memory_rox()`` = ``set_memory_ro`` + ``set_memory_x``.
    * Programs: ``bpf_jit_binary_pack_alloc(image_size, .., sizeof(u64),
      ..)``, JIT into a ``kvmalloc`` copy, ``bpf_jit_binary_pack_finalize()``
      = ``bpf_arch_text_copy()`` = ``aarch64_insn_copy()`` (page chunks
      through the fixmap + one IPI), then ``bpf_flush_icache()`` (one more
      IPI); freed chunks are filled with ``aarch64_insn_set(BRK)``
      (``bpf_arch_text_invalidate()``).
    * Trampolines (96b0f5addc7a, v6.9): ``arch_alloc_bpf_trampoline()`` =
      ``bpf_prog_pack_alloc(size, jit_fill_hole)``; built in a ``kvmalloc``
      buffer, ``bpf_arch_text_copy()``, ``bpf_flush_icache()``;
      ``arch_protect_bpf_trampoline()`` is a no-op; freed with
      ``bpf_prog_pack_free()``.
    * Dispatcher: :class:`Arm64Dispatcher`.

    Simplified: the image's random start inside its chunks is drawn as on
    x86 (the 8-byte alignment arm64 asks for only moves it within a chunk)."""

    def __init__(self, kernel: Kernel, api, alloc_exec, free_exec, numa_nodes: int = 1):
        self.k = kernel
        self.api = api
        self.alloc_exec = alloc_exec
        ops = PackOps(
            alloc_exec=lambda size: alloc_exec(size),
            free_exec=free_exec,
            fill=kernel.memcpy,
            set_reset_perms=api.set_vm_flush_reset_perms,
            protect=api.set_memory_rox,
            text_copy=self._copy,
            invalidate=api.text_poke_set,
        )
        self.pack = BpfProgPack(ops, kernel.count, kernel.lock, numa_nodes=numa_nodes)
        self.jit = JitBinaryPack(self.pack, kernel.rng_for("bpf_jit_hole"), kernel.memcpy_elsewhere)
        self.progs: dict[str, tuple[int, int, int, int]] = {}
        self.tramps: dict[str, tuple[int, int]] = {}
        self.dispatchers: dict[str, list] = {}

    def _copy(self, addr: int, n: int) -> None:
        self.api.text_poke_copy(addr, n)          # bpf_arch_text_copy() = aarch64_insn_copy()
        self.api.text_poke_sync()                 # bpf_flush_icache()

    def _tramp_image(self, size: int) -> int:
        image = self.pack.alloc(size)
        self.k.memcpy_elsewhere(size)             # built in the kvmalloc'ed buffer
        self._copy(image, size)
        self.k.text_claim(image, size)
        return image

    def _tramp_free(self, image: int, size: int) -> None:
        self.k.text_release(image, size)
        self.pack.free(image, size)

    def _dispatcher_new(self) -> tuple[int, int]:
        image = self.pack.alloc(PAGE_SIZE)
        try:
            rw = self.alloc_exec(PAGE_SIZE)
        except OutOfMemory:
            self.pack.free(image, PAGE_SIZE)
            raise
        return image, rw


def refuse(design: str, what: str) -> DesignError:
    return DesignError(f"{design}: {what}")
