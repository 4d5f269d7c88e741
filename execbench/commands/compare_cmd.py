"""``execbench compare``: every design side by side on the same workload(s)."""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pandas as pd

from .. import registry
from ..metrics.catalog import specs_present
from ..metrics.floor import DISTANCE_METRICS, FLOOR_NAME, with_floor
from ..report import table
from ..report.headline import ALIASES, ARCH_UNITS
from ..results import RESULTS_DIR, to_csv_bytes, write_files
from ..sweep import sweep
from ..workload_ref import resolve
from .checks import writable
from ..arch_trace import for_arch, sizes_note
from .common import (add_designs_option, add_jobs_option, add_machine_options, add_param_option,
                     add_seeds_option, arch_of, designs_for_arch, designs_from, emit_json, machine_from,
                     params_from)

EXAMPLES = """examples:
  execbench compare                                  # all designs, default workload
  execbench compare --workload boot-cloud --seeds 5  # mean over seeds 0..4
  execbench compare -d legacy -d execmem --param legacy:bpf_prog_pack=false
  execbench compare --json > cmp.json
"""


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare designs on the same workloads",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", "-w", action="append",
                   help="shipped workload name or trace path (repeatable; default: the default workload)")
    add_designs_option(p)
    add_seeds_option(p)
    p.add_argument("--out", metavar="CSV", help="tidy CSV (default results/compare.csv)")
    p.add_argument("--json", action="store_true", help="print the tidy table as JSON")
    add_jobs_option(p, "local worker processes, 0..256 (default 0 = one per CPU, serial for "
                       "small sweeps)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="run the replays on a Dask cluster, e.g. tcp://host:8786 (overrides --jobs)")
    add_param_option(p)
    add_machine_options(p)
    p.set_defaults(func=main)


def table_rows(df: pd.DataFrame, designs: list[str]) -> list[list]:
    """metric rows x design columns: gauges by mean and peak, counters by final."""
    g = df.groupby(["design", "metric"])[["final", "peak", "mean"]].mean()
    rows = []
    for m in specs_present(df.metric.unique()):
        stats = ("mean", "peak") if m.kind == "gauge" else ("final",)
        for st in stats:
            label = m.name if st == "final" else f"{m.name} ({st})"
            rows.append([label] + [float(g.loc[(d, m.name), st]) if (d, m.name) in g.index else float("nan")
                                   for d in designs])
    return rows


def distance_rows(df: pd.DataFrame, designs: list[str]) -> list[list]:
    """Each design's distance to the floor (design - floor) on the metrics the
    allocator decides (:data:`execbench.metrics.floor.DISTANCE_METRICS`)."""
    full = table_rows(df, designs + [FLOOR_NAME])
    keep = [r for r in full if r[0].split(" (")[0] in DISTANCE_METRICS and not pd.isna(r[-1])]
    return [[r[0]] + [v - r[-1] for v in r[1:-1]] for r in keep]


def table_sections(df: pd.DataFrame, designs: list[str], distance: bool = False, arch: str = "x86_64"
                   ) -> list[tuple[str, list[tuple[list[str], list[float]]]]]:
    """(title, rows) for the terminal: counters (their total) apart from
    gauges (time-weighted mean and peak) -- a time-weighted mean of a counter
    is not a quantity anyone asked for.  Rows are ([metric label, unit],
    values per design) with units scaled (:data:`.table.SCALE`).  With
    ``distance`` the values are design - floor on the metrics the allocator
    decides, and ``designs`` must not include the floor."""
    cols = designs + [FLOOR_NAME] if distance else designs
    raw = {r[0]: r[1:] for r in table_rows(df, cols)}
    counters, gauges = [], []
    for m in specs_present(df.metric.unique()):
        if distance and m.name not in DISTANCE_METRICS:
            continue
        unit, div = table.scaled(ARCH_UNITS.get(arch, {}).get(m.name, m.unit))
        for st in (("mean", "peak") if m.kind == "gauge" else ("final",)):
            label = m.name if st == "final" else f"{m.name} ({st})"
            vals = raw[label]
            if distance:
                if pd.isna(vals[-1]):
                    continue
                vals = [v - vals[-1] for v in vals[:-1]]
            (gauges if m.kind == "gauge" else counters).append(([label, unit], [v / div for v in vals]))
    return [("counters (totals over the trace)", counters),
            ("gauges (time-weighted mean and peak over the trace)", gauges)]


def print_tables(sub: pd.DataFrame, designs: list[str], arch: str = "x86_64") -> None:
    w = table.width()
    for title, rows in table_sections(sub, designs + [FLOOR_NAME], arch=arch):
        print(title + ":")
        print(table.fit(["metric", "unit"], designs + [FLOOR_NAME], rows, w, ALIASES))
        print()
    for title, rows in table_sections(sub, designs, distance=True, arch=arch):
        if rows:
            print(f"distance to the floor (design - floor), {title.split(' (')[0]}:")
            print(table.fit(["metric", "unit"], designs, rows, w, ALIASES))
            print()


def main(args) -> int:
    designs = designs_for_arch(args, designs_from(args))
    machine, costs = machine_from(args)
    params = params_from(args, designs)
    out = args.out or RESULTS_DIR / "compare.csv"
    writable(out, "the comparison")
    arch = arch_of(args)
    traces = [for_arch(resolve(w), arch) for w in (args.workload or [None])]
    df, results = sweep(traces, designs, list(range(args.seeds)), params=params,
                        costs=costs, machine=machine, jobs=args.jobs, scheduler=args.scheduler)
    # the floor: design-free lower bounds, one column beside the designs
    df = with_floor(df, traces, list(range(args.seeds)))
    write_files({Path(out): to_csv_bytes(df)})
    if args.json:
        # the floor leaves undefined metrics NaN: null in JSON, not the non-standard NaN
        emit_json(df.astype(object).where(df.notna(), None).to_dict(orient="records"))
        return 0
    for tr in traces:
        sub = df[df.workload == tr.name]
        desc = tr.provenance.get("workload", {}).get("description", "")
        seeds = f"Mean over seeds 0..{args.seeds - 1}" if args.seeds > 1 else "Seed 0"
        on = "" if arch == "x86_64" else f" Simulated {arch}; {sizes_note(tr)}."
        head = (f"workload {tr.name}: {len(tr)} events{' -- ' + desc if desc else ''}.{on} "
                f"{seeds}; lower is better except largest_free_extent and DirectMap1G/2M.")
        print("\n".join(textwrap.wrap(head, table.width(), break_on_hyphens=False)))
        print()
        print_tables(sub, designs, arch)
    if arch != "x86_64":
        gone = [f"{d} ({registry.get(d).arch_support(arch)})" for d in registry.names()
                if registry.get(d).arch_support(arch)]
        if gone:
            print(textwrap.fill(f"not on {arch}: " + "; ".join(gone), table.width()))
            print()
        # what each design that runs here is on this architecture ("our reading", "extrapolation")
        labels = [f"{d}: {note}" for d in designs
                  if (note := registry.get(d).arch_note(arch, {**registry.get(d).defaults, **params.get(d, {})}))]
        if labels:
            print(textwrap.fill(f"on {arch}: " + "; ".join(labels), table.width()))
            print()
    rate = sum(r.events for r in results) / max(sum(r.wall_s for r in results), 1e-9)
    print(f"replayed {sum(r.events for r in results):,} events at {rate:,.0f} events/s; wrote {out}")
    return 0
