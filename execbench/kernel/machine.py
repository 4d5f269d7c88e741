"""The simulated kernel every design runs on (x86-64, or arm64 with ``arch="arm64"``).

:class:`Kernel` ties together the module range (:mod:`.layout`), vmap
placement (:mod:`.vmap`), page tables (:mod:`.pagetable`), frames and the
direct map (:mod:`.physmem`) and exposes the primitives the real kernel
offers to executable-memory users -- ``vmalloc``/``vfree`` with
``VM_FLUSH_RESET_PERMS``, ``set_memory_*`` (:mod:`.cpa`), ``text_poke*``
(:mod:`.text_poke`) -- each advancing a virtual clock by its
:class:`~.costs.Costs` and bumping :attr:`Kernel.counters`.

Designs call these primitives; metrics read the state and counters; nothing
here knows which design is running.  What differs between architectures --
the windows of address space, ``set_memory_*``, TLB flushes, text patching --
comes from the :class:`~.arch.Arch` of ``KernelConfig.arch``
(:mod:`execbench.kernel.arch`); on x86-64 those are the modules imported
below, unchanged.
"""
from __future__ import annotations

import bisect
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..errors import ExecbenchError, KernelBug, OutOfMemory
from ..units import GiB, PAGE_SIZE, PAGES_PER_PMD, PMD_SIZE, pages
from . import cpa, text_poke, text_poke_batch, tlb
from .arch import get_arch
from .costs import Costs
from .layout import MODULES_VADDR
from .locks import LockModel
from .pagetable import WX_CAUSES, PageTable
from .physmem import PhysMem
from .vmap import VmapSpace

#: ``lazy_max_pages()`` (mm/vmalloc.c, v6.1 through 7.2) =
#: ``fls(num_online_cpus()) * (32 MiB / PAGE_SIZE)``: lazily freed pages the
#: kernel lets wait before the drain work purges them.  The model takes one
#: online CPU (fls(1) = 1, 8192 pages), the smallest value and so the most
#: drains; the count is ``tlb_shootdowns_lazy`` either way, and every
#: ``set_memory_*`` call purges long before this on the shipped workloads.
LAZY_MAX_PAGES = 1 * (32 * 1024 * 1024 // PAGE_SIZE)

COUNTERS = (
    "vmalloc_calls", "vmalloc_bytes", "vmalloc_huge", "vfree_calls", "vfree_reset_perms",
    "cpa_calls", "cpa_calls_effective", "cpa_pages", "cpa_pages_req",
    *(f"cpa_calls_{k}" for k in cpa.KINDS), *(f"cpa_pages_{k}" for k in cpa.KINDS),
    "vmalloc_pmd_splits", "vmalloc_pmd_collapses",
    "tlb_shootdowns", *(f"tlb_shootdowns_{c}" for c in tlb.CAUSES),
    "tlb_flush_all", "tlb_flush_range", "tlb_flush_ipis", "vmap_lazy_purges",
    "sync_core_ipis", "free_null_calls",
    "direct_map_level2_splits", "direct_map_level3_splits",
    "text_pokes", "text_poke_bytes", "text_poke_syncs", "text_poke_bp",
    "memcpy_bytes", "api_calls",
    *(f"text_pokes_{s}" for s in text_poke.SOURCES),
    "faults_as_posted",
)


@dataclass(frozen=True)
class KernelConfig:
    """The machine and kernel version a replay runs on.

    ``version`` selects version-dependent CPA rules (see :mod:`.cpa`); each
    design states the version it models.  ``numa_nodes`` is
    ``num_possible_nodes()``: ``BPF_PROG_PACK_SIZE`` is ``SZ_2M *
    num_possible_nodes()`` (kernel/bpf/core.c, v6.1 through 7.2); default 1,
    a single-socket machine like the QEMU recordings'.
    """

    seed: int = 0
    version: tuple[int, int] = (6, 1)
    mem_bytes: int = 16 * GiB
    # where the e820 RAM ends (bytes; 0 = mem_bytes): decides which GiBs of the
    # direct map are 1 GiB leaves (kernel/physmem.py, arch/x86/mm/init.c)
    ram_end: int = 0
    # 7.2 vmalloc: vm_area_alloc_pages() takes large-order blocks first, vfree()
    # frees contiguous runs as blocks (PhysMem.alloc/free_vmalloc_pages); off =
    # the v6.1 placement every design shares
    vmalloc_large_order: bool = False
    numa_nodes: int = 1
    placement: str = "fresh-boot"     # physmem.PRESETS (or an old alias)
    cpus: int = 2                     # CPUs with a per-CPU page list (the replay uses the trace's)
    side_allocs: bool = True          # replay the non-executable side allocations (kernel/sidealloc.py)
    kaslr: bool = True
    costs: Costs = field(default_factory=Costs)
    # dynamic iTLB metric (execbench/metrics/itlb.py): CPU preset from
    # execbench/itlb_cpus.py or "off"; fetch-stream parameters as (name, value)
    itlb_cpu: str = "skylake-sp"
    itlb_params: tuple = ()
    # the architecture (execbench/kernel/arch/): "x86_64" or "arm64"; the
    # fields after it are arm64 machine options (docs/arm64.md), refused on x86-64
    arch: str = "x86_64"
    # CONFIG_RANDOMIZE_MODULE_REGION_FULL (arch/arm64/Kconfig: default y; Debian: y)
    module_region_full: bool = True
    # CONFIG_KASAN mode: off | generic | sw_tags | hw_tags (arm64 selects KASAN_VMALLOC)
    kasan: str = "off"
    # the linear map: "ptes" (rodata=full, page-granular from boot) or "bbml2"
    # (block mappings split on demand, v6.18+ on a BBML2_NOABORT CPU)
    linear_map: str = "ptes"
    # FEAT_TLBIRANGE on the CPU (range TLBIs; changes the v6.13+ flush rule)
    tlbi_range: bool = False


def _check_arch_options(cfg: KernelConfig, arch) -> None:
    """The arm64 machine options mean nothing on x86-64: refuse them there
    rather than ignore them, and check their values."""
    if cfg.kasan not in ("off", "generic", "sw_tags", "hw_tags"):
        raise ExecbenchError(f"kasan={cfg.kasan!r}: one of off, generic, sw_tags, hw_tags")
    if cfg.linear_map not in ("ptes", "bbml2"):
        raise ExecbenchError(f"linear_map={cfg.linear_map!r}: one of ptes, bbml2")
    if cfg.linear_map == "bbml2" and tuple(cfg.version) < (6, 18):
        # a166563e7ec3 "arm64: mm: support large block mapping when rodata=full" (v6.18)
        raise ExecbenchError(f"linear_map=bbml2: block mappings with rodata=full exist from v6.18; "
                             f"this kernel is {cfg.version[0]}.{cfg.version[1]}")
    if "kasan" not in arch.options:
        changed = [f"{n}={getattr(cfg, n)!r}" for n, d in (("module_region_full", True), ("kasan", "off"),
                                                           ("linear_map", "ptes"), ("tlbi_range", False))
                   if getattr(cfg, n) != d]
        if changed:
            raise ExecbenchError(f"{', '.join(changed)}: an arm64 machine option; this machine is "
                                 f"{arch.name} (--arch arm64)")


@dataclass
class Area:
    """One vmap area (``struct vm_struct``) in page units."""

    start: int            # first page (index into the machine's per-page arrays)
    npages: int           # mapped pages (size / PAGE_SIZE)
    guard: int            # guard pages after it (1, or 0 for VM_NO_GUARD)
    huge: bool
    reset_perms: bool     # VM_FLUSH_RESET_PERMS
    caller: str


class Kernel:
    """State and primitives of the simulated kernel."""

    def __init__(self, config: KernelConfig | None = None):
        self.config = config or KernelConfig()
        self.version = self.config.version
        seed = self.config.seed
        self.arch = arch = get_arch(self.config.arch)
        costs = self.config.costs
        if type(costs) is not arch.costs:
            # the architecture's defaults, with whatever the caller changed
            base = type(costs)()
            costs = arch.costs(**{n: v for n, v in costs.as_dict().items()
                                  if v != getattr(base, n) and hasattr(arch.costs, n)})
        self.costs = costs
        _check_arch_options(self.config, arch)
        self.layout = layout = arch.layout(self)
        self.offset = layout.offset
        self.lo_page = layout.lo_page
        if not layout.linear:
            # several windows (arm64): page index by window lookup
            self.page_of = layout.page_of
            self.addr_of = layout.addr_of
        self._hi_page = layout.hi_page if not layout.linear else self.page_of
        self._cpa, self._tlb, self._patch = arch.cpa, arch.tlb, arch.patch
        self._patch_lock = arch.patch_lock
        self._api_names = arch.api_names
        if self.config.numa_nodes < 1:
            raise ExecbenchError(f"numa_nodes={self.config.numa_nodes}: a machine has at least one node")
        self.phys = PhysMem(self.rng_for("phys"), self.config.mem_bytes, self.config.placement,
                            cpus=self.config.cpus, ram_end=self.config.ram_end,
                            vmalloc_large_order=self.config.vmalloc_large_order)
        self.vmap = VmapSpace(layout.n_pages)
        self.pt = PageTable(layout.n_pages)
        self.areas: dict[int, Area] = {}
        self._starts: list[int] = []
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS + arch.counters, 0)
        # lazily freed vmap areas not yet purged (vmap_lazy_nr and the span
        # of the purge list, in pages of the range; see vm_unmap_aliases)
        self.lazy_nr = 0
        self.lazy_lo = self.lazy_hi = 0
        self.entry_points: set[tuple[str, str]] = set()
        self.now = 0.0
        self.idle_ns = 0.0
        self.wx_page_ns = 0.0
        self.wx_page_ns_by_cause = [0.0] * len(WX_CAUSES)   # sums to wx_page_ns
        self.wx_page_ns_text_poke = 0.0   # the part accrued while __text_poke() ran
        self.wx_pages_peak_instant = 0
        self.poke_src = ""                # text_poke source of the current block (poke_source)
        self.cpu = 0
        self.user = ""
        self.obj = ""                     # the current event's object (set by the replay)
        # live text regions by start address -> (bytes, user, obj): the
        # kernel's own per-object text index (mod->mem[], the bpf_ksym tree,
        # the kprobe insn pages) that the dynamic iTLB metric samples from
        self.text_regions: dict[int, tuple[int, str, str]] = {}
        self._seed = seed
        self.locks = LockModel(self)      # shadow per-CPU timeline (see locks.py)
        # per-module data only an architecture needs (arm64: PLT candidates by
        # module name, from the architecture's module table; set by the replay)
        self.module_arch_info: dict = {}
        # kernel functions a design uses on a release older than the one that
        # added them, as a labelled extrapolation (arm64: "aarch64_insn_copy")
        self.backports: set[str] = set()
        # KASAN_VMALLOC shadow bytes per vmalloc'ed page (arm64 selects
        # KASAN_VMALLOC with KASAN: mm/kasan/shadow.c kasan_populate_vmalloc())
        self._kasan_shadow = {"off": 0, "generic": PAGE_SIZE // 8, "sw_tags": PAGE_SIZE // 16,
                              "hw_tags": 0}[self.config.kasan]
        if not layout.linear:
            layout.boot(self)             # what the kernel holds before the trace (arm64: the image)

    # -- identity helpers --------------------------------------------------------
    def rng_for(self, purpose: str) -> np.random.Generator:
        """An independent, reproducible random stream per purpose."""
        return np.random.default_rng([self.config.seed, zlib.crc32(purpose.encode())])

    @staticmethod
    def page_of(addr: int) -> int:
        return (addr - MODULES_VADDR) >> 12

    @staticmethod
    def addr_of(page: int) -> int:
        return MODULES_VADDR + page * PAGE_SIZE

    @property
    def vstart(self) -> int:
        """x86-64: ``MODULES_VADDR + get_module_load_offset()``; arm64: the
        start of the module window (:mod:`.arch.arm64`)."""
        return self.layout.vstart

    # -- clock ---------------------------------------------------------------------
    def tick(self, ns: float) -> None:
        """Advance the virtual clock, integrating W^X exposure over the step
        (in total and per cause, :data:`.pagetable.WX_CAUSES`)."""
        wx = self.pt.wx_pages
        if wx:
            self.wx_page_ns += wx * ns
            by = self.wx_page_ns_by_cause
            for i, n in enumerate(self.pt.wx_by_cause):
                if n:
                    by[i] += n * ns
        self.now += ns

    def tick_text_poke(self, ns: float) -> None:
        """:meth:`tick` for time spent in ``__text_poke()``: the W^X exposure
        accrued in it is also summed apart (``text_poke_wx_page_ns``), so a
        report can say how much of the exposure scales with the assumed
        text_poke cost."""
        wx = self.pt.wx_pages
        if wx:
            self.wx_page_ns_text_poke += wx * ns
        self.tick(ns)

    def advance_to(self, t_ns: float) -> None:
        """Idle until the next event's timestamp (time the trace spent
        between events counts for W^X exposure, not for CPU cost).

        Also marks the event boundary for :class:`.locks.LockModel` (the
        previous event ends on its CPU; the next begins at ``t_ns``)."""
        self.locks.end_event()
        if t_ns > self.now:
            self.idle_ns += t_ns - self.now
            self.tick(t_ns - self.now)
        self.locks.begin_event(t_ns)

    def note_wx(self) -> None:
        """Record the W+X page count at an instant inside an event (for
        ``wx_pages_peak_instant``; the per-event gauge ``wx_pages`` only sees
        the state after each event)."""
        if self.pt.wx_pages > self.wx_pages_peak_instant:
            self.wx_pages_peak_instant = self.pt.wx_pages

    # -- attribution of text pokes and W+X pages ----------------------------------------
    @contextmanager
    def poke_source(self, source: str):
        """``with k.poke_source("reloc"): ...`` -- every ``__text_poke()`` in
        the block is counted as ``text_pokes_<source>`` (one of
        :data:`.text_poke.SOURCES`); outside any block a poke is counted for
        the current user's default source (:data:`.text_poke.USER_SOURCE`)."""
        if source not in text_poke.SOURCES:
            raise KernelBug(f"unknown text_poke source {source!r}")
        prev, self.poke_src = self.poke_src, source
        try:
            yield
        finally:
            self.poke_src = prev

    def poke_counter(self) -> str:
        """The ``text_pokes_<source>`` counter a poke made now is charged to."""
        return "text_pokes_" + (self.poke_src or text_poke.USER_SOURCE.get(self.user, "other"))

    @contextmanager
    def wx_cause(self, cause: str):
        """``with k.wx_cause("data_until_nx"): k.vmalloc(.., w=True, x=True)`` --
        pages mapped W+X in the block are charged to ``wx_page_ns_<cause>``
        (:data:`.pagetable.WX_CAUSES`; default ``alloc_window``)."""
        if cause not in WX_CAUSES:
            raise KernelBug(f"unknown W+X cause {cause!r}")
        prev, self.pt.map_cause = self.pt.map_cause, WX_CAUSES.index(cause)
        try:
            yield
        finally:
            self.pt.map_cause = prev

    # -- interface accounting ---------------------------------------------------------
    def api(self, entry: str) -> None:
        """Record one call into a design's exported API by the current user
        (under the architecture's name for it: ``text_poke_copy`` is
        ``aarch64_insn_copy`` on arm64)."""
        if self._api_names:
            entry = self._api_names.get(entry, entry)
        self.counters["api_calls"] += 1
        self.entry_points.add((self.user, entry))

    def lock(self, name: str):
        """``with k.lock("jit_alloc_lock"): ...`` -- hold a named kernel mutex
        (lock waiting across CPUs, :mod:`.locks`)."""
        return self.locks.hold(name)

    def page_update(self, addr: int, nbytes: int):
        """``with k.page_update(addr, n): ...`` -- the block is one update of
        ``[addr, +n)`` for page-write race counting (:mod:`.locks`)."""
        return self.locks.page_update(addr, nbytes)

    def count(self, name: str, n: int = 1) -> None:
        """Bump a design-level counter (e.g. ``bpf_prog_pack_new``)."""
        self.counters[name] = self.counters.get(name, 0) + n

    def free_null(self, entry: str) -> None:
        """A free function called with NULL (``do_free_init()`` for an
        absent init area, ``free_module()`` for the already freed one):
        ``vfree(NULL)`` "performs no operation" (mm/vmalloc.c), so no work,
        but a call the kernel makes -- counted in ``free_null_calls`` and
        ``<entry>_null``, as ``set_vm_flush_reset_perms(NULL)`` is counted
        as a call."""
        self.counters["free_null_calls"] += 1
        self.count(f"{entry}_null")

    # -- vmalloc --------------------------------------------------------------------
    def vmalloc(self, size: int, *, align: int = PAGE_SIZE, start: int | None = None,
                end: int | None = None, w: bool = True, x: bool = False,
                huge: bool = False, reset_perms: bool = False, guard: bool = True,
                caller: str = "") -> int:
        """``__vmalloc_node_range()`` (mm/vmalloc.c, v6.1).

        ``w``/``x`` give the pgprot (PAGE_KERNEL = w, PAGE_KERNEL_EXEC = w+x,
        PAGE_KERNEL_ROX = x).  ``huge`` is ``VM_ALLOW_HUGE_VMAP``: an area of at
        least PMD_SIZE is then rounded up to whole PMDs, PMD-aligned and mapped
        with 2 MiB leaves; smaller ones (and failures) use 4 KiB pages, exactly
        as ``__vmalloc_node_range`` falls back.  ``guard=False`` is
        ``VM_NO_GUARD``.
        """
        if size <= 0:
            raise KernelBug(f"vmalloc({size})")
        if start is None or end is None:
            d_start, d_end = self.layout.default_range()
            start = d_start if start is None else start
            end = d_end if end is None else end
        lo = self.page_of(start)
        hi = self._hi_page(end)
        use_huge = huge and size >= PMD_SIZE
        p, npages, need, frames = -1, pages(size), 0, None
        if use_huge:
            npages = -(-size // PMD_SIZE) * PAGES_PER_PMD
            need = npages + (1 if guard else 0)
            p = self.vmap.find(need, max(1, max(align, PMD_SIZE) // PAGE_SIZE), lo, hi)
            if p >= 0:
                frames = self._huge_frames(npages // PAGES_PER_PMD)
        if frames is None:
            # "fall back to small pages" (the fail: label of
            # __vmalloc_node_range(), mm/vmalloc.c v6.1): no huge area or no
            # order-9 blocks -> shift = PAGE_SHIFT, the caller's own size and
            # align, and try again
            use_huge, npages = False, pages(size)
            need = npages + (1 if guard else 0)
            p = self.vmap.find(need, max(1, align // PAGE_SIZE), lo, hi)
            if p < 0:
                raise OutOfMemory(f"vmalloc of {size} bytes does not fit the module range "
                                  f"({len(self.vmap)} areas live)")
            frames = self.phys.alloc_vmalloc_pages(npages, self.cpu)
        self.vmap.insert(p, need)
        # a huge area is rounded up to whole PMDs: the pages beyond ``size``
        # are mapped with the same pgprot but no set_memory_*(addr, size)
        # covers them (W+X cause huge_tail when that pgprot is W+X)
        self.pt.map(p, frames, w, x, use_huge, tail=npages - pages(size) if use_huge else 0)
        area = Area(p, npages, need - npages, use_huge, reset_perms, caller)
        self.areas[p] = area
        bisect.insort(self._starts, p)
        c = self.counters
        c["vmalloc_calls"] += 1
        c["vmalloc_bytes"] += npages * PAGE_SIZE
        c["vmalloc_huge"] += int(use_huge)
        if self._kasan_shadow:
            c["kasan_shadow_bytes"] += self._kasan_shadow * npages
        self.note_wx()
        self.tick(self.costs.vmalloc_call + self.costs.vmalloc_page * npages)
        return self.addr_of(p)

    def _huge_frames(self, nblocks: int) -> np.ndarray | None:
        """Frames for a PMD-mapped area, or None when the order-9 blocks run
        out -- vm_area_alloc_pages() stops short and __vmalloc_area_node()
        frees what it got (mm/vmalloc.c v6.1), so the blocks go back."""
        got: list[np.ndarray] = []
        try:
            for _ in range(nblocks):
                got.append(self.phys.alloc_huge_block())
        except OutOfMemory:
            for b in reversed(got):
                self.phys.free_frames(b, huge=True)
            return None
        return np.concatenate(got)

    def find_area(self, addr: int) -> Area:
        """``find_vm_area()``: the area containing ``addr``."""
        p = self.page_of(addr)
        i = bisect.bisect_right(self._starts, p) - 1
        if i >= 0:
            a = self.areas[self._starts[i]]
            if p < a.start + a.npages:
                return a
        raise KernelBug(f"no vmap area contains {addr:#x}")

    def set_vm_flush_reset_perms(self, addr: int) -> None:
        """``set_vm_flush_reset_perms()`` (include/linux/vmalloc.h)."""
        self.find_area(addr).reset_perms = True

    def vfree(self, addr: int) -> None:
        """``vfree()`` (mm/vmalloc.c, v6.1 ``__vunmap()``, v6.12/7.2
        ``vfree()``): ``remove_vm_area()`` unmaps the area without a flush
        and puts its vmap area (mapped pages + guard) on the lazy purge
        list (``free_vmap_area_noflush()``).  With VM_FLUSH_RESET_PERMS,
        ``vm_reset_perms()`` then sets every backing page's direct-map alias
        invalid, one page at a time (``set_direct_map_invalid_noflush``,
        which splits a large direct-map leaf like any CPA), purges the lazy
        list with ONE flush whose range spans the direct map and the module
        range (``_vm_unmap_aliases(start, end, flush_dmap)``: far above the
        ceiling, so a full flush) and restores the default direct-map
        entries.  Without the flag nothing is flushed now: the area waits
        for the next purge (:meth:`vm_unmap_aliases`), or for the drain
        work once more than ``lazy_max_pages()`` are waiting."""
        p = self.page_of(addr)
        area = self.areas.get(p)
        if area is None:
            raise KernelBug(f"vfree of {addr:#x}, which is not the start of a vmap area")
        c = self.counters
        self._lazy_add(p, area.npages + area.guard)
        if area.reset_perms:
            frames = self.pt.pfn[p:p + area.npages].copy()
            self._cpa.direct_map_touch(self, frames, whole_2m=False)
            self.phys.alias_ro[frames] = False
            self._purge_lazy("vfree", full=True)
            c["vfree_reset_perms"] += 1
        elif self.lazy_nr > LAZY_MAX_PAGES:
            self._purge_lazy("lazy")          # schedule_work(&drain_vmap_work)
        frames = self.pt.unmap(p, area.npages)
        if self._kasan_shadow:
            c["kasan_shadow_bytes"] -= self._kasan_shadow * area.npages
        self.locks.forget_pages(addr, area.npages)
        if area.huge:
            self.phys.free_frames(frames, huge=True, cpu=self.cpu)
        else:
            self.phys.free_vmalloc_pages(frames, cpu=self.cpu)
        self.vmap.remove(p)
        del self.areas[p]
        self._starts.remove(p)
        c["vfree_calls"] += 1
        self.tick(self.costs.vfree_call + self.costs.vfree_page * area.npages)

    # -- lazy vmap purging ---------------------------------------------------------------
    def _lazy_add(self, page: int, npages: int) -> None:
        if self.lazy_nr == 0:
            self.lazy_lo, self.lazy_hi = page, page + npages
        else:
            self.lazy_lo = min(self.lazy_lo, page)
            self.lazy_hi = max(self.lazy_hi, page + npages)
        self.lazy_nr += npages

    def _purge_lazy(self, cause: str, full: bool = False) -> bool:
        """``__purge_vmap_area_lazy()``: if any area waits, one
        ``flush_tlb_kernel_range()`` from the lowest start to the highest
        end of the purge list (``full``: the range also covers the direct
        map, as in ``vm_reset_perms()``)."""
        if self.lazy_nr == 0:
            return False
        span = self.lazy_hi - self.lazy_lo
        t = self._tlb
        if full:      # the direct map is terabytes below the module range
            span = max(span, t.TLB_SINGLE_PAGE_FLUSH_CEILING + 1)
        t.flush_tlb_kernel_range(self, span, cause)
        self.counters["vmap_lazy_purges"] += 1
        self.lazy_nr = 0
        return True

    def vm_unmap_aliases(self) -> None:
        """``vm_unmap_aliases()`` = ``_vm_unmap_aliases(ULONG_MAX, 0, 0)``
        (mm/vmalloc.c, v6.1, v6.12, 7.2), which every ``set_memory_*`` call
        makes first: purge the lazily freed areas with one flush, or do
        nothing when none wait.  (Dirty per-CPU vmap blocks of
        ``vm_map_ram()`` users would widen the flush; no executable-memory
        user has them.)"""
        self._purge_lazy("lazy")

    # -- writes ------------------------------------------------------------------------
    def memcpy(self, addr: int, nbytes: int) -> None:
        """A plain store through the vmalloc mapping (memcpy/memset/relocation
        writes).  The pages must be mapped writable: a real kernel would
        oops on a read-only page, so a model that does this is wrong."""
        if nbytes <= 0:
            return
        p0, p1 = self.page_of(addr), self.page_of(addr + nbytes - 1)
        f = self.pt.flags[p0:p1 + 1]
        if p0 < 0 or p1 >= self.pt.n_pages or not ((f & 3) == 3).all():
            raise KernelBug(f"write of {nbytes} bytes at {addr:#x} to a page that is not mapped writable")
        self.counters["memcpy_bytes"] += nbytes
        with self.locks.page_update(addr, nbytes):
            self.tick(self.costs.memcpy_byte * nbytes)

    def memcpy_elsewhere(self, nbytes: int) -> None:
        """A copy into memory outside the module range (a kvmalloc'ed RW
        buffer, a vzalloc'ed shadow): costs time, touches no page we model."""
        self.counters["memcpy_bytes"] += nbytes
        self.tick(self.costs.memcpy_byte * nbytes)

    # -- live text registry -----------------------------------------------------------------
    def text_claim(self, addr: int, nbytes: int) -> None:
        """Executable text the kernel now knows of (module text, a JITed
        program, a trampoline, an insn slot) occupies ``[addr, +nbytes)``."""
        self.pt.add_text(self.layout.byte_off(addr), nbytes, +1)
        if nbytes > 0:
            self.text_regions[addr] = (nbytes, self.user, self.obj)

    def text_release(self, addr: int, nbytes: int) -> None:
        self.pt.add_text(self.layout.byte_off(addr), nbytes, -1)
        if nbytes > 0:
            self.text_regions.pop(addr, None)

    # -- primitives implemented in sibling modules -----------------------------------------
    # set_memory_*: the architecture's rules (x86 cpa.py, arm64 arch/arm64_cpa.py)
    def set_memory_ro(self, addr: int, npages: int) -> None:
        self._cpa.set_memory(self, "ro", addr, npages)

    def set_memory_rw(self, addr: int, npages: int) -> None:
        self._cpa.set_memory(self, "rw", addr, npages)

    def set_memory_x(self, addr: int, npages: int) -> None:
        self._cpa.set_memory(self, "x", addr, npages)

    def set_memory_nx(self, addr: int, npages: int) -> None:
        self._cpa.set_memory(self, "nx", addr, npages)

    def set_memory_rox(self, addr: int, npages: int, collapse: bool = False) -> None:
        self._cpa.set_memory(self, "rox", addr, npages, collapse=collapse)

    # text_poke*: serialised by text_mutex on x86 (text_poke_copy/set take it;
    # text_poke and text_poke_bp callers hold it: lockdep_assert_held in
    # arch/x86/kernel/alternative.c), by the patch_lock raw spinlock on arm64
    # (arch/arm64/kernel/patching.c); each poke is a write to its pages.  On
    # arm64 the same calls are the aarch64_insn_* writes (arch/arm64_patch.py).
    def text_poke(self, addr: int, nbytes: int) -> None:
        self.locks.locked_write(self._patch_lock, addr, nbytes, self._patch.text_poke, self)

    def text_poke_copy(self, addr: int, nbytes: int) -> None:
        self.locks.locked_write(self._patch_lock, addr, nbytes, self._patch.text_poke_copy, self)

    def text_poke_set(self, addr: int, nbytes: int) -> None:
        self.locks.locked_write(self._patch_lock, addr, nbytes, self._patch.text_poke_set, self)

    def text_poke_sync(self) -> None:
        with self.locks.hold(self._patch_lock):
            self._patch.text_poke_sync(self)

    def text_poke_bp(self, addr: int, nbytes: int) -> None:
        self.locks.locked_write(self._patch_lock, addr, nbytes, self._patch.text_poke_bp, self)

    # -- ROX-cache primitives (execbench/kernel/direct_map.py, v6.13) ------------------------
    def set_direct_map_valid(self, addr: int, npages: int, valid: bool) -> None:
        """``set_direct_map_valid_noflush()`` on the frames behind
        ``[addr, +npages)`` of the range (see :mod:`.direct_map`)."""
        from . import direct_map
        p = self.page_of(addr)
        direct_map.set_direct_map_valid(self, self.pt.pfn[p:p + npages].copy(), valid)

    def vmap_remap(self, addr: int, npages: int, w: bool, x: bool) -> None:
        """``vunmap_range()`` + ``vmap_pages_range_noflush()`` with a new
        pgprot (see :mod:`.direct_map`)."""
        from . import direct_map
        direct_map.vmap_remap(self, self.page_of(addr), npages, w, x)

    def text_poke_repeat(self, addr: int, span: int, nbytes: int, count: int) -> None:
        """``count`` separate ``nbytes``-byte text pokes inside ``[addr, +span)``
        (:mod:`.text_poke_batch`)."""
        self._patch.text_poke_repeat(self, addr, span, nbytes, count)

    def text_poke_sync_repeat(self, count: int) -> None:
        """``count`` ``text_poke_sync()`` calls in a row (:mod:`.text_poke_batch`)."""
        self._patch.text_poke_sync_repeat(self, count)

    def api_repeat(self, entry: str, count: int) -> None:
        """Record ``count`` calls of one API entry point (:mod:`.text_poke_batch`)."""
        if self._api_names:
            entry = self._api_names.get(entry, entry)
        text_poke_batch.api_repeat(self, entry, count)

    # -- architecture hooks of the module loader ----------------------------------------------
    def module_relocate(self, name: str, text: tuple[int, int] | None,
                        init_text: tuple[int, int] | None) -> None:
        """``apply_relocate_add()`` has placed the module's branches: on arm64
        each ``R_AARCH64_CALL26``/``JUMP26`` whose target is out of +-128 MiB
        takes a PLT entry (:mod:`.arch.arm64_plt`); x86-64 modules need none
        (32-bit PC-relative relocations reach the whole +-2 GiB module range
        and kernel image), so this does nothing there.  ``text``/``init_text``
        are ``(address, bytes)`` of the module's text areas, or None."""
        if self.arch.name == "arm64":
            from .arch import arm64_plt
            arm64_plt.module_relocate(self, name, text, init_text)

    def kasan_reset_tag(self) -> None:
        """``kasan_reset_tag()`` on a pointer to executable memory: an
        identity without SW_TAGS/HW_TAGS KASAN; with them, a call the
        allocator must make (``kasan_reset_tag_calls``)."""
        if self.config.kasan in ("sw_tags", "hw_tags"):
            self.counters["kasan_reset_tag_calls"] += 1

    # -- state summaries ----------------------------------------------------------------------
    def snapshot_counters(self) -> dict[str, int]:
        c = dict(self.counters)
        c["direct_map_level2_splits"] = self.phys.splits_2m
        c["direct_map_level3_splits"] = self.phys.splits_1g
        c.update(self.phys.meminfo())
        c["vmap_areas"] = len(self.areas)
        c["api_entry_points"] = len({e for _, e in self.entry_points})
        c.update(self.locks.counters())
        return c
