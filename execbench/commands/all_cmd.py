"""``execbench all``: regenerate ``results/`` -- the headline run, its
charts and reports -- in one command, byte-identical on a re-run.

Writes (each file atomically):
  results.csv        tidy sweep: workload, design, seed, metric, final, peak, mean
  meta.json          designs, workloads, seeds, machine, costs, version, commit
  timeline.csv.gz    bucket-max timelines of seed 0 (for charts and the notebook)
  report.txt         ``report --format email``
  report.md          ``report --format markdown``
  report.csv         ``report --format csv --full``
  charts/*.png|svg   ``plot``
Charts left over from workloads that are no longer shipped are removed.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import pandas as pd

from .. import charts
from ..report import csvout, email, markdown
from ..results import RESULTS_DIR, to_csv_bytes
from ..trace import atomic_write_bytes
from .headline_opts import add_run_options, run_headline
from .plot_cmd import TIMELINE_CSV

EXAMPLES = """examples:
  execbench all                      # every design x every shipped workload, seeds 0..2
  execbench all --seeds 5 --out "$TMPDIR/res"
  execbench all -w boot-cloud --designs legacy   # a quick partial run (not for committing)
"""


def register(sub) -> None:
    p = sub.add_parser("all", help="regenerate results/: CSV, charts, reports",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="DIR", help="default results/")
    add_run_options(p, with_from=False)
    p.set_defaults(func=main)


def write_all(h, tl, out: Path) -> list[Path]:
    """Everything ``execbench all`` writes, from one headline run and its
    reduced timelines."""
    t0 = time.perf_counter()
    written = h.save(out)
    tp = out / TIMELINE_CSV
    atomic_write_bytes(tp, gzip.compress(to_csv_bytes(tl), mtime=0))
    written.append(tp)
    cdir = out / "charts"
    chart_paths = charts.plot_all(h, tl, cdir, progress=sys.stderr.isatty())
    for old in sorted(cdir.glob("*")):
        if old.suffix in (".png", ".svg") and old not in chart_paths:
            old.unlink()
    written += chart_paths
    refs = charts.chart_refs(chart_paths, out.parent if out.name else ".")
    csv_ref = str(Path(out.name) / "report.csv")
    for name, text in (("report.txt", email.render(h, refs, csv_ref)),
                       ("report.md", markdown.render(h, refs, csv_ref)),
                       ("report.csv", csvout.render(h, full=True))):
        p = out / name
        atomic_write_bytes(p, text.encode("ascii", "replace"))
        written.append(p)
    print(f"charts and reports in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return written


def main(args) -> int:
    out = Path(args.out) if args.out else RESULTS_DIR
    t0 = time.perf_counter()
    parts, seen, count = [], set(), [0, 0]

    def keep_timeline(r) -> None:      # first seed of each (workload, design) only
        count[0] += r.events
        count[1] += 1
        if (r.workload, r.design) not in seen:
            seen.add((r.workload, r.design))
            parts.append(charts.reduce_timeline(r))

    h, _ = run_headline(args, "all", on_result=keep_timeline, keep=False)
    print(f"replayed {count[0]:,} events ({count[1]} runs) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    tl = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for p in write_all(h, tl, out):
        print(p)
    return 0
