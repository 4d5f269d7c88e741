"""Across-workload summary of a headline run: one number per design and
headline row, with its spread.

Why a geometric mean of per-workload ratios, not a pooled sum: pooling
(sum of a design's values over the workloads / sum of the baseline's)
lets the biggest workload decide -- fleet-day alone carries 45 % of
legacy's flushes in the shipped run -- while a geometric mean of ratios
weighs every workload the same and is the only mean of ratios that does
not depend on which design is the baseline (Fleming & Wallace, "How not to
lie with statistics: the correct way to summarize benchmark results",
CACM 29(3), 1986).

For one headline row (metric, statistic) and one design ``d``:

* per workload ``w``: ``r_w = mean_s v(d, w, s) / mean_s v(base, w, s)``
  (means over the seeds ``s``).  When the baseline is 0 the ratio is
  undefined: if ``d`` is 0 too the two are equal (``r_w = 1``); otherwise
  the workload is *undefined* and counted apart (reports print ``n/a
  (legacy 0)`` or the two absolute values, never ``inf``);
* ``geomean = exp(mean_w log r_w)`` over the workloads where ``r_w > 0``;
  workloads where ``d`` is 0 and the baseline is not (``r_w = 0``) are
  counted in ``zeros`` and shown as the minimum of the range, since the
  logarithm of 0 is undefined;
* ``lo``/``hi``: the smallest and largest ``r_w`` over the defined
  workloads;
* the spread over seeds: for each seed ``s`` the same geometric mean is
  taken of the per-seed ratios ``v(d, w, s) / v(base, w, s)`` (same seed =
  same KASLR offset and frame placement on both sides); ``sd_pct`` is the
  sample standard deviation of those ``n`` per-seed values as a percentage
  of their mean, as ``perf stat -r N`` prints ``+- x%``.

The floor (design ``floor``) is summarised against the baseline like a
design, and every design also against the floor (``vs_floor``: geometric
mean of ``v(d, w) / floor(w)`` over the workloads where the floor is > 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import Headline
from .headline import FLOOR_DESIGN, Row


@dataclass(frozen=True)
class Cell:
    """The across-workload summary of one design on one headline row."""

    design: str
    row: Row
    geomean: float            # NaN when no workload has a defined, nonzero ratio
    lo: float
    hi: float
    sd_pct: float             # NaN with one seed or no per-seed value
    n_seeds: int
    n_workloads: int          # workloads with a defined ratio (incl. zeros)
    zeros: int                # workloads where the design is 0 and the baseline is not
    undefined: list[str] = field(default_factory=list)  # baseline 0, design > 0
    vs_floor: float = math.nan
    mean_value: float = math.nan        # mean over workloads of the design's value
    base_mean_value: float = math.nan   # the same for the baseline
    both_zero: int = 0        # workloads where both are 0 (ratio 1: equal)

    @property
    def all_zero(self) -> bool:
        """The design is 0 on every workload with a defined ratio (a 0/0
        workload counts as 1x in the geomean, but a row of zeros plus one
        0/0 is still a design that is 0 everywhere, e.g. the floor)."""
        return self.n_workloads > 0 and self.zeros + self.both_zero == self.n_workloads


def geomean(xs) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def _per_seed(h: Headline, row: Row) -> pd.DataFrame:
    """design x workload x seed values of one row (NaN where absent)."""
    sub = h.df[h.df.metric == row.metric]
    return sub.pivot_table(index=["design", "workload"], columns="seed", values=row.stat,
                           aggfunc="mean", sort=False, dropna=False)


def cells(h: Headline, row: Row, baseline: str) -> dict[str, Cell]:
    """One :class:`Cell` per design of the run (the floor included); computed
    once per Headline frame, row and baseline (a short report asks for the
    same cells many times while it fits its lines).  Callers get a new dict
    of the shared, read-only cells."""
    return dict(h.cached(("cells", row, baseline), lambda: _cells(h, row, baseline)))


def _cells(h: Headline, row: Row, baseline: str) -> dict[str, Cell]:
    ps = _per_seed(h, row)
    out: dict[str, Cell] = {}
    if ps.empty or baseline not in ps.index.get_level_values(0):
        return out
    base = ps.loc[baseline]
    floor = ps.loc[FLOOR_DESIGN].mean(axis=1) if FLOOR_DESIGN in ps.index.get_level_values(0) \
        else None
    for d in h.design_names:
        if d not in ps.index.get_level_values(0):
            continue
        mine = ps.loc[d]
        ratios, zeros, both0, undefined, per_seed = [], 0, 0, [], {s: [] for s in ps.columns}
        means, bmeans, fl = [], [], []
        for w in h.workload_names:
            if w not in mine.index or w not in base.index:
                continue
            v, b = float(mine.loc[w].mean()), float(base.loc[w].mean())
            if math.isnan(v) or math.isnan(b):
                continue
            means.append(v)
            bmeans.append(b)
            if b == 0:
                if v == 0:
                    ratios.append(1.0)
                    both0 += 1
                else:
                    undefined.append(w)
                    continue
            else:
                ratios.append(v / b)
                zeros += v == 0
            for s in ps.columns:
                vs, bs = float(mine.loc[w, s]), float(base.loc[w, s])
                if not (math.isnan(vs) or math.isnan(bs)):
                    per_seed[s].append(1.0 if bs == 0 and vs == 0 else
                                       (vs / bs if bs else math.nan))
            if floor is not None and w in floor.index:
                f = float(floor.loc[w])
                if f > 0 and not math.isnan(f):
                    fl.append(v / f)
        seed_g = [geomean(x) for x in per_seed.values() if x]
        seed_g = [g for g in seed_g if not math.isnan(g)]
        sd = (float(np.std(seed_g, ddof=1)) / float(np.mean(seed_g)) * 100
              if len(seed_g) > 1 and np.mean(seed_g) > 0 else math.nan)
        out[d] = Cell(design=d, row=row, geomean=geomean(ratios),
                      lo=min(ratios) if ratios else math.nan,
                      hi=max(ratios) if ratios else math.nan, sd_pct=sd,
                      n_seeds=len(ps.columns), n_workloads=len(ratios), zeros=zeros,
                      undefined=undefined, vs_floor=geomean(fl) if fl else math.nan,
                      mean_value=float(np.mean(means)) if means else math.nan,
                      base_mean_value=float(np.mean(bmeans)) if bmeans else math.nan,
                      both_zero=both0)
    return out


def frame(h: Headline, rows: list[Row], baseline: str) -> pd.DataFrame:
    """Every cell as a tidy frame (for tests and the csv consumers)."""
    recs = []
    for r in rows:
        for d, c in cells(h, r, baseline).items():
            recs.append({"design": d, "metric": r.metric, "stat": r.stat,
                         "geomean": c.geomean, "lo": c.lo, "hi": c.hi, "sd_pct": c.sd_pct,
                         "n_seeds": c.n_seeds, "n_workloads": c.n_workloads, "zeros": c.zeros,
                         "undefined": len(c.undefined), "vs_floor": c.vs_floor})
    return pd.DataFrame(recs)
