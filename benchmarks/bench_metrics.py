"""Headline metrics of every design on every shipped workload, commit by
commit (asv ``track_*``).

One replay per (design, workload) at seed 0 happens in ``setup_cache``
(asv does not parameterize it, so it computes every combination, one
process per CPU, and returns a dict: :func:`.common.replay_stats`); each
``track_*`` only looks its number up.  Every metric
is lower-is-better, as asv assumes.  ``version`` is pinned so that editing
this file does not silently start a new history: bump it only when a
metric's meaning changes.
"""
from __future__ import annotations

import math

from .common import SPEED, designs, replay_stats, workloads

SEED = 0


def _replay_all() -> dict:
    return replay_stats(designs(), SEED)


class Metrics:
    """``track_<metric>``: the summary statistic the reports show."""

    params = (designs(), workloads())
    param_names = ["design", "workload"]
    version = "1"
    timeout = 1800      # setup_cache replays everything once

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

    def track_itlb_entries(self, cache, design, workload):
        """iTLB entries for live text, time-weighted mean."""
        return self._get(cache, design, workload, "itlb_entries", "mean")
    track_itlb_entries.unit = "entries"

    def track_itlb_entries_peak(self, cache, design, workload):
        return self._get(cache, design, workload, "itlb_entries", "peak")
    track_itlb_entries_peak.unit = "entries"

    def track_itlb_miss_per_mfetch(self, cache, design, workload):
        """L1 iTLB misses per million fetches (dynamic model, execbench/metrics/itlb.py), time-weighted mean."""
        return self._get(cache, design, workload, "itlb_miss_per_mfetch", "mean")
    track_itlb_miss_per_mfetch.unit = "misses/Mfetch"

    def track_stlb_miss_per_mfetch(self, cache, design, workload):
        """Second-level TLB misses (page walks) per million fetches, time-weighted mean."""
        return self._get(cache, design, workload, "stlb_miss_per_mfetch", "mean")
    track_stlb_miss_per_mfetch.unit = "misses/Mfetch"

    def track_backing_bytes(self, cache, design, workload):
        """Peak bytes of frames backing the module range."""
        return self._get(cache, design, workload, "backing_bytes", "peak")
    track_backing_bytes.unit = "bytes"

    def track_internal_frag(self, cache, design, workload):
        """1 - requested/backing, time-weighted mean."""
        return self._get(cache, design, workload, "internal_frag", "mean")
    track_internal_frag.unit = "fraction"

    def track_cpa_calls(self, cache, design, workload):
        return self._get(cache, design, workload, "cpa_calls", "final")
    track_cpa_calls.unit = "calls"

    def track_cpa_calls_effective(self, cache, design, workload):
        """set_memory_* calls that changed at least one PTE."""
        return self._get(cache, design, workload, "cpa_calls_effective", "final")
    track_cpa_calls_effective.unit = "calls"

    def track_tlb_shootdowns(self, cache, design, workload):
        """Broadcast TLB flushes (flush_tlb_all, flush_tlb_kernel_range, CPA IPIs)."""
        return self._get(cache, design, workload, "tlb_shootdowns", "final")
    track_tlb_shootdowns.unit = "IPIs"

    def track_tlb_flush_all(self, cache, design, workload):
        return self._get(cache, design, workload, "tlb_flush_all", "final")
    track_tlb_flush_all.unit = "flushes"

    def track_direct_map_level2_splits(self, cache, design, workload):
        return self._get(cache, design, workload, "direct_map_level2_splits", "final")
    track_direct_map_level2_splits.unit = "splits"

    def track_text_pokes(self, cache, design, workload):
        return self._get(cache, design, workload, "text_pokes", "final")
    track_text_pokes.unit = "pokes"

    def track_wx_page_ns(self, cache, design, workload):
        """W^X exposure: integral of W+X pages over virtual time."""
        return self._get(cache, design, workload, "wx_page_ns", "final")
    track_wx_page_ns.unit = "page*ns"

    def track_api_calls(self, cache, design, workload):
        return self._get(cache, design, workload, "api_calls", "final")
    track_api_calls.unit = "calls"

    def track_api_entry_points(self, cache, design, workload):
        return self._get(cache, design, workload, "api_entry_points", "final")
    track_api_entry_points.unit = "functions"

    def track_cpu_ns(self, cache, design, workload):
        """Estimated CPU time of the kernel primitives (virtual clock)."""
        return self._get(cache, design, workload, "cpu_ns", "final")
    track_cpu_ns.unit = "ns"

    def track_replay_us_per_event(self, cache, design, workload):
        """Wall time of the replay's event loop per event (microseconds),
        from the ``setup_cache`` replay: the simulator's speed on every
        design x workload without replaying again (``Replay`` times only
        fleet-day).  Lower is better.  A timing, so it varies from run to
        run with the machine's load (its own regression threshold in
        asv.conf.json); ``setup_cache`` runs one replay per CPU at a time."""
        try:
            s = cache[(design, workload)][SPEED]
        except KeyError:
            raise NotImplementedError(f"no replay speed for {design} on {workload}") from None
        if not s["events"]:
            raise NotImplementedError(f"{workload} has no events")
        return 1e6 * s["wall_s"] / s["events"]
    track_replay_us_per_event.unit = "us/event"
