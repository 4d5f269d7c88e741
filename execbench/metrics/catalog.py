"""The metric catalogue (described in docs/metrics.md, generated from it).

Every metric but ``largest_free_extent``, ``DirectMap1G`` (higher is better)
and ``DirectMap2M`` (neither) is defined so that **lower is better** (asv
treats ``track_*`` that way); ``better`` says which.  ``kind`` says how a run is summarised by default: a *gauge* is a
state (its time-weighted mean and peak matter), a *counter* only grows (its
final value is the total).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..kernel.pagetable import WX_CAUSES
from ..kernel.text_poke import SOURCES as POKE_SOURCES


@dataclass(frozen=True)
class MetricSpec:
    name: str
    family: str
    kind: str   # "gauge" | "counter"
    unit: str
    doc: str
    better: str = "lower"


_POKE_DOCS = (
    ("fill", "text pokes copying a module's sections in (module_memory_fill_type, jit_update, execmem_update_copy)"),
    ("invalidate", "text pokes filling a fresh module area before the sections (module_memory_invalidate_type)"),
    ("reloc", "text pokes applying relocations (one per entry in place; none when staged)"),
    ("alternatives", "text pokes patching alternatives/retpoline/return/paravirt/ENDBR sites at load"),
    ("orc_sort", "text pokes swapping ORC table entries while unwind_module_init() sorts them"),
    ("mcount_sort", "text pokes swapping __mcount_loc entries while ftrace_process_locs() sorts them"),
    ("ftrace_init", "text pokes turning each __fentry__ call into a NOP at load (ftrace_init_nop)"),
    ("patch", "text pokes live-patching module text (text_poke_bp: jump labels, static calls, ftrace sites)"),
    ("bpf", "text pokes writing, filling or invalidating JITed BPF programs"),
    ("trampoline", "text pokes writing BPF trampolines"),
    ("dispatcher", "text pokes writing the BPF dispatcher image"),
    ("ftrace", "text pokes creating or re-pointing ftrace trampolines"),
    ("kprobe", "text pokes writing kprobe instruction slots"),
    ("cache", "text pokes an allocator makes on pooled memory (ROX cache INT3 fill, PMD granule invalidate)"),
    ("other", "text pokes made outside any replayed event (0 in a replay)"),
)
assert tuple(s for s, _ in _POKE_DOCS) == POKE_SOURCES

_WX_DOCS = (
    ("alloc_window", "W+X page*ns of PAGE_KERNEL_EXEC memory before its first set_memory_*"),
    ("data_until_nx", "W+X page*ns of module data areas mapped PAGE_KERNEL_EXEC until the loader's set_memory_nx"),
    ("init_rodata", "W+X page*ns of init rodata left RW+X until it is freed"),
    ("huge_tail", "W+X page*ns of the PMD-rounded tail of a huge area beyond the requested size"),
    ("unprotect_window", "W+X page*ns of executable pages made writable by set_memory_rw"),
)
assert tuple(c for c, _ in _WX_DOCS) == WX_CAUSES

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("text_ptes_4k", "itlb", "gauge", "entries", "4 KiB leaf entries mapping live executable text"),
    MetricSpec("text_pmds_2m", "itlb", "gauge", "entries", "2 MiB leaf entries mapping live executable text"),
    MetricSpec("itlb_entries", "itlb", "gauge", "entries", "iTLB entries needed to cover all live text (4K + 2M leaves)"),
    MetricSpec("itlb_entries_ideal", "itlb", "gauge", "entries", "ceil(live text bytes / 2 MiB): the floor any design could reach"),
    MetricSpec("requested_bytes", "fragmentation", "gauge", "bytes", "bytes the users asked for (live objects)"),
    MetricSpec("backing_bytes", "fragmentation", "gauge", "bytes", "bytes of frames backing the module range"),
    MetricSpec("internal_frag", "fragmentation", "gauge", "fraction", "1 - requested/backing"),
    MetricSpec("free_in_partial_2m", "fragmentation", "gauge", "bytes", "unbacked bytes inside partly backed 2 MiB blocks of the range"),
    MetricSpec("largest_free_extent", "fragmentation", "gauge", "bytes", "largest free extent of the module range above the KASLR base (reported as-is: here higher is better)", "higher"),
    MetricSpec("vmap_areas", "fragmentation", "gauge", "areas", "live vmap areas in the module range"),
    MetricSpec("cpa_calls", "permissions", "counter", "calls", "set_memory_* calls"),
    MetricSpec("cpa_calls_effective", "permissions", "counter", "calls", "set_memory_* calls that changed at least one PTE (the ones that reach cpa_flush(); the others change nothing)"),
    MetricSpec("cpa_pages", "permissions", "counter", "pages", "pages whose PTE permissions changed"),
    MetricSpec("tlb_shootdowns", "permissions", "counter", "IPIs", "broadcast TLB flushes of kernel mappings: flush_tlb_all() (CPA, every large-page split, ROX collapse) + flush_tlb_kernel_range() (VM_FLUSH_RESET_PERMS frees, lazy vmap purges, ROX remap) + the page-by-page CPA flush IPI below the 33-page ceiling; one per broadcast (text_poke_sync() IPIs are not TLB flushes: not counted)"),
    MetricSpec("tlb_flush_all", "permissions", "counter", "flushes", "the full flushes among tlb_shootdowns: flush_tlb_all() and flush_tlb_kernel_range() over more than 33 pages"),
    MetricSpec("direct_map_level2_splits", "permissions", "counter", "splits", "2 MiB direct-map leaves split into 4 KiB pages, as /proc/vmstat direct_map_level2_splits (was direct_map_splits_2m)"),
    MetricSpec("direct_map_level3_splits", "permissions", "counter", "splits", "1 GiB direct-map leaves split into 2 MiB leaves, as /proc/vmstat direct_map_level3_splits (was direct_map_splits_1g)"),
    MetricSpec("text_pokes", "permissions", "counter", "pokes", "__text_poke() calls"),
    MetricSpec("text_poke_bytes", "permissions", "counter", "bytes", "bytes written through text_poke"),
    *(MetricSpec(f"text_pokes_{s}", "permissions", "counter", "pokes", d + " (the text_pokes_<source> sum to text_pokes)")
      for s, d in _POKE_DOCS),
    MetricSpec("wx_pages", "permissions", "gauge", "pages", "pages mapped writable and executable at once (after each event)"),
    MetricSpec("wx_pages_peak_instant", "permissions", "counter", "pages", "most pages W+X at any instant, including inside an event (not the peak of the per-event gauge wx_pages)"),
    MetricSpec("wx_page_ns", "permissions", "counter", "page*ns", "W^X exposure: integral of W+X pages over virtual time"),
    *(MetricSpec(f"wx_page_ns_{c}", "permissions", "counter", "page*ns", d + " (the wx_page_ns_<cause> sum to wx_page_ns)")
      for c, d in _WX_DOCS),
    MetricSpec("text_poke_wx_page_ns", "permissions", "counter", "page*ns", "the part of wx_page_ns accrued while __text_poke() ran: it scales with the assumed text_poke cost"),
    MetricSpec("faults_as_posted", "permissions", "counter", "writes", "plain stores into read-only text the design as posted makes (each would oops a real kernel); the model applies the obvious fix and counts them"),
    MetricSpec("api_calls", "interface", "counter", "calls", "calls the users made into the design's API"),
    MetricSpec("api_entry_points", "interface", "counter", "functions", "distinct API entry points the users needed"),
    MetricSpec("cpu_ns", "cost", "counter", "ns", "estimated CPU time of all primitives (virtual clock minus idle gaps)"),
    MetricSpec("lock_wait_ns", "concurrency", "counter", "ns", "time CPUs spent waiting for a kernel mutex held by another CPU (per-CPU shadow timeline, execbench/kernel/locks.py; not part of cpu_ns)"),
    MetricSpec("page_write_races", "concurrency", "counter", "pages", "writes/update windows to a page overlapping in virtual time with another CPU's on the same page"),
    MetricSpec("DirectMap4k", "permissions", "gauge", "kB", "direct-map memory mapped with 4 KiB pages, as /proc/meminfo DirectMap4k (arch_report_meminfo)"),
    MetricSpec("DirectMap2M", "permissions", "gauge", "kB", "direct-map memory mapped with 2 MiB leaves, as /proc/meminfo DirectMap2M (neither better: a 1 GiB split adds 1 GiB, a 2 MiB split removes 2 MiB)", "neither"),
    MetricSpec("DirectMap1G", "permissions", "gauge", "kB", "direct-map memory mapped with 1 GiB leaves, as /proc/meminfo DirectMap1G (higher is better: fewer splits)", "higher"),
    MetricSpec("alloc_failures", "robustness", "counter", "calls", "operations that got -ENOMEM (no frames or no room in the module range); each is failed as the kernel fails it and the replay goes on (execbench/replay.py)"),
    MetricSpec("events_skipped", "robustness", "counter", "events", "trace events on an object whose creating operation got -ENOMEM, so there was nothing to act on"),
    MetricSpec("itlb_miss_per_mfetch", "itlb", "gauge", "misses/Mfetch", "L1 iTLB misses per million instruction fetches: seeded fetch stream over live text + vmlinux through the page tables, set-associative LRU model of the CPU preset, at checkpoints (execbench/metrics/itlb.py)"),
    MetricSpec("stlb_miss_per_mfetch", "itlb", "gauge", "misses/Mfetch", "second-level TLB misses (page walks) per million instruction fetches, same stream and model as itlb_miss_per_mfetch"),
    MetricSpec("itlb_miss_per_mfetch_bpf", "itlb", "gauge", "misses/Mfetch", "L1 iTLB misses on fetches of bpf text, per million TOTAL fetches (the six per-user values sum to itlb_miss_per_mfetch)"),
    MetricSpec("itlb_miss_per_mfetch_module", "itlb", "gauge", "misses/Mfetch", "L1 iTLB misses on fetches of module text, per million TOTAL fetches (the six per-user values sum to itlb_miss_per_mfetch)"),
    MetricSpec("itlb_miss_per_mfetch_ftrace", "itlb", "gauge", "misses/Mfetch", "L1 iTLB misses on fetches of ftrace text, per million TOTAL fetches (the six per-user values sum to itlb_miss_per_mfetch)"),
    MetricSpec("itlb_miss_per_mfetch_kprobe", "itlb", "gauge", "misses/Mfetch", "L1 iTLB misses on fetches of kprobe text, per million TOTAL fetches (the six per-user values sum to itlb_miss_per_mfetch)"),
    MetricSpec("itlb_miss_per_mfetch_vmlinux", "itlb", "gauge", "misses/Mfetch", "L1 iTLB misses on fetches of vmlinux text, per million TOTAL fetches (the six per-user values sum to itlb_miss_per_mfetch)"),
    MetricSpec("itlb_miss_per_mfetch_userspace", "itlb", "gauge", "misses/Mfetch", "L1 iTLB misses on fetches of userspace text, per million TOTAL fetches (the six per-user values sum to itlb_miss_per_mfetch) (user text: user_share, user_text_mib in ItlbParams)"),
    MetricSpec("stlb_miss_per_mfetch_bpf", "itlb", "gauge", "misses/Mfetch", "second-level TLB misses on fetches of bpf text, per million TOTAL fetches (sum to stlb_miss_per_mfetch)"),
    MetricSpec("stlb_miss_per_mfetch_module", "itlb", "gauge", "misses/Mfetch", "second-level TLB misses on fetches of module text, per million TOTAL fetches (sum to stlb_miss_per_mfetch)"),
    MetricSpec("stlb_miss_per_mfetch_ftrace", "itlb", "gauge", "misses/Mfetch", "second-level TLB misses on fetches of ftrace text, per million TOTAL fetches (sum to stlb_miss_per_mfetch)"),
    MetricSpec("stlb_miss_per_mfetch_kprobe", "itlb", "gauge", "misses/Mfetch", "second-level TLB misses on fetches of kprobe text, per million TOTAL fetches (sum to stlb_miss_per_mfetch)"),
    MetricSpec("stlb_miss_per_mfetch_vmlinux", "itlb", "gauge", "misses/Mfetch", "second-level TLB misses on fetches of vmlinux text, per million TOTAL fetches (sum to stlb_miss_per_mfetch)"),
    MetricSpec("stlb_miss_per_mfetch_userspace", "itlb", "gauge", "misses/Mfetch", "second-level TLB misses on fetches of userspace text, per million TOTAL fetches (sum to stlb_miss_per_mfetch) (user text: user_share, user_text_mib in ItlbParams)"),
)

#: metrics only some architectures have: sampled after the common ones on a
#: machine of that architecture (``Arch.metrics``), absent from other runs
ARCH_METRICS: dict[str, tuple[MetricSpec, ...]] = {
    "arm64": (
        MetricSpec("module_fallback_allocs", "arm64", "counter", "allocs", "module allocations that did not fit the first window and landed in the fallback window (arm64 module_alloc(): 2 GiB window; execmem fallback_start/end; module_alloc_type vmp[1])"),
        MetricSpec("plt_entries", "arm64", "counter", "entries", "PLT entries written at module load: R_AARCH64_CALL26/JUMP26 branches out of +-128 MiB of their target (module_emit_plt_entry()), by distance (execbench/kernel/arch/arm64_plt.py)"),
        MetricSpec("tlbi_pages", "arm64", "counter", "pages", "pages invalidated by per-page broadcast TLBIs (flush_tlb_kernel_range() loops; no IPIs on arm64)"),
        MetricSpec("fixmap_pokes", "arm64", "counter", "writes", "text writes through the FIX_TEXT_POKE0 fixmap slot (patch_map/patch_unmap): each one also a one-page broadcast TLBI"),
        MetricSpec("icache_sync_ipis", "arm64", "counter", "IPIs", "kick_all_cpus_sync() IPIs of flush_icache_range() (aarch64_insn_copy/set, bpf_flush_icache)"),
        MetricSpec("linear_alias_pages", "arm64", "counter", "pages", "linear-map alias pages set_memory_ro/rw changed (rodata=full: every page of the area, one flush each)"),
        MetricSpec("kasan_shadow_bytes", "arm64", "gauge", "bytes", "KASAN_VMALLOC shadow of the live vmalloc areas (1/8 generic, 1/16 sw_tags, 0 hw_tags; 0 without --kasan)"),
    ),
}

_BY_NAME = {m.name: m for m in METRICS}
_BY_NAME.update({m.name: m for specs in ARCH_METRICS.values() for m in specs})


def metrics_for(arch: str) -> tuple[MetricSpec, ...]:
    """Every metric a run on ``arch`` has, in sample order."""
    return METRICS + ARCH_METRICS.get(arch, ())


def by_name(name: str) -> MetricSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(_BY_NAME)}") from None


def specs_present(names) -> tuple[MetricSpec, ...]:
    """The catalogue's specs (common, then per architecture) of the metric
    names in ``names``, in catalogue order: what a results table has."""
    have = set(names)
    extra = tuple(m for specs in ARCH_METRICS.values() for m in specs)
    return tuple(m for m in METRICS + extra if m.name in have)
