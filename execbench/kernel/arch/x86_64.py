"""x86-64: the architecture every design was first modelled on.

Nothing here is new: the x86 rules live where they always did and this
module only names them for the boundary (:mod:`execbench.kernel.arch`):

* layout -- :mod:`execbench.kernel.layout` (the 1008 MiB module range at
  ``MODULES_VADDR`` with ``get_module_load_offset()``'s KASLR pages);
* ``set_memory_*`` -- :mod:`execbench.kernel.cpa` (``change_page_attr``);
* TLB flushes -- :mod:`execbench.kernel.tlb` (IPIs, the 33-page ceiling);
* text patching -- :mod:`execbench.kernel.text_poke` and
  :mod:`execbench.kernel.text_poke_batch` (``text_poke`` through the
  temporary ``poking_mm``).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import cpa, text_poke, text_poke_batch, tlb
from ..costs import Costs
from ..layout import MODULES_END, MODULES_PAGES, MODULES_VADDR, module_load_offset
from . import Arch, Region

#: arch/x86/include/asm/pgtable_64_types.h: PMD_SIZE, PUD_SIZE with 4-level paging
LEAVES = (("4K", 4096), ("2M", 2 << 20), ("1G", 1 << 30))
#: the itlb key space (execbench/metrics/itlb.py): offsets from __START_KERNEL_map
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
VMLINUX_TEXT = 0xFFFF_FFFF_8100_0000


class X86Layout:
    """One window, ``[MODULES_VADDR, MODULES_END)``: page index = ``(addr -
    MODULES_VADDR) >> 12``, exactly the arithmetic the kernel model had
    before the boundary existed (so x86 results do not move)."""

    linear = True

    def __init__(self, k):
        self.offset = module_load_offset(k.rng_for("kaslr"), k.config.kaslr)
        self.lo_page = self.offset // 4096
        self.n_pages = MODULES_PAGES
        self.regions = (Region("modules", MODULES_VADDR, MODULES_PAGES, 0),)
        self.vstart = MODULES_VADDR + self.offset
        self.itlb_base = START_KERNEL_MAP
        self.vmlinux_text = VMLINUX_TEXT
        self.user_text = 1 << 46

    def default_range(self) -> tuple[int, int]:
        """``module_alloc()``'s ``[MODULES_VADDR + offset, MODULES_END)``."""
        return self.vstart, MODULES_END

    @staticmethod
    def page_of(addr: int) -> int:
        return (addr - MODULES_VADDR) >> 12

    @staticmethod
    def addr_of(page: int) -> int:
        return MODULES_VADDR + page * 4096

    @staticmethod
    def byte_off(addr: int) -> int:
        return addr - MODULES_VADDR

    @staticmethod
    def itlb_pages(off):
        """Page indices of itlb offsets from ``__START_KERNEL_map`` (numpy)."""
        return (off - (MODULES_VADDR - START_KERNEL_MAP)) >> 12

    @staticmethod
    def itlb_page_map():
        """:meth:`itlb_pages` as ``(lo, hi, index)`` arrays for compiled code: an
        offset in ``[lo[i], hi[i])`` is page ``index[i] + ((off - lo[i]) >> 12)``
        (one unbounded window here, as :meth:`itlb_pages` computes it)."""
        return (np.array([MODULES_VADDR - START_KERNEL_MAP], dtype=np.int64),
                np.array([np.iinfo(np.int64).max], dtype=np.int64), np.zeros(1, dtype=np.int64))


#: text_poke_batch's repeat forms, under the names the boundary uses
PATCH = SimpleNamespace(
    text_poke=text_poke.text_poke, text_poke_copy=text_poke.text_poke_copy,
    text_poke_set=text_poke.text_poke_set, text_poke_sync=text_poke.text_poke_sync,
    text_poke_bp=text_poke.text_poke_bp, text_poke_repeat=text_poke_batch.text_poke_repeat,
    text_poke_sync_repeat=text_poke_batch.text_poke_sync_repeat)

X86_64 = Arch(
    name="x86_64",
    title="x86-64, 4-level paging, Debian's configuration (KASLR)",
    page_size=4096,
    leaves=LEAVES,
    layout=X86Layout,
    cpa=cpa,
    tlb=tlb,
    patch=PATCH,
    patch_lock="text_mutex",
    costs=Costs,
    kprobe_slot=15,                    # arch/x86/include/asm/insn.h MAX_INSN_SIZE, u8 opcodes
    has_ftrace_trampolines=True,       # arch/x86/kernel/ftrace.c create_trampoline()
    has_optprobes=True,                # arch/x86/Kconfig select HAVE_OPTPROBES
    execmem_rox_from=(6, 13),          # arch/x86/Kconfig select ARCH_HAS_EXECMEM_ROX (v6.13)
    text_copy_from=(5, 18),            # text_poke_copy(): added for bpf_prog_pack (v5.18)
    bpf_prog_pack_from=(5, 18),
    itlb_cpu="skylake-sp",
    options=(),
)
