"""``execbench plot``: PNG + SVG charts under ``results/charts/``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .. import charts
from ..errors import ExecbenchError
from ..results import RESULTS_DIR
from .headline_opts import add_run_options, headline_from

EXAMPLES = """examples:
  execbench plot                         # redraw results/charts/ from results/
  execbench plot --replay                # replay everything, then draw
  execbench plot -w boot-cloud --out-dir "$TMPDIR/charts"
"""

TIMELINE_CSV = "timeline.csv.gz"


def register(sub) -> None:
    p = sub.add_parser("plot", help="charts (PNG + SVG) per workload",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", metavar="DIR", help="default results/charts")
    add_run_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from .report_cmd import require_results
    require_results(args, "plot")
    h, results = headline_from(args, "plot")
    if args.from_dir:
        tp = Path(args.from_dir) / TIMELINE_CSV
        if not tp.exists():
            raise ExecbenchError(f"{tp}: missing; run `execbench all` first")
        tl = pd.read_csv(tp)
    else:
        tl = charts.timelines(results)
    out = Path(args.out_dir) if args.out_dir else RESULTS_DIR / "charts"
    paths = charts.plot_all(h, tl, out, progress=sys.stderr.isatty())
    for p in paths:
        print(p)
    return 0
