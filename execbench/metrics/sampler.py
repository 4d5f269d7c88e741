"""Sampling every metric after every event, and summarising a run.

The sampler reads only the kernel's state and counters (and the design-free
:class:`~.demand.Demand`); it never looks inside a design.
"""
from __future__ import annotations

import numpy as np

from ..kernel import Kernel
from ..kernel.text_poke import SOURCES as POKE_SOURCES
from ..units import PAGE_SIZE, PMD_SIZE
from .catalog import METRICS
from .demand import Demand
from .itlb import OWNERS, ItlbParams, ItlbProbe
from .streamstats import StreamStats

NAMES = [m.name for m in METRICS]
_IDX = {n: i for i, n in enumerate(NAMES)}
_ITLB_ZERO = (0.0,) * (2 + 2 * len(OWNERS))
_POKE_KEYS = tuple(f"text_pokes_{s}" for s in POKE_SOURCES)


class Sampler:
    """Fills one row of ``samples`` per event -- or, with ``keep=False`` (a
    streamed replay), hands each row to a :class:`~.streamstats.StreamStats`
    that keeps the summary and not the rows (``samples`` and ``t`` are then
    ``None``)."""

    def __init__(self, kernel: Kernel, n_events: int, keep: bool = True):
        self.k = kernel
        self.demand = Demand()
        # metrics only this machine's architecture has (catalog.ARCH_METRICS), after the common ones
        self.extra = tuple(kernel.arch.metrics)
        self.names = NAMES + list(self.extra)
        self.stream = None if keep else StreamStats(n_events, len(self.names))
        self.samples = np.zeros((n_events, len(self.names)), dtype=np.float64) if keep else None
        self.t = np.zeros(n_events, dtype=np.float64) if keep else None
        self._eps = (-1, 0)     # (len(k.entry_points), distinct entry names): the set only grows
        cfg = kernel.config
        self.itlb = (None if cfg.itlb_cpu == "off" else
                     ItlbProbe(kernel, n_events, cfg.itlb_cpu, ItlbParams.parse(cfg.itlb_params)))

    def sample(self, i: int) -> None:
        """Row ``i`` = every metric after event ``i``, in catalogue order.

        Built as one list and stored with a single numpy assignment: setting
        27 numpy elements one by one cost more than the rest of the sampler.
        A new metric goes into the list at its catalogue position (a length
        mismatch fails loudly here)."""
        k, pt, c, d = self.k, self.k.pt, self.k.counters, self.demand
        ptes = pt.n_text_ptes_4k
        pmds = pt.n_text_pmds_2m
        backing = pt.present_pages * PAGE_SIZE
        if len(k.entry_points) != self._eps[0]:
            self._eps = (len(k.entry_points), len({e for _, e in k.entry_points}))
        row = [
            ptes,                                               # text_ptes_4k
            pmds,                                               # text_pmds_2m
            ptes + pmds,                                        # itlb_entries
            -(-d.text // PMD_SIZE),                             # itlb_entries_ideal
            d.requested,                                        # requested_bytes
            backing,                                            # backing_bytes
            (1.0 - d.requested / backing) if backing else 0.0,  # internal_frag
            pt.n_free_in_partial * PAGE_SIZE,                   # free_in_partial_2m
            k.vmap.largest_free(k.lo_page) * PAGE_SIZE,         # largest_free_extent
            len(k.areas),                                       # vmap_areas
            c["cpa_calls"],
            c["cpa_calls_effective"],
            c["cpa_pages"],
            c["tlb_shootdowns"],
            c["tlb_flush_all"],
            k.phys.splits_2m,                                   # direct_map_level2_splits
            k.phys.splits_1g,                                   # direct_map_level3_splits
            c["text_pokes"],
            c["text_poke_bytes"],
            *[c[key] for key in _POKE_KEYS],                    # text_pokes_<source>
            pt.wx_pages,                                        # wx_pages
            k.wx_pages_peak_instant,
            k.wx_page_ns,
            *k.wx_page_ns_by_cause,                             # wx_page_ns_<cause>
            k.wx_page_ns_text_poke,                             # text_poke_wx_page_ns
            c["faults_as_posted"],
            c["api_calls"],
            self._eps[1],                                       # api_entry_points
            k.now - k.idle_ns,                                  # cpu_ns
            k.locks.wait_total,                                 # lock_wait_ns
            k.locks.races,                                      # page_write_races
            k.phys.leaves_4k * 4,                               # DirectMap4k (kB)
            k.phys.leaves_2m * 2048,                            # DirectMap2M
            k.phys.leaves_1g * 1048576,                         # DirectMap1G
            c.get("alloc_failures", 0),
            c.get("events_skipped", 0),
        ]
        # itlb_miss_per_mfetch, stlb_miss_per_mfetch: checkpoints only, held in between
        # then the per-owner itlb_/stlb_miss_per_mfetch_<user> (itlb.OWNERS order)
        row.extend(self.itlb.sample(i) if self.itlb is not None else _ITLB_ZERO)
        if self.extra:
            row.extend(c[key] for key in self.extra)
        if self.stream is None:
            self.samples[i] = row
            self.t[i] = k.now
        else:
            self.stream.add(row, k.now)


def summarise(samples: np.ndarray, t: np.ndarray, names: list[str] | None = None
              ) -> dict[str, tuple[float, float, float]]:
    """metric -> (final, peak, time-weighted mean).

    The value after event *i* holds until event *i+1*, so it is weighted by
    ``t[i+1] - t[i]`` of the virtual clock; the last sample has no weight.
    If the whole trace takes no time, the plain mean is used.
    """
    names = NAMES if names is None else names
    n = samples.shape[0]
    out: dict[str, tuple[float, float, float]] = {}
    if n == 0:
        return {name: (0.0, 0.0, 0.0) for name in names}
    w = np.diff(t) if n > 1 else np.zeros(0)
    total = float(w.sum())
    for j, name in enumerate(names):
        col = samples[:, j]
        mean = float((col[:-1] * w).sum() / total) if total > 0 else float(col.mean())
        out[name] = (float(col[-1]), float(col.max()), mean)
    return out
