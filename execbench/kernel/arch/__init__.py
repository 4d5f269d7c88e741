"""The architecture boundary: one :class:`Arch` object per simulated architecture.

Modelled on drgn's per-architecture hooks (``struct drgn_architecture_info``):
the simulated kernel (:class:`execbench.kernel.Kernel`) asks its ``Arch`` for
everything that differs between architectures, and designs call the same
kernel API on both -- ``k.vmalloc``, ``k.set_memory_*``, ``k.text_poke*`` --
while the ``Arch`` decides what each costs and which rules apply:

* the **address-space layout** (:meth:`Arch.layout`): the virtual windows the
  machine models, their KASLR placement, where the kernel image lies, and the
  page-index mapping of the per-page state (one window on x86-64, a module
  window and a vmalloc window on arm64);
* page and leaf sizes (:attr:`Arch.leaves`);
* the ``set_memory_*`` rules (:attr:`Arch.cpa`: x86 ``change_page_attr`` vs
  arm64 ``change_memory_common``), the TLB-flush rules (:attr:`Arch.tlb`) and
  the text-patching strategy (:attr:`Arch.patch`: x86 ``text_poke`` through a
  temporary mm vs arm64 fixmap writes);
* capability facts designs branch on (:attr:`Arch.has_ftrace_trampolines`,
  :attr:`Arch.has_optprobes`, :meth:`Arch.has_execmem_rox` ...): a design that
  needs what the architecture lacks says so with a
  :class:`~execbench.errors.DesignError`.

x86-64's rules stay in the modules where they always were
(:mod:`execbench.kernel.cpa`, :mod:`.tlb`, :mod:`.text_poke`,
:mod:`.layout`); :mod:`.x86_64` only points at them, so x86 results are
unchanged by the boundary.  arm64's rules are in the ``arm64*`` modules of
this package, each citing the kernel source it follows (docs/arm64.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

from ...errors import UnknownName


@dataclass(frozen=True)
class Region:
    """One modelled window of kernel virtual address space.

    ``base`` is its first address (2 MiB aligned), ``npages`` its length in
    pages, ``index`` the page index of ``base`` in the machine's per-page
    arrays (a multiple of 512, so a 2 MiB block of the window is a block of
    the arrays)."""

    name: str
    base: int
    npages: int
    index: int

    @property
    def end(self) -> int:
        return self.base + self.npages * 4096


@dataclass(frozen=True)
class Arch:
    """What the simulated kernel needs to know about one architecture."""

    name: str
    title: str
    page_size: int
    #: leaf sizes of the kernel page tables, (name, bytes), smallest first
    leaves: tuple[tuple[str, int], ...]
    #: the layout class: ``layout(kernel) -> Layout`` (page_of/addr_of, vstart, windows)
    layout: Callable[[Any], Any]
    #: set_memory_* rules: a module with ``set_memory(k, kind, addr, npages, collapse)``
    #: and ``direct_map_touch(k, frames, whole_2m)``
    cpa: ModuleType
    #: TLB flush rules: ``flush_tlb_all``, ``flush_tlb_kernel_range``, ``split_flushes``,
    #: ``TLB_SINGLE_PAGE_FLUSH_CEILING``
    tlb: ModuleType
    #: text patching: ``text_poke``, ``text_poke_copy``, ``text_poke_set``,
    #: ``text_poke_sync``, ``text_poke_bp`` and the ``*_repeat`` batch forms
    patch: ModuleType
    #: the lock text writes hold (x86 text_mutex; arm64 the patch_lock raw spinlock)
    patch_lock: str
    #: the cost defaults (a :class:`~execbench.kernel.costs.Costs` class)
    costs: type
    #: arch-specific API entry names of the generic kernel API (x86: identity)
    api_names: dict[str, str] = field(default_factory=dict)
    #: counters only this architecture has (zero-initialised in Kernel.counters)
    counters: tuple[str, ...] = ()
    #: metric names only this architecture has (sampled after the common ones)
    metrics: tuple[str, ...] = ()
    #: bytes of one kprobe insn slot (MAX_INSN_SIZE * sizeof(kprobe_opcode_t))
    kprobe_slot: int = 15
    #: per-ops dynamic ftrace trampolines (arch_ftrace_update_trampoline)
    has_ftrace_trampolines: bool = True
    #: HAVE_OPTPROBES
    has_optprobes: bool = True
    #: first release with ARCH_HAS_EXECMEM_ROX (None: none up to the newest modelled)
    execmem_rox_from: tuple[int, int] | None = None
    #: first release with a bulk write into read-only text (x86 text_poke_copy,
    #: arm64 aarch64_insn_copy)
    text_copy_from: tuple[int, int] = (0, 0)
    #: first release whose BPF JIT puts programs on bpf_prog_pack
    bpf_prog_pack_from: tuple[int, int] = (5, 18)
    #: default CPU preset of the dynamic iTLB metric (execbench/itlb_cpus.py)
    itlb_cpu: str = "skylake-sp"
    #: machine options (KernelConfig fields) that mean something on this architecture
    options: tuple[str, ...] = ()

    def api(self, entry: str) -> str:
        """The name this architecture's kernel gives a generic API entry
        (``text_poke_copy`` is ``aarch64_insn_copy`` on arm64)."""
        return self.api_names.get(entry, entry)

    def has_text_copy(self, version: tuple[int, int]) -> bool:
        return tuple(version) >= self.text_copy_from

    def has_execmem_rox(self, version: tuple[int, int]) -> bool:
        return self.execmem_rox_from is not None and tuple(version) >= self.execmem_rox_from


ARCH_NAMES = ("x86_64", "arm64")


def get_arch(name: str) -> Arch:
    """The :class:`Arch` called ``name`` (UnknownName otherwise)."""
    if name == "x86_64":
        from .x86_64 import X86_64
        return X86_64
    if name == "arm64":
        from .arm64 import ARM64
        return ARM64
    raise UnknownName("architecture", name, list(ARCH_NAMES))


__all__ = ["ARCH_NAMES", "Arch", "Region", "get_arch"]
