"""``execbench record ...``: turn real artifacts into shipped tables and traces.

Subcommands (each writes atomically and exits non-zero with a message naming the input
on bad data):

* ``record modules <package.deb | /lib/modules/<ver>> [-o table.csv]`` — per-module table
  (workloads/recorders/modules.py).
* ``record boot --table T --listing L [--provider P ...] -o name.csv.gz`` — a boot
  workload: a real module set loaded in dependency order (recorders/boot.py).
* ``record bpf <libbpf-tools.deb | dir> [-o table.csv]`` — BPF program table
  (recorders/bpf.py).
* ``record session ...`` — the BPF/kprobe/ftrace session workloads (recorders/session.py).

Downloading packages is left to the user (``apt-get download``), or to ``record shipped``,
which regenerates every shipped file from pinned packages; none of this runs in tests.

Each subcommand sets ``func`` (``args -> int exit status``) on its parser.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from execbench.errors import ExecbenchError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record`` and its subcommands to the CLI."""
    p = subparsers.add_parser("record", help="record workloads and tables from real artifacts",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="record_cmd", required=True, metavar="{modules,boot,bpf,session,shipped}")

    m = sub.add_parser("modules", help="per-module loader table from a kernel package or /lib/modules/<ver>")
    m.add_argument("source", type=pathlib.Path, help="linux-image .deb, or a /lib/modules/<ver> directory")
    m.add_argument("-o", "--output", type=pathlib.Path,
                   help="table CSV to write (a .toml provenance sidecar is written beside it); "
                        "default: print CSV to stdout")
    m.add_argument("--kernel", help="kernel version string, when it cannot be read from paths")
    m.set_defaults(func=_cmd_modules)

    b = sub.add_parser("boot", help="boot workload from a module table and a loaded-module listing")
    b.add_argument("--table", type=pathlib.Path, required=True, help="module table from 'record modules'")
    b.add_argument("--listing", type=pathlib.Path, required=True,
                   help="lsmod output or one module name per line (newest first, as lsmod prints)")
    b.add_argument("--provider", action="append", default=[],
                   help="provider driver(s) added to the set (e.g. ena, gve, virtio_net)")
    b.add_argument("--name", required=True, help="workload name (the TOML [workload] name)")
    b.add_argument("--description", default="", help="one-line description")
    b.add_argument("--spacing-ms", type=float, default=10.0, help="synthetic gap between loads")
    b.add_argument("-o", "--output", type=pathlib.Path, required=True, help="trace path (.csv.gz)")
    b.set_defaults(func=_cmd_boot)

    try:
        from execbench.workloads.recorders import cli_extra
    except ImportError:  # pragma: no cover - optional subcommands not present
        cli_extra = None
    if cli_extra is not None:
        cli_extra.register(sub)


def _cmd_modules(args: argparse.Namespace) -> int:
    from execbench.workloads.recorders import modules as rm
    from execbench.workloads.recorders.provenance import record_date, sidecar_path, write_toml

    t0 = time.monotonic()
    try:
        table = rm.record_modules(args.source, kernel=args.kernel)
    except (rm.RecordError, rm.SourceError, OSError) as exc:
        print(f"execbench record modules: {exc}", file=sys.stderr)
        return 2
    text = rm.table_csv_text(table.rows)
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
    from execbench.workloads.recorders.modules import TABLE_COLUMNS

    pkgs = []
    if table.deb is not None:
        pkgs.append({"name": table.deb.package, "version": table.deb.version,
                     "architecture": table.deb.architecture, "sha256": table.deb.sha256,
                     "bytes": table.deb.size})
    src = f"{table.deb.package}_{table.deb.version}_{table.deb.architecture}.deb" if table.deb else table.kernel
    cfg = {k: table.config[k] for k in sorted(table.config) if k in _CONFIG_KEYS}
    return {
        "table": {
            "name": output.name,
            "kind": "module-table",
            "description": f"per-module loader sizes (enum mod_mem_type) and write work of every "
                           f"module of kernel {table.kernel}",
            "kernel": table.kernel,
            "rows": len(table.rows),
            "columns": list(TABLE_COLUMNS),
            "synthetic": False,
            "synthetic_note": "nothing synthetic: every number is derived from the .ko files",
            "rules": "kernel/module/main.c layout_sections() + kernel/module/kallsyms.c "
                     "layout_symtab() of v6.1; see workloads/recorders/modlayout.py",
        },
        "source": {"packages": pkgs, "artifacts": ["lib/modules/*/kernel/**/*.ko*", "boot/config-*"],
                   "date": date, "config": cfg},
        "regenerate": {"command": f"apt-get download {table.deb.package}={table.deb.version} && "
                                  f"execbench record modules {src} -o {output.as_posix()}"
                       if table.deb else f"execbench record modules <dir> -o {output.as_posix()}"},
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

    write_toml(sidecar_path(args.output),
               rb.boot_provenance(args.name, args.description, rows, args.table, args.listing, bs,
                                  builder, record_date(), args.provider,
                                  spacing_ns=int(args.spacing_ms * 1e6)))
    print(f"{args.name}: {len(bs.order)} modules, {len(builder)} events -> {args.output}", file=sys.stderr)
    return 0
