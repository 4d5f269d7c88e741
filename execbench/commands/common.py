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
    g.add_argument("--placement", choices=("contiguous", "scattered"), default="contiguous",
                   help="frame placement: fresh boot or page cache filled (default contiguous)")
    g.add_argument("--no-kaslr", action="store_true", help="module load offset 0")
    g.add_argument("--cost", action="append", metavar="NAME=NS",
                   help="override a primitive cost in ns (repeatable; see execbench list --costs)")


def machine_from(args) -> tuple[dict, Costs]:
    return ({"mem_bytes": args.mem_gib * GiB, "placement": args.placement,
             "kaslr": not args.no_kaslr}, Costs.parse(args.cost))


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
