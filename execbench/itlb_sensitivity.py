"""How far the dynamic iTLB headline depends on the assumed fetch stream.

Every fetch-stream default of :class:`execbench.metrics.itlb.ItlbParams`
that is not a simulation setting is *assumed* (docs/itlb.md lists them and
why).  An assumed default is only acceptable together with its
sensitivity: this module replays one workload on each design while one
parameter at a time moves over a grid (the others at their defaults), and
reports, per parameter, each design's ratio to ``legacy`` and the range of
values over which the ranking of the designs is the same as at the
defaults.  notebooks/itlb-sensitivity.ipynb draws it.

One-at-a-time, not a full factorial: it answers "which assumption moves the
answer", the question a reviewer asks first, at a cost linear in the grid.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .metrics.itlb import ItlbParams
from .replay import run
from .trace import Trace

#: the assumed stream parameters and the values swept for each (the default
#: of each is in its list, so every row of the sweep has a baseline)
GRID: dict[str, tuple[float, ...]] = {
    "vmlinux_text_mib": (8, 16, 32),
    "vmlinux_share": (0.3, 0.5, 0.7),
    "user_share": (0.0, 0.25, 0.5),
    "user_text_mib": (1, 2, 4),
    "module_zipf": (0.5, 1.0, 1.5),
    "visit_blocks": (4, 8, 16),
}
METRICS = ("itlb_miss_per_mfetch", "stlb_miss_per_mfetch")
BASELINE = "legacy"


def sweep(trace: Trace, designs: Sequence[str], grid: Mapping[str, Sequence[float]] = GRID,
          seed: int = 0, checkpoints: int = 4, cpu: str = "skylake-sp") -> pd.DataFrame:
    """One row per (param, value, design): the time-weighted mean of each
    :data:`METRICS` over the replay, and its ratio to :data:`BASELINE` at the
    same setting (NaN when the baseline is 0).  Settings that coincide (every
    parameter's default) are replayed once."""
    if BASELINE not in designs:
        designs = [BASELINE, *designs]
    defaults = ItlbParams()
    cache: dict[tuple, dict[str, float]] = {}
    rows = []
    for param, values in grid.items():
        if not hasattr(defaults, param):
            raise ValueError(f"unknown iTLB parameter {param!r}")
        for value in values:
            setting = tuple(sorted({param: value, "checkpoints": checkpoints}.items()))
            if value == getattr(defaults, param):
                setting = (("checkpoints", checkpoints),)
            for d in designs:
                key = (setting, d)
                if key not in cache:
                    r = run(trace, d, seed=seed, progress=False,
                            machine={"itlb_cpu": cpu, "itlb_params": setting})
                    st = r.stats
                    cache[key] = {m: float(st[m][2]) for m in METRICS}
                rows.append({"param": param, "value": float(value), "design": d,
                             "default": value == getattr(defaults, param), **cache[key]})
    df = pd.DataFrame(rows)
    for m in METRICS:
        base = df[df.design == BASELINE].set_index(["param", "value"])[m]
        b = df.set_index(["param", "value"]).index.map(base)
        df[f"{m}_ratio"] = np.where(np.asarray(b) > 0, df[m] / np.asarray(b), np.nan)
    return df


#: two designs closer than this (relative) are not ranked against each other
TIE = 0.05


def reversals(df: pd.DataFrame, metric: str, tie: float = TIE) -> pd.DataFrame:
    """Per (param, value): the pairs of designs that are clearly ordered at the
    defaults (the lower one below ``1 - tie`` of the higher) and clearly the
    other way round at this setting.  Pairs within ``tie`` of each other at
    either point are not counted: a 2 % wobble between two near-equal designs
    is noise of the assumed stream, not a change of the answer."""
    default = df[df["default"]].drop_duplicates("design").set_index("design")[metric]
    designs = sorted(default.index)
    out = []
    for (param, value), g in df.groupby(["param", "value"], sort=False):
        v = g.set_index("design")[metric]
        flips = []
        for i, a in enumerate(designs):
            for b in designs[i + 1:]:
                lo, hi = (a, b) if default[a] < default[b] else (b, a)
                if not default[lo] < (1 - tie) * default[hi]:
                    continue
                if v[lo] > v[hi] / (1 - tie):
                    flips.append(f"{hi} < {lo}")
        out.append({"param": param, "value": value, "default": bool(g["default"].iloc[0]),
                    "reversed": "; ".join(flips)})
    return pd.DataFrame(out)


def holds(df: pd.DataFrame, metric: str, tie: float = TIE) -> pd.DataFrame:
    """Per parameter: the swept values at which no clearly ordered pair of
    designs is reversed (:func:`reversals`), as ``lo..hi`` when they form one
    run, and what reverses at the others."""
    r = reversals(df, metric, tie)
    out = []
    for param, g in r.groupby("param", sort=False):
        vals = g.value.tolist()
        ok = g[g.reversed == ""].value.tolist()
        if ok and vals[vals.index(ok[0]): vals.index(ok[-1]) + 1] == ok:
            span = f"{ok[0]:g}..{ok[-1]:g}" if len(ok) > 1 else f"{ok[0]:g}"
        else:
            span = ", ".join(f"{v:g}" for v in ok) or "none"
        bad = "; ".join(f"at {v:g}: {x}" for v, x in zip(g.value, g.reversed) if x)
        out.append({"param": param, "swept": ", ".join(f"{v:g}" for v in vals),
                    "ranking holds": span, "reversed": bad})
    return pd.DataFrame(out)
