"""``execbench run``: replay one workload on one design."""
from __future__ import annotations

import argparse
import resource
from pathlib import Path

from .. import registry
from ..errors import UsageError
from ..replay import refuse_stream_arch, run
from ..metrics import METRICS
from ..report import table
from ..results import RESULTS_DIR, to_csv_bytes, write_files
from ..workload_ref import resolve
from .checks import seed_arg, writable
from ..arch_trace import for_arch
from .common import (add_machine_options, add_param_option, arch_of, designs_for_arch, emit_json,
                     machine_from, parse_param_items)

EXAMPLES = """examples:
  execbench run --design legacy                       # default workload, seed 0
  execbench run --design legacy --workload boot-cloud --seed 3
  execbench run --design legacy --workload my.csv.gz --param bpf_prog_pack=false
  execbench run --design legacy --timeline "$TMPDIR/tl.csv" --json
  execbench run --design legacy --workload week.csv.gz --stream --json   # any length, bounded memory
"""


def register(sub) -> None:
    p = sub.add_parser("run", help="replay one workload on one design",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--design", "-d", required=True, help=f"one of: {', '.join(registry.names())}")
    p.add_argument("--workload", "-w", help="shipped workload name or trace path (default: the default workload)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed for KASLR, frames and randomised offsets, 0..2^32-1 (default 0)")
    add_param_option(p)
    p.add_argument("--timeline", metavar="CSV", help="also write every metric after every event")
    p.add_argument("--out", metavar="CSV", help="summary CSV (default results/run-<workload>-<design>-s<seed>.csv)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--stream", action="store_true",
                   help="read the trace in chunks and summarise the metrics on the fly: memory does "
                        "not grow with the trace's length, the summary is the same bytes (x86-64 only; "
                        "no --timeline)")
    add_machine_options(p)
    p.set_defaults(func=main)


def print_stats(stats: dict[str, tuple[float, float, float]]) -> None:
    """Counters by their total, gauges by final, peak and time-weighted
    mean, in two tables with units (scaled, :data:`.table.SCALE`)."""
    w = table.width()
    kind = {m.name: m for m in METRICS}
    counters, gauges = [], []
    for name, (f, p, mean) in stats.items():
        m = kind.get(name)
        unit, div = table.scaled(m.unit if m else "")
        if m is not None and m.kind == "counter":
            counters.append(([name, unit], [f / div]))
        else:
            gauges.append(([name, unit], [f / div, p / div, mean / div]))
    print("counters (totals over the trace):")
    print(table.fit(["metric", "unit"], ["total"], counters, w))
    print()
    print("gauges (at the end, peak, time-weighted mean):")
    print(table.fit(["metric", "unit"], ["final", "peak", "mean"], gauges, w))


def peak_rss_mb() -> float:
    """This process's peak resident set so far (getrusage ru_maxrss: KiB on Linux), in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(args) -> int:
    designs_for_arch(args, [args.design])
    params = parse_param_items(args.param, [args.design], arch_of(args)).get(args.design, {})
    machine, costs = machine_from(args)
    if args.stream and args.timeline:
        raise UsageError("--timeline needs every sample and --stream keeps none: drop one of them")
    if args.stream:
        refuse_stream_arch(arch_of(args))          # before the trace's validation pass
    trace = resolve(args.workload, stream=args.stream)
    trace = trace if args.stream else for_arch(trace, arch_of(args))
    out = Path(args.out) if args.out else RESULTS_DIR / f"run-{trace.name}-{args.design}-s{args.seed}.csv"
    writable(out, "the summary")
    if args.timeline:
        writable(args.timeline, "the timeline")
    r = run(trace, args.design, seed=args.seed, params=params, costs=costs, machine=machine)
    summary = r.summary()
    files = {out: to_csv_bytes(summary)}
    if args.timeline:
        files[Path(args.timeline)] = to_csv_bytes(r.timeline())
    write_files(files)                      # both or neither
    if args.json:
        emit_json({"design": r.design, "workload": r.workload, "seed": r.seed, "params": r.params,
                   "events": r.events, "events_per_s": r.events / r.wall_s if r.wall_s else None,
                   "stream": bool(args.stream), "peak_rss_mb": peak_rss_mb(),
                   "stats": {m: dict(zip(("final", "peak", "mean"), v)) for m, v in r.stats.items()},
                   "counters": r.counters, "entry_points": r.entry_points})
        return 0
    print(f"{r.design} on {r.workload}: {r.events} events, seed {r.seed}, "
          f"params {r.params}, {r.events / max(r.wall_s, 1e-9):,.0f} events/s")
    print_stats(r.stats)
    print(f"\nwrote {out}")
    return 0
