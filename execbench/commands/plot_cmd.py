"""``execbench plot``: PNG + SVG charts under ``results/charts/``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .. import charts
from ..errors import ExecbenchError
from ..results import RESULTS_DIR, write_files
from .checks import writable_dir
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
    p.add_argument("--out-dir", metavar="DIR", help="default results/charts (results/arm64/charts with --arch arm64)")
    add_run_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from .report_cmd import require_results
    require_results(args, "plot")
    arch = getattr(args, "arch", None) or "x86_64"
    out = Path(args.out_dir) if args.out_dir else (
        RESULTS_DIR / "charts" if arch == "x86_64" else RESULTS_DIR / arch / "charts")
    writable_dir(out, "the charts")
    h, results = headline_from(args, "plot")
    if args.from_dir:
        tp = Path(args.from_dir) / TIMELINE_CSV
        if not tp.exists():
            raise ExecbenchError(f"{tp}: missing; run `execbench all` first")
        try:
            tl = pd.read_csv(tp)
        except (OSError, UnicodeDecodeError, ValueError, EOFError) as e:
            raise ExecbenchError(f"{tp}: cannot read: {str(e).splitlines()[0] if str(e) else e}") from None
    else:
        tl = charts.timelines(results)
    files: dict[Path, bytes] = {}
    paths = charts.plot_all(h, tl, out, progress=sys.stderr.isatty(), sink=files)
    write_files(files)                   # every chart or none
    for p in paths:
        print(p)
    return 0
