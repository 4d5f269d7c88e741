"""``execbench report --format email``: a plain-text body for an LKML reply.

Follows Documentation/process/submitting-patches.rst ("No MIME, no links,
no compression, no attachments.  Just plain text"; "Quantify optimizations
and trade-offs ... describe the expected downsides") and the usual
mailing-list conventions: ASCII only, spaces not tabs,
every line <= 72 columns, labels left and numbers right, the better
direction stated once, baseline first, losing rows always shown, version +
commit + the command to reproduce, charts as numbered references at the
bottom.

With seven or more designs a metrics-as-rows table cannot fit 72 columns,
so the layout is transposed: designs are rows, and each table carries two
headline metrics (value and ratio to the baseline), falling back to one
metric per table when names are long.
"""
from __future__ import annotations

import math
import textwrap
from typing import Sequence

from .data import Headline, arch_phrase
from .headline import Row, Table, fmt_ratio, fmt_value, ratio

WIDTH = 72


def wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent if first is None else first,
                         subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=True) or [""]


def ascii_only(s: str) -> str:
    """Replace the few non-ASCII characters provenance text tends to carry."""
    table = {"\u2013": "-", "\u2014": "--", "\u2018": "'", "\u2019": "'", "\u201c": '"',
             "\u201d": '"', "\u00d7": "x", "\u2192": "->", "\u00b1": "+-", "\u2026": "...",
             "\u00b7": ",", "\u00a0": " ", "\u2229": " and ", "\u222a": " + ", "\u2264": "<=", "\u2265": ">="}
    return "".join(table.get(c, c if ord(c) < 128 else "?") for c in s)


def render_grid(header1: Sequence[str], header2: Sequence[str],
                body: Sequence[Sequence[str]]) -> list[str]:
    """First column left-aligned, others right-aligned; two header lines,
    a dashed rule, two spaces between columns, no trailing spaces."""
    cols = len(header2)
    widths = [max(len(r[j]) for r in [header1, header2, *body]) for j in range(cols)]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [cells[j].rjust(widths[j]) for j in range(1, cols)]
        return "  ".join(parts).rstrip()

    out = []
    if any(header1):
        out.append(line(header1))
    out.append(line(header2))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in body)
    return out


def metric_tables(t: Table, per_table: int) -> list[list[str]]:
    """Designs as rows, ``per_table`` metrics (value + ratio) per table."""
    base = t.baseline or "-"
    floor_label = t.floor_label()
    tables = []
    for i in range(0, len(t.rows), per_table):
        rows: list[Row] = t.rows[i:i + per_table]
        h1, h2 = [""], ["design"]
        for r in rows:
            h1 += [r.label, ""]
            h2 += [r.unit, f"x {base}"]
        body = []
        for d in t.designs:
            cells = [d]
            for r in rows:
                cells += [fmt_value(t.value(d, r) / r.scale), fmt_ratio(t.vs_baseline(d, r))]
            body.append(cells)
        if floor_label and any(t.floor(r) is not None for r in rows):
            cells = [floor_label]
            for r in rows:
                f = t.floor(r)
                cells += ["-", "-"] if f is None else [fmt_value(f / r.scale),
                                                       fmt_ratio(t.vs_baseline_value(f, r))]
            body.append(cells)
        tables.append(render_grid(h1, h2, body))
    return tables


def floor_table(t: Table, rows: list[Row] | None = None) -> list[str] | None:
    """Ratio of every design to the floor, for the rows that have one;
    one table per metric when they do not fit side by side."""
    if rows is None:
        rows = [r for r in t.rows if t.floor(r) not in (None, 0) and not math.isnan(t.floor(r))]
    if not rows:
        return None
    h1 = [""] + [r.label for r in rows]
    h2 = ["design"] + [f"{r.unit} x floor" for r in rows]
    body = [[d] + [fmt_ratio(t.vs_floor(d, r)) for r in rows] for d in t.designs]
    lines = render_grid(h1, h2, body)
    if max(map(len, lines)) > WIDTH and len(rows) > 1:
        out: list[str] = []
        for r in rows:
            out += (floor_table(t, [r]) or []) + [""]
        return out[:-1]
    return lines


def summary_table(h: Headline) -> list[str] | None:
    """The across-workload summary of the short report (geometric mean of
    the per-workload ratios to the baseline, seed spread, min-max):
    :func:`.short.headline_tables` on every headline row present."""
    from . import short
    from .headline import present_rows
    if not h.workload_names:
        return None
    base = short.baseline_of(h)
    lines, _ = short.headline_tables(h, short.ratio_rows(h, present_rows(h), base), base)
    return lines


def workload_section(h: Headline, name: str) -> list[str]:
    t = Table(h, name)
    wl = next(w for w in h.workloads if w.name == name)
    title = f"Workload {name} ({wl.events:,} events)"
    out = [title, "=" * len(title)]
    for per in (2, 1):
        tables = metric_tables(t, per)
        if all(len(line) <= WIDTH for tb in tables for line in tb):
            break
    for tb in tables:
        out += tb + [""]
    ft = floor_table(t)
    if ft:
        out += wrap("Distance to the floor (1.00x = no allocator could do better; "
                    "lower is better):") + [""] + ft + [""]
    return out


def tables_base(h: Headline) -> str:
    return Table(h, h.workload_names[0]).baseline or "-" if h.workload_names else "-"


def render(h: Headline, charts: Sequence[str] = (), csv_ref: str | None = None,
           full: bool = False) -> str:
    """The message body: the short report (:mod:`.short`, <= 100 lines) by
    default, every per-workload table with ``full``."""
    if full:
        return render_full(h, charts, csv_ref)
    from . import short
    return short.render(h, charts, csv_ref)


def render_full(h: Headline, charts: Sequence[str] = (), csv_ref: str | None = None) -> str:
    """The exhaustive message body, every line <= 72 columns, ASCII only."""
    base = next((d for d in h.designs if d.name == Table(h, h.workload_names[0]).baseline), None) \
        if h.workload_names else None
    seeds = ", ".join(map(str, h.seeds))
    ndes = sum(d.name != "floor" for d in h.designs)
    plus_floor = " + the floor" if ndes < len(h.designs) else ""
    out = wrap(f"execbench {h.version} (code commit {h.commit}): executable-memory "
               f"allocator designs replayed on recorded workloads on one simulated "
               f"{arch_phrase(h.machine)} kernel; {ndes} design(s){plus_floor} x {len(h.workloads)} "
               f"workload(s) x {len(h.seeds)} seed(s) ({seeds}).")
    out.append("")
    out += wrap("Every number is the mean over the seeds. Lower is better on every row. "
                + (f"\"x {base.name}\" is the ratio to {base.name} ({base.title}); below "
                   f"1.00x is better. " if base else "")
                + "\"floor\" is the lower bound no allocator beats for the same live text "
                  "(a design-free figure from the trace). Peak = largest value at any "
                  "event; mean = time-weighted over the trace; KiB = 1024 bytes; "
                  "W+X exposure in page*ms of virtual time.")
    st = summary_table(h)
    if st and len(h.workloads) > 1:
        out += [""] + wrap(f"Summary: ratio to {tables_base(h)} ({tables_base(h)} = 1), "
                           f"geometric mean over the {len(h.workloads)} workloads of the "
                           "per-workload ratios, +-: stddev over the seeds, (min-max) over "
                           "the workloads; lower is better:") + [""] + st
    out += ["", "Designs", "-------"]
    for d in h.designs:
        rules = f" (kernel {d.kernel} rules)" if d.kernel != "-" else ""
        out += wrap(ascii_only(f"{d.name}: {d.title}{rules}"), indent="    ", first="")
        if d.params:
            out += wrap("params: " + ", ".join(f"{k}={v}" for k, v in sorted(d.params.items())),
                        indent="    ")
    out += ["", "Workloads", "---------"]
    for w in h.workloads:
        out += wrap(ascii_only(f"{w.name} ({w.events:,} events): {w.description}"),
                    indent="    ", first="")
        if w.synthetic:
            out += wrap(ascii_only(f"synthetic: {w.synthetic}"), indent="    ")
    out.append("")
    for name in h.workload_names:
        out += workload_section(h, name)
    out += ["Machine and parameters", "----------------------"]
    m = h.machine
    mem = m.get("mem_bytes")
    out += wrap(f"architecture {arch_phrase(m)}" + (f" ({m['module_sizes']})" if m.get("module_sizes") else "")
                + f", memory {mem / 2**30:g} GiB, frame placement {m.get('placement')}, "
                f"KASLR {'on' if m.get('kaslr') else 'off'}, NUMA nodes "
                f"{m.get('numa_nodes', 1)}; seeds {seeds}." if mem else
                f"seeds {seeds}.")
    out += wrap("primitive costs (ns, for the virtual clock): "
                + ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(h.costs.items())))
    out.append("")
    out += wrap(f"Reproduce: {h.command or 'execbench all'}")
    refs = list(charts) + ([csv_ref] if csv_ref else [])
    if refs:
        out += ["", "Charts and raw data:"]
        out += [f"[{i}] {r}" for i, r in enumerate(refs, 1)]
    text = "\n".join(ascii_only(line).rstrip() for line in out).rstrip() + "\n"
    return text
