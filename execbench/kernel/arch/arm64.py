"""arm64 (AArch64, 4 KiB granule): Debian's arm64 kernels as the machine.

The rules, with the source each follows (read in Debian's 6.1.176, 6.12.117
and 7.2.13 trees; docs/arm64.md has the per-version history):

* **Layout** (:class:`Arm64Layout`).  arch/arm64/include/asm/memory.h:
  ``MODULES_VADDR = _PAGE_END(VA_BITS_MIN)`` (0xffff800000000000 with
  ``VA_BITS_MIN`` 48), ``MODULES_VSIZE`` = 128 MiB before v6.5 and 2 GiB
  from it (3e35d303ab7d "arm64: module: rework module VA range selection"),
  ``KIMAGE_VADDR = MODULES_END``, and (asm/pgtable.h) ``VMALLOC_START =
  MODULES_END``.  With KASLR the image sits in the middle half of the
  vmalloc area (kernel/pi/kaslr_early.c ``kaslr_early_init()``: ``BIT(VA_BITS_MIN
  - 3) + (seed & GENMASK(VA_BITS_MIN - 3, 0))``, rounded down to 2 MiB by
  head.S); the model draws that offset once per boot.
* **Module windows**, before v6.5 -- arch/arm64/kernel/kaslr.c
  ``kaslr_init()`` and arch/arm64/kernel/module.c ``module_alloc()`` (6.1):
  ``module_alloc_base`` is ``_etext - 128 MiB`` without KASLR; with KASLR and
  ``RANDOMIZE_MODULE_REGION_FULL`` it is ``max(_end - 2 GiB,
  MODULES_VADDR)`` plus ``(module_range * (seed & (2^21 - 1))) >> 21`` with
  ``module_range = 2 GiB - (_end - _stext)``; with KASLR and the option off,
  ``_etext - 128 MiB`` plus the same scaling of ``128 MiB - (_etext -
  _stext)``; page aligned.  The direct window is ``[base, base + 128 MiB)``
  (end ``MODULES_END`` with generic or SW_TAGS KASAN), the fallback window
  ``[base, base + 2 GiB)`` (``ARM64_MODULE_PLTS``, selected by
  ``RANDOMIZE_BASE``: Debian has it).
* **Module windows** from v6.5 -- arch/arm64/mm/init.c
  ``module_init_limits()`` (6.12, 7.2; in module.c from v6.5 to v6.9):
  without KASLR ``module_direct_base = _end - 128 MiB``, ``module_plt_base
  = _end - 2 GiB``; with KASLR and ``RANDOMIZE_MODULE_REGION_FULL`` no direct
  window and ``module_plt_base = random_bounding_box(2 GiB, _text, _end)``;
  with KASLR and the option off ``module_direct_base =
  random_bounding_box(128 MiB, _text, _end)`` and the PLT window a random 2 GiB
  box around it.  ``random_bounding_box(size, start, end)`` is ``start -
  pgoff * PAGE_SIZE`` with ``pgoff`` uniform in ``[0, (size - (end -
  start)) / PAGE_SIZE]``.
* **The image** of each series, from Debian's packages: ``_end - _text`` is
  the ``image_size`` field of the arm64 Image header (arch/arm64/kernel/head.S
  ``_kernel_size_le``) of ``vmlinuz-6.1.0-50-arm64`` (33,619,968 B) and
  ``vmlinuz-6.12.117+deb13-arm64`` (38,797,312 B; the 6.12 boot prints
  "514816 pages in range for PLT usage" = (2 GiB - 38,797,312) / 4 KiB);
  ``_etext - _stext`` and ``_stext - _text`` (64 KiB) from ``/proc/kallsyms``
  of the same kernels booted under QEMU (13,565,952 B in 6.1, 16,121,856 B
  in 6.12, 19,595,264 B in 7.2.13 whose ``_end - _stext`` is 49,217,536 B).
  A modelled version uses the image of the newest series at or below it.
* The **vmalloc window**: the low end of ``[VMALLOC_START, VMALLOC_END)``,
  where ``vmalloc()``, ``bpf_jit_alloc_exec()`` (6.1: ``vmalloc()``), the
  6.1 kprobe pages and ``EXECMEM_KPROBES``/``EXECMEM_BPF`` (v6.10) allocate
  lowest-fit.  Simplified: 1 GiB of it is modelled, and the kernel's other
  vmalloc users (stacks, vmap'ed buffers) are not -- they would only move the
  addresses, which no metric reads.
* ``set_memory_*`` -- :mod:`.arm64_cpa`; TLB flushes -- :mod:`.arm64_tlb`;
  text patching -- :mod:`.arm64_patch`; PLTs -- :mod:`.arm64_plt`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ExecbenchError
from ..costs import Costs
from . import Arch, Region, arm64_cpa, arm64_patch, arm64_tlb

SZ_2M = 2 << 20
SZ_128M = 128 << 20
SZ_2G = 2 << 30
PAGE = 4096
VA_BITS_MIN = 48
MODULES_VADDR = (-(1 << (VA_BITS_MIN - 1))) & 0xFFFF_FFFF_FFFF_FFFF     # _PAGE_END(48)
#: the part of the vmalloc area the model keeps (see module doc)
VMALLOC_WINDOW = 1 << 30
#: busy pages between two windows in the per-page arrays, so that no free
#: extent or allocation can run from one window into the next
SPACER_PAGES = 512

#: arm64 leaves with 4 KiB pages (arch/arm64/include/asm/pgtable-hwdef.h,
#: CONT_PTE_SHIFT = 4 + PAGE_SHIFT, CONT_PMD_SHIFT = 4 + PMD_SHIFT)
LEAVES = (("4K", 4096), ("CONT_PTE", 64 << 10), ("2M", SZ_2M), ("CONT_PMD", 32 << 20), ("1G", 1 << 30))


@dataclass(frozen=True)
class Image:
    """Debian's arm64 kernel image of one series (module doc)."""

    series: tuple[int, int]
    stext_off: int          # _stext - _text
    text: int               # _etext - _stext
    size: int               # _end - _text


IMAGES = (
    Image((6, 1), 0x10000, 13_565_952, 33_619_968),
    Image((6, 12), 0x10000, 16_121_856, 38_797_312),
    Image((7, 2), 0x10000, 19_595_264, 49_283_072),
)


def image_for(version: tuple[int, int]) -> Image:
    """The image of the newest series at or below ``version`` (else the oldest)."""
    below = [im for im in IMAGES if im.series <= tuple(version)]
    return below[-1] if below else IMAGES[0]


@dataclass(frozen=True)
class Arm64Costs(Costs):
    """arm64 cost defaults: the x86 ones where the primitive is the same
    kind of work, and these where it is not (all **assumed, see
    sensitivity**; no published per-primitive arm64 numbers were found that
    fit this model):

    * ``flush_tlb_all`` -- ``TLBI VMALLE1IS`` + ``DSB ISH``: a broadcast
      instruction, no IPI (arch/arm64/include/asm/tlbflush.h), so cheaper
      than x86's IPI-based flush; 2 us.
    * ``tlbi_page`` -- one ``TLBI VAALE1IS`` of a ``flush_tlb_kernel_range()``
      loop (broadcast, no IPI); 100 ns per page.
    * ``text_poke`` -- one fixmap write (``patch_map()``, the copy,
      ``patch_unmap()``'s PTE clear; its one-page TLBI is ``tlbi_page``):
      1 us, no address-space switch.
    * ``text_poke_sync`` -- ``kick_all_cpus_sync()`` in
      ``flush_icache_range()``: an IPI to every CPU, the same order as x86's
      ``text_poke_sync()`` (5 us).
    """

    flush_tlb_all: float = 2000.0
    text_poke: float = 1000.0
    tlbi_page: float = 100.0


#: counters only arm64 has (docs/metrics.md, "arm64")
COUNTERS = (
    "tlbi_range_calls", "tlbi_pages", "tlb_shootdowns_fixmap", "fixmap_pokes", "icache_sync_ipis",
    "linear_alias_pages", "set_memory_einval", "module_fallback_allocs", "plt_candidates",
    "plt_entries", "plt_bytes_reserved", "plt_info_missing", "kasan_shadow_bytes",
    "kasan_reset_tag_calls", "arm64_backported_calls",
)
#: the arm64 metrics sampled after every event (execbench/metrics/catalog.py ARCH_METRICS)
METRICS = ("module_fallback_allocs", "plt_entries", "tlbi_pages", "fixmap_pokes",
           "icache_sync_ipis", "linear_alias_pages", "kasan_shadow_bytes")


def random_bounding_box(rng: np.random.Generator, size: int, start: int, end: int) -> int:
    """arch/arm64/mm/init.c ``random_bounding_box()``: 0 when ``[start,
    end)`` is at least ``size``, else a page-aligned ``size`` window
    containing it, uniformly placed (``get_random_u32_inclusive``)."""
    if end - start >= size:
        return 0
    max_pgoff = (size - (end - start)) // PAGE
    return start - int(rng.integers(0, max_pgoff + 1)) * PAGE


class Arm64Layout:
    """Windows of the arm64 kernel address space, merged into regions that
    share the machine's per-page arrays (see the module doc)."""

    linear = False

    def __init__(self, k):
        cfg, ver = k.config, tuple(k.version)
        self.image = im = image_for(ver)
        self.kaslr = cfg.kaslr
        self.modules_vsize = SZ_128M if ver < (6, 5) else SZ_2G
        self.kimage_vaddr = MODULES_VADDR + self.modules_vsize        # = MODULES_END
        self.vmalloc_start = self.kimage_vaddr
        rng = k.rng_for("kaslr")
        if cfg.kaslr:
            seed = int(rng.integers(0, 1 << (VA_BITS_MIN - 2)))
            offset = ((1 << (VA_BITS_MIN - 3)) + seed) & ~(SZ_2M - 1)
        else:
            offset = 0
        self.text = self.kimage_vaddr + offset                      # _text
        self.stext = self.text + im.stext_off
        self.etext = self.stext + im.text
        self.end = self.text + im.size
        self.windows = self._module_windows(rng, cfg, ver)          # [(name, start, end)]
        self._build_regions()
        w0 = self.windows[0]
        self.vstart = w0[1]
        self.lo_page = self.page_of(w0[1])
        self.offset = w0[1] - MODULES_VADDR
        self.itlb_base = self.regions[0].base
        self.vmlinux_text = self.stext
        self.user_text = 1 << 50            # beyond every kernel offset (< 2^48)

    # -- the module windows ------------------------------------------------------------
    def _module_windows(self, rng, cfg, ver) -> list[tuple[str, int, int]]:
        full = cfg.module_region_full
        if ver < (6, 5):
            # kaslr.c kaslr_init() + module.c module_alloc() (6.1)
            if not cfg.kaslr:
                base = self.etext - SZ_128M
            else:
                seed21 = int(rng.integers(0, 1 << 21))
                if full:
                    module_range = SZ_2G - (self.end - self.stext)
                    base = max(self.end - SZ_2G, MODULES_VADDR)
                else:
                    module_range = SZ_128M - (self.etext - self.stext)
                    base = self.etext - SZ_128M
                base += (module_range * seed21) >> 21
            base &= ~(PAGE - 1)
            direct_end = base + SZ_128M
            if cfg.kasan in ("generic", "sw_tags"):
                # "don't exceed the static module region": the first attempt
                # ends at MODULES_END, which lies below a KASLR'd base
                direct_end = MODULES_VADDR + self.modules_vsize
            out = [("direct", base, max(direct_end, base))]
            out.append(("fallback", base, base + SZ_2G))
            self.module_base = base
            return out
        # module_init_limits() (v6.5+; arch/arm64/mm/init.c in 6.12 and 7.2)
        kstart, kend = self.text, self.end
        size = kend - kstart
        direct = plt = 0
        if not cfg.kaslr:
            if size < SZ_128M:
                direct = kend - SZ_128M
            if size < SZ_2G:
                plt = kend - SZ_2G
        else:
            lo, hi = kstart, kend
            if not full:
                direct = random_bounding_box(rng, SZ_128M, kstart, kend)
                if direct:
                    lo, hi = direct, direct + SZ_128M
            plt = random_bounding_box(rng, SZ_2G, lo, hi)
        out = []
        if direct:
            out.append(("direct", direct, direct + SZ_128M))
        if plt:
            out.append(("fallback" if direct else "plt", plt, plt + SZ_2G))
        if not out:
            raise ExecbenchError("arm64: a kernel image of 2 GiB or more leaves no module window")
        self.module_base = out[0][1]
        return out

    @property
    def direct_window(self) -> tuple[int, int] | None:
        """``[start, end)`` of the window within direct-branch range of the
        kernel, or None (v6.5+ with RANDOMIZE_MODULE_REGION_FULL)."""
        for name, s, e in self.windows:
            if name == "direct":
                return s, e
        return None

    @property
    def plt_window(self) -> tuple[int, int] | None:
        """The 2 GiB window (fallback or only window), or None."""
        for name, s, e in self.windows:
            if name in ("fallback", "plt"):
                return s, e
        return None

    def default_range(self) -> tuple[int, int]:
        """Plain ``vmalloc()``: ``[VMALLOC_START, VMALLOC_END)`` (the modelled part)."""
        return self.vmalloc_start, self.vmalloc_start + VMALLOC_WINDOW

    def module_span(self) -> tuple[int, int]:
        return min(s for _, s, _ in self.windows), max(e for _, _, e in self.windows)

    # -- regions -----------------------------------------------------------------------
    def _build_regions(self) -> None:
        lo, hi = self.module_span()
        spans = [(min(lo, self.text), max(hi, self.end + PAGE)),
                 (self.vmalloc_start, self.vmalloc_start + VMALLOC_WINDOW)]
        spans = [((s // SZ_2M) * SZ_2M, -(-e // SZ_2M) * SZ_2M) for s, e in spans]
        spans.sort()
        merged: list[list[int]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        regions, index = [], 0
        names = iter(("low", "high"))
        for s, e in merged:
            n = (e - s) // PAGE
            regions.append(Region(next(names), s, n, index))
            index += n + SPACER_PAGES
        self.regions = tuple(regions)
        self.n_pages = index - SPACER_PAGES
        self._bases = [r.base for r in regions]
        self._ends = [r.end for r in regions]
        self._idx = [r.index for r in regions]

    def boot(self, k) -> None:
        """What the machine holds before the trace: the spacers between
        regions, and the kernel image -- registered as vmap areas by
        ``map_kernel_segment()`` -> ``vm_area_add_early()`` (arch/arm64/mm/mmu.c),
        so lowest-fit allocation skips ``[_text, _end)`` plus the guard page
        of its last segment."""
        for r in self.regions[1:]:
            k.vmap.insert(r.index - SPACER_PAGES, SPACER_PAGES)
        p0 = self.page_of(self.text)
        k.vmap.insert(p0, (self.end - self.text) // PAGE + 1)
        if k.config.linear_map == "ptes":
            k.phys.map_all_ptes()

    def page_of(self, addr: int) -> int:
        for b, e, i in zip(self._bases, self._ends, self._idx):
            if b <= addr < e:
                return i + ((addr - b) >> 12)
        return self.n_pages + (1 << 40)      # outside every window: fails every range check

    def hi_page(self, end: int) -> int:
        """The page index just past the page holding ``end - 1``."""
        return self.page_of(end - 1) + 1

    def addr_of(self, page: int) -> int:
        for r in self.regions:
            if r.index <= page < r.index + r.npages:
                return r.base + (page - r.index) * PAGE
        raise ExecbenchError(f"page index {page} is in no modelled window")

    def byte_off(self, addr: int) -> int:
        return (self.page_of(addr) << 12) | (addr & (PAGE - 1))

    def itlb_pages(self, off):
        """Page indices of itlb offsets from :attr:`itlb_base` (numpy)."""
        out = np.zeros(off.shape, dtype=np.int64)
        for r in self.regions:
            lo = r.base - self.itlb_base
            m = (off >= lo) & (off < lo + r.npages * PAGE)
            out[m] = r.index + ((off[m] - lo) >> 12)
        return out

    def itlb_page_map(self):
        """:meth:`itlb_pages` as ``(lo, hi, index)`` arrays for compiled code
        (the last window holding an offset wins; none: page 0, as above)."""
        lo = np.array([r.base - self.itlb_base for r in self.regions], dtype=np.int64)
        hi = lo + np.array([r.npages * PAGE for r in self.regions], dtype=np.int64)
        return lo, hi, np.array([r.index for r in self.regions], dtype=np.int64)


ARM64 = Arch(
    name="arm64",
    title="arm64, 4 KiB pages, Debian's configuration (KASLR, RANDOMIZE_MODULE_REGION_FULL, rodata=full)",
    page_size=PAGE,
    leaves=LEAVES,
    layout=Arm64Layout,
    cpa=arm64_cpa,
    tlb=arm64_tlb,
    patch=arm64_patch,
    patch_lock="patch_lock",
    costs=Arm64Costs,
    api_names={"text_poke": "aarch64_insn_patch_text_nosync",
               "text_poke_bp": "aarch64_insn_patch_text_nosync",
               "text_poke_copy": "aarch64_insn_copy", "text_poke_set": "aarch64_insn_set",
               "text_poke_sync": "flush_icache_range"},
    counters=COUNTERS,
    metrics=METRICS,
    kprobe_slot=8,                    # arch/arm64/include/asm/kprobes.h MAX_INSN_SIZE 2 x u32
    has_ftrace_trampolines=False,     # arch/arm64/kernel/ftrace.c: no arch_ftrace_update_trampoline()
    has_optprobes=False,              # arch/arm64/Kconfig does not select HAVE_OPTPROBES
    execmem_rox_from=None,            # ARCH_HAS_EXECMEM_ROX: arch/x86/Kconfig only, through 7.2
    text_copy_from=(6, 9),            # 451c3cab9a65 "arm64: patching: implement text_poke API"
    bpf_prog_pack_from=(6, 9),        # 1dad391daef1 "bpf, arm64: use bpf_prog_pack for memory management"
    itlb_cpu="neoverse-n1",
    options=("module_region_full", "kasan", "linear_map", "tlbi_range"),
)
