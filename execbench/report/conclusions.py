"""The opening sentences of the short report, computed from the numbers.

One paragraph per headline question (:data:`.headline.QUESTIONS`), about
the question's first row present in the run:

* which design is lowest by the geometric mean of its per-workload ratios
  to the baseline (:mod:`.summary`), by how much (the geomean and its
  min-max over the workloads), and how far it stays from the floor;
* where the answer depends on the workload: the workloads on which another
  design has the lowest mean value, and those on which the best design is
  worse than the baseline;
* where the baseline is 0 the ratio is undefined: the sentence compares
  mean values per workload instead ("0 vs 1.3e+12"), never ``inf``.

Designs whose values are within 0.5 % of each other are a tie: the
simulated designs often share page tables and then give identical counts.
"""
from __future__ import annotations

import math

from . import attribution
from .data import Headline
from .headline import FLOOR_DESIGN, QUESTIONS, Row, Table, alias, fmt_sig, present_rows
from .summary import Cell, cells

TIE = 0.005


def _x(v: float) -> str:
    return f"{fmt_sig(v)}x"


def _key(c: Cell) -> float:
    """Sort key: the geomean ratio; 0 when the design is 0 everywhere;
    +inf when the ratio is undefined everywhere (baseline 0)."""
    if c.all_zero:
        return 0.0
    if math.isnan(c.geomean):
        return math.inf
    return c.geomean


def _names(ds: list[str]) -> str:
    return ds[0] if len(ds) == 1 else ", ".join(ds[:-1]) + " and " + ds[-1]


def _dn(ds: list[str]) -> str:
    """Design names as the report's table shows them (short aliases)."""
    return _names([alias(d) for d in ds])


def _winners(h: Headline, row: Row, designs: list[str]) -> dict[str, list[str]]:
    """workload -> the designs with the lowest mean value there (ties kept)."""
    out = {}
    for w in h.workload_names:
        t = Table(h, w, [row])
        vals = {d: t.value(d, row) for d in designs if d in t.designs}
        vals = {d: v for d, v in vals.items() if not math.isnan(v)}
        if not vals:
            continue
        lo = min(vals.values())
        out[w] = [d for d, v in vals.items() if v <= lo + abs(lo) * TIE]
    return out


def sentence(h: Headline, question: str, row: Row, baseline: str) -> str:
    cs = cells(h, row, baseline)
    designs = [d for d in h.design_names if d in cs and d != FLOOR_DESIGN]
    if not designs or baseline not in cs:
        return ""
    label = f"{question} ({row.label}, {row.unit})"
    if cs[baseline].base_mean_value == 0:
        # the baseline is 0 on every workload: no ratio exists, compare values
        zero = [d for d in designs if cs[d].mean_value == 0]
        nonzero = [d for d in designs if cs[d].mean_value != 0]
        if not nonzero:
            return f"{question}: none (0 for every design on every workload)."
        vals = ", ".join(f"{alias(d)} {fmt_sig(cs[d].mean_value / row.scale)}" for d in nonzero)
        return (f"{label}: {_dn(zero)} {'is' if len(zero) == 1 else 'are'} 0 on every "
                f"workload; {vals} {row.unit} (mean per workload): 0 vs those.")
    order = sorted(designs, key=lambda d: (_key(cs[d]), designs.index(d)))
    best = order[0]
    b = _key(cs[best])
    ties = [d for d in order if abs(_key(cs[d]) - b) <= TIE * max(b, 1e-300)]
    c = cs[best]
    verb = "is" if len(ties) == 1 else "are"
    if c.all_zero:
        head = f"{_dn(ties)} {verb} 0 on every workload"
    elif b >= 1 - TIE:
        near = next((d for d in order if d != baseline), None)
        head = f"no design beats {baseline}"
        if near and not math.isinf(_key(cs[near])):
            head += f"; the nearest, {alias(near)}, is at {_x(_key(cs[near]))}"
    else:
        rng = f"{fmt_sig(c.lo, 2)}-{fmt_sig(c.hi, 2)}x" if c.lo != c.hi else _x(c.lo)
        # the range is over every workload the report covers unless fewer had a ratio
        over = ("" if c.n_workloads == len(h.workload_names) else
                f" over {c.n_workloads} workload{'' if c.n_workloads == 1 else 's'}")
        head = f"{_dn(ties)} {verb} lowest at {_x(c.geomean)} {baseline} ({rng}{over})"
    parts = [f"{label}: {head}"]
    if b < 1 - TIE:
        if not math.isnan(c.vs_floor):
            parts.append(f"{_x(c.vs_floor)} the floor")
        elif FLOOR_DESIGN in cs and cs[FLOOR_DESIGN].all_zero and not c.all_zero:
            parts.append("the floor is 0")
    if c.undefined:
        parts.append(f"{baseline} is 0 but {alias(best)} not on {_wl(c.undefined)}")
    # where the answer depends on the workload
    wins = _winners(h, row, designs)
    other = {w: ds for w, ds in wins.items() if not set(ties) & set(ds)}
    dep = []
    if other:
        by: dict[str, list[str]] = {}
        for w, ds in other.items():
            by.setdefault(_dn(ds), []).append(w)
        items = sorted(by.items(), key=lambda kv: -len(kv[1]))
        dep += [f"{who} {'is' if ' and ' not in who else 'are'} lower on {_wl(ws)}"
                for who, ws in items[:2]]
        if len(items) > 2:
            dep.append("others elsewhere")
    worse = [w for w in h.workload_names if _worse(h, w, row, best, baseline)]
    if worse and best != baseline and b < 1 - TIE:
        dep.append(f"{alias(best)} is above {baseline} on {_wl(worse)}")
    text = ", ".join(parts) + "."
    if dep:
        text += " By workload: " + "; ".join(dep) + "."
    elif len(h.workload_names) > 1:
        text += " Same ranking on every workload."
    return text


def _wl(ws: list[str]) -> str:
    return _names(ws) if len(ws) <= 2 else f"{len(ws)} workloads ({ws[0]}, ...)"


def _worse(h: Headline, w: str, row: Row, d: str, base: str) -> bool:
    t = Table(h, w, [row])
    v, b = t.value(d, row), t.value(base, row)
    return not (math.isnan(v) or math.isnan(b)) and v > b * (1 + TIE)


def noop_cpa(h: Headline) -> str:
    """The share of each design's ``set_memory_*`` calls that change no PTE
    (``cpa_calls - cpa_calls_effective``: the permissions are already what
    is asked, or the range is 0 pages), summed over the workloads (mean
    over seeds); "" when the run lacks either metric."""
    df = h.df[h.df.metric.isin(["cpa_calls", "cpa_calls_effective"])]
    if set(df.metric.unique()) != {"cpa_calls", "cpa_calls_effective"}:
        return ""
    tot = (df.groupby(["design", "workload", "metric"])["final"].mean()
           .groupby(["design", "metric"]).sum().unstack())
    parts = []
    for d in h.design_names:
        if d == FLOOR_DESIGN or d not in tot.index or not tot.loc[d, "cpa_calls"]:
            continue
        share = 1 - tot.loc[d, "cpa_calls_effective"] / tot.loc[d, "cpa_calls"]
        parts.append(f"{alias(d)} {fmt_sig(100 * share, 2)}%")
    if not parts:
        return ""
    return ("Share of set_memory_* calls that change no PTE (already so, or 0 pages): "
            f"{', '.join(parts)}.")


def paragraphs(h: Headline, baseline: str) -> list[tuple[str, str]]:
    """(question, sentence) for every question with a row in the run."""
    out = []
    for q, rows in QUESTIONS:
        present = present_rows(h, list(rows))
        if not present:
            continue
        s = sentence(h, q, present[0], baseline)
        extra = _EXTRA.get(q)
        if s and extra and present[0].metric in extra[0]:
            more = extra[1](h)
            s += (" " + more) if more else ""
        if s:
            out.append((q, s))
    return out


#: what drives the number, appended to a question's sentence when its first
#: row is one of the metrics named: (metrics, function of the run)
_EXTRA = {"text pokes": (("text_pokes",), attribution.poke_sources),
          "W+X exposure": (("wx_page_ns",), attribution.wx_sensitivity),
          "permission flips": (("cpa_calls_effective",), noop_cpa)}
