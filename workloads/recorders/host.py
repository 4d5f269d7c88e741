"""Host recorder: turn a running Linux machine's executable-memory users into a trace.

Why: the shipped workloads are built from packages and public listings; a user who wants
*their* machine's mix can snapshot it.  What the kernel exposes, and to whom:

* ``/proc/modules`` (world-readable): loaded modules, newest first (``load_module()`` adds
  at the list head), with core size, use count and users.  Per-type sizes are not
  exported, so they come from a module table of the same kernel
  (``execbench record modules /lib/modules/$(uname -r)``); modules missing from it are
  reported, not guessed.
* ``/sys/module/<m>/sections/`` (names readable by all, addresses root-only): counted.
* ``bpftool prog show -j`` (needs CAP_SYS_ADMIN/CAP_BPF): every loaded program with
  ``bytes_jited`` — the real JIT image size, no estimate needed.
* ``<tracefs>/enabled_functions`` (root): call sites with ftrace ops attached; each
  distinct ``tramp: 0x…`` is one dynamic ftrace trampoline.
* ``<debugfs>/kprobes/list`` (root): kprobes with ``[FTRACE]`` (no insn slot),
  ``[OPTIMIZED]`` (optprobe slot too) and ``[DISABLED]`` flags.

Anything unreadable is listed in the result with its reason; the recorder never needs
root and never fails because one source is missing.  The trace rebuilds the current state
in a plausible order (modules in load order, then programs, trampolines, kprobes); times
are synthetic (1 ms apart) and the provenance says so.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import shutil
import subprocess

from . import session as rs
from .tracebuild import TraceBuilder

TRACEFS = ("sys/kernel/tracing", "sys/kernel/debug/tracing")
KPROBE_LIST = "sys/kernel/debug/kprobes/list"


@dataclasses.dataclass
class HostSnapshot:
    """What could be read, and what could not (path -> reason)."""

    modules: list[dict[str, object]] = dataclasses.field(default_factory=list)   # /proc/modules order
    section_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    bpf_progs: list[dict[str, object]] = dataclasses.field(default_factory=list)
    ftrace_trampolines: list[str] = dataclasses.field(default_factory=list)
    ftrace_sites: int = 0
    kprobes: list[dict[str, object]] = dataclasses.field(default_factory=list)
    missing: dict[str, str] = dataclasses.field(default_factory=dict)


def _read(root: pathlib.Path, rel: str, snap: HostSnapshot) -> str | None:
    p = root / rel
    try:
        return p.read_text()
    except FileNotFoundError:
        snap.missing["/" + rel] = "not present (module support, tracefs or debugfs not available)"
    except PermissionError:
        snap.missing["/" + rel] = "permission denied (needs root)"
    except OSError as exc:
        snap.missing["/" + rel] = f"unreadable: {exc.strerror or exc}"
    return None


def parse_proc_modules(text: str, where: str = "/proc/modules") -> list[dict[str, object]]:
    """``name size refcnt users state addr`` lines (kernel/module/procfs.c m_show)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        f = line.split()
        if len(f) < 5 or not f[1].isdigit():
            raise ValueError(f"{where}: line {lineno}: not a /proc/modules line: {line!r}")
        users = [u for u in f[3].split(",") if u and u != "-"]
        out.append({"name": f[0], "size": int(f[1]), "refcnt": f[2], "users": users, "state": f[4]})
    return out


def parse_kprobe_list(text: str, where: str = KPROBE_LIST) -> list[dict[str, object]]:
    """``addr  type  sym+off  [module] [FLAGS]`` lines (kernel/kprobes.c report_probe)."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        f = line.split()
        if len(f) < 3 or f[1] not in ("k", "r", "p"):
            raise ValueError(f"{where}: line {lineno}: not a kprobes/list line: {line!r}")
        flags = set(re.findall(r"\[([A-Z]+)\]", line))
        out.append({"type": f[1], "symbol": f[2], "flags": sorted(flags)})
    return out


def parse_enabled_functions(text: str) -> tuple[int, list[str]]:
    """Number of patched call sites and the distinct dynamic trampolines (``tramp: 0x...``)."""
    sites = sum(1 for ln in text.splitlines() if ln.strip())
    tramps = sorted(set(re.findall(r"tramp:\s*(0x[0-9a-fA-F]+)", text)))
    return sites, tramps


def parse_bpftool_json(text: str, where: str = "bpftool prog show -j") -> list[dict[str, object]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("programs", [])
    out = []
    for i, p in enumerate(data):
        if not isinstance(p, dict) or "id" not in p:
            raise ValueError(f"{where}: entry {i}: no program id")
        out.append({"id": int(p["id"]), "type": str(p.get("type", "")), "name": str(p.get("name", "")),
                    "bytes_xlated": int(p.get("bytes_xlated", 0)), "bytes_jited": int(p.get("bytes_jited", 0))})
    return sorted(out, key=lambda p: p["id"])


def snapshot(root: pathlib.Path = pathlib.Path("/"), bpftool_json: str | None = None,
             run_bpftool: bool = True) -> HostSnapshot:
    """Read every source under ``root`` (a copy of /proc and /sys works too)."""
    snap = HostSnapshot()
    text = _read(root, "proc/modules", snap)
    if text is not None:
        snap.modules = parse_proc_modules(text)
        for m in snap.modules:
            d = root / "sys/module" / str(m["name"]) / "sections"
            try:
                snap.section_counts[str(m["name"])] = sum(1 for _ in d.iterdir())
            except OSError:
                snap.missing[f"/sys/module/{m['name']}/sections"] = "not readable"
    if bpftool_json is None and run_bpftool:
        exe = shutil.which("bpftool")
        if exe is None:
            snap.missing["bpftool prog show -j"] = "bpftool not installed"
        else:
            r = subprocess.run([exe, "prog", "show", "-j"], capture_output=True, text=True)
            if r.returncode == 0:
                bpftool_json = r.stdout
            else:
                snap.missing["bpftool prog show -j"] = f"failed: {r.stderr.strip() or r.returncode} (needs CAP_BPF)"
    if bpftool_json is not None:
        snap.bpf_progs = parse_bpftool_json(bpftool_json)
    for tfs in TRACEFS:
        if (root / tfs).is_dir():
            text = _read(root, f"{tfs}/enabled_functions", snap)
            if text is not None:
                snap.ftrace_sites, snap.ftrace_trampolines = parse_enabled_functions(text)
            break
    else:
        snap.missing["/sys/kernel/tracing/enabled_functions"] = "tracefs not mounted"
    text = _read(root, KPROBE_LIST, snap)
    if text is not None:
        snap.kprobes = parse_kprobe_list(text)
    return snap


def host_trace(snap: HostSnapshot, table: dict[str, dict[str, str]] | None) -> tuple[TraceBuilder, dict]:
    """Events that rebuild the snapshot's state; returns the trace and a report dict."""
    b = TraceBuilder()
    t = 0
    step = 1_000_000
    report: dict[str, object] = {"modules_without_sizes": [], "bpf_not_jited": 0}
    if snap.modules and table is None:
        report["modules_without_sizes"] = [str(m["name"]) for m in snap.modules]
    for m in reversed(snap.modules):          # /proc/modules is newest first
        name = str(m["name"])
        row = table.get(name) if table else None
        if row is None:
            if table is not None:
                report["modules_without_sizes"].append(name)   # type: ignore[union-attr]
            continue
        b.module_load(t, 0, row)
        t += step
        if m["state"] == "Live":
            b.add(t, 0, "module", "init_done", name)
            t += step
    for p in snap.bpf_progs:
        if p["bytes_jited"] <= 0:
            report["bpf_not_jited"] += 1       # type: ignore[operator]
            continue
        b.add(t, 0, "bpf", "prog_load", f"prog{p['id']}:{p['name']}", size=int(p["bytes_jited"]))
        t += step
    for addr in snap.ftrace_trampolines:
        b.add(t, 0, "ftrace", "ops_register", f"tramp@{addr}", size=rs.FTRACE_TRAMP_BYTES)
        t += step
    seen: set[str] = set()
    for k in snap.kprobes:
        if "FTRACE" in k["flags"] or k["symbol"] in seen:   # ftrace-based: no insn slot
            continue
        seen.add(str(k["symbol"]))
        name = f"kprobe:{k['symbol']}"
        b.add(t, 0, "kprobe", "register", name, size=rs.KPROBE_SLOT_BYTES)
        t += step
        if "OPTIMIZED" in k["flags"]:
            b.add(t, 0, "kprobe", "optimize", name, size=rs.OPTPROBE_SLOT_BYTES)
            t += step
    report["events"] = len(b)
    return b, report
