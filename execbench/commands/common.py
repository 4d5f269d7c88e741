"""Options and output helpers shared by subcommands."""
from __future__ import annotations

import argparse
import json
import sys

from .. import registry
from ..kernel import Costs
from ..units import GiB


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: must be at least 1")
    return n


def add_machine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated machine")
    g.add_argument("--mem-gib", type=int, default=16, help="machine memory in GiB (default 16)")
    g.add_argument("--numa-nodes", type=_positive_int, default=1, metavar="N",
                   help="num_possible_nodes(): a bpf_prog_pack is 2 MiB x N (kernel/bpf/core.c; "
                        "default 1)")
    g.add_argument("--placement", choices=("contiguous", "scattered"), default="contiguous",
                   help="frame placement: fresh boot or page cache filled (default contiguous)")
    g.add_argument("--no-kaslr", action="store_true", help="module load offset 0")
    g.add_argument("--cost", action="append", metavar="NAME=NS",
                   help="override a primitive cost in ns (repeatable; see execbench list --costs)")
    g.add_argument("--itlb-cpu", default="skylake-sp", metavar="CPU",
                   help="CPU preset for itlb_miss_per_mfetch (skylake-sp, icelake, zen2, zen3, zen4) "
                        "or 'off' to skip the dynamic iTLB metric (default skylake-sp)")
    g.add_argument("--itlb", action="append", metavar="NAME=VALUE",
                   help="iTLB fetch-stream parameter, e.g. module_zipf=1.2 or checkpoints=32 "
                        "(repeatable; see execbench/metrics/itlb.py ItlbParams)")


def machine_from(args) -> tuple[dict, Costs]:
    machine = {"mem_bytes": args.mem_gib * GiB, "placement": args.placement,
               "kaslr": not args.no_kaslr, "numa_nodes": getattr(args, "numa_nodes", 1)}
    cpu = getattr(args, "itlb_cpu", "skylake-sp")
    if cpu != "off":
        from ..itlb_cpus import get as get_cpu
        try:
            get_cpu(cpu)
        except KeyError as e:
            raise SystemExit(f"--itlb-cpu: {e.args[0]}") from None
    pairs = []
    for item in getattr(args, "itlb", None) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--itlb {item!r}: expected NAME=VALUE")
        pairs.append((name.strip(), value.strip()))
    if pairs:
        from ..metrics.itlb import ItlbParams
        try:
            ItlbParams.parse(tuple(pairs))
        except ValueError as e:
            raise SystemExit(f"--itlb: {e}") from None
    machine["itlb_cpu"] = cpu
    machine["itlb_params"] = tuple(pairs)
    return machine, Costs.parse(args.cost)


def add_param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", metavar="DESIGN:NAME=VALUE",
                   help="set a design parameter, e.g. legacy:bpf_prog_pack=false (repeatable)")


def params_from(args) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in args.param or []:
        design, sep, rest = item.partition(":")
        if not sep:
            raise SystemExit(f"--param {item!r}: expected DESIGN:NAME=VALUE")
        out.setdefault(design, {}).update(registry.get(design).parse_params([rest]))
    return out


def emit_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
