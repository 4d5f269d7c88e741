"""One recording, end to end: fetch -> initramfs -> boot -> parse -> write a recording folder.

A recording folder ``workloads/data/qemu/qemu-<series>-<flavour>/`` holds

* ``qemu-<...>.csv.gz`` + ``qemu-<...>.toml`` -- the workload trace (execbench schema)
  and its provenance (package versions + sha256, what is synthetic);
* ``events.csv.gz`` -- every parsed guest event (the raw material: the trace and
  the truth table are rebuilt from it by ``rebuild()``, which the tests do);
* ``truth.csv`` -- ground-truth counts per primitive (``truth.py``);
* ``modules.csv`` -- the ``.ko`` layouts of the loaded modules (``modlayout``);
* ``guest/`` -- the guest's small dumps (log, probe status, bpfinfo,
  kprobes list, ring-buffer stats, module-range lines of /proc/vmallocinfo).

Writes go to a temporary sibling folder that replaces the old one at the end
(``os.replace``), so a failed run never leaves a half-written recording.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import io
import os
import pathlib
import shutil
import tempfile
import time
import tomllib

import pandas as pd
import tomli_w

from execbench.trace import from_frame, save_trace
from execbench.workloads.recorders import modlayout

from . import boot, build, guest, initramfs, kernels, modset, parse, truth

GUEST_KEEP = ("log", "probe_status", "kprobe_events", "bpfinfo", "ftrace_filters",
              "ftrace_tramp_count", "enabled_functions", "kprobes_list", "stats", "modules",
              "kallsyms_probed", "insmod_err", "vmstat", "vmstat_steps", "pagetypeinfo_start")


def name_for(series: str, flavour: str) -> str:
    return f"qemu-{series}-{flavour}"


def _events_bytes(ev: pd.DataFrame) -> bytes:
    return gzip.compress(ev.to_csv(index=False, lineterminator="\n").encode(), 9, mtime=0)


def layouts(mods: list[modset.Module], series: str) -> pd.DataFrame:
    """modlayout of every module in the set (v6.3+ widened struct alt_instr to 14 bytes;
    v6.16+ makes ``.static_call_sites`` ro_after_init, see ``modules.ro_after_init_secs_for``)."""
    from execbench.workloads.recorders.modules import ro_after_init_secs_for

    alt = modlayout.ALT_INSTR_SIZE_V61 if series == "6.1" else 14
    rai = ro_after_init_secs_for(series)
    recs = [modlayout.layout_module(modset.read_ko(m.path), str(m.path), alt_instr_size=alt,
                                    ro_after_init_secs=rai, arch="x86_64").record()
            for m in mods]
    return pd.DataFrame(recs)


def events_kind(series: str) -> tuple[str, str]:
    """(allocation event, free event) of the kernel's executable-memory API."""
    return ("module_alloc", "module_memfree") if series == "6.1" else ("execmem_alloc", "execmem_free")


def ret_event_for(series: str) -> str:
    """Event that carries the allocation's address (see ``build.build``)."""
    return "execmem_alloc_ret" if series == "7.2" else "vmalloc_node_range_ret"


def relayout(folder: pathlib.Path, series: str, scratch: pathlib.Path, log=print) -> pd.DataFrame:
    """``modules.csv`` of an existing recording, recomputed from its pinned package.

    Why: when :mod:`modlayout` learns a new column (e.g. ``kallsyms``), a recording's
    module table can be brought up to date without booting again -- the ``.ko`` files
    are those of the package pinned in the recording's TOML.  Every column the old
    table had must come out unchanged, or this raises (the layout rules moved, and the
    recording should be made again instead).
    """
    name = folder.name
    prov = tomllib.loads((folder / f"{name}.toml").read_text())
    flavour = name.removeprefix(f"qemu-{series}-")
    pkg = next(p for p in prov["source"]["packages"] if p.startswith("linux-image-"))
    ks = kernels.spec(series, flavour)
    k = kernels.fetch(ks, scratch / f"k-{series}", package=pkg)
    want = prov["source"]["packages"][pkg]
    if k.version != want["version"] or k.sha256 != want["sha256"]:
        raise kernels.FetchError(f"{k.deb}: {k.version} sha256 {k.sha256} is not the pinned "
                                 f"{want['version']} sha256 {want['sha256']}")
    old = pd.read_csv(folder / "modules.csv")
    idx = modset.index(k.moddir)
    mods = [modset.Module(m, idx[m], ()) for m in old["module"]]
    new = layouts(mods, series)
    # the module tables round-trip through CSV: compare as they would be written
    new = pd.read_csv(io.StringIO(new.to_csv(index=False, lineterminator="\n")))
    common = [c for c in old.columns if c in new.columns]
    if list(old.columns) != [c for c in new.columns if c in old.columns] or not old[common].equals(new[common]):
        raise ValueError(f"{folder}/modules.csv: the recomputed layouts differ in columns the "
                         "recording already had; record it again instead")
    log(f"[qemu] {name}: modules.csv gains {[c for c in new.columns if c not in old.columns]}")
    return new


def arch_of(folder: pathlib.Path) -> str:
    """The architecture of a recording (``[workload] arch`` of its TOML; x86_64 if absent)."""
    toml = folder / f"{folder.name}.toml"
    if toml.exists():
        return str(tomllib.loads(toml.read_text())["workload"].get("arch", "x86_64"))
    return "arm64" if folder.name.endswith("-arm64") else "x86_64"


def rebuild(folder: pathlib.Path, series: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(trace, truth, notes) from a recording folder's events/modules/vmallocinfo."""
    if arch_of(folder) == "arm64":
        from . import record_arm64

        return record_arm64.rebuild(folder, series)
    ev = pd.read_csv(folder / "events.csv.gz", dtype=str, keep_default_na=False)
    lay = pd.read_csv(folder / "modules.csv")
    vmi = (folder / "guest" / "vmallocinfo_exec.txt").read_text()
    vms = folder / "guest" / "vmstat.txt"
    alloc_e, free_e = events_kind(series)
    tr, notes = build.build(ev, lay, alloc_e, free_e, ret_event_for(series))
    return tr, truth.truth(ev, vmi, vms.read_text() if vms.exists() else None), notes


def record(series: str, flavour: str, out_root: pathlib.Path, scratch: pathlib.Path,
           timeout: float = 900.0, log=print, package: str | None = None) -> pathlib.Path:
    """Run one recording and write its folder under ``out_root``; return the folder."""
    t_all = time.monotonic()
    ks = kernels.spec(series, flavour)
    kernels.ensure_host_packages()
    work = scratch / name_for(series, flavour)
    work.mkdir(parents=True, exist_ok=True)
    log(f"[qemu] resolving and fetching {ks.metapackage} ({ks.suite})")
    k = kernels.fetch(ks, scratch / f"k-{series}", package=package)
    log(f"[qemu] {k.package} {k.version} sha256 {k.sha256[:16]}...")
    mods = modset.closure(k.moddir)
    missing = modset.missing_roots(k.moddir)
    if missing:
        log(f"[qemu] roots not in {k.package}: {missing}")
    bpf = guest.build_bpfload(work / "bpfload")
    initrd = work / "initrd.gz"
    initrd.write_bytes(initramfs.build(guest.entries(mods, bpf, guest.busybox_path(), series)))
    log(f"[qemu] initramfs {initrd.stat().st_size} bytes, {len(mods)} modules; booting (TCG)")
    console = work / "console.txt"
    wall = boot.run(k.vmlinuz, initrd, console, timeout=timeout)
    log(f"[qemu] qemu wall {wall:.1f} s")
    dumps = boot.sections(console.read_bytes(), str(console))
    ev = parse.parse(dumps["trace"].decode("utf-8", "replace"), f"{console}:trace")
    lay = layouts(mods, series)
    vmi_exec = "\n".join(
        line for line in dumps["vmallocinfo"].decode().splitlines()
        if (m := truth._VMI.match(line)) and build.EXEC_LO <= int(m.group(1), 16) < build.EXEC_HI) + "\n"
    alloc_e, free_e = events_kind(series)
    tr, notes = build.build(ev, lay, alloc_e, free_e, ret_event_for(series))
    tt = truth.truth(ev, vmi_exec, dumps["vmstat"].decode() if "vmstat" in dumps else None)
    name = name_for(series, flavour)
    from_frame(tr, name)  # schema check before anything is written
    with staging(out_root, name) as tmp:
        write_common(tmp, name, tr, _events_bytes(ev), tt, lay, dumps, GUEST_KEEP, vmi_exec)
        stats = {"qemu_wall_s": round(wall, 1), "record_wall_s": round(time.monotonic() - t_all, 1),
                 "guest_events": len(ev), "trace_events": len(tr),
                 "modules_in_set": len(mods), "missing_roots": missing, **{k2: int(v) for k2, v in notes.items()}}
        prov = provenance(name, ks, k, tr, stats, dumps)
        (tmp / f"{name}.toml").write_bytes(tomli_w.dumps(prov).encode())
    final = out_root / name
    log(f"[qemu] wrote {final}: {len(tr)} trace events from {len(ev)} guest events")
    return final


@contextlib.contextmanager
def staging(out_root: pathlib.Path, name: str):
    """A temporary sibling folder that replaces ``out_root/name`` when the
    block ends without an error (``os.replace``) and is removed when it does
    not: a failed run never leaves a half-written recording."""
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out_root))
    try:
        yield tmp
        final = out_root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_common(tmp: pathlib.Path, name: str, tr: pd.DataFrame, ev_bytes: bytes, tt: pd.DataFrame,
                 lay: pd.DataFrame, dumps: dict[str, bytes], keep: tuple[str, ...], vmi_exec: str) -> None:
    """The files every recording folder has: trace, events, truth, module
    layouts, the kept guest dumps and the module-range vmallocinfo lines."""
    save_trace(tr, tmp / f"{name}.csv.gz")
    (tmp / "events.csv.gz").write_bytes(ev_bytes)
    tt.to_csv(tmp / "truth.csv", index=False, lineterminator="\n")
    lay.to_csv(tmp / "modules.csv", index=False, lineterminator="\n")
    (tmp / "guest").mkdir()
    for g in keep:
        if g in dumps:
            (tmp / "guest" / f"{g}.txt").write_bytes(dumps[g])
    (tmp / "guest" / "vmallocinfo_exec.txt").write_text(vmi_exec)


def provenance(name: str, ks: kernels.KernelSpec, k: kernels.Fetched, tr: pd.DataFrame,
               stats: dict, dumps: dict[str, bytes]) -> dict:
    users = sorted(tr["user"].unique().tolist())
    log = dumps.get("log", b"").decode("utf-8", "replace").strip().splitlines()
    return {
        "workload": {
            "name": name,
            "description": (f"Real Linux {k.release} under QEMU/TCG: {stats['modules_in_set']} modules "
                            "insmod/rmmod, BPF socket+seccomp filters, ftrace instances, kprobes; "
                            "attributed from tracefs kprobe events"),
            "users": users,
            "events": int(len(tr)),
            "synthetic": True,
            "synthetic_columns": [],
            "synthetic_what": ("the guest script's schedule (which modules, in what order, which "
                               "are removed; the BPF programs' instruction mix; kprobe targets and "
                               "ftrace filters) is chosen by execbench; every size, address, count "
                               "and time is measured in the real kernel"),
        },
        "source": {
            "packages": {
                k.package: {"version": k.version, "sha256": k.sha256, "suite": ks.suite},
                **{pp: {"version": pv, "sha256": ps, "suite": ks.suite} for pp, pv, ps in k.parts},
                **{p: {"version": v} for p, v in kernels.tool_versions().items()},
            },
            "artifacts": ["vmlinuz and .ko files of the package above (not shipped)",
                          "guest tracefs trace_pipe text (parsed into events.csv.gz)",
                          "/proc/vmallocinfo (module-range lines in guest/)"],
            "date": _dt.date.today().isoformat(),
            "guest_log": log,
        },
        "measured": stats,
        "regenerate": {"command": (f"execbench record qemu --kernel {ks.series} --flavour {ks.flavour} "
                                   f"--package {k.package}")},
        "licence": {"note": ("Derived numbers only (sizes, counts, times, addresses) from GPL-2.0 "
                             "Debian kernel packages; no kernel code is shipped.")},
    }
