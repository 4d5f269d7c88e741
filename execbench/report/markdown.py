"""``execbench report --format markdown``: the same numbers for a README,
a GitHub issue or a web page (no width limit, so one table per workload
with every headline metric as a column and its ratio to the baseline in
parentheses)."""
from __future__ import annotations

from typing import Sequence

from .data import Headline, arch_phrase
from .email import ascii_only
from .headline import Table, fmt_ratio, fmt_value


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render(h: Headline, charts: Sequence[str] = (), csv_ref: str | None = None) -> str:
    seeds = ", ".join(map(str, h.seeds))
    out = [f"# execbench {h.version} results (code commit `{h.commit}`)", "",
           f"{sum(d.name != 'floor' for d in h.designs)} design(s) x {len(h.workloads)} "
           f"workload(s) x seeds {seeds}, "
           f"one simulated {arch_phrase(h.machine)} kernel. Every number is the mean over the seeds; lower is "
           "better everywhere; the ratio to the baseline is in parentheses; *floor* is the "
           "design-free lower bound for the same live text.", "", "## Designs", ""]
    out.append(_row(["design", "kernel", "what it models", "params", "source"]))
    out.append(_row(["---"] * 5))
    for d in h.designs:
        out.append(_row([f"`{d.name}`", d.kernel, d.title,
                         ", ".join(f"{k}={v}" for k, v in sorted(d.params.items())) or "-",
                         d.source]))
    out += ["", "## Workloads", "", _row(["workload", "events", "description", "synthetic"]),
            _row(["---", "---:", "---", "---"])]
    for w in h.workloads:
        out.append(_row([f"`{w.name}`", f"{w.events:,}", w.description, w.synthetic or "no"]))
    for name in h.workload_names:
        t = Table(h, name)
        out += ["", f"## {name}", ""]
        out.append(_row(["design"] + [f"{r.label} ({r.unit})" for r in t.rows]))
        out.append(_row(["---"] + ["---:"] * len(t.rows)))
        for d in t.designs:
            out.append(_row([f"`{d}`"] + [f"{fmt_value(t.value(d, r) / r.scale)} "
                                          f"({fmt_ratio(t.vs_baseline(d, r))})" for r in t.rows]))
        fl = t.floor_label()
        if fl:
            cells = []
            for r in t.rows:
                f = t.floor(r)
                cells.append("-" if f is None else fmt_value(f / r.scale))
            out.append(_row([f"*{fl}*"] + cells))
    m = h.machine
    out += ["", "## Machine and parameters", "",
            f"Architecture {arch_phrase(m)}. Memory {m.get('mem_bytes', 0) / 2**30:g} GiB, frame placement "
            f"{m.get('placement')}, KASLR {'on' if m.get('kaslr') else 'off'}, NUMA nodes "
            f"{m.get('numa_nodes', 1)}; seeds {seeds}. "
            "Primitive costs (ns): " + ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(h.costs.items()))
            + ".", "", f"Reproduce: `{h.command or 'execbench all'}`"]
    refs = list(charts) + ([csv_ref] if csv_ref else [])
    if refs:
        out += ["", "Charts and raw data:", ""] + [f"{i}. [{r}]({r})" for i, r in enumerate(refs, 1)]
    return "\n".join(ascii_only(line) for line in out) + "\n"
