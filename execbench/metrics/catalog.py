"""The metric catalogue (described in docs/metrics.md, generated from it).

Every metric but ``largest_free_extent`` is defined so that **lower is
better** (asv treats ``track_*`` that way); ``better`` says which.  ``kind`` says how a run is summarised by default: a *gauge* is a
state (its time-weighted mean and peak matter), a *counter* only grows (its
final value is the total).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str
    family: str
    kind: str   # "gauge" | "counter"
    unit: str
    doc: str
    better: str = "lower"


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
    MetricSpec("cpa_pages", "permissions", "counter", "pages", "pages whose PTE permissions changed"),
    MetricSpec("tlb_flush_all", "permissions", "counter", "flushes", "global TLB flushes (flush_tlb_all broadcast IPIs)"),
    MetricSpec("direct_map_splits_2m", "permissions", "counter", "splits", "2 MiB direct-map leaves split (vmstat direct_map_level2_splits)"),
    MetricSpec("direct_map_splits_1g", "permissions", "counter", "splits", "1 GiB direct-map leaves split (vmstat direct_map_level3_splits)"),
    MetricSpec("text_pokes", "permissions", "counter", "pokes", "__text_poke() calls"),
    MetricSpec("text_poke_bytes", "permissions", "counter", "bytes", "bytes written through text_poke"),
    MetricSpec("wx_pages", "permissions", "gauge", "pages", "pages mapped writable and executable at once"),
    MetricSpec("wx_pages_peak", "permissions", "counter", "pages", "most pages W+X at any instant (including within an event)"),
    MetricSpec("wx_page_ns", "permissions", "counter", "page*ns", "W^X exposure: integral of W+X pages over virtual time"),
    MetricSpec("api_calls", "interface", "counter", "calls", "calls the users made into the design's API"),
    MetricSpec("api_entry_points", "interface", "counter", "functions", "distinct API entry points the users needed"),
    MetricSpec("cpu_ns", "cost", "counter", "ns", "estimated CPU time of all primitives (virtual clock minus idle gaps)"),
    MetricSpec("lock_wait_ns", "concurrency", "counter", "ns", "time CPUs spent waiting for a kernel mutex held by another CPU (per-CPU shadow timeline, execbench/kernel/locks.py; not part of cpu_ns)"),
    MetricSpec("page_write_races", "concurrency", "counter", "pages", "writes/update windows to a page overlapping in virtual time with another CPU's on the same page"),
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

_BY_NAME = {m.name: m for m in METRICS}


def by_name(name: str) -> MetricSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(_BY_NAME)}") from None
