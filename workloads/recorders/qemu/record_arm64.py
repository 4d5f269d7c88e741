"""One arm64 recording, end to end (``execbench record qemu --arch arm64``).

The same run as :mod:`.record` (fetch -> initramfs -> boot -> parse -> write a recording
folder, atomically) with arm64's pieces: Debian's arm64 kernel through a private apt
configuration (``kernels``), ``busybox-static:arm64``, the BPF helper cross-compiled with
``aarch64-linux-gnu-gcc``, ``qemu-system-aarch64 -M virt -cpu max`` (``boot``), the arm64
probes (``probes.ARM64_PROBES``), and the reconstruction of text writes and executable
areas (:mod:`.arm64`) before the trace (``build``) and the truth (:mod:`.truth_arm64`).

A recording folder ``qemu-<series>-arm64/`` holds what an x86-64 one does, plus

* ``sections.csv`` -- where the recorder's layout puts every section of every loaded
  module (``modlayout.section_layout``), next to ``guest/sections.txt``, where the kernel
  put them (:mod:`.sections` compares the two);
* ``guest/vmallocinfo_start_exec.txt`` -- executable areas that existed at ``tracing_on``;
* ``guest/dmesg_arch.txt`` -- the kernel's own lines about KASLR, module windows and CPU
  features.

The provenance says ``arch = "arm64"`` under ``[workload]``; ``record.rebuild`` reads it.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import pathlib
import time

import pandas as pd
import tomli_w

from execbench.trace import from_frame
from execbench.workloads.recorders import modlayout
from execbench.workloads.recorders import modules as rm

from . import arm64, boot, build, guest, initramfs, kernels, modset, parse, sections, truth_arm64
from .record import _events_bytes, staging, write_common

ARCH = "arm64"
GUEST_KEEP = ("log", "probe_status", "kprobe_events", "bpfinfo", "ftrace_filters",
              "kprobes_list", "stats", "modules", "modules_loaded", "sections", "dmesg_arch",
              "kallsyms_probed", "insmod_err")


def name_for(series: str) -> str:
    return f"qemu-{series}-{ARCH}"


def kernel_config(root: pathlib.Path) -> dict[str, str]:
    """The config of an unpacked kernel package (boot/config-*, or sid's
    usr/lib/modules/<release>/config)."""
    found = sorted(root.glob("boot/config-*")) + sorted(root.glob("usr/lib/modules/*/config"))
    if not found:
        raise kernels.FetchError(f"{root}: no boot/config-* or usr/lib/modules/*/config")
    return rm.parse_config(found[0].read_text())


def layout_options(release: str, config: dict[str, str]) -> dict:
    return rm.layout_options(ARCH, release, config)


def layouts(mods: list[modset.Module], opts: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(modules.csv, sections.csv) of the module set."""
    lays, kos = [], []
    for m in mods:
        data = modset.read_ko(m.path)
        lays.append(modlayout.layout_module(data, str(m.path), **opts))
        kos.append((lays[-1].module, data))
    # the set is closed over depends=, so every module-provided symbol a loaded module
    # uses is exported by a module of the set: plt_*_kernel come out as in the full table
    exports = modlayout.module_exports(lays)
    return pd.DataFrame([lay.record(exports) for lay in lays]), sections.layout_rows(kos, opts)


def derive(ev: pd.DataFrame, lay: pd.DataFrame, vmi_start: str, vmi_exec: str, kallsyms: str,
           series: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(trace, truth, notes) from the parsed events and the guest dumps."""
    ev2, areas, writes = arm64.normalize(ev, vmi_start)
    idx = arm64.AreaIndex(areas)
    alloc_e, free_e = ("module_alloc", "module_memfree") if series == "6.1" else ("execmem_alloc", "execmem_free")
    tr, notes = build.build(ev2, lay, alloc_e, free_e, "vmalloc_node_range_ret", arch=ARCH,
                            exec_pred=lambda a: idx.find(a) is not None)
    tt = truth_arm64.truth(ev2, areas, writes, vmi_exec, arm64.kernel_text(kallsyms))
    return tr, tt, notes


def read_events(data: bytes) -> pd.DataFrame:
    """``events.csv.gz`` bytes -> the event table (ids as ints, everything else as text)."""
    ev = pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype=str, keep_default_na=False)
    for c in ("seq", "t_ns", "cpu", "pid"):
        ev[c] = ev[c].astype(int)
    return ev


def rebuild(folder: pathlib.Path, series: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(trace, truth, notes) re-derived from a recording folder."""
    ev = read_events((folder / "events.csv.gz").read_bytes())
    lay = pd.read_csv(folder / "modules.csv")
    g = folder / "guest"
    return derive(ev, lay, (g / "vmallocinfo_start_exec.txt").read_text(),
                  (g / "vmallocinfo_exec.txt").read_text(), (g / "kallsyms_probed.txt").read_text(),
                  series)


def record(series: str, out_root: pathlib.Path, scratch: pathlib.Path, timeout: float = 1800.0,
           log=print, package: str | None = None) -> pathlib.Path:
    """Run one arm64 recording and write its folder under ``out_root``; return the folder."""
    t_all = time.monotonic()
    ks = kernels.spec(series, "generic", arch=ARCH)
    kernels.ensure_host_packages(ARCH)
    name = name_for(series)
    work = scratch / name
    work.mkdir(parents=True, exist_ok=True)
    log(f"[qemu] resolving and fetching {ks.metapackage} ({ks.suite}, {ks.arch})")
    k = kernels.fetch(ks, scratch / f"k-{series}-{ARCH}", package=package)
    log(f"[qemu] {k.package} {k.version} sha256 {k.sha256[:16]}...")
    opts = layout_options(k.release, kernel_config(k.root))
    roots = modset.roots_for(ARCH)
    mods = modset.closure(k.moddir, roots)
    missing = modset.missing_roots(k.moddir, roots)
    if missing:
        log(f"[qemu] roots not in {k.package}: {missing}")
    bb = kernels.fetch_busybox(scratch, ARCH)
    bpf = guest.build_bpfload(work / "bpfload", ARCH)
    initrd = work / "initrd.gz"
    initrd.write_bytes(initramfs.build(guest.entries(mods, bpf, bb.path, series, ARCH)))
    log(f"[qemu] initramfs {initrd.stat().st_size} bytes, {len(mods)} modules; booting (TCG)")
    console = work / "console.txt"
    wall = boot.run(k.vmlinuz, initrd, console, timeout=timeout, arch=ARCH)
    log(f"[qemu] qemu wall {wall:.1f} s")
    dumps = boot.sections(console.read_bytes(), str(console))
    ev_bytes = _events_bytes(parse.parse(dumps["trace"].decode("utf-8", "replace"), f"{console}:trace"))
    ev = read_events(ev_bytes)  # what rebuild() reads back: the same trace and truth
    lay, secs = layouts(mods, opts)
    lay = pd.read_csv(io.StringIO(lay.to_csv(index=False, lineterminator="\n")))
    areas = arm64.exec_areas(ev, dumps["vmallocinfo_start"].decode())
    vmi_start = arm64.vmallocinfo_exec(dumps["vmallocinfo_start"].decode(), [])
    vmi_exec = arm64.vmallocinfo_exec(dumps["vmallocinfo"].decode(), areas)
    tr, tt, notes = derive(ev, lay, vmi_start, vmi_exec, dumps["kallsyms_probed"].decode(), series)
    check = sections.compare(secs, sections.parse_sysfs(dumps["sections"].decode()), one_area=series == "6.1")
    log(f"[qemu] section layout: {int(check.exact.sum())}/{len(check)} modules exact")
    from_frame(tr, name)  # schema check before anything is written
    with staging(out_root, name) as tmp:
        write_common(tmp, name, tr, ev_bytes, tt, lay, dumps, GUEST_KEEP, vmi_exec)
        (tmp / "sections.csv.gz").write_bytes(
            gzip.compress(secs.to_csv(index=False, lineterminator="\n").encode(), 9, mtime=0))
        (tmp / "guest" / "vmallocinfo_start_exec.txt").write_text(vmi_start)
        stats = {"qemu_wall_s": round(wall, 1), "record_wall_s": round(time.monotonic() - t_all, 1),
                 "guest_events": len(ev), "trace_events": len(tr), "modules_in_set": len(mods),
                 "missing_roots": missing, "sections_exact_modules": int(check.exact.sum()),
                 "sections_compared_modules": len(check), **{k2: int(v) for k2, v in notes.items()}}
        prov = provenance(name, ks, k, bb, tr, stats, dumps)
        (tmp / f"{name}.toml").write_bytes(tomli_w.dumps(prov).encode())
    final = out_root / name
    log(f"[qemu] wrote {final}: {len(tr)} trace events from {len(ev)} guest events")
    return final


def provenance(name: str, ks: kernels.KernelSpec, k: kernels.Fetched, bb: kernels.Busybox,
               tr: pd.DataFrame, stats: dict, dumps: dict[str, bytes]) -> dict:
    users = sorted(tr["user"].unique().tolist())
    log = dumps.get("log", b"").decode("utf-8", "replace").strip().splitlines()
    return {
        "workload": {
            "name": name,
            "arch": ARCH,
            "description": (f"Real Linux {k.release} (arm64) under qemu-system-aarch64/TCG: "
                            f"{stats['modules_in_set']} modules insmod/rmmod, BPF socket+seccomp "
                            "filters, ftrace instances, kprobes; attributed from tracefs kprobe events"),
            "users": users,
            "events": int(len(tr)),
            "synthetic": True,
            "synthetic_columns": [],
            "synthetic_what": ("the guest script's schedule (which modules, in what order, which "
                               "are removed; the BPF programs' instruction mix; kprobe targets and "
                               "ftrace filters) is chosen by execbench; every size, address, count "
                               "and time is measured in the real kernel; patch rows have len 4 "
                               "(one arm64 instruction per fixmap write)"),
        },
        "source": {
            "packages": {
                k.package: {"version": k.version, "sha256": k.sha256, "suite": ks.suite,
                            "architecture": ks.arch},
                **{pp: {"version": pv, "sha256": ps, "suite": ks.suite, "architecture": ks.arch}
                   for pp, pv, ps in k.parts},
                bb.package: {"version": bb.version, "sha256": bb.sha256, "suite": "bookworm"},
                **{p: {"version": v} for p, v in kernels.tool_versions(ARCH).items()},
            },
            "artifacts": ["vmlinuz and .ko files of the package above (not shipped)",
                          "guest tracefs trace_pipe text (parsed into events.csv.gz)",
                          "/proc/vmallocinfo at tracing_on and at the end (executable areas in guest/)",
                          "/sys/module/*/sections after the last insmod (guest/sections.txt)"],
            "date": _dt.date.today().isoformat(),
            "guest_log": log,
            "qemu": " ".join(boot.qemu_command(ARCH, pathlib.Path("vmlinuz"), pathlib.Path("initrd.gz"))),
        },
        "measured": stats,
        "regenerate": {"command": (f"execbench record qemu --arch arm64 --kernel {ks.series} "
                                   f"--package {k.package}")},
        "licence": {"note": ("Derived numbers only (sizes, counts, times, addresses) from GPL-2.0 "
                             "Debian kernel packages; no kernel code is shipped.")},
    }


def read_sections(folder: pathlib.Path) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(gzip.decompress((folder / "sections.csv.gz").read_bytes())))
