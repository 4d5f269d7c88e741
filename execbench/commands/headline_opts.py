"""Options shared by ``report``, ``plot`` and ``all``: which designs,
workloads and seeds make up a headline run, or where to read one from."""
from __future__ import annotations

import argparse
import shlex
import sys

from .. import registry
from ..report.data import RESULTS_CSV, Headline, collect, load
from ..results import RESULTS_DIR
from ..workload_ref import resolve
from ..arch_trace import for_arch
from .common import (DEFAULT_SEEDS, add_designs_option, add_jobs_option, add_machine_options,
                     add_param_option, add_seeds_option, arch_of, designs_for_arch, designs_from,
                     machine_from, params_from)


def add_run_options(p: argparse.ArgumentParser, with_from: bool = True) -> None:
    if with_from:
        p.add_argument("--from", dest="from_dir", metavar="DIR",
                       help="read a headline run (results.csv + meta.json) instead of replaying "
                            "(default: results/ when it exists and nothing else is selected)")
        p.add_argument("--replay", action="store_true",
                       help="replay even when results/ exists")
    p.add_argument("--workload", "-w", action="append",
                   help="shipped workload name or trace path (repeatable; default: every shipped workload)")
    add_designs_option(p)
    add_seeds_option(p)
    add_jobs_option(p, "worker processes for the replays, 0..256 (default 0: one per CPU for big "
                       "sweeps; 1: serial); the output is the same either way")
    add_param_option(p)
    add_machine_options(p)


def all_workload_names() -> list[str]:
    from ..workloads import catalog
    return [w.name for w in catalog.shipped()]


#: options that do not change the numbers: left out of the recorded
#: command so that ``execbench all -j 2`` writes the same bytes as ``execbench all``
_NEUTRAL = {"-j", "--jobs", "--out", "-o", "--output", "--out-dir"}


def _result_args(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in _NEUTRAL:
            skip = True
        elif a.split("=", 1)[0] in _NEUTRAL or (a.startswith("-j") and a[2:].isdigit()):
            continue
        else:
            out.append(a)
    return out


def run_headline(args, argv0: str, on_result=None, keep: bool = True):
    """Replay what the options ask for; returns (Headline, results)."""
    designs = designs_for_arch(args, designs_from(args))
    machine, costs = machine_from(args)
    params = params_from(args, designs)
    traces = [for_arch(resolve(w), arch_of(args)) for w in (args.workload or all_workload_names())]
    cmd = " ".join(["execbench", argv0] + [shlex.quote(a) for a in _result_args(sys.argv[2:])]) \
        if len(sys.argv) > 1 and sys.argv[1] == argv0 else f"execbench {argv0}"
    return collect(traces, designs, list(range(args.seeds)), params=params,
                   costs=costs, machine=machine, command=cmd, on_result=on_result, keep=keep,
                   jobs=args.jobs)


def headline_from(args, argv0: str) -> tuple[Headline, list]:
    """``--from DIR`` reads a run (``-w``/``--designs`` then select from
    it).  Without ``--from``, and with no option that changes the run
    (``--designs``, ``--seeds``, ``--param``, machine options), the committed
    headline run in results/ is read when it exists and has the asked-for
    workloads, since replaying every workload takes minutes; ``--replay``
    forces a replay."""
    machine_from(args)              # every option is checked, even those a read ignores
    params_from(args, designs_from(args))
    if getattr(args, "from_dir", None):
        return load(args.from_dir).subset(args.workload, args.designs), []
    untouched = (args.designs is None and args.seeds == DEFAULT_SEEDS and arch_of(args) == "x86_64"
                 and not args.param and not args.cost and args.mem_gib == 16
                 and getattr(args, "numa_nodes", 1) == 1
                 and args.placement in ("fresh-boot", "contiguous") and not args.no_kaslr)
    if untouched and not getattr(args, "replay", False) and (RESULTS_DIR / RESULTS_CSV).exists():
        h = load(RESULTS_DIR)
        if all(w in h.workload_names for w in (args.workload or [])):
            print(f"execbench {argv0}: reading {RESULTS_DIR}/ (from `execbench all`); "
                  "pass --replay to replay instead", file=sys.stderr)
            args.from_dir = str(RESULTS_DIR)
            return h.subset(args.workload), []
    return run_headline(args, argv0)
