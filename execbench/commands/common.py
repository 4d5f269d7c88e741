"""Options and output helpers shared by subcommands.

Every value is checked here, before a command does any work: a bad one is a
:class:`~execbench.errors.UsageError` naming the option (see
:mod:`.checks`)."""
from __future__ import annotations

import argparse
import json
import sys

from .. import registry
from ..errors import DesignError, UsageError, printable
from ..kernel import Costs
from ..units import GiB
from .checks import jobs_arg, mem_gib_arg


def add_machine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated machine")
    g.add_argument("--mem-gib", type=mem_gib_arg, default=16, metavar="GIB",
                   help="machine memory in GiB, 2..256 (default 16)")
    g.add_argument("--placement", choices=("contiguous", "scattered"), default="contiguous",
                   help="frame placement: fresh boot or page cache filled (default contiguous)")
    g.add_argument("--no-kaslr", action="store_true", help="module load offset 0")
    g.add_argument("--cost", action="append", metavar="NAME=NS",
                   help="override a primitive cost in ns, finite and >= 0 "
                        "(repeatable; see execbench list --costs)")
    g.add_argument("--itlb-cpu", default="skylake-sp", metavar="CPU",
                   help="CPU preset for itlb_miss_per_mfetch (skylake-sp, icelake, zen2, zen3, zen4) "
                        "or 'off' to skip the dynamic iTLB metric (default skylake-sp)")
    g.add_argument("--itlb", action="append", metavar="NAME=VALUE",
                   help="iTLB fetch-stream parameter, e.g. module_zipf=1.2 or checkpoints=32 "
                        "(repeatable; see execbench/metrics/itlb.py ItlbParams)")


def add_jobs_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--jobs", "-j", type=jobs_arg, default=0, metavar="N", help=help)


def machine_from(args) -> tuple[dict, Costs]:
    machine = {"mem_bytes": args.mem_gib * GiB, "placement": args.placement,
               "kaslr": not args.no_kaslr}
    cpu = getattr(args, "itlb_cpu", "skylake-sp")
    if cpu != "off":
        from ..itlb_cpus import get as get_cpu
        try:
            get_cpu(cpu)
        except KeyError as e:
            raise UsageError(f"--itlb-cpu: {printable(e.args[0] if e.args else e, 150)}") from None
    pairs = []
    for item in getattr(args, "itlb", None) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--itlb {printable(item, 40)!r}: expected NAME=VALUE")
        pairs.append((name.strip(), value.strip()))
    if pairs:
        from ..metrics.itlb import ItlbParams
        try:
            ItlbParams.parse(tuple(pairs))
        except ValueError as e:
            raise UsageError(f"--itlb: {printable(e, 150)}") from None
    machine["itlb_cpu"] = cpu
    machine["itlb_params"] = tuple(pairs)
    try:
        costs = Costs.parse(args.cost)
    except ValueError as e:
        raise UsageError(printable(e, 180)) from None
    return machine, costs


def add_param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", metavar="DESIGN:NAME=VALUE",
                   help="set a design parameter, e.g. legacy:bpf_prog_pack=false (repeatable)")


def design_class(name: str):
    """The registered design ``name``, or a UsageError listing the known ones."""
    try:
        return registry.get(name)
    except KeyError as e:
        raise UsageError(printable(e.args[0] if e.args else e, 180)) from None


def check_params(design: str, params: dict) -> None:
    """Build the design once on a small machine, so that a parameter value
    its constructor refuses (``execmem_rox --param version=9.9``) is an
    error now, not after other replays have run."""
    from ..kernel import Kernel, KernelConfig
    cls = design_class(design)
    try:
        cls(Kernel(KernelConfig(version=cls.kernel_version, mem_bytes=2 * GiB, itlb_cpu="off")),
            **params)
    except (DesignError, ValueError) as e:
        raise UsageError(f"--param for {design}: {printable(e, 150)}") from None


def params_from(args) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in args.param or []:
        design, sep, rest = item.partition(":")
        if not sep:
            raise UsageError(f"--param {printable(item, 40)!r}: expected DESIGN:NAME=VALUE")
        out.setdefault(design, {}).update(design_class(design).parse_params([rest]))
    for design, params in out.items():
        check_params(design, params)
    return out


def emit_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
