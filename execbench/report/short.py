"""``execbench report`` (default): a short plain-text body for an LKML reply.

At most :data:`MAX_LINES` lines of at most 72 columns, ASCII, spaces only
(Documentation/process/submitting-patches.rst: "No MIME, no links, no
compression, no attachments.  Just plain text"; "Quantify optimizations and
trade-offs").  In order:

1. what was run (version, commit, designs x workloads x seeds);
2. the conclusions, one paragraph per headline question
   (:mod:`.conclusions`);
3. one headline table: designs as rows (short aliases, legend below), per
   headline row the geometric mean over the workloads of the per-workload
   ratio to the baseline with the spread over seeds as ``+-x%`` (sample
   stddev of the per-seed geomeans, n seeds, like ``perf stat -r``), and
   the min-max over the workloads (:mod:`.summary`);
4. the assumptions: designs with their loader strategy, the CPU preset and
   machine, the units, what is synthetic in which workload;
5. how to reproduce it and where the charts are.

``execbench report --full`` prints the exhaustive per-workload tables
(:func:`.email.render_full`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from . import attribution
from .conclusions import paragraphs
from .data import Headline, arch_phrase
from .email import WIDTH, ascii_only, render_grid, wrap
from .headline import FLOOR_DESIGN, QUESTIONS, Row, Table, alias, fmt_sig, present_rows
from .summary import Cell, cells

MAX_LINES = 100
#: chart kinds written per workload by :mod:`execbench.charts`
CHART_KINDS = ("itlb", "permissions", "fragmentation", "wx")


def fmt_pct(sd: float) -> str:
    """The seed spread: '' when identical on every seed, else +-x%."""
    if math.isnan(sd) or sd < 0.05:
        return ""
    return f"+-{sd:.1f}%" if sd < 1 else f"+-{sd:.0f}%"


def fmt_cell(c: Cell | None) -> tuple[str, str]:
    """(ratio with seed spread, min-max range) for one table cell; never inf."""
    if c is None or c.n_workloads == 0:
        return ("n/a", "")
    if c.all_zero:
        return ("0", "")
    g = fmt_sig(c.geomean) + fmt_pct(c.sd_pct)
    if c.zeros:
        g += "*"
    if c.undefined:
        g += "^"
    rng = "" if c.lo == c.hi else f"{fmt_sig(c.lo, 2)}-{fmt_sig(c.hi, 2)}"
    return (g, rng)


def ratio_rows(h: Headline, rows: list[Row], base: str) -> list[Row]:
    """The rows that have a ratio: the baseline is not 0 on every workload."""
    out = []
    for r in rows:
        b = cells(h, r, base).get(base)
        if b is not None and b.base_mean_value != 0 and not math.isnan(b.base_mean_value):
            out.append(r)
    return out


def baseline_of(h: Headline) -> str:
    return Table(h, h.workload_names[0]).baseline if h.workload_names else ""


def headline_tables(h: Headline, rows: list[Row], base: str) -> tuple[list[str], set[str]]:
    """The headline table: designs as rows, each design on two lines (the
    geomean ratio with its seed spread, then the min-max range over the
    workloads in parentheses), split into as many groups of headline rows
    as fit 72 columns; returns (lines, footnote marks used)."""
    cs = {r.key: cells(h, r, base) for r in rows}
    # the baseline's own row is 1 by definition: left out
    designs = [d for d in h.design_names if d != base and any(d in cs[r.key] for r in rows)]
    marks: set[str] = set()
    other_loader = loader_differs(h, base)
    if other_loader:
        marks.add("~")
    out: list[str] = []
    for per in (4, 3, 2, 1):
        out = []
        for i in range(0, len(rows), per):
            grp = rows[i:i + per]
            h1 = [""] + [r.label for r in grp]
            h2 = ["design"] + [r.unit for r in grp]
            body = []
            for d in designs:
                a, b = [alias(d) + ("~" if d in other_loader else "")], [""]
                for r in grp:
                    g, rng = fmt_cell(cs[r.key].get(d))
                    marks |= {m for m in "*^" if m in g}
                    a.append(g)
                    b.append(f"({rng})" if rng else "")
                body.append(a)
                if any(b):
                    body.append(b)
            out += render_grid(h1, h2, body) + [""]
        if all(len(x) <= WIDTH for x in out):
            break
    return out[:-1], marks


def _na_notes(h: Headline, rows: list[Row], base: str) -> list[str]:
    """For rows where the baseline is 0 on every workload: the mean values."""
    out = []
    for r in rows:
        cs = cells(h, r, base)
        b = cs.get(base)
        if b is None or b.base_mean_value != 0:
            continue
        nz = [f"{alias(d)} {fmt_sig(c.mean_value / r.scale)}" for d, c in cs.items()
              if c.mean_value]
        out += wrap(f"{r.label} ({r.unit}): {base} is 0 on every workload, so no ratio; "
                    "mean per workload: " + (", ".join(nz) + ", the others 0." if nz
                                             else "0 for every design."))
    return out


def _params(h: Headline, design: str) -> dict:
    return next((d.params for d in h.designs if d.name == design), {}) or {}


def loader_differs(h: Headline, base: str) -> set[str]:
    """Designs whose recorded ``loader`` parameter writes module text unlike
    the baseline's (:data:`.attribution.LIKE`: ``rw`` and ``temp_rw`` alike,
    ``staged`` and ``inplace`` each apart); empty when not recorded."""
    b = attribution.LIKE.get(_loader(_params(h, base)))
    if b is None:
        return set()
    return {d.name for d in h.designs if d.name not in (base, FLOOR_DESIGN)
            and _loader(d.params or {}) != "-"
            and attribution.LIKE.get(_loader(d.params or {})) != b}


def _loader(params: dict) -> str:
    v = params.get("loader")
    return str(v) if v not in (None, "") else "-"


def designs_legend(h: Headline, compact: bool = False, indent: str = "  ") -> list[str]:
    """One legend: each design's alias, the kernel whose rules it follows
    and its module-loader strategy (with the strategies' meanings unless
    ``compact``), then what v1 as posted would fault on."""
    base = baseline_of(h)
    items = []
    for d in h.designs:
        if d.name == FLOOR_DESIGN:
            continue
        name = d.name if alias(d.name) == d.name else f"{alias(d.name)} = {d.name}"
        inside = [k for k in (d.kernel if d.kernel not in ("-", "") else "",
                              _loader(d.params or {}).replace("-", "")) if k]
        note = attribution.loader_note(h, d.name)
        if note:
            inside[-1] += f" [{note.split(' (')[0]}]"
        items.append(name + (f" ({', '.join(inside)})" if inside else ""))
    floor = any(d.name == FLOOR_DESIGN for d in h.designs)
    text = ("Designs (kernel rules followed, module loader): " + "; ".join(items)
            + ("; floor = the design-free lower bound for the same live text." if floor else "."))
    loaders = {_loader(d.params or {}) for d in h.designs if d.name != FLOOR_DESIGN} - {"-"}
    if loaders and not compact:
        text += " Loaders: " + "; ".join(f"{k} = {attribution.MEANING[k]}" for k in
                                         attribution.MEANING if k in loaders) + "."
    if not loaders:
        text += " Loader strategies: not recorded in this run."
    elif "inplace" in loaders and "staged" in loaders:
        text += (f" ~: loads unlike {base}, its text_poke and W+X carry that; inplace vs "
                 "staged is not like for like.")
    elif any(_loader(d.params or {}) != _loader(next((e.params for e in h.designs
                                                     if e.name == base), {}) or {})
             for d in h.designs if d.name != FLOOR_DESIGN):
        text += f" ~: loads unlike {base}, its text_poke and W+X carry that."
    notes = [f"{alias(d.name)} {d.arch_note}" for d in h.designs if getattr(d, "arch_note", "")]
    if notes:
        text += f" On {arch_phrase(h.machine)}: " + "; ".join(notes) + "."
    faults = attribution.faults_as_posted(h)
    return wrap(text + (" " + faults if faults else ""), indent=indent, first=indent)


def _short_note(note: str) -> str:
    """What is synthetic, without the details after ':' or ';' and without
    parentheticals (the full note is in the TOML and in --full)."""
    import re
    s = re.sub(r"\s*\([^)]*\)", "", ascii_only(note)).strip()
    return re.split(r"[;:]", s)[0].strip().rstrip(".")


def synthetic_lines(h: Headline) -> list[str]:
    """One wrapped paragraph: each trace column whose values are synthetic
    somewhere (the TOMLs' ``synthetic_columns``, without their
    parenthetical detail), with the workloads where they are -- "all but
    ..." when shorter -- and columns with the same workloads together; a
    workload whose TOML lists no columns falls back to the short form of
    its note."""
    import re
    names = [w.name for w in h.workloads]
    by_col: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    measured, real = [], []
    for w in h.workloads:
        if w.synthetic_columns:
            for c in w.synthetic_columns:
                col = re.sub(r"\s*\(.*", "", ascii_only(c)).strip()
                if w.name not in by_col.setdefault(col, []):
                    by_col[col].append(w.name)
        elif w.synthetic_columns == [] and w.synthetic:
            measured.append(w.name)
        elif w.synthetic:
            note = re.sub(r"\s+(are|is) synthetic$", "", _short_note(w.synthetic))
            notes.setdefault(note, []).append(w.name)
        else:
            real.append(w.name)

    def which(ws: list[str]) -> str:
        rest = [n for n in names if n not in ws]
        if not rest:
            return "all"
        return f"all but {_wl_short(rest, names)}" if len(rest) < len(ws) else _wl_short(ws, names)

    same: dict[str, list[str]] = {}
    for col, ws in by_col.items():
        same.setdefault(which(ws), []).append(col)
    items = [f"{', '.join(cols)}: {where}" for where, cols in same.items()]
    items += [f"{_wl_short(ws, names)}: {note}" for note, ws in notes.items()]
    if measured:
        items.append(f"none in {_wl_short(measured, names)} (what is loaded, and when, is "
                     "chosen; every value measured)")
    if real:
        items.append(f"none in {_wl_short(real, names)}")
    return wrap("Synthetic trace columns (user:column; details in each workload's TOML): "
                + "; ".join(items) + ".", indent="  ", first="  ")


def _wl_short(ws: list[str], names: list[str]) -> str:
    """Workload names, a family folded to ``prefix-*`` when all of the
    run's workloads with that first name part are in ``ws``
    (qemu-6.1-cloud, ..., qemu-7.2-generic -> qemu-*)."""
    out, done = [], set()
    for w in ws:
        fam = w.split("-", 1)[0]
        members = [n for n in names if n.split("-", 1)[0] == fam]
        if len(members) > 1 and all(m in ws for m in members):
            if fam not in done:
                out.append(f"{fam}-*")
                done.add(fam)
        else:
            out.append(w)
    return ", ".join(out)


def render(h: Headline, charts: Sequence[str] = (), csv_ref: str | None = None) -> str:
    """The short report.  When it is longer than :data:`MAX_LINES`, rows
    that are not the first of their question are dropped from the end of
    the table first (the dropped ones are named; --full has them all), then
    the loader strategies lose their one-line meanings and the units go to
    --full, and last the synthetic columns shrink to a pointer."""
    full = present_rows(h)
    rows = list(full)
    firsts = {r.key for r in _first_rows(h)}
    for detail, compact in ((True, False), (True, True), (False, True)):
        rows = list(full)
        while True:
            text = _render(h, charts, csv_ref, rows, full, detail=detail, compact=compact)
            if len(text.splitlines()) <= MAX_LINES:
                return text
            extra = [r for r in reversed(rows) if r.key not in firsts]
            if not extra:
                break
            rows.remove(extra[0])
    return text


def _first_rows(h: Headline) -> list[Row]:
    out = []
    for _, rs in QUESTIONS:
        out += present_rows(h, list(rs))[:1]
    return out


def _render(h: Headline, charts: Sequence[str], csv_ref: str | None, rows: list[Row],
            all_rows: list[Row], detail: bool, compact: bool = False) -> str:
    base = baseline_of(h)
    ndes = sum(d.name != FLOOR_DESIGN for d in h.designs)
    has_floor = ndes < len(h.designs)
    seeds = ", ".join(map(str, h.seeds))
    out = wrap(f"execbench {h.version} ({h.commit}): {ndes} designs"
               f"{' + the floor' if has_floor else ''} x {_n(len(h.workloads), 'workload')} x "
               f"{_n(len(h.seeds), 'seed')} ({seeds}), one simulated {arch_phrase(h.machine)} kernel; lower is "
               "better on every metric.")
    out += [""] + designs_legend(h, compact, indent="")
    out += ["", "Conclusions:"]
    for _, s in paragraphs(h, base):
        out += wrap(s, indent="  ", first="- ")
    out += ["", "Headline numbers:"]
    out += wrap(f"Ratio to {base}: geomean over the {len(h.workloads)} workloads of (seed mean "
                f"/ {base}'s); +-: stddev over n={len(h.seeds)} seeds (none: < 0.05%); below: "
                "min-max over workloads.") + [""]
    tables, marks = headline_tables(h, ratio_rows(h, rows, base), base)
    out += tables
    notes = []
    if "*" in marks:
        notes += wrap("*: 0 on some workloads (in the range, not in the geomean).")
    if "^" in marks:
        notes += wrap(f"^: left out: workloads where {base} is 0 and the design is not.")
    said = {r.key for r in _first_rows(h)}      # their conclusion gives the values
    notes += _na_notes(h, [r for r in rows if r.key not in said], base)
    if notes:
        out += [""] + notes
    out += ["", "Assumptions:"]
    m = h.machine
    cpu = m.get("itlb_cpu", "skylake-sp (default; not recorded)")
    mem = m.get("mem_bytes")
    mach = (f"{mem / 2**30:g} GiB, frames {m.get('placement')}, KASLR "
            f"{'on' if m.get('kaslr') else 'off'}, "
            + (f"{m['numa_nodes']} NUMA nodes, " if m.get("numa_nodes", 1) != 1 else "")
            if mem else "")
    itlb = "dynamic iTLB model off" if cpu == "off" else f"iTLB model of the {cpu} CPU preset"
    units = ("Units: iTLB entries = 4K + 2M leaves mapping live text; miss/Mf = L1 iTLB "
             "misses per 10^6 fetches; backing in KiB; counters are totals over the trace; "
             "W+X in page*ms of virtual time. Primitive costs (assumed): --full."
             if not compact else "Units and primitive costs (assumed): --full.")
    out += wrap(f"Machine: {arch_phrase(m)}, {mach}{itlb}. {units}",
                indent="  ", first="  ")
    if detail:
        out += synthetic_lines(h)
    else:
        syn = [w.name for w in h.workloads if w.synthetic]
        out += wrap(f"Synthetic parts in {len(syn)} of {len(h.workloads)} workloads: what "
                    "exactly is in each workload's TOML and in --full.", indent="  ",
                    first="  ")
    left = [r.label for r in all_rows if r not in rows]
    if left:
        out += wrap(f"Not tabled here for space: {', '.join(left)} (see --full).",
                    indent="  ", first="  ")
    out += [""]
    # a run beside results/ (results/arm64/) is read with --from, not by default
    src = f" --from {Path(csv_ref).parent}" if csv_ref and Path(csv_ref).parent.name not in ("", ".", "results") else ""
    out += wrap(f"Reproduce: {h.command or 'execbench all'} (execbench {h.version}, "
                f"{h.commit}); per workload: execbench report{src} --full. Charts: "
                f"{_charts_ref(h, charts)} (execbench plot{src})."
                + (f" Unscaled: {csv_ref}." if csv_ref else ""))
    return "\n".join(ascii_only(x).rstrip() for x in out).rstrip() + "\n"


def _n(k: int, what: str) -> str:
    return f"{k} {what}" + ("" if k == 1 else "s")


def _charts_ref(h: Headline, charts: Sequence[str]) -> str:
    if not charts:
        return ("results/charts/{" + ",".join(CHART_KINDS) + "}-<workload>.svg")
    if len(charts) <= 4:
        return ", ".join(charts)
    import os
    d = os.path.dirname(charts[0]) or "."
    return f"{d}/{{{','.join(CHART_KINDS)}}}-<workload>.svg ({len(charts)} files)"
