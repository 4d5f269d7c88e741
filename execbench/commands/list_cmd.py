"""``execbench list``: designs, shipped workloads, metrics, costs."""
from __future__ import annotations

from .. import registry
from ..kernel.arch import ARCH_NAMES, get_arch
from ..metrics import METRICS
from ..report.table import render
from .common import emit_json

EXAMPLES = """examples:
  execbench list                 # designs and shipped workloads
  execbench list --metrics       # what every metric means
  execbench list --costs --json  # the default primitive costs, as JSON
  execbench list --costs --arch arm64
"""


def register(sub) -> None:
    p = sub.add_parser("list", help="list designs, workloads, metrics, costs",
                       epilog=EXAMPLES, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--metrics", action="store_true", help="list metrics")
    p.add_argument("--costs", action="store_true", help="list primitive costs (ns)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--arch", choices=ARCH_NAMES, default=None,
                   help="with --costs: that architecture's defaults (default x86_64)")
    p.set_defaults(func=main)


def _arch_status(cls, arch: str) -> str:
    """'yes', 'yes: <label>' or 'no: <why>' for one design on one architecture."""
    why = cls.arch_support(arch)
    if why:
        return f"no: {why}"
    note = cls.arch_note(arch, cls.defaults)
    return f"yes: {note}" if note else "yes"


def _designs() -> list[dict]:
    out = []
    for name in registry.names():
        cls = registry.get(name)
        out.append({"name": name, "title": cls.title, "kernel": ".".join(map(str, cls.kernel_for(cls.defaults))),
                    "params": {k: v for k, v in cls.defaults.items()}, "source": cls.source,
                    "arches": {a: _arch_status(cls, a) for a in ARCH_NAMES}})
    return out


def _arches() -> list[dict]:
    out = []
    for name in ARCH_NAMES:
        a = get_arch(name)
        out.append({"name": name, "title": a.title, "itlb_cpu": a.itlb_cpu,
                    "leaves": [n for n, _ in a.leaves], "options": list(a.options),
                    "designs": registry.names_for(name)})
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
        costs = get_arch(getattr(args, "arch", None) or "x86_64").costs().as_dict()
        if args.json:
            emit_json(costs)
        else:
            print(render(["cost", "ns"], [[k, v] for k, v in costs.items()]))
        return 0
    designs, workloads, arches = _designs(), _workloads(), _arches()
    if args.json:
        emit_json({"designs": designs, "workloads": workloads, "architectures": arches})
        return 0
    print("Designs")
    print(render(["design", "kernel", "what it models"],
                 [[d["name"], d["kernel"], d["title"]] for d in designs]))
    print()
    print("Architectures (--arch; docs/arm64.md)")
    print(render(["arch", "machine", "iTLB CPU", "leaves"],
                 [[a["name"], a["title"], a["itlb_cpu"], " ".join(a["leaves"])] for a in arches]))
    print()
    print("Designs by architecture")
    print(render(["design"] + list(ARCH_NAMES),
                 [[d["name"]] + [d["arches"][a] for a in ARCH_NAMES] for d in designs]))
    print()
    print("Workloads")
    print(render(["workload", "events", "provenance"],
                 [[w["name"] + (" (default)" if w["default"] else ""), w["events"], w["summary"]]
                  for w in workloads]))
    return 0
