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
    g.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64",
                   help="the simulated architecture (default x86_64; arm64: Debian's arm64 "
                        "configuration, docs/arm64.md; designs that do not exist there are skipped)")
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
    g.add_argument("--itlb-cpu", default=None, metavar="CPU",
                   help="CPU preset for itlb_miss_per_mfetch (skylake-sp, icelake, zen2, zen3, zen4, "
                        "neoverse-n1) or 'off' to skip the dynamic iTLB metric (default skylake-sp; "
                        "neoverse-n1 with --arch arm64)")
    g.add_argument("--itlb", action="append", metavar="NAME=VALUE",
                   help="iTLB fetch-stream parameter, e.g. module_zipf=1.2 or checkpoints=32 "
                        "(repeatable; see execbench/metrics/itlb.py ItlbParams)")
    a = p.add_argument_group("arm64 machine options (with --arch arm64)")
    a.add_argument("--no-module-region-full", dest="module_region_full", action="store_false",
                   default=True, help="CONFIG_RANDOMIZE_MODULE_REGION_FULL=n (Debian and the "
                                      "Kconfig default have =y: modules anywhere in a 2 GiB window)")
    a.add_argument("--kasan", choices=("off", "generic", "sw_tags", "hw_tags"), default="off",
                   help="CONFIG_KASAN mode (default off, as Debian); arm64 selects KASAN_VMALLOC")
    a.add_argument("--linear-map", choices=("ptes", "bbml2"), default="ptes",
                   help="rodata=full linear map: page-mapped from boot (ptes, default) or block "
                        "mappings split on demand (bbml2: v6.18+ on a BBML2_NOABORT CPU)")
    a.add_argument("--tlbi-range", action="store_true",
                   help="the CPU has FEAT_TLBIRANGE (changes the v6.13+ flush_tlb_kernel_range rule)")


def add_jobs_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--jobs", "-j", type=jobs_arg, default=0, metavar="N", help=help)


#: (option, KernelConfig field, default) of the arm64-only machine options
ARM64_OPTIONS = (("--no-module-region-full", "module_region_full", True), ("--kasan", "kasan", "off"),
                 ("--linear-map", "linear_map", "ptes"), ("--tlbi-range", "tlbi_range", False))


def arch_of(args) -> str:
    return getattr(args, "arch", None) or "x86_64"


def machine_from(args) -> tuple[dict, Costs]:
    from ..kernel.arch import get_arch
    arch = get_arch(arch_of(args))
    machine = {"mem_bytes": args.mem_gib * GiB, "placement": args.placement,
               "kaslr": not args.no_kaslr, "numa_nodes": getattr(args, "numa_nodes", 1)}
    for opt, name, default in ARM64_OPTIONS:
        v = getattr(args, name, default)
        if v != default and arch.name != "arm64":
            raise UsageError(f"{opt}: an arm64 machine option; add --arch arm64")
        if arch.name == "arm64":
            machine[name] = v
    if arch.name != "x86_64":
        machine["arch"] = arch.name
    cpu = getattr(args, "itlb_cpu", None) or arch.itlb_cpu
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
        costs = arch.costs.parse(args.cost)
    except ValueError as e:
        raise UsageError(printable(e, 180)) from None
    return machine, costs


def designs_for_arch(args, chosen: list[str] | None) -> list[str]:
    """The designs a command runs on ``--arch``: the chosen ones, each of
    which must exist there (a UsageError saying why not), or every
    registered design that exists there."""
    arch = arch_of(args)
    if chosen:
        for d in chosen:
            why = registry.get(d).arch_support(arch)
            if why:
                raise UsageError(f"{d} does not exist on {arch}: {why}")
        return chosen
    return registry.names_for(arch)


PARAM_HELP = ("set a design parameter: NAME=VALUE for every design run here that has "
              "it, DESIGN:NAME=VALUE for one (repeatable), e.g. legacy:bpf_prog_pack=false")


def add_param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", metavar="[DESIGN:]NAME=VALUE", help=PARAM_HELP)


def design_class(name: str):
    """The registered design ``name`` (:class:`~execbench.errors.UnknownName`,
    a UsageError with a suggestion, otherwise)."""
    return registry.get(name)


def check_params(design: str, params: dict, arch: str = "x86_64") -> None:
    """Build the design once on a small machine, so that a parameter value
    its constructor refuses (``execmem_rox --param version=9.9``) is an
    error now, not after other replays have run."""
    from ..kernel import Kernel, KernelConfig
    cls = registry.get(design)
    try:
        cls(Kernel(KernelConfig(version=cls.kernel_version, mem_bytes=2 * GiB, itlb_cpu="off",
                                arch=arch)), **params)
    except (DesignError, ValueError) as e:
        raise UsageError(f"--param for {design}: {printable(e, 150)}") from None


def parse_param_items(items: list[str] | None, designs: list[str], arch: str = "x86_64") -> dict[str, dict]:
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
        check_params(design, params, arch)
    return out


def params_from(args, designs: list[str] | None = None) -> dict[str, dict]:
    return parse_param_items(args.param, designs or args.designs or registry.names_for(arch_of(args)),
                             arch_of(args))


def emit_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
