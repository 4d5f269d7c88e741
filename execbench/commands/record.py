"""``execbench record ...``: turn real artifacts into shipped tables and traces.

Subcommands (each writes atomically and exits non-zero with a message naming the input
on bad data):

* ``record modules <package.deb | /lib/modules/<ver>> [-o table.csv]`` — per-module table
  (workloads/recorders/modules.py).
* ``record boot --table T --listing L [--provider P ...] -o name.csv.gz`` — a boot
  workload: a real module set loaded in dependency order (recorders/boot.py).
* ``record bpf <libbpf-tools.deb | dir> [-o table.csv]`` — BPF program table
  (recorders/bpf.py).
* ``record host [--root /] [--table T] -o host.csv.gz`` — snapshot a running machine
  (recorders/host.py); works without root and lists what it could not read.
* ``record shipped [--stage tables|workloads|all] [--debs DIR] [--download]`` — rebuild
  every shipped table and workload (recorders/shipped.py): tables from the pinned .debs,
  workloads (boot-cloud/-server/-desktop, bpf-observability, cloud-session, kprobe-churn,
  ftrace-trampolines, fleet-day) from the committed tables.
* ``record fleet-days [--days N] -o trace.csv.gz`` -- fleet-day's recipe for N days after
  one boot (recorders/fleetdays.py), for fleet-scale replay (``run --stream``); not shipped.
* ``record jit-sizes [--scratch DIR] [--out DIR]`` — boot Debian's 6.1 kernel under QEMU,
  load the libbpf-tools and fleet-mix objects and write their measured JIT sizes to
  ``workloads/data/bpf/jit-sizes-6.1.csv`` (recorders/qemu/jitsize.py; root, 2-5 minutes).

Downloading packages is left to the user (``apt-get download``), or to ``record shipped``,
which regenerates every shipped file from pinned packages; none of this runs in tests.

Each subcommand sets ``func`` (``args -> int exit status``) on its parser.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from execbench.commands.checks import nonneg_float
from execbench.errors import ExecbenchError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record`` and its subcommands to the CLI."""
    p = subparsers.add_parser("record", help="record workloads and tables from real artifacts",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="record_cmd", required=True, metavar="{modules,boot,bpf,host,shipped,qemu,jit-sizes,fleet-days}")

    m = sub.add_parser("modules", help="per-module loader table from a kernel package or /lib/modules/<ver>")
    m.add_argument("source", type=pathlib.Path, nargs="+",
                   help="linux-image .deb, or a /lib/modules/<ver> directory; several packages of "
                        "one build are read together (sid: linux-modules-<abi> + linux-base-<abi>)")
    m.add_argument("-o", "--output", type=pathlib.Path,
                   help="table CSV to write (a .toml provenance sidecar is written beside it); "
                        "default: print CSV to stdout")
    m.add_argument("--kernel", help="kernel version string, when it cannot be read from paths")
    m.add_argument("--arch", choices=("x86_64", "arm64"),
                   help="architecture of the modules (default: from the first .ko's e_machine); "
                        "arm64 adds the loader's PLT sections and the plt_* columns")
    m.set_defaults(func=_cmd_modules)

    b = sub.add_parser("boot", help="boot workload from a module table and a loaded-module listing")
    b.add_argument("--table", type=pathlib.Path, required=True, help="module table from 'record modules'")
    b.add_argument("--listing", type=pathlib.Path, required=True,
                   help="lsmod output or one module name per line (newest first, as lsmod prints)")
    b.add_argument("--provider", action="append", default=[],
                   help="provider driver(s) added to the set (e.g. ena, gve, virtio_net)")
    b.add_argument("--name", required=True, help="workload name (the TOML [workload] name)")
    b.add_argument("--description", default="", help="one-line description")
    b.add_argument("--spacing-ms", type=nonneg_float("ms between loads", 3.6e6), default=10.0,
                   help="synthetic gap between loads, 0..3.6e6 ms (default 10)")
    b.add_argument("-o", "--output", type=pathlib.Path, required=True, help="trace path (.csv.gz)")
    b.set_defaults(func=_cmd_boot)

    x = sub.add_parser("bpf", help="BPF program table from a libbpf-tools package or a directory of executables")
    x.add_argument("source", type=pathlib.Path, help="libbpf-tools .deb, or a directory of executables")
    x.add_argument("-o", "--output", type=pathlib.Path, help="table CSV (+ .toml beside it); default stdout")
    x.set_defaults(func=_cmd_bpf)

    s = sub.add_parser("shipped", help="regenerate every shipped table and workload (pinned packages)")
    s.add_argument("--stage", choices=("tables", "jit", "workloads", "all"), default="all",
                   help="tables: from the .debs (needs them); jit: jit_bytes_est of the committed BPF "
                        "tables and the fleet-mix trace from the committed JIT measurement "
                        "(jit-sizes-6.1.csv); workloads: from the committed tables")
    s.add_argument("--debs", type=pathlib.Path, default=pathlib.Path("debs"),
                   help="folder holding (or receiving, with --download) the pinned .deb files")
    s.add_argument("--download", action="store_true", help="apt-get download missing pinned packages")
    s.add_argument("--data", type=pathlib.Path, default=None,
                   help="data folder to write (default: the installed execbench.workloads data)")
    s.set_defaults(func=_cmd_shipped)

    fd = sub.add_parser("fleet-days", help="fleet-day's recipe for N days on one host, for fleet-scale "
                                           "replay (~103 k events a day; not shipped)")
    fd.add_argument("--days", type=int, default=7,
                    help="days after one boot, 1..10000 (default 7, ~0.72 M events; 97: ~10 M)")
    fd.add_argument("-o", "--output", type=pathlib.Path, required=True, help="trace path (.csv.gz)")
    fd.set_defaults(func=_cmd_fleet_days)

    h = sub.add_parser("host", help="snapshot this machine's modules, BPF programs, ftrace trampolines, kprobes")
    h.add_argument("--root", type=pathlib.Path, default=pathlib.Path("/"),
                   help="root holding proc/ and sys/ (a copied tree works; default /)")
    h.add_argument("--table", type=pathlib.Path,
                   help="module table of the running kernel (record modules /lib/modules/$(uname -r))")
    h.add_argument("--bpftool-json", type=pathlib.Path, help="saved 'bpftool prog show -j' output")
    h.add_argument("--no-bpftool", action="store_true", help="do not run bpftool")
    h.add_argument("--name", default="host", help="workload name")
    h.add_argument("-o", "--output", type=pathlib.Path, required=True, help="trace path (.csv.gz)")
    h.set_defaults(func=_cmd_host)

    j = sub.add_parser("jit-sizes", help="measure the x86-64 JIT size of the shipped BPF programs "
                                         "on Debian's 6.1 kernel under QEMU (root, downloads)")
    j.add_argument("--scratch", type=pathlib.Path, default=pathlib.Path("/var/tmp/execbench-qemu"),
                   help="downloads, initramfs and guest dumps (default: /var/tmp/execbench-qemu)")
    j.add_argument("--out", type=pathlib.Path, default=None,
                   help="folder receiving jit-sizes-6.1.csv + .toml (default: workloads/data/bpf)")
    j.add_argument("--timeout", type=nonneg_float("seconds", 86400), default=7200.0,
                   help="QEMU timeout in seconds (default 7200)")
    j.set_defaults(func=_cmd_jit_sizes)

    try:  # the QEMU ground-truth recorder (another module) hangs under the same group
        from execbench.commands.record_qemu import add_qemu_parser
    except ImportError:
        add_qemu_parser = None
    if add_qemu_parser is not None:
        add_qemu_parser(sub)


def _cmd_jit_sizes(args: argparse.Namespace) -> int:
    from execbench.workloads.recorders.qemu import jitsize

    argv = ["--scratch", str(args.scratch), "--timeout", str(args.timeout)]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    return jitsize.main(argv)


def _cmd_modules(args: argparse.Namespace) -> int:
    from execbench.workloads.recorders import modules as rm
    from execbench.workloads.recorders.provenance import record_date, sidecar_path, write_toml

    t0 = time.monotonic()
    try:
        table = rm.record_modules(args.source, kernel=args.kernel, arch=getattr(args, "arch", None))
    except (rm.RecordError, rm.SourceError, OSError) as exc:
        print(f"execbench record modules: {exc}", file=sys.stderr)
        return 2
    text = rm.table_csv_text(table.rows, table.columns)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    rm.atomic_write_bytes(args.output, text.encode())
    doc = module_table_provenance(table, args.output, record_date())
    write_toml(sidecar_path(args.output), doc)
    print(f"{len(table.rows)} modules of {table.kernel} -> {args.output} "
          f"({time.monotonic() - t0:.1f}s)", file=sys.stderr)
    return 0


def module_table_provenance(table, output: pathlib.Path, date: str) -> dict:
    """The TOML sidecar of a module table."""
    debs = table.debs or ((table.deb,) if table.deb is not None else ())
    pkgs = [{"name": d.package, "version": d.version, "architecture": d.architecture,
             "sha256": d.sha256, "bytes": d.size} for d in debs]
    src = " ".join(f"{d.package}_{d.version}_{d.architecture}.deb" for d in debs) or table.kernel
    keys = _CONFIG_KEYS | (_CONFIG_KEYS_ARM64 if table.arch == "arm64" else set())
    cfg = {k: table.config[k] for k in sorted(table.config) if k in keys}
    rules = ("kernel/module/main.c layout_sections() + kernel/module/kallsyms.c "
             "layout_symtab() of v6.1; see workloads/recorders/modlayout.py")
    if table.arch == "arm64":
        rules += ("; arm64: arch/arm64/kernel/module-plts.c module_frob_arch_sections() and "
                  "count_plts() resize .plt/.init.plt/.text.ftrace_trampoline before layout "
                  "(no erratum-843419 veneers)")
    doc_table = {
        "name": output.name,
        "kind": "module-table",
        "description": f"per-module loader sizes (enum mod_mem_type) and write work of every "
                       f"module of kernel {table.kernel}",
        "kernel": table.kernel,
        "rows": len(table.rows),
        "columns": list(table.columns),
        "synthetic": False,
        "synthetic_note": "nothing synthetic: every number is derived from the .ko files",
        "rules": rules,
    }
    if table.arch != "x86_64":
        doc_table["arch"] = table.arch
    arch_opt = " --arch arm64" if table.arch == "arm64" else ""
    return {
        "table": doc_table,
        "source": {"packages": pkgs, "artifacts": ["lib/modules/*/kernel/**/*.ko*", "boot/config-*"],
                   "date": date, "config": cfg},
        "regenerate": {"command": f"apt-get download {' '.join(f'{d.package}={d.version}' for d in debs)} && "
                                  f"execbench record modules {src}{arch_opt} -o {output.as_posix()}"
                       if table.deb else f"execbench record modules <dir>{arch_opt} -o {output.as_posix()}"},
        "licence": {"note": "Linux kernel modules are GPL-2.0; only derived numbers (sizes, counts, "
                            "alignments, module and dependency names, licence strings) are kept, "
                            "no code or data bytes."},
    }


_CONFIG_KEYS = {
    "CONFIG_MODULE_UNLOAD", "CONFIG_KALLSYMS_ALL", "CONFIG_STRICT_MODULE_RWX", "CONFIG_LIVEPATCH",
    "CONFIG_RETPOLINE", "CONFIG_RETHUNK", "CONFIG_X86_KERNEL_IBT", "CONFIG_CALL_THUNKS",
    "CONFIG_PARAVIRT", "CONFIG_UNWINDER_ORC", "CONFIG_DYNAMIC_FTRACE", "CONFIG_FTRACE_MCOUNT_RECORD",
    "CONFIG_MODULE_COMPRESS_NONE", "CONFIG_MODULE_COMPRESS_XZ", "CONFIG_MODULE_COMPRESS_ZSTD",
    "CONFIG_BPF_JIT", "CONFIG_KPROBES", "CONFIG_OPTPROBES", "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
}
#: arm64 options that change the layout or what the model does with it (docs/arm64.md §0)
_CONFIG_KEYS_ARM64 = {
    "CONFIG_ARM64_MODULE_PLTS", "CONFIG_RANDOMIZE_BASE", "CONFIG_RANDOMIZE_MODULE_REGION_FULL",
    "CONFIG_ARM64_ERRATUM_843419", "CONFIG_DYNAMIC_FTRACE_WITH_REGS", "CONFIG_DYNAMIC_FTRACE_WITH_ARGS",
    "CONFIG_DYNAMIC_FTRACE_WITH_CALL_OPS", "CONFIG_FTRACE_MCOUNT_USE_PATCHABLE_FUNCTION_ENTRY",
    "CONFIG_ARM64_4K_PAGES", "CONFIG_ARM64_VA_BITS", "CONFIG_RODATA_FULL_DEFAULT_ENABLED",
    "CONFIG_KASAN", "CONFIG_EXECMEM", "CONFIG_UNWIND_TABLES", "CONFIG_SHADOW_CALL_STACK",
}


def _cmd_boot(args: argparse.Namespace) -> int:
    from execbench.workloads.recorders import boot as rb
    from execbench.workloads.recorders import modules as rm

    try:
        rows = rm.read_table(args.table)
        table = {r["module"]: r for r in rows}
        listing = rb.read_listing(args.listing)
        bs = rb.choose_boot_set(table, listing, args.provider)
        builder = rb.boot_trace(table, bs.order, spacing_ns=int(args.spacing_ms * 1e6))
        builder.save(args.output)
    except (rb.ListingError, rm.RecordError, ExecbenchError, OSError, ValueError) as exc:
        print(f"execbench record boot: {exc}", file=sys.stderr)
        return 2
    from execbench.workloads.recorders.provenance import record_date, sidecar_path, write_toml

    doc = rb.boot_provenance(args.name, args.description, rows, args.table, args.listing, bs,
                             builder, record_date(), args.provider, spacing_ns=int(args.spacing_ms * 1e6))
    doc["regenerate"]["command"] = doc["regenerate"]["command"].replace("<out>.csv.gz", args.output.as_posix())
    write_toml(sidecar_path(args.output), doc)
    print(f"{args.name}: {len(bs.order)} modules, {len(builder)} events -> {args.output}", file=sys.stderr)
    return 0


def _cmd_bpf(args: argparse.Namespace) -> int:
    from execbench.workloads.recorders import bpf as rbpf
    from execbench.workloads.recorders import modules as rm
    from execbench.workloads.recorders import shipped as sh
    from execbench.workloads.recorders.provenance import record_date, sidecar_path, write_toml

    try:
        rows, deb = rbpf.record_bpf(args.source)
    except (rbpf.BpfRecordError, rm.SourceError, OSError) as exc:
        print(f"execbench record bpf: {exc}", file=sys.stderr)
        return 2
    text = sh.bpf_table_text(rows)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    rm.atomic_write_bytes(args.output, text.encode())
    write_toml(sidecar_path(args.output), sh.bpf_table_provenance(rows, deb, args.output, record_date()))
    print(f"{len(rows)} BPF programs in {len({r['tool'] for r in rows})} tools -> {args.output}", file=sys.stderr)
    return 0


def _cmd_fleet_days(args: argparse.Namespace) -> int:
    from execbench.workloads import catalog
    from execbench.workloads.recorders import fleetdays

    if not 1 <= args.days <= 10000:
        print(f"execbench record fleet-days: --days {args.days}: expected 1..10000", file=sys.stderr)
        return 2
    t0 = time.monotonic()

    def progress(day: int, n: int) -> None:
        if sys.stderr.isatty():
            print(f"\r  day {day}/{args.days}: {n:,} events", end="", file=sys.stderr, flush=True)

    n = fleetdays.write(catalog.data_dir(), args.days, args.output, progress)
    print(f"\nfleet-days: {args.days} days, {n:,} events -> {args.output} "
          f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return 0


def _cmd_shipped(args: argparse.Namespace) -> int:
    from execbench.workloads import catalog
    from execbench.workloads.recorders import modules as rm
    from execbench.workloads.recorders import shipped as sh

    data = args.data or catalog.data_dir()
    try:
        if args.stage in ("tables", "all"):
            t0 = time.monotonic()
            n = sh.write_module_table(sh.fetch(sh.KERNEL_DEB, args.debs, args.download), data)
            print(f"module table (cloud): {n} modules ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
            t0 = time.monotonic()
            n = sh.write_module_table(sh.fetch(sh.GENERIC_DEB, args.debs, args.download), data, sh.GENERIC_TABLE)
            print(f"module table (generic): {n} modules ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
            t0 = time.monotonic()
            n = sh.write_bpf_table(sh.fetch(sh.BPF_DEB, args.debs, args.download), data)
            print(f"bpf table: {n} programs ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
            for rel, pins in sh.ARM64_TABLES:
                t0 = time.monotonic()
                n = sh.write_module_table([sh.fetch(p, args.debs, args.download) for p in pins], data, rel)
                print(f"module table ({rel.name}): {n} modules ({time.monotonic() - t0:.1f}s)",
                      file=sys.stderr)
        if args.stage in ("jit", "all"):
            for name, n in sh.refresh_jit_estimates(data).items():
                print(f"{name}: jit_bytes_est refreshed, {n} rows measured", file=sys.stderr)
        if args.stage in ("workloads", "all"):
            t0 = time.monotonic()
            counts = sh.build_workloads(data)
            for name, n in counts.items():
                print(f"{name}: {n} events", file=sys.stderr)
            print(f"workloads built in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    except (sh.ShippedError, rm.RecordError, ExecbenchError, OSError, KeyError, ValueError) as exc:
        print(f"execbench record shipped: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_host(args: argparse.Namespace) -> int:
    from execbench.workloads.recorders import host as rh
    from execbench.workloads.recorders import modules as rm
    from execbench.workloads.recorders.provenance import record_date, sidecar_path, write_toml

    try:
        table = {r["module"]: r for r in rm.read_table(args.table)} if args.table else None
        bj = args.bpftool_json.read_text() if args.bpftool_json else None
        snap = rh.snapshot(args.root, bpftool_json=bj, run_bpftool=not args.no_bpftool)
        builder, report = rh.host_trace(snap, table)
    except (rm.RecordError, OSError, ValueError) as exc:
        print(f"execbench record host: {exc}", file=sys.stderr)
        return 2
    for what, why in sorted(snap.missing.items()):
        print(f"execbench record host: could not read {what}: {why}", file=sys.stderr)
    if report["modules_without_sizes"]:
        print(f"execbench record host: {len(report['modules_without_sizes'])} modules have no sizes "
              f"(not in --table): {', '.join(report['modules_without_sizes'][:10])}", file=sys.stderr)
    if len(builder) == 0:
        print("execbench record host: nothing readable to record; no trace written", file=sys.stderr)
        return 1
    try:
        builder.save(args.output)
    except ExecbenchError as exc:
        print(f"execbench record host: {exc}", file=sys.stderr)
        return 2
    users = sorted({str(r["user"]) for r in builder._rows})
    write_toml(sidecar_path(args.output), {
        "workload": {"name": args.name, "description": "snapshot of a running machine's executable-memory users",
                     "users": users, "events": len(builder), "synthetic": True,
                     "synthetic_note": "event order and times (1 ms apart) are synthetic: a snapshot has no "
                                       "history; module sizes come from the module table, BPF sizes are "
                                       "bytes_jited, trampoline and slot sizes are the session parameters"},
        "source": {"root": str(args.root), "module_table": str(args.table or ""), "date": record_date(),
                   "modules_listed": len(snap.modules), "bpf_programs": len(snap.bpf_progs),
                   "ftrace_trampolines": len(snap.ftrace_trampolines), "ftrace_sites": snap.ftrace_sites,
                   "kprobes": len(snap.kprobes)},
        "missing": dict(sorted(snap.missing.items())),
        "report": {"modules_without_sizes": report["modules_without_sizes"],
                   "bpf_not_jited": report["bpf_not_jited"]},
        "regenerate": {"command": "execbench record host -o <out>.csv.gz (on the machine)"},
        "licence": {"note": "derived numbers and names from the local machine only"},
    })
    print(f"{args.name}: {len(builder)} events -> {args.output}", file=sys.stderr)
    return 0
