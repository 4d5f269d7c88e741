"""``execbench interface``: how much of each design's API its users must know.

The thread's argument is partly about interface size ("a pretty big and
complicated interface", Kent Overstreet, 2023-05-26): this prints, per
design, the API calls each user operation makes (mean over the workload's
events of that op), the entry points each user needed, and -- where the
design declares it (``Design.interface``) -- its exported surface.
"""
from __future__ import annotations

import argparse

from .. import registry
from ..replay import run
from ..report.table import render
from ..workload_ref import resolve
from .checks import seed_arg
from .common import add_designs_option, designs_from, emit_json

EXAMPLES = """examples:
  execbench interface                         # every design, default workload
  execbench interface -w bpf-observability --designs legacy jitalloc
  execbench interface --json
"""


def register(sub) -> None:
    p = sub.add_parser("interface", help="API calls per user operation and entry points per design",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", "-w", help="shipped workload name or trace path (default: the default workload)")
    add_designs_option(p)
    p.add_argument("--seed", type=seed_arg, default=0, help="0..2^32-1 (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=main)


def main(args) -> int:
    designs = designs_from(args) or registry.names()
    trace = resolve(args.workload)
    out: dict[str, dict] = {}
    for d in designs:
        r = run(trace, d, seed=args.seed)
        cls = registry.get(d)
        out[d] = {
            "per_op": {f"{u}/{o}": {"events": n, "api_calls": c, "mean": c / n}
                       for (u, o), (n, c) in r.api_per_op.items()},
            "entry_points": r.entry_points,
            "exported": dict(getattr(cls, "interface", {}) or {}),
        }
    if args.json:
        emit_json({"workload": trace.name, "designs": out})
        return 0
    ops = sorted({op for v in out.values() for op in v["per_op"]})
    print(f"API calls per user operation (mean over the events of {trace.name}):")
    print(render(["user/op"] + designs,
                 [[op] + [out[d]["per_op"].get(op, {}).get("mean", float("nan")) for d in designs]
                  for op in ops]))
    print()
    print("Entry points each user needed:")
    for d in designs:
        print(f"  {d}:")
        for user, eps in out[d]["entry_points"].items():
            print(f"    {user:7s} ({len(eps):2d}) {', '.join(eps)}")
        exported = out[d]["exported"].get("entry_points")
        if exported:
            print(f"    exported surface ({len(exported)}): {', '.join(exported)}")
    return 0
