"""What drives a design's text pokes and W+X exposure, and which loader
strategy each row uses -- computed sentences for the short report.

* :func:`loader_strategies`: each design's ``loader`` parameter (recorded in
  ``meta.json``) with the design's own label for it ("what-if",
  "extrapolation"; :meth:`execbench.design.Design.loader_note`).  ``rw`` and
  ``temp_rw`` write module text alike (plain stores into writable pages);
  ``staged`` (a writable copy, one write per area) and ``inplace`` (every
  write through the design's write path) are each their own class, so
  ``inplace`` vs ``staged`` rows are never like for like.
* :func:`poke_sources`: the largest ``text_pokes_<source>`` of each design,
  pooled over workloads (mean over seeds per workload, summed).
* :func:`wx_sensitivity`: per design with W+X exposure, the share of it that
  accrued while ``__text_poke()`` ran (``text_poke_wx_page_ns``) -- that part
  scales with the assumed text_poke cost -- and its largest cause
  (``wx_page_ns_<cause>``).
* :func:`faults_as_posted`: the writes a design as posted would fault on.

Every function tolerates a results set without these metrics (an older
run): it then returns ''.
"""
from __future__ import annotations

import math

from .. import registry
from .data import Headline
from .headline import FLOOR_DESIGN, alias, fmt_sig

#: strategies that write module text alike
LIKE = {"rw": "plain", "temp_rw": "plain", "staged": "staged", "inplace": "inplace"}
#: one-line meaning of each strategy (models/common/load_work.py)
MEANING = {"rw": "plain stores into RW+NX memory",
           "temp_rw": "text RW+NX for the load, plain stores",
           "staged": "built in a writable copy, one write per area",
           "inplace": "each write by text_poke"}


def _designs(h: Headline) -> list[str]:
    return [d.name for d in h.designs if d.name != FLOOR_DESIGN]


def pooled(h: Headline, design: str, metric: str) -> float:
    """Sum over workloads of the mean over seeds of ``metric``'s final value
    (NaN when the run lacks the metric)."""
    df = h.df
    sub = df[(df.design == design) & (df.metric == metric)]
    if sub.empty:
        return math.nan
    return float(sub.groupby("workload")["final"].mean().sum())


def loader_of(h: Headline, design: str) -> str:
    p = next((d.params for d in h.designs if d.name == design), None) or {}
    v = p.get("loader")
    return str(v) if v not in (None, "") else "-"


def loader_note(h: Headline, design: str) -> str:
    p = next((d.params for d in h.designs if d.name == design), None) or {}
    try:
        cls = registry.get(design)
    except KeyError:
        return ""
    params = dict(p)
    if isinstance(params.get("version"), list):
        params["version"] = tuple(params["version"])
    return cls.loader_note(params)


def loader_strategies(h: Headline, base: str, compact: bool = False) -> str:
    """The 'Loader strategy' assumption: which strategy each row uses
    (``compact``: without the one-line meaning of each strategy)."""
    by: dict[str, list[str]] = {}
    for d in _designs(h):
        by.setdefault(loader_of(h, d), []).append(d)
    if set(by) == {"-"}:
        return "Loader strategy (inplace|staged|temp_rw|rw): not recorded in this run."
    groups = []
    for s in sorted(by, key=lambda s: list(MEANING).index(s) if s in MEANING else 99):
        names = []
        for d in by[s]:
            note = loader_note(h, d)
            names.append(alias(d) + (f" [{note.split(' (')[0]}]" if note else ""))
        meaning = "" if compact else f" ({MEANING.get(s, 'not recorded')})"
        groups.append(f"{s}{meaning}: {', '.join(names)}")
    b = loader_of(h, base)
    out = "Loader strategy: " + "; ".join(groups) + "."
    if b != "-":
        out += f" ~: loads unlike {base}: its text_poke and W+X carry that cost"
        out += "; inplace vs staged is not like for like." if "inplace" in by and "staged" in by \
            else "."
    elif "inplace" in by and "staged" in by:
        out += " inplace vs staged is not like for like."
    return out


def poke_sources(h: Headline) -> str:
    """'Largest text_poke source (pooled over workloads): mat orc_sort 92%, ...'"""
    from ..kernel.text_poke import SOURCES
    items = []
    for d in _designs(h):
        total = pooled(h, d, "text_pokes")
        if not total or math.isnan(total):
            continue
        per = {s: pooled(h, d, f"text_pokes_{s}") for s in SOURCES}
        per = {s: v for s, v in per.items() if not math.isnan(v) and v > 0}
        if not per:
            return ""
        s, v = max(per.items(), key=lambda kv: kv[1])
        items.append((alias(d), f"{s} {_pct(v / total)}"))
    if not items:
        return ""
    return "Largest text_poke source (pooled): " + _grouped(items) + "."


def _grouped(items: list[tuple[str, str]]) -> str:
    """'a, b x; c y' from [(a, x), (b, x), (c, y)] (first-seen order)."""
    by: dict[str, list[str]] = {}
    for name, what in items:
        by.setdefault(what, []).append(name)
    return "; ".join(f"{' and '.join(ns)} {what}" for what, ns in by.items())


def wx_sensitivity(h: Headline) -> str:
    """Per design with W+X exposure: the share accrued inside text_poke and
    the largest cause."""
    from ..kernel.pagetable import WX_CAUSES
    cost = h.costs.get("text_poke")
    items = []
    for d in _designs(h):
        total = pooled(h, d, "wx_page_ns")
        if not total or math.isnan(total):
            continue
        in_poke = pooled(h, d, "text_poke_wx_page_ns")
        if math.isnan(in_poke):
            return ""
        causes = {c: pooled(h, d, f"wx_page_ns_{c}") for c in WX_CAUSES}
        causes = {c: v for c, v in causes.items() if not math.isnan(v) and v > 0}
        top = max(causes.items(), key=lambda kv: kv[1]) if causes else None
        s = f"{_pct(in_poke / total)} inside text_poke"
        if top:
            s += f", {_pct(top[1] / total)} {top[0]}"
        items.append((alias(d), s))
    if not items:
        return ""
    c = f" ({fmt_sig(cost)} ns)" if cost else ""
    return ("Of it: " + _grouped(items) + f"; the part inside text_poke scales with its "
            f"assumed cost{c}.")


def faults_as_posted(h: Headline) -> str:
    vals = {d: pooled(h, d, "faults_as_posted") for d in _designs(h)}
    if all(math.isnan(v) for v in vals.values()):
        return ""
    nz = [f"{alias(d)} {_num(v)}" for d, v in vals.items() if v and not math.isnan(v)]
    out = "faults_as_posted (RO-text stores as posted): " + (", ".join(nz) if nz else "0")
    mats = [alias(d) for d in vals if d.startswith("module_alloc_type")]
    if mats:
        out += f" (+ {mats[0]}'s optimize_nops()/static-call fixups: not countable)"
    return out + "."


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else fmt_sig(v)


def _pct(x: float) -> str:
    if x >= 0.9995:
        return ">99.9%" if x < 1 else "100%"
    if x < 0.001:
        return "<0.1%"
    return f"{x * 100:.1f}%" if x < 0.1 else f"{x * 100:.0f}%"
