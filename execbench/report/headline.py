"""The numbers that decide the argument, and how they are shown.

Every format (email, markdown, csv) shows the same *headline rows*: for
each metric named in :data:`HEADLINE`, the summary statistic that matters
(a gauge by its time-weighted mean or its peak, a counter by its total),
averaged over seeds, with its ratio to the baseline design
(:data:`execbench.registry.BASELINE`) and to the floor.

The floor: when the run has rows for a design called ``floor``
(:func:`execbench.metrics.floor.with_floor` adds them: not a
design, the lower bound no allocator beats; docs/metrics.md) its values are the floor.
Otherwise a design-free stand-in from the metric catalogue is used where
one exists (``itlb_entries`` -> ``itlb_entries_ideal``, ``backing_bytes``
-> ``requested_bytes``); both come from the trace alone, so they are the
same for every design.  Metrics without a floor get no "x floor" ratio.

Display units scale bytes to KiB and ns to ms so that cells stay narrow;
the csv format always carries the unscaled numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd

from .. import registry
from ..metrics import METRICS
from .data import Headline

FLOOR_DESIGN = "floor"


@dataclass(frozen=True)
class Row:
    """One headline row: a metric, the statistic shown and how to label it."""

    metric: str
    stat: str          # final | peak | mean
    label: str         # short, <= 14 chars: fits a 72-column table
    unit: str          # display unit
    scale: float = 1.0  # display value = value / scale

    @property
    def key(self) -> str:
        return f"{self.metric}.{self.stat}"


#: (metric, stat, label, display unit, scale); rows whose metric is not in
#: the catalogue (e.g. a metric not implemented yet) are skipped.
HEADLINE: tuple[Row, ...] = (
    Row("itlb_entries", "mean", "iTLB entries", "mean"),
    Row("itlb_entries", "peak", "iTLB entries", "peak"),
    Row("itlb_miss_per_mfetch", "mean", "iTLB miss/Mf", "mean"),
    Row("backing_bytes", "peak", "backing", "peak KiB", 1024.0),
    Row("internal_frag", "mean", "internal frag", "mean"),
    Row("cpa_calls", "final", "set_memory_*", "calls"),
    Row("cpa_calls_effective", "final", "set_memory eff", "calls"),
    Row("tlb_shootdowns", "final", "shootdowns", "IPIs"),
    Row("tlb_flush_all", "final", "flush_tlb_all", "flushes"),
    Row("direct_map_level2_splits", "final", "dmap 2M split", "splits"),
    Row("direct_map_level3_splits", "final", "dmap 1G split", "splits"),
    Row("DirectMap4k", "final", "DirectMap4k", "kB (end)"),
    Row("DirectMap2M", "final", "DirectMap2M", "kB (end)"),
    Row("DirectMap1G", "final", "DirectMap1G", "kB (end)"),
    Row("text_pokes", "final", "text_poke", "calls"),
    Row("wx_page_ns", "final", "W+X exposure", "page*ms", 1e6),
    Row("wx_pages_peak_instant", "final", "W+X pages", "peak inst"),
    Row("api_calls", "final", "API calls", "calls"),
    Row("api_entry_points", "final", "API functions", "distinct"),
    Row("cpu_ns", "final", "CPU time", "ms", 1e6),
    Row("alloc_failures", "final", "alloc failures", "calls"),
)

#: design-free stand-ins for the floor when no ``floor`` design is registered
FLOOR_PROXY: dict[tuple[str, str], tuple[str, str]] = {
    ("itlb_entries", "mean"): ("itlb_entries_ideal", "mean"),
    ("itlb_entries", "peak"): ("itlb_entries_ideal", "peak"),
    ("backing_bytes", "peak"): ("requested_bytes", "peak"),
}


#: The rows of the default (short) report, grouped by the question each
#: answers, in print order.  ONE table, meant to be edited: a row whose
#: metric is absent from a results set (a metric added after the run, or
#: not yet merged) is skipped, so rows for metrics still being added are
#: listed here already.  The first present row of a question is the one its
#: conclusion sentence is about.
QUESTIONS: tuple[tuple[str, tuple[Row, ...]], ...] = (
    ("iTLB footprint", (
        Row("itlb_entries", "mean", "iTLB entries", "mean"),
        Row("itlb_miss_per_mfetch", "mean", "iTLB miss/Mf", "mean"),
    )),
    ("memory and fragmentation", (
        Row("backing_bytes", "peak", "backing", "peak KiB", 1024.0),
    )),
    ("permission flips", (
        Row("cpa_calls_effective", "final", "set_memory eff", "calls"),
        Row("direct_map_level2_splits", "final", "dmap 2M split", "splits"),
        # dropped first when the short report runs out of lines; the
        # conclusion names the share of calls that change nothing
        Row("cpa_calls", "final", "set_memory_*", "calls"),
    )),
    ("TLB shootdowns", (
        Row("tlb_shootdowns", "final", "shootdowns", "IPIs"),
    )),
    ("text pokes", (
        Row("text_pokes", "final", "text_poke", "calls"),
    )),
    ("W+X exposure", (
        Row("wx_page_ns", "final", "W+X exposure", "page*ms", 1e6),
    )),
    ("interface size", (
        Row("api_entry_points", "final", "API functions", "distinct"),
    )),
    ("allocation failures", (
        Row("alloc_failures", "final", "alloc failures", "calls"),
    )),
)


def present_rows(h: "Headline", rows=None) -> list[Row]:
    """``rows`` (default: every row of :data:`QUESTIONS`) whose metric the
    run has -- reports tolerate metrics missing from a results set."""
    have = set(h.df.metric.unique())
    rows = rows if rows is not None else [r for _, rs in QUESTIONS for r in rs]
    rows = [r for r in rows if r.metric in have]
    units = ARCH_UNITS.get(getattr(h, "machine", {}).get("arch", "x86_64"), {})
    return [replace(r, unit=units[r.metric]) if r.metric in units else r for r in rows]


#: units that mean something else on another architecture: arm64 invalidates
#: kernel TLB entries with broadcast TLBI instructions, not IPIs
#: (execbench/kernel/arch/arm64_tlb.py), so its shootdowns are not "IPIs"
ARCH_UNITS: dict[str, dict[str, str]] = {"arm64": {"tlb_shootdowns": "TLBI bcast"}}


def headline_rows() -> list[Row]:
    known = {m.name for m in METRICS}
    return [r for r in HEADLINE if r.metric in known]


def all_rows() -> list[Row]:
    """Every metric with every statistic that is meaningful for its kind
    (gauges: mean and peak; counters: final) -- for the csv format -- plus
    any headline row with another statistic (the DirectMap gauges at the
    end of the trace, as /proc/meminfo shows them), so the full csv holds
    every number the short formats print."""
    out = []
    for m in METRICS:
        for st in (("mean", "peak") if m.kind == "gauge" else ("final",)):
            out.append(Row(m.name, st, m.name, m.unit))
    have = {(r.metric, r.stat) for r in out}
    return out + [r for r in headline_rows() if (r.metric, r.stat) not in have]


def ratio(value: float, base: float) -> float:
    """value / base; 1 when both are 0; inf when only the base is 0 (shown
    as ``n/a``, never ``inf``); NaN
    when either is undefined (a metric the floor does not bound)."""
    if math.isnan(value) or math.isnan(base):
        return math.nan
    if base == 0:
        return 1.0 if value == 0 else math.inf
    return value / base


def fmt_ratio(r: float | None) -> str:
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return "-"
    if math.isinf(r):
        return "n/a"      # the baseline is 0 and the design is not: no ratio
    if 0 < r < 0.1:
        return f"{r:.2g}x"
    if r < 10:
        return f"{r:.2f}x"
    if r < 1000:
        return f"{r:.1f}x"
    return f"{r:,.0f}x"


def fmt_value(v: float | None) -> str:
    """Display a scaled value: integers grouped, otherwise 4 significant
    digits below 10 and one decimal above (stable across runs)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if float(v).is_integer():
        return f"{int(v):,}"
    if abs(v) < 10:
        return f"{v:.4g}" if abs(v) >= 0.001 else f"{v:.2e}"
    return f"{v:,.1f}"


def fmt_sig(v: float | None, digits: int = 3) -> str:
    """``digits`` significant figures, thousands grouped, no exponent below
    10^9 -- the one number format of the short report and the terminal
    tables (0.0287, 0.681, 1.02, 12.3, 123, 1,234, 12,346)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    if math.isinf(v):
        return "-"
    mag = math.floor(math.log10(abs(v)))
    dec = max(digits - 1 - mag, 0)
    r = round(v, dec)
    if r and math.floor(math.log10(abs(r))) > mag:     # 9.996 -> 10.0, not 10.00
        mag += 1
        dec = max(digits - 1 - mag, 0)
        r = round(v, dec)
    if mag >= 9:
        return f"{v:.{digits - 1}e}"
    if dec == 0:
        return f"{int(r):,}"
    return f"{r:,.{dec}f}"


#: short names for tables that must fit 72 columns; the legend is printed
#: with them.  A design not listed keeps its name.
ALIASES = {"legacy": "legacy", "jitalloc": "jit", "module_alloc_type": "mat",
           "module_alloc_type_pmd": "mat_pmd", "execmem": "execmem", "execmem_rox": "rox",
           "floor": "floor"}


def alias(design: str) -> str:
    return ALIASES.get(design, design)


_STATS = {"final": 0, "peak": 1, "mean": 2}


def _workload_means(h: Headline, workload: str) -> tuple[dict, list[str]]:
    """``(design, metric) -> (final, peak, mean)`` means over the seeds, and
    the designs the workload has, computed once per Headline frame and
    workload: a short report builds its tables hundreds of times while it
    fits its lines (a filter and a groupby each took it to a minute)."""
    def compute() -> tuple[dict, list[str]]:
        sub = h.df[h.df.workload == workload]
        g = sub.groupby(["design", "metric"])[list(_STATS)].mean()
        present = set(sub.design)
        return ({k: tuple(float(x) for x in v) for k, v in zip(g.index, g.to_numpy().tolist())},
                [d for d in h.design_names if d in present])
    return h.cached(("workload_means", workload), compute)


class Table:
    """Mean-over-seeds values for one workload, with baseline and floor."""

    def __init__(self, h: Headline, workload: str, rows: list[Row] | None = None):
        self.h = h
        self.workload = workload
        self.rows = rows if rows is not None else headline_rows()
        self._g, self.designs = _workload_means(h, workload)
        self.baseline = registry.BASELINE if registry.BASELINE in self.designs else (
            self.designs[0] if self.designs else None)
        self.has_floor_design = FLOOR_DESIGN in self.designs

    def value(self, design: str, row: Row) -> float:
        v = self._g.get((design, row.metric))
        return math.nan if v is None else v[_STATS[row.stat]]

    def floor(self, row: Row) -> float | None:
        """The floor for this row, or None when there is none."""
        if self.has_floor_design:
            return self.value(FLOOR_DESIGN, row)
        proxy = FLOOR_PROXY.get((row.metric, row.stat))
        if proxy is None or self.baseline is None:
            return None
        return self.value(self.baseline, Row(proxy[0], proxy[1], "", ""))

    def vs_baseline(self, design: str, row: Row) -> float:
        return ratio(self.value(design, row), self.value(self.baseline, row))

    def vs_baseline_value(self, value: float, row: Row) -> float:
        """Ratio of an arbitrary value (e.g. the floor) to the baseline's."""
        return ratio(value, self.value(self.baseline, row))

    def vs_floor(self, design: str, row: Row) -> float | None:
        f = self.floor(row)
        if f is None or f == 0 or math.isnan(f):
            return None
        return ratio(self.value(design, row), f)

    def floor_label(self) -> str | None:
        """Name of the extra floor row, None if the floor is a design row."""
        if self.has_floor_design:
            return None
        return "floor (ideal)" if any(self.floor(r) is not None for r in self.rows) else None

    def tidy(self) -> pd.DataFrame:
        """Long table: workload, design, metric, stat, unit, value, vs_<baseline>, vs_floor."""
        unit = {m.name: m.unit for m in METRICS}
        recs = []
        for d in self.designs:
            for r in self.rows:
                vf = self.vs_floor(d, r)
                recs.append({"workload": self.workload, "design": d, "metric": r.metric,
                             "stat": r.stat, "unit": unit.get(r.metric, ""),
                             "value": self.value(d, r), "vs_baseline": self.vs_baseline(d, r),
                             "vs_floor": math.nan if vf is None else vf})
        return pd.DataFrame(recs)
