"""The floor: per-metric lower bounds no allocator can beat for a trace.

Not a design (docs/metrics.md, "The floor").  Each bound is computed from
the design-free :class:`~.demand.Demand` after every event, so it is the same
whatever design replays the trace, and it needs no simulated kernel:

* iTLB: live text of ``T`` bytes needs at least ``ceil(T / 2 MiB)`` leaf
  entries -- every byte mapped by 2 MiB leaves, packed without gaps
  (x86-64 has no larger leaf for kernel text in the module range; on arm64
  no executable-memory user maps vmalloc text with a larger one either --
  vmalloc's huge mappings are PMDs, and from v6.16 64 KiB contiguous PTEs,
  arch/arm64/include/asm/vmalloc.h -- so the bound is the same).  So
  ``text_pmds_2m = itlb_entries = itlb_entries_ideal = ceil(T / 2 MiB)`` and
  ``text_ptes_4k = 0``.
* Backing: under W^X an executable page holds no writable or
  non-executable data, and 4 KiB is the smallest page, so at least
  ``PAGE_ALIGN(T) + PAGE_ALIGN(R - T)`` bytes back ``R`` requested bytes of
  which ``T`` are text.  ``internal_frag = 1 - R / backing``.
* Permissions: text that is born read-only+executable and never changes
  (e.g. handed out from a pool that was mapped ROX once, before the trace)
  needs no ``set_memory_*`` call, no flush, no direct-map split, and is never
  W+X: ``cpa_calls = cpa_calls_effective = cpa_pages = tlb_shootdowns =
  tlb_flush_all = direct_map_level2/3_splits = wx_pages =
  wx_pages_peak_instant = wx_page_ns = 0`` (and every ``wx_page_ns_<cause>``).

The bounds are per metric: one placement need not reach all of them at once
(2 MiB leaves for the iTLB bound cost up to 2 MiB - 4 KiB of backing above
the backing bound).  Metrics with no bound worth stating here (text pokes,
API calls, CPU time, fragmentation of the range, lock waits...) are NaN and
print as "-".  Gauges are time-weighted over the trace's own ``t_ns`` (the
floor costs no time), where designs use their virtual clock.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..kernel.pagetable import WX_CAUSES
from ..trace import Trace
from ..units import PMD_SIZE, page_align
from .catalog import METRICS
from .demand import Demand
from .sampler import summarise

#: metrics whose floor is 0 throughout (the "no permission flip" bounds)
ZERO = ("cpa_calls", "cpa_calls_effective", "cpa_pages", "tlb_shootdowns", "tlb_flush_all",
        "direct_map_level2_splits", "direct_map_level3_splits", "wx_pages",
        "wx_pages_peak_instant", "wx_page_ns",
        *(f"wx_page_ns_{c}" for c in WX_CAUSES), "text_poke_wx_page_ns")

FLOOR_NAME = "floor"

#: the metrics on which a design's distance to the floor is reported: what
#: the allocator decides (text_pmds_2m/ptes are parts of itlb_entries;
#: requested_bytes and itlb_entries_ideal are the workload's, not a design's)
DISTANCE_METRICS = ("itlb_entries", "backing_bytes", "internal_frag", *ZERO)


def floor_row(requested: int, text: int) -> dict[str, float]:
    """The floor of every metric for one state: ``requested`` live bytes of
    which ``text`` are live executable text."""
    pmds = -(-text // PMD_SIZE)
    backing = page_align(text) + page_align(max(requested - text, 0))
    row = {m.name: math.nan for m in METRICS}
    row.update({
        "text_ptes_4k": 0.0,
        "text_pmds_2m": float(pmds),
        "itlb_entries": float(pmds),
        "itlb_entries_ideal": float(pmds),
        "requested_bytes": float(requested),
        "backing_bytes": float(backing),
        "internal_frag": (1.0 - requested / backing) if backing else 0.0,
    })
    row.update({name: 0.0 for name in ZERO if name in row})
    return row


def floor_samples(trace: Trace) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(samples: events x metrics, t_ns, metric names) for ``trace``."""
    names = [m.name for m in METRICS]
    d = Demand()
    out = np.full((len(trace), len(names)), np.nan)
    t = np.zeros(len(trace))
    for i, ev in enumerate(trace.events()):
        d.apply(ev)
        row = floor_row(d.requested, d.text)
        out[i] = [row[n] for n in names]
        t[i] = ev.t_ns
    return out, t, names


def floor_summary(trace: Trace, seeds: list[int]) -> pd.DataFrame:
    """Tidy rows (workload, design='floor', seed, metric, final, peak, mean)
    shaped like :meth:`execbench.replay.RunResult.summary`, one block per
    seed (the floor does not depend on the seed)."""
    samples, t, names = floor_samples(trace)
    stats = summarise(samples, t)
    recs = []
    for s in seeds:
        for m in names:
            f, p, mean = stats[m]
            if np.isnan(samples[:, names.index(m)]).all():
                f = p = mean = math.nan
            recs.append({"workload": trace.name, "design": FLOOR_NAME, "seed": s,
                         "metric": m, "final": f, "peak": p, "mean": mean})
    return pd.DataFrame(recs)


def with_floor(df: pd.DataFrame, traces: list[Trace], seeds: list[int]) -> pd.DataFrame:
    """``df`` (a tidy sweep) plus the floor's rows for every trace: the
    one-line hook a report needs to show every design's distance to the floor
    (``execbench compare`` uses it; :mod:`execbench.report.headline` treats a
    design named ``floor`` as the floor)."""
    frames = [floor_summary(tr, seeds) for tr in traces]
    # metrics only some architectures have (catalog.ARCH_METRICS): no floor stated, NaN
    extra = sorted(set(df.metric.unique()) - {m.name for m in METRICS}) if len(df) else []
    if extra:
        frames.append(pd.DataFrame([{"workload": tr.name, "design": FLOOR_NAME, "seed": s, "metric": m,
                                     "final": math.nan, "peak": math.nan, "mean": math.nan}
                                    for tr in traces for s in seeds for m in extra]))
    return pd.concat([df] + frames, ignore_index=True)
