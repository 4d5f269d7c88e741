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
from .checks import jobs_arg, mem_gib_arg, numa_nodes_arg, seeds_arg

#: seeds 0..N-1 for every command that sweeps seeds (compare, report, plot,
#: all): three, so that every table can show a spread (mmtests, perf stat -r)
DEFAULT_SEEDS = 3


def add_seeds_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=seeds_arg, default=DEFAULT_SEEDS, metavar="N",
                   help=f"run seeds 0..N-1 and average, N in 1..1000 (default {DEFAULT_SEEDS})")


def add_designs_option(p: argparse.ArgumentParser) -> None:
    """``-d/--design D`` (repeatable) and ``--designs D [D ...]`` (kept for
    scripts): both add to one list; none selects every registered design."""
    p.add_argument("--design", "-d", dest="design_list", action="append", metavar="D",
                   help=f"a design to run (repeatable; default: all of {', '.join(registry.names())})")
    p.add_argument("--designs", nargs="+", metavar="D", help="several designs at once (same as repeating -d)")


def designs_from(args) -> list[str] | None:
    """The designs ``-d``/``--designs`` selected, in order, each checked
    (:class:`~execbench.errors.UnknownName` with a suggestion); ``None``
    when neither was given.  Stores the result in ``args.designs``."""
    chosen = list(getattr(args, "design_list", None) or []) + list(args.designs or [])
    out: list[str] = []
    for d in chosen:
        registry.get(d)
        if d not in out:
            out.append(d)
    args.designs = out or None
    return args.designs


def add_machine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated machine")
    g.add_argument("--mem-gib", type=mem_gib_arg, default=16, metavar="GIB",
                   help="machine memory in GiB, 2..256 (default 16)")
    g.add_argument("--numa-nodes", type=numa_nodes_arg, default=1, metavar="N",
                   help="num_possible_nodes(), 1..1024: a bpf_prog_pack is 2 MiB x N "
                        "(kernel/bpf/core.c; default 1)")
    g.add_argument("--placement", choices=("fresh-boot", "aged", "contiguous", "scattered"),
                   default="fresh-boot",
                   help="physical placement preset: fresh-boot (large ordered free areas) or aged "
                        "(page-cache-filled machine, scattered free pages); contiguous and scattered "
                        "are the old names of the two (default fresh-boot; docs/placement.md)")
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
               "kaslr": not args.no_kaslr, "numa_nodes": getattr(args, "numa_nodes", 1)}
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


PARAM_HELP = ("set a design parameter: NAME=VALUE for every design run here that has "
              "it, DESIGN:NAME=VALUE for one (repeatable), e.g. legacy:bpf_prog_pack=false")


def add_param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", metavar="[DESIGN:]NAME=VALUE", help=PARAM_HELP)


def design_class(name: str):
    """The registered design ``name`` (:class:`~execbench.errors.UnknownName`,
    a UsageError with a suggestion, otherwise)."""
    return registry.get(name)


def check_params(design: str, params: dict) -> None:
    """Build the design once on a small machine, so that a parameter value
    its constructor refuses (``execmem_rox --param version=9.9``) is an
    error now, not after other replays have run."""
    from ..kernel import Kernel, KernelConfig
    cls = registry.get(design)
    try:
        cls(Kernel(KernelConfig(version=cls.kernel_version, mem_bytes=2 * GiB, itlb_cpu="off")),
            **params)
    except (DesignError, ValueError) as e:
        raise UsageError(f"--param for {design}: {printable(e, 150)}") from None


def parse_param_items(items: list[str] | None, designs: list[str]) -> dict[str, dict]:
    """``--param`` values -> {design: {name: typed value}} for ``designs``.

    ``DESIGN:NAME=VALUE`` sets it for that design (which must be among
    ``designs``); ``NAME=VALUE`` for every design in ``designs`` that has
    the parameter (at least one must).  Each design with parameters is then
    built once (:func:`check_params`)."""
    out: dict[str, dict] = {}
    for item in items or []:
        head, sep, body = item.partition(":")
        if sep and "=" not in head:
            registry.get(head)
            if head not in designs:
                raise UsageError(f"--param {printable(item, 60)!r}: design {head!r} is not run "
                                 f"here (designs: {', '.join(designs)})")
            targets = [head]
        else:
            body = item
            name = body.partition("=")[0].strip()
            targets = [d for d in designs if name in registry.get(d).defaults]
            if not targets:
                takes = {d: sorted(registry.get(d).defaults) for d in designs}
                listing = "; ".join(f"{d}: {', '.join(v) or 'none'}" for d, v in takes.items())
                raise UsageError(printable(f"--param {item!r}: no design run here has a "
                                           f"parameter {name!r} (parameters: {listing})", 400))
        for d in targets:
            out.setdefault(d, {}).update(registry.get(d).parse_params([body]))
    for design, params in out.items():
        check_params(design, params)
    return out


def params_from(args, designs: list[str] | None = None) -> dict[str, dict]:
    return parse_param_items(args.param, designs or args.designs or registry.names())


def emit_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
