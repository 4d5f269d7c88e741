"""``execbench list``: designs, shipped workloads, metrics, costs."""
from __future__ import annotations

from .. import registry
from ..kernel import Costs
from ..metrics import METRICS
from ..report.table import render
from .common import emit_json

EXAMPLES = """examples:
  execbench list                 # designs and shipped workloads
  execbench list --metrics       # what every metric means
  execbench list --costs --json  # the default primitive costs, as JSON
"""


def register(sub) -> None:
    p = sub.add_parser("list", help="list designs, workloads, metrics, costs",
                       epilog=EXAMPLES, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--metrics", action="store_true", help="list metrics")
    p.add_argument("--costs", action="store_true", help="list primitive costs (ns)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=main)


def _designs() -> list[dict]:
    out = []
    for name in registry.names():
        cls = registry.get(name)
        out.append({"name": name, "title": cls.title, "kernel": ".".join(map(str, cls.kernel_for(cls.defaults))),
                    "params": {k: v for k, v in cls.defaults.items()}, "source": cls.source})
    return out


def _workloads() -> list[dict]:
    from ..workloads import catalog
    return [{"name": w.name, "events": w.events, "default": w.default, "summary": w.summary}
            for w in catalog.shipped()]


def main(args) -> int:
    if args.metrics:
        rows = [{"metric": m.name, "family": m.family, "kind": m.kind, "unit": m.unit,
                 "better": m.better, "meaning": m.doc} for m in METRICS]
        if args.json:
            emit_json(rows)
        else:
            print(render(["metric", "family", "kind", "unit", "meaning"],
                         [[r["metric"], r["family"], r["kind"], r["unit"], r["meaning"]] for r in rows]))
        return 0
    if args.costs:
        costs = Costs().as_dict()
        if args.json:
            emit_json(costs)
        else:
            print(render(["cost", "ns"], [[k, v] for k, v in costs.items()]))
        return 0
    designs, workloads = _designs(), _workloads()
    if args.json:
        emit_json({"designs": designs, "workloads": workloads})
        return 0
    print("Designs")
    print(render(["design", "kernel", "what it models"],
                 [[d["name"], d["kernel"], d["title"]] for d in designs]))
    print()
    print("Workloads")
    print(render(["workload", "events", "provenance"],
                 [[w["name"] + (" (default)" if w["default"] else ""), w["events"], w["summary"]]
                  for w in workloads]))
    return 0
