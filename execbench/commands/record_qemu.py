"""``execbench record qemu``: ground truth from a real kernel booted under QEMU.

Boots a Debian kernel package (6.1 from bookworm, 6.12 from trixie and 7.2
from sid through a private apt configuration) under QEMU/TCG with an initramfs built on the fly,
runs the guest workload (insmod/rmmod of ~135 real modules, BPF socket and
seccomp filters, ftrace instances, kprobes) with tracefs kprobe events on the
allocate/free/protect/patch functions, and writes a recording folder: the
workload trace (execbench schema) + provenance, the raw events, the
ground-truth counts, the module layouts and the guest's dumps.

Needs root for ``apt-get`` (host packages: qemu-system-x86, busybox-static,
gcc, linux-libc-dev) and network access to Debian; takes 2-4 minutes.  Never
part of the default test run (``pytest -m qemu`` runs it).

examples:
  execbench record qemu --kernel 6.1
  execbench record qemu --kernel 6.12 --flavour cloud --out "$TMPDIR/rec"
  execbench record qemu --kernel 7.2
  execbench record qemu --arch arm64 --kernel 6.1 --package linux-image-6.1.0-56-arm64-unsigned
  execbench record qemu --kernel 6.1 --rebuild   # re-derive trace + truth from events.csv.gz
  execbench record qemu --kernel 6.1 --rebuild --relayout --write   # + modules.csv from the package
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from execbench.commands.checks import nonneg_float

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[2] / "workloads" / "data" / "qemu"
DEFAULT_SCRATCH = pathlib.Path("/var/tmp/execbench-qemu")


def add_qemu_parser(record_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``qemu`` under ``execbench record``; sets ``func`` to :func:`main`."""
    q = record_subparsers.add_parser(
        "qemu", help="record ground truth from a real kernel under QEMU (slow, needs Debian mirrors)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--kernel", choices=["6.1", "6.12", "7.2"], required=True, help="kernel series")
    q.add_argument("--flavour", choices=["generic", "cloud"], default="generic",
                   help="Debian kernel flavour (default: generic)")
    q.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64",
                   help="guest architecture (default: x86_64); arm64 boots Debian's arm64 kernel "
                        "under qemu-system-aarch64 -M virt -cpu max and writes qemu-<kernel>-arm64/")
    q.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                   help=f"folder that receives qemu-<kernel>-<flavour>/ (default: {DEFAULT_OUT})")
    q.add_argument("--scratch", type=pathlib.Path, default=DEFAULT_SCRATCH,
                   help=f"downloads, unpacked packages, initramfs, console log (default: {DEFAULT_SCRATCH})")
    q.add_argument("--package", help="exact kernel package to boot (e.g. linux-image-6.1.0-56-amd64, "
                                     "as pinned in a recording's TOML) instead of the metapackage's "
                                     "current dependency")
    q.add_argument("--timeout", type=nonneg_float("seconds", 86400), default=900.0,
                   help="QEMU timeout in seconds (default 900)")
    q.add_argument("--rebuild", action="store_true",
                   help="no boot: re-derive the trace and truth table of an existing recording "
                        "from its events.csv.gz and check they are unchanged")
    q.add_argument("--write", action="store_true",
                   help="with --rebuild: replace the trace and truth table when they differ "
                        "(after a parser fix; atomic)")
    q.add_argument("--relayout", action="store_true",
                   help="with --rebuild: first recompute modules.csv from the recording's pinned "
                        "package (downloaded into --scratch) when the module layout gained columns; "
                        "columns it already had must not change")
    q.set_defaults(func=main)
    return q


def register(subparsers: argparse._SubParsersAction) -> None:
    """Stand-alone registration (``execbench qemu ...``) for when no ``record`` group exists."""
    add_qemu_parser(subparsers)


def main(args: argparse.Namespace) -> int:
    from execbench.workloads.recorders.qemu import record as rec

    arch = getattr(args, "arch", "x86_64")
    if arch == "arm64":
        if args.flavour != "generic":
            print("execbench record qemu: error: --arch arm64 records the generic flavour only",
                  file=sys.stderr)
            return 2
        if args.relayout:
            print("execbench record qemu: error: --relayout is for x86_64 recordings", file=sys.stderr)
            return 2
        from execbench.workloads.recorders.qemu import record_arm64

        name = record_arm64.name_for(args.kernel)
    else:
        name = rec.name_for(args.kernel, args.flavour)
    if args.rebuild:
        if args.relayout:
            if not args.write:
                print("execbench record qemu: error: --relayout rewrites modules.csv; pass --write too",
                      file=sys.stderr)
                return 2
            try:
                lay = rec.relayout(args.out / name, args.kernel, args.scratch,
                                   log=lambda m: print(m, file=sys.stderr))
            except Exception as exc:  # report the failing step, exit non-zero
                print(f"execbench record qemu: error: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            from execbench.trace import atomic_write_bytes
            atomic_write_bytes(args.out / name / "modules.csv",
                               lay.to_csv(index=False, lineterminator="\n").encode())
        return _rebuild(args.out / name, args.kernel, write=args.write)
    try:
        if arch == "arm64":
            record_arm64.record(args.kernel, args.out, args.scratch, timeout=max(args.timeout, 1800.0),
                                log=lambda m: print(m, file=sys.stderr), package=args.package)
        else:
            rec.record(args.kernel, args.flavour, args.out, args.scratch, timeout=args.timeout,
                       log=lambda m: print(m, file=sys.stderr), package=args.package)
    except Exception as exc:  # report the failing step, exit non-zero
        print(f"execbench record qemu: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _rebuild(folder: pathlib.Path, series: str, write: bool = False) -> int:
    import gzip

    from execbench.trace import atomic_write_bytes, save_trace, to_csv_bytes
    from execbench.workloads.recorders.qemu import record as rec

    if not folder.is_dir():
        print(f"execbench record qemu: error: {folder}: no such recording", file=sys.stderr)
        return 1
    tr, tt, _ = rec.rebuild(folder, series)
    trace_path = folder / f"{folder.name}.csv.gz"
    shipped = gzip.decompress(trace_path.read_bytes())
    truth_bytes = tt.to_csv(index=False, lineterminator="\n").encode()
    same_trace = shipped == to_csv_bytes(tr)
    same_truth = (folder / "truth.csv").read_bytes() == truth_bytes
    print(f"{folder.name}: trace {'unchanged' if same_trace else 'DIFFERS'}, "
          f"truth {'unchanged' if same_truth else 'DIFFERS'}")
    if write and not (same_trace and same_truth):
        save_trace(tr, trace_path)
        atomic_write_bytes(folder / "truth.csv", truth_bytes)
        print(f"{folder.name}: rewritten")
        return 0
    return 0 if same_trace and same_truth else 1
