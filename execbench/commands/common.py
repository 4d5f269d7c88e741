"""Options and output helpers shared by subcommands."""
from __future__ import annotations

import argparse
import json
import sys

from .. import registry
from ..kernel import Costs
from ..units import GiB


def add_machine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated machine")
    g.add_argument("--mem-gib", type=int, default=16, help="machine memory in GiB (default 16)")
    g.add_argument("--placement", choices=("fresh-boot", "aged", "contiguous", "scattered"),
                   default="fresh-boot",
                   help="physical placement preset: fresh-boot (large ordered free areas) or aged "
                        "(page-cache-filled machine, scattered free pages); contiguous and scattered "
                        "are the old names of the two (default fresh-boot; docs/placement.md)")
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
               "kaslr": not args.no_kaslr}
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
