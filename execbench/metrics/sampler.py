"""Sampling every metric after every event, and summarising a run.

The sampler reads only the kernel's state and counters (and the design-free
:class:`~.demand.Demand`); it never looks inside a design.
"""
from __future__ import annotations

import numpy as np

from ..kernel import Kernel
from ..units import PAGE_SIZE, PMD_SIZE
from .catalog import METRICS
from .demand import Demand

NAMES = [m.name for m in METRICS]
_IDX = {n: i for i, n in enumerate(NAMES)}


class Sampler:
    """Fills one row of ``samples`` per event."""

    def __init__(self, kernel: Kernel, n_events: int):
        self.k = kernel
        self.demand = Demand()
        self.samples = np.zeros((n_events, len(NAMES)), dtype=np.float64)
        self.t = np.zeros(n_events, dtype=np.float64)

    def sample(self, i: int) -> None:
        k, pt, c, d = self.k, self.k.pt, self.k.counters, self.demand
        ptes = pt.text_ptes_4k()
        pmds = pt.text_pmds_2m()
        backing = pt.present_pages * PAGE_SIZE
        row = self.samples[i]
        row[0] = ptes
        row[1] = pmds
        row[2] = ptes + pmds
        row[3] = -(-d.text // PMD_SIZE)
        row[4] = d.requested
        row[5] = backing
        row[6] = (1.0 - d.requested / backing) if backing else 0.0
        row[7] = pt.free_in_partial_2m() * PAGE_SIZE
        row[8] = k.vmap.largest_free(k.lo_page) * PAGE_SIZE
        row[9] = len(k.areas)
        row[10] = c["cpa_calls"]
        row[11] = c["cpa_pages"]
        row[12] = c["tlb_flush_all"]
        row[13] = k.phys.splits_2m
        row[14] = k.phys.splits_1g
        row[15] = c["text_pokes"]
        row[16] = c["text_poke_bytes"]
        row[17] = pt.wx_pages
        row[18] = k.wx_pages_peak
        row[19] = k.wx_page_ns
        row[20] = c["api_calls"]
        row[21] = len({e for _, e in k.entry_points})
        row[22] = k.now - k.idle_ns
        self.t[i] = k.now


def summarise(samples: np.ndarray, t: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """metric -> (final, peak, time-weighted mean).

    The value after event *i* holds until event *i+1*, so it is weighted by
    ``t[i+1] - t[i]`` of the virtual clock; the last sample has no weight.
    If the whole trace takes no time, the plain mean is used.
    """
    n = samples.shape[0]
    out: dict[str, tuple[float, float, float]] = {}
    if n == 0:
        return {name: (0.0, 0.0, 0.0) for name in NAMES}
    w = np.diff(t) if n > 1 else np.zeros(0)
    total = float(w.sum())
    for j, name in enumerate(NAMES):
        col = samples[:, j]
        mean = float((col[:-1] * w).sum() / total) if total > 0 else float(col.mean())
        out[name] = (float(col[-1]), float(col.max()), mean)
    return out
