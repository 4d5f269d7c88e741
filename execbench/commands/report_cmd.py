"""``execbench report``: the headline numbers as an LKML-ready plain-text
body, markdown, or csv."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..charts import existing_charts
from ..report import csvout, email, markdown
from ..trace import atomic_write_bytes
from ..errors import ExecbenchError
from ..report.data import RESULTS_CSV
from ..results import RESULTS_DIR
from .checks import writable
from .headline_opts import DEFAULT_SEEDS, add_run_options, headline_from

EXAMPLES = """examples:
  execbench report                          # short email body of results/ (<= 100 lines)
  execbench report --full                   # every per-workload table
  execbench report --replay                 # replay every design x workload, 3 seeds
  execbench report -w fleet-day -w boot-desktop   # only these workloads (from results/)
  execbench report -w boot-cloud --seeds 5 --format markdown
  execbench report --from results --format csv --full -o "$TMPDIR/all.csv"
"""


def register(sub) -> None:
    p = sub.add_parser("report", help="plain-text (LKML), markdown or csv report",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", choices=("email", "markdown", "csv"), default="email",
                   help="email: <= 72 columns, ASCII (default); markdown; csv (unscaled numbers)")
    p.add_argument("--full", action="store_true",
                   help="email: every per-workload table, not the short summary; "
                        "csv: every metric and statistic, not only the headline")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout")
    add_run_options(p)
    p.set_defaults(func=main)


def render(h, fmt: str, charts=(), csv_ref=None, full: bool = False) -> str:
    if fmt == "email":
        return email.render(h, charts, csv_ref, full=full)
    if fmt == "markdown":
        return markdown.render(h, charts, csv_ref)
    return csvout.render(h, full=full)


def require_results(args, cmd: str) -> None:
    """No results/ and nothing asks for a replay: say what to run instead of
    silently replaying every workload (minutes)."""
    selected = (args.workload or args.designs or getattr(args, "design_list", None) or args.param or args.cost
                or args.seeds != DEFAULT_SEEDS)
    if getattr(args, "from_dir", None) or getattr(args, "replay", False) or selected:
        return
    if not (RESULTS_DIR / RESULTS_CSV).exists():
        raise ExecbenchError(
            f"{RESULTS_DIR / RESULTS_CSV}: missing (execbench {cmd} reads the headline run "
            f"in {RESULTS_DIR.resolve()}/); run `execbench all` to make it (a few minutes), "
            f"`execbench {cmd} --from DIR` to read another one, or `execbench {cmd} --replay "
            "[-w WORKLOAD]` to replay now")


def main(args) -> int:
    require_results(args, "report")
    if args.output:
        writable(args.output, "the report")
    h, _ = headline_from(args, "report")
    charts, csv_ref = [], None
    if args.from_dir:
        d = Path(args.from_dir)
        charts = [str(p) for p in existing_charts(d / "charts", h.workload_names)]
        csv_ref = str(d / "report.csv") if (d / "report.csv").exists() else None
    text = render(h, args.format, charts, csv_ref, args.full)
    if args.output:
        atomic_write_bytes(args.output, text.encode("ascii", "replace"))
    else:
        sys.stdout.write(text)
    return 0
