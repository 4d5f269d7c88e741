"""Headline metrics on the arm64 model (``--arch arm64``), commit by commit.

The same shape as :mod:`.bench_metrics` -- one replay per (design, workload)
at seed 0 in ``setup_cache``, each ``track_*`` a lookup -- for the designs
that exist on arm64 (``registry.names_for("arm64")``), with the arm64-only
metrics (PLT entries, fallback allocations, broadcast TLBIs, icache IPIs)
beside the common headline ones.  Every metric is lower-is-better.
"""
from __future__ import annotations

import math

from .common import replay_stats, workloads

SEED = 0
ARCH = "arm64"


def designs() -> list[str]:
    from .common import designs as all_designs
    try:
        from execbench import registry
        on = set(registry.names_for(ARCH))
    except (ImportError, AttributeError):     # a commit without the arm64 model
        return []
    return [d for d in all_designs() if d in on]


def _replay_all() -> dict:
    return replay_stats(designs(), SEED, machine={"arch": ARCH})


def _track(metric: str, stat: str, unit: str, doc: str):
    def track(self, cache, design, workload):
        return self._get(cache, design, workload, metric, stat)
    track.unit = unit
    track.__doc__ = doc
    return track


class Arm64Metrics:
    """``track_<metric>`` on arm64: the summary statistic the reports show."""

    params = (designs(), workloads())
    param_names = ["design", "workload"]
    version = "1"
    timeout = 1800

    def setup_cache(self):
        return _replay_all()

    def _get(self, cache, design, workload, metric, stat):
        try:
            v = cache[(design, workload)][metric][stat]
        except KeyError:
            raise NotImplementedError(f"{metric} not measured for {design} on {workload}") from None
        if not math.isfinite(v):
            raise ValueError(f"{metric}.{stat} is {v} for {design} on {workload}")
        return v

    track_itlb_entries = _track("itlb_entries", "mean", "entries", "iTLB entries for live text, mean")
    track_itlb_miss_per_mfetch = _track("itlb_miss_per_mfetch", "mean", "misses/Mfetch",
                                        "L1 iTLB misses per million fetches (neoverse-n1 preset)")
    track_backing_bytes = _track("backing_bytes", "peak", "bytes", "peak bytes backing the windows")
    track_cpa_calls = _track("cpa_calls", "final", "calls", "set_memory_* calls")
    track_cpa_calls_effective = _track("cpa_calls_effective", "final", "calls",
                                       "set_memory_* calls that changed a PTE or alias")
    track_tlb_shootdowns = _track("tlb_shootdowns", "final", "broadcasts",
                                  "broadcast TLB invalidations (TLBI, not IPIs, on arm64)")
    track_tlb_flush_all = _track("tlb_flush_all", "final", "flushes", "flush_tlb_all() calls")
    track_tlbi_pages = _track("tlbi_pages", "final", "pages", "pages invalidated by per-page TLBIs")
    track_text_pokes = _track("text_pokes", "final", "pokes", "text writes through the fixmap")
    track_icache_sync_ipis = _track("icache_sync_ipis", "final", "IPIs",
                                    "kick_all_cpus_sync() IPIs of flush_icache_range()")
    track_wx_page_ns = _track("wx_page_ns", "final", "page*ns", "W^X exposure")
    track_api_calls = _track("api_calls", "final", "calls", "calls into the design's API")
    track_plt_entries = _track("plt_entries", "final", "entries",
                               "module PLT entries written (branches out of +-128 MiB)")
    track_module_fallback_allocs = _track("module_fallback_allocs", "final", "allocs",
                                          "module allocations in the fallback window")
