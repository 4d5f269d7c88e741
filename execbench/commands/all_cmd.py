"""``execbench all``: regenerate ``results/`` -- the headline run, its
charts and reports -- in one command, byte-identical on a re-run.

Writes (all files or none: rendered in memory, then written together):
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
from ..errors import OutputError
from ..results import RESULTS_DIR, to_csv_bytes, write_files
from .checks import writable_dir
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
    p.add_argument("--out", metavar="DIR", help="default results/ (results/arm64/ with --arch arm64)")
    add_run_options(p, with_from=False)
    p.set_defaults(func=main)


def write_all(h, tl, out: Path, refs_from: Path | None = None) -> list[Path]:
    """Everything ``execbench all`` writes, from one headline run and its
    reduced timelines: rendered in memory first, then written all together
    (:func:`execbench.results.write_files`: every file or none).  The
    reports name charts and csv relative to ``refs_from`` (default: the
    folder holding ``out``; the project root for results/arm64/)."""
    t0 = time.perf_counter()
    files = h.files(out)
    files[out / TIMELINE_CSV] = gzip.compress(to_csv_bytes(tl), mtime=0)
    cdir = out / "charts"
    charts_out: dict[Path, bytes] = {}
    chart_paths = charts.plot_all(h, tl, cdir, progress=sys.stderr.isatty(), sink=charts_out)
    files.update(charts_out)
    base = refs_from if refs_from is not None else (out.parent if out.name else Path("."))
    refs = charts.chart_refs(chart_paths, base)
    try:
        csv_ref = str((out / "report.csv").resolve().relative_to(Path(base).resolve()))
    except ValueError:
        csv_ref = str(Path(out.name) / "report.csv")
    for name, text in (("report.txt", email.render(h, refs, csv_ref)),
                       ("report.md", markdown.render(h, refs, csv_ref)),
                       ("report.csv", csvout.render(h, full=True))):
        files[out / name] = text.encode("ascii", "replace")
    written = write_files(files)
    for old in sorted(cdir.glob("*")):      # charts of workloads no longer shipped
        if old.suffix in (".png", ".svg") and old not in chart_paths:
            try:
                old.unlink()
            except OSError as e:
                raise OutputError(f"{old}: cannot remove: {e.strerror or e}") from None
    print(f"charts and reports in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return written


def main(args) -> int:
    # another architecture's headline run goes beside x86-64's, never over it
    arch = getattr(args, "arch", None) or "x86_64"
    out = Path(args.out) if args.out else (RESULTS_DIR if arch == "x86_64" else RESULTS_DIR / arch)
    refs_from = RESULTS_DIR.parent if not args.out and arch != "x86_64" else None
    writable_dir(out, "the results")
    writable_dir(out / "charts", "the charts")
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
    for p in write_all(h, tl, out, refs_from):
        print(p)
    return 0
