"""Measure the x86-64 JIT size of real BPF programs on Debian's 6.1 kernel under QEMU.

Why: every BPF table sizes a program's JIT image from its ELF instruction count
(recorders/bpf.py ``JIT_BYTES_PER_INSN``).  This recorder loads the real objects
those tables are read from -- libbpf-tools 0.26 (bookworm, the shipped table) and
the six fleet-mix packages (recorders/fleetmix.py) -- into the Debian 6.1 kernel
the QEMU ground truth boots, and writes what the kernel reports:

* ``xlated_insns`` = ``xlated_prog_len / 8`` and ``jited_bytes`` =
  ``jited_prog_len`` from ``BPF_OBJ_GET_INFO_BY_FD`` (kernel/bpf/syscall.c
  ``bpf_prog_get_info_by_fd()``: for a program with BPF-to-BPF calls
  ``jited_prog_len`` is the sum over its functions, ``jited_func_lens`` each);
* ``alloc_bytes``: the ``proglen`` argument of every ``bpf_jit_binary_pack_alloc()``
  the load made (a tracefs kprobe; kernel/bpf/core.c), summed over the program's
  functions.  arch/x86/net/bpf_jit_comp.c ``bpf_int_jit_compile()`` (v6.1) asks for
  ``roundup(proglen, 4) + num_exentries * sizeof(struct exception_table_entry)``:
  the image plus one 12-byte exception-table entry per ``BPF_PROBE_MEM`` load (a
  BTF-pointer dereference, fentry/tp_btf programs).  That request is what the QEMU
  recorder puts in a ``prog_load``'s ``size`` (qemu/build.py), so it is what the
  workloads' ``size`` must estimate.

Guest side: ``guest/jitsize.sh`` as ``/init`` and ``guest/jitload.c`` (static, against
Debian's libbpf-dev), which loads each object with all its programs and, when that
fails, each program alone (see its header).  Objects are the ``EM_BPF`` ELF images
the BPF recorder finds (stand-alone ``.o`` files and libbpf skeletons embedded in
executables and libraries, ``bpf.find_bpf_objects``), deduplicated by sha256.

Run (root: apt-get, QEMU/TCG; about 2.5 minutes on 2 cores, the TOML records the wall time)::

    python -m execbench.workloads.recorders.qemu.jitsize [--scratch DIR] [--out DIR]
    execbench record jit-sizes                      # the same

Writes ``workloads/data/bpf/jit-sizes-6.1.csv`` + ``.toml`` (atomically).  The
parsing and assignment functions below are pure and tested on a committed sample
(tests/test_jitsize.py); downloads and the boot happen only in :func:`record`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.resources
import io
import pathlib
import re
import subprocess
import sys
import time
import tomllib

import pandas as pd
import tomli_w

from ..bpf import attach_category, find_bpf_objects, programs_of_object
from ..modules import atomic_write_bytes
from ..sources import deb_info, iter_deb_files, sha256_file
from . import boot, initramfs, kernels, modset, parse, probes

DATA = pathlib.Path(__file__).resolve().parents[2] / "data"
OUT_NAME = "jit-sizes-6.1.csv"

#: The kernel the QEMU ground truth ``qemu-6.1-generic`` boots (same build as the
#: shipped module tables' ``-unsigned`` packages, Debian 6.1.192-2).
KERNEL_PACKAGE = ("linux-image-6.1.0-56-amd64", "6.1.192-2",
                  "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1")


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    version: str
    suite: str
    sha256: str
    prefixes: tuple[str, ...]  # files scanned, as the table's recorder scans them
    licence: str = ""


def packages() -> list[Package]:
    """libbpf-tools 0.26 (the shipped table) and the fleet-mix packages, pinned as
    their committed tables pin them (one source of truth for versions and sha256)."""
    lt_doc = tomllib.loads((DATA / "bpf" / "libbpf-tools-0.26.0.toml").read_text())
    lt = lt_doc["source"]["packages"][0]
    out = [Package(lt["name"], lt["version"], "bookworm", lt["sha256"], ("usr/sbin/", "usr/bin/"),
                   lt_doc["licence"]["note"])]
    fm = tomllib.loads((DATA / "bpf" / "fleet-mix-programs.toml").read_text())["source"]["packages"]
    out += [Package(p["name"], p["version"], p["suite"], p["sha256"], ("usr/",), p["licence"]) for p in fm]
    return out


#: Section bases libbpf 1.1 cannot type, and the type their loader gives them:
#: Suricata's ebpf/*.bpf socket filters (util-ebpf.c loads "filter" and
#: "loadbalancer" programs as BPF_PROG_TYPE_SOCKET_FILTER).
TYPE_HINTS = ("filter=socket_filter", "loadbalancer=socket_filter")

#: fentry/fexit placeholders the tools retarget at run time
#: (``bpf_program__set_attach_target``), and the target given here.  fsdist and
#: fsslower (libbpf-tools fsdist.c/fsslower.c ``fs_configs``, their ext4 entry:
#: ext4 is the Debian default filesystem); funclatency's target is the user's
#: choice: ``vfs_read``.  Targets in modules need the module loaded, see
#: :data:`MODULES`.  xdpdump's ``fentry/func`` attaches to an XDP program and
#: is left to fail.
RETARGETS = (("dummy_file_read", "ext4_file_read_iter"), ("dummy_file_write", "ext4_file_write_iter"),
             ("dummy_file_open", "ext4_file_open"), ("dummy_file_sync", "ext4_sync_file"),
             ("dummy_getattr", "ext4_file_getattr"), ("dummy_fentry", "vfs_read"),
             ("dummy_fexit", "vfs_read"))
#: modules loaded (with their dependencies) before the objects, for the fentry
#: targets in them: ext4 (the RETARGETS), md_mod (mdflush's md_flush_request).
MODULES = ("ext4", "md_mod")

#: the one tracefs event the guest places (same spec as the QEMU recorder's)
ALLOC_PROBE = next(p for p in probes.PROBES if p.name == "bpf_jit_binary_pack_alloc")
EXTABLE_ENTRY = 12  # sizeof(struct exception_table_entry), arch/x86/include/asm/extable.h
JIT_ALIGN = 4       # __alignof__(struct exception_table_entry), bpf_int_jit_compile()

COLUMNS = ("package", "tool", "object_offset", "object_sha256", "section", "program", "attach_category",
           "prog_type", "insns", "subprog_insns", "elf_insns", "load_insns", "xlated_insns", "jited_bytes",
           "jited_funcs", "alloc_bytes", "alloc_lens", "status", "reason")


class JitSizeError(RuntimeError):
    """Guest output that contradicts itself (object/program named), or a failed step."""


# ------------------------------------------------------------------ objects

@dataclasses.dataclass
class BpfObject:
    id: int
    package: str   # name=version
    tool: str      # file name the object was first found in
    offset: int
    sha256: str
    image: bytes
    programs: list  # bpf.BpfProgram, in section/symbol order


def collect_objects(debs: list[tuple[Package, pathlib.Path]]) -> list[BpfObject]:
    """Every distinct EM_BPF object of the packages (first occurrence wins)."""
    seen: set[str] = set()
    out: list[BpfObject] = []
    for pkg, deb in debs:
        for rel, blob in iter_deb_files(deb, lambda r, p=pkg.prefixes: r.startswith(p)):
            tool = pathlib.PurePosixPath(rel).name
            for off, image in find_bpf_objects(blob):
                sha = hashlib.sha256(image).hexdigest()
                if sha in seen:
                    continue
                seen.add(sha)
                progs = programs_of_object(image, tool, off, rel)
                if progs:
                    out.append(BpfObject(len(out) + 1, f"{pkg.name}={pkg.version}", tool, off, sha, image, progs))
    return out


def objects_list(objs: list[BpfObject]) -> str:
    """``/etc/objects.txt`` for jitload: ``ID PATH HINT...``."""
    hints = " ".join([*TYPE_HINTS, *(f"@{a}={b}" for a, b in RETARGETS)])
    return "".join(f"{o.id} /objs/{o.id}.o {hints}\n" for o in objs)


# ------------------------------------------------------------------ guest output

_PROG_FIELDS = ("kind", "obj", "mode", "index", "name", "section", "type", "open_insns", "load_insns",
                "xlated_bytes", "jited_bytes", "nr_funcs", "func_lens", "status")


def parse_jitload(text: str, where: str = "<jitload>") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """jitload's stdout -> (program attempts, object attempts, failure log lines).

    Every row carries the ``pass`` it belongs to (jitload loads the list more than
    once, see its header).  Failure logs are kept for the last pass, keyed
    ``(obj, mode, index)`` (index -1: the object did not open).
    """
    progs, objs = [], []
    logs: dict[tuple[int, str, int], list[str]] = {}
    done = False
    npass = 0
    for n, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        f = line.split("\t")
        kind = f[0]
        try:
            if kind == "pass":
                npass = int(f[1])
                logs = {}
            elif kind == "prog":
                if len(f) != len(_PROG_FIELDS):
                    raise ValueError(f"{len(f)} fields, want {len(_PROG_FIELDS)}")
                r = dict(zip(_PROG_FIELDS, f))
                for k in ("obj", "index", "type", "open_insns", "load_insns", "xlated_bytes", "jited_bytes",
                          "nr_funcs"):
                    r[k] = int(r[k])
                r.pop("kind")
                progs.append({"pass": npass, **r})
            elif kind == "obj":
                status, _, code = f[3].partition(":")
                objs.append({"pass": npass, "obj": int(f[1]), "mode": f[2], "status": status,
                             "code": int(code or 0), "nprogs": int(f[4])})
            elif kind == "log":
                logs.setdefault((int(f[1]), f[2], int(f[3])), []).append("\t".join(f[4:]))
            elif kind == "done":
                done = True
            elif kind != "libbpf":
                raise ValueError(f"unknown line kind {kind!r}")
        except (ValueError, IndexError) as exc:
            raise JitSizeError(f"{where}:{n}: unreadable jitload line ({exc}): {line[:160]!r}") from exc
    if not done:
        raise JitSizeError(f"{where}: jitload did not finish (no 'done' line)")
    return (pd.DataFrame(progs, columns=["pass", *_PROG_FIELDS[1:]]),
            pd.DataFrame(objs, columns=["pass", "obj", "mode", "status", "code", "nprogs"]), logs)


_MARK = re.compile(r"^jitload pass=(\d+) obj=(\d+) try=(\S+)$")


def allocs_by_attempt(ev: pd.DataFrame) -> dict[tuple[int, int, str], list[int]]:
    """``bpf_jit_binary_pack_alloc`` proglens after each jitload marker, in order,
    keyed ``(pass, obj, mode)``.

    The guest loads one object at a time from one process, so the allocations
    between a marker and the next belong to that attempt; they are taken from
    jitload's pid only.
    """
    out: dict[tuple[int, int, str], list[int]] = {}
    pid = None
    key = None
    for r in ev.itertuples(index=False):
        if r.event == "tracing_mark_write":
            m = _MARK.match(str(r.args))
            if m:
                key = (int(m.group(1)), int(m.group(2)), m.group(3))
                pid = r.pid
                out.setdefault(key, [])
            continue
        if r.event == ALLOC_PROBE.name and key is not None and r.pid == pid:
            out[key].append(int(r.size))
    return out


def _round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def assign(progs: pd.DataFrame, objs: pd.DataFrame, allocs: dict[tuple[int, int, str], list[int]]
           ) -> tuple[dict[tuple[int, str], dict], int]:
    """((obj, program name) -> the successful attempt's measurement, the probe size).

    Only the last pass is used.  Its attempts start with the allocation of
    libbpf's ``bpf_object__probe_loading()`` program (one per ``bpf_object__load``;
    the lazily probed features were all probed in the earlier pass): it is
    dropped, and must be the same size every time.  libbpf then loads the
    object's programs one after another (``bpf_object__load_progs``) and the
    verifier JITs a program's functions in order (kernel/bpf/verifier.c
    ``jit_subprogs``), so the rest is split in program order, ``nr_funcs``
    each.  Every allocation is checked against its function's
    ``jited_func_lens`` entry: ``proglen = roundup(len, 4) + 12 * num_exentries``
    (arch/x86/net/bpf_jit_comp.c ``bpf_int_jit_compile``).  The earlier passes
    must have measured the same sizes.
    """
    last = int(progs["pass"].max())
    ok = {(o.obj, o.mode) for o in objs[objs["pass"] == last].itertuples() if o.status == "ok"}
    out: dict[tuple[int, str], dict] = {}
    probe: set[int] = set()
    cur = progs[progs["pass"] == last]
    for (obj, mode), group in cur.groupby(["obj", "mode"], sort=False):
        seq = list(allocs.get((last, obj, mode), []))
        if seq:
            probe.add(seq.pop(0))
        if (obj, mode) not in ok:
            continue
        loaded = group[group.status == "ok"].sort_values("index")
        jited = loaded[loaded.jited_bytes > 0]
        need = int(jited.nr_funcs.sum())
        if len(seq) != need:
            raise JitSizeError(f"object {obj} try={mode}: {len(seq)} bpf_jit_binary_pack_alloc events "
                               f"after libbpf's probe for {need} JITed functions")
        pos = 0
        for r in loaded.itertuples():
            lens = [int(x) for x in r.func_lens.split(";")] if r.func_lens else []
            mine: list[int] = []
            if r.jited_bytes > 0:
                mine = seq[pos:pos + r.nr_funcs]
                pos += r.nr_funcs
                if len(lens) != r.nr_funcs or sum(lens) != r.jited_bytes:
                    raise JitSizeError(f"object {obj} program {r.name}: jited_func_lens {lens} "
                                       f"do not add up to jited_prog_len {r.jited_bytes}")
                for ln, a in zip(lens, mine):
                    extra = a - _round_up(ln, JIT_ALIGN)
                    if extra < 0 or extra % EXTABLE_ENTRY:
                        raise JitSizeError(f"object {obj} program {r.name}: allocation {a} does not fit "
                                           f"a {ln}-byte function image + whole extable entries")
            if (obj, r.name) in out:
                raise JitSizeError(f"object {obj}: program {r.name} measured twice")
            out[(obj, r.name)] = {"section": r.section, "type": r.type, "load_insns": r.load_insns,
                                  "xlated_insns": r.xlated_bytes // 8, "jited_bytes": r.jited_bytes,
                                  "jited_funcs": r.nr_funcs, "alloc_bytes": sum(mine),
                                  "alloc_lens": ";".join(str(a) for a in mine)}
    if len(probe) > 1:
        raise JitSizeError(f"the first allocation of each attempt (libbpf's probe program) has "
                           f"several sizes {sorted(probe)}: another program was loaded before the object's")
    _check_passes(progs, last)
    return out, (probe.pop() if probe else 0)


def _check_passes(progs: pd.DataFrame, last: int) -> None:
    """Every pass must have measured the same sizes (the JIT is deterministic)."""
    ok = progs[progs.status == "ok"]
    key = ["obj", "mode", "index"]
    ref = ok[ok["pass"] == last].set_index(key)[["xlated_bytes", "jited_bytes", "func_lens"]]
    for p in sorted(set(ok["pass"]) - {last}):
        other = ok[ok["pass"] == p].set_index(key)[["xlated_bytes", "jited_bytes", "func_lens"]]
        both = ref.merge(other, left_index=True, right_index=True, suffixes=("", "_p"))
        bad = both[(both.xlated_bytes != both.xlated_bytes_p) | (both.jited_bytes != both.jited_bytes_p)]
        if len(bad):
            o, m, i = bad.index[0]
            raise JitSizeError(f"object {o} try={m} program #{i}: pass {p} and pass {last} differ "
                               f"({bad.iloc[0].to_dict()})")


#: (pattern in a failed attempt's libbpf/verifier lines, reason) -- first match wins
REASONS: tuple[tuple[str, str], ...] = (
    (r"legacy map definitions", "libbpf 1.x refuses legacy 'maps' section definitions"),
    (r"failed to find kernel BTF type ID of 'func'",
     "fentry/fexit on another BPF program (the tool picks it at run time)"),
    (r"failed to find kernel BTF type ID of '([^']+)'", "attach target {0} not in 6.1 BTF"),
    (r"failed to find BTF for extern '([^']+)'", "extern {0} not in 6.1 BTF"),
    (r"extern \(func ksym\) '([^']+)': not found", "kfunc {0} not in 6.1"),
    (r"extern \(var ksym\) '([^']+)': not found", "ksym {0} not in 6.1"),
    (r"unknown func (\w+)#", "helper {0} not available to this program type on 6.1"),
    (r"invalid func unknown#(\d+)", "helper #{0} not in 6.1"),
    (r"failed to resolve CO-RE relocation .*?struct (\w+)", "CO-RE: struct {0} field missing in 6.1"),
    (r"missing BPF prog type", "no program type for the section"),
    (r"failed to create map|map '([^']+)': failed to create", "map creation failed"),
    (r"attach_btf_id|Attach target|attach to unsupported", "attach target refused"),
    (r"BPF program is too large|too many instructions", "verifier: program too large"),
    (r"verifier: (?!; |\d+: |processed )(.*)", "verifier: {0}"),
)


def reason(lines: list[str]) -> str:
    """A one-line reason for a failed load, from its log lines (first rule that matches)."""
    text = "\n".join(lines)
    for pat, fmt in REASONS:
        m = re.search(pat, text)
        if m:
            return fmt.format(*[(g or "").strip()[:80] for g in m.groups()])
    last = next((ln for ln in reversed(lines) if ln.strip()), "no log")
    return last.strip()[:120]


def measure(objs: list[BpfObject], jitload_text: str, trace_text: str) -> pd.DataFrame:
    """The measurement table: one row per program of every object, loaded or not."""
    progs, oattempts, logs = parse_jitload(jitload_text)
    ev = parse.parse(trace_text, "<guest trace>")
    got, _ = assign(progs, oattempts, allocs_by_attempt(ev))
    progs = progs[progs["pass"] == progs["pass"].max()]
    rows = []
    for o in objs:
        for p in o.programs:
            elf = p.insns + p.subprog_insns
            row = {"package": o.package, "tool": o.tool, "object_offset": o.offset,
                   "object_sha256": o.sha256[:16], "section": p.section, "program": p.program,
                   "attach_category": attach_category(p.section), "prog_type": "", "insns": p.insns,
                   "subprog_insns": p.subprog_insns, "elf_insns": elf, "load_insns": "", "xlated_insns": "",
                   "jited_bytes": "", "jited_funcs": "", "alloc_bytes": "", "alloc_lens": "",
                   "status": "", "reason": ""}
            m = got.get((o.id, p.program))
            if m is not None:
                if m["section"] != p.section:
                    raise JitSizeError(f"object {o.id} ({o.tool}): program {p.program} in section "
                                       f"{m['section']!r}, the recorder read {p.section!r}")
                row.update({k: m[k] for k in ("load_insns", "xlated_insns", "jited_bytes", "jited_funcs",
                                              "alloc_bytes", "alloc_lens")})
                row["prog_type"] = PROG_TYPES.get(m["type"], str(m["type"]))
                row["status"] = "loaded" if m["jited_bytes"] > 0 else "not_jited"
            else:
                row["status"] = "failed"
                row["reason"] = reason(_failure_log(o.id, p.program, progs, oattempts, logs))
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _failure_log(obj: int, name: str, progs: pd.DataFrame, objs: pd.DataFrame, logs: dict) -> list[str]:
    """The log of the program's own attempt, else of the object's (open failures)."""
    mine = progs[(progs.obj == obj) & (progs.name == name) & (progs["mode"] != "all")]
    for r in mine.itertuples():
        if (obj, r.mode, r.index) in logs:
            return logs[(obj, r.mode, r.index)]
    for (o, mode, idx), lines in logs.items():
        if o == obj and idx == -1:
            return lines
    return logs.get((obj, "all", -1), [])


#: enum bpf_prog_type (include/uapi/linux/bpf.h), the ones these objects use
PROG_TYPES = {1: "socket_filter", 2: "kprobe", 3: "sched_cls", 5: "tracepoint", 6: "xdp", 7: "perf_event",
              8: "cgroup_skb", 9: "cgroup_sock", 13: "sock_ops", 17: "raw_tracepoint", 26: "tracing",
              27: "struct_ops", 28: "ext", 29: "lsm"}


def _stats(bpi: pd.Series, num: pd.Series, den: pd.Series) -> dict:
    return {"programs": len(bpi), "median": round(float(bpi.median()), 2),
            "q1": round(float(bpi.quantile(0.25)), 2), "q3": round(float(bpi.quantile(0.75)), 2),
            "pooled": round(float(num.sum() / den.sum()), 3)}


def summary(df: pd.DataFrame) -> dict:
    """Bytes per instruction of the loaded programs, as the provenance and docs cite them.

    ``alloc_per_elf_insn``: ``alloc_bytes / elf_insns`` (what a workload's ``size``
    must estimate, from what the tables know); ``jited_per_xlated_insn``:
    ``jited_bytes / xlated_insns`` (the ratio published ``bpftool prog show``
    outputs give); ``xlated_per_elf_insn``: what the verifier did to the count.
    Quartiles are pandas' linear interpolation; ``pooled`` is sum / sum.
    """
    ld = df[df.status == "loaded"]
    alloc, jited = ld.alloc_bytes.astype(int), ld.jited_bytes.astype(int)
    elf, xl = ld.elf_insns.astype(int), ld.xlated_insns.astype(int)
    out = {"alloc_per_elf_insn": _stats(alloc / elf, alloc, elf),
           "jited_per_xlated_insn": _stats(jited / xl, jited, xl),
           "xlated_per_elf_insn": _stats(xl / elf, xl, elf),
           "alloc_bytes": {"median": float(alloc.median()), "share_below_500": round(float((alloc < 500).mean()), 3),
                           "share_at_least_2048": round(float((alloc >= 2048).mean()), 3)}}
    cat = {}
    for c, g in ld.groupby("attach_category"):
        a, e = g.alloc_bytes.astype(int), g.elf_insns.astype(int)
        cat[c] = _stats(a / e, a, e)
    out["alloc_per_elf_insn_by_category"] = cat
    return out


def failures(df: pd.DataFrame) -> dict[str, int]:
    """Programs that did not load, counted by reason (most frequent first)."""
    n = df[df.status != "loaded"].groupby("reason").size()
    return {str(k): int(v) for k, v in sorted(n.items(), key=lambda kv: (-kv[1], kv[0]))}


def table_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode()


def read_table(path: pathlib.Path) -> pd.DataFrame:
    """The shipped measurement, with a one-line error naming file and row on bad input."""
    df = pd.read_csv(path, dtype={"alloc_lens": str, "reason": str, "prog_type": str}, keep_default_na=False)
    if tuple(df.columns) != COLUMNS:
        raise JitSizeError(f"{path}: row 1: header is not {','.join(COLUMNS)}")
    for i, r in enumerate(df.itertuples(), start=2):
        if r.status not in ("loaded", "failed", "not_jited"):
            raise JitSizeError(f"{path}: row {i}: status {r.status!r} is not loaded/failed/not_jited")
        if r.status == "loaded" and not (str(r.alloc_bytes).isdigit() and int(r.alloc_bytes) > 0):
            raise JitSizeError(f"{path}: row {i}: a loaded program needs alloc_bytes > 0")
    return df


# ------------------------------------------------------------------ the run

def fetch_packages(scratch: pathlib.Path, log=print) -> list[tuple[Package, pathlib.Path]]:
    """The pinned .debs in ``scratch/debs`` (``apt-get download``, trixie through a
    private apt configuration as kernels.py does), sha256-checked."""
    debs = scratch / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    out = []
    for p in packages():
        want = f"{p.name}_{p.version.replace(':', '%3a')}_"
        found = sorted(d for d in debs.glob(f"{p.name}_*.deb") if d.name.startswith(want))
        if not found:
            opts = []
            if p.suite != "bookworm":
                ks = next(kernels.spec(s) for s, (suite, _) in kernels.SPECS.items() if suite == p.suite)
                opts = kernels._apt_opts(scratch, ks)
                if not any((scratch / f"apt-{p.suite}" / "lists").glob("*Packages*")):
                    kernels._run(["apt-get", *opts, "update"])
            log(f"[jitsize] apt-get download {p.name}={p.version}")
            kernels._run(["apt-get", *opts, "download", f"{p.name}={p.version}"], cwd=debs)
            found = sorted(d for d in debs.glob(f"{p.name}_*.deb") if d.name.startswith(want))
        if not found:
            raise JitSizeError(f"apt-get download {p.name}={p.version}: no .deb in {debs}")
        got = sha256_file(found[-1])
        if got != p.sha256:
            raise JitSizeError(f"{found[-1]}: sha256 {got} is not the pinned {p.sha256}")
        out.append((p, found[-1]))
    return out


def build_jitload(out: pathlib.Path) -> pathlib.Path:
    """Compile the guest loader statically against Debian's libbpf-dev."""
    src = importlib.resources.files(__package__).joinpath("guest/jitload.c")
    out.parent.mkdir(parents=True, exist_ok=True)
    with importlib.resources.as_file(src) as p:
        try:
            subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(p), "-lbpf", "-lelf", "-lz"],
                           check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise JitSizeError(f"gcc {p}: {exc.stderr.strip()[-600:]}") from exc
    return out


def guest_entries(objs: list[BpfObject], jitload: pathlib.Path, busybox: pathlib.Path,
                  config: pathlib.Path, release: str, mods: list[modset.Module]) -> list[initramfs.Entry]:
    init = importlib.resources.files(__package__).joinpath("guest/jitsize.sh").read_bytes()
    e: list[initramfs.Entry] = [
        ("init", initramfs.EXEC, init),
        ("bin/busybox", initramfs.EXEC, busybox.read_bytes()),
        ("bin/jitload", initramfs.EXEC, jitload.read_bytes()),
        ("etc/objects.txt", initramfs.FILE, objects_list(objs).encode()),
        ("etc/probes.txt", initramfs.FILE, (ALLOC_PROBE.line() + "\n").encode()),
        (f"boot/config-{release}", initramfs.FILE, config.read_bytes()),
    ]
    e += [(f"objs/{o.id}.o", initramfs.FILE, o.image) for o in objs]
    e += [(f"lib/modules/{m.name}.ko", initramfs.FILE, modset.read_ko(m.path)) for m in mods]
    e.append(("etc/modules.order", initramfs.FILE, "".join(f"/lib/modules/{m.name}.ko\n" for m in mods).encode()))
    return e


HOST_PACKAGES = ("qemu-system-x86", "busybox-static", "gcc", "libbpf-dev", "libelf-dev", "zlib1g-dev")


def host_versions() -> dict[str, str]:
    out = {}
    for p in HOST_PACKAGES:
        try:
            out[p] = kernels._run(["dpkg-query", "-W", "-f=${Version}", p]).strip()
        except kernels.FetchError:
            out[p] = "not installed"
    return out


def record(scratch: pathlib.Path, out_dir: pathlib.Path = DATA / "bpf", timeout: float = 7200.0,
           log=print) -> pathlib.Path:
    """Fetch, build the initramfs, boot, measure, write the CSV + TOML; return the CSV."""
    t0 = time.monotonic()
    need = [p for p, v in host_versions().items() if v == "not installed"]
    if need:
        kernels._run(["apt-get", "install", "-y", "-q", *need])
    pkg, ver, sha = KERNEL_PACKAGE
    k = kernels.fetch(kernels.spec("6.1"), scratch / "k-6.1", package=pkg)
    if (k.version, k.sha256) != (ver, sha):
        raise JitSizeError(f"{k.deb}: {k.version} sha256 {k.sha256} is not the pinned {ver} {sha}")
    debs = fetch_packages(scratch, log)
    objs = collect_objects(debs)
    log(f"[jitsize] {len(objs)} distinct objects, {sum(len(o.programs) for o in objs)} programs")
    work = scratch / "jitsize"
    jl = build_jitload(work / "jitload")
    config = k.root / "boot" / f"config-{k.release}"
    initrd = work / "initrd.gz"
    mods = modset.closure(k.moddir, MODULES)
    initrd.write_bytes(initramfs.build(guest_entries(objs, jl, _busybox(), config, k.release, mods)))
    console = work / "console.txt"
    log(f"[jitsize] initramfs {initrd.stat().st_size} bytes; booting {k.package} (TCG)")
    wall = boot.run(k.vmlinuz, initrd, console, timeout=timeout)
    log(f"[jitsize] qemu wall {wall:.0f} s")
    dumps = boot.sections(console.read_bytes(), str(console))
    for name in ("jitload", "trace", "log"):
        (work / f"{name}.txt").write_bytes(dumps.get(name, b""))
    df = measure(objs, dumps["jitload"].decode("utf-8", "replace"), dumps["trace"].decode("utf-8", "replace"))
    csv_path = out_dir / OUT_NAME
    atomic_write_bytes(csv_path, table_csv(df))
    doc = provenance(df, k, [p for p, _ in debs], wall, time.monotonic() - t0,
                     dumps.get("log", b"").decode("utf-8", "replace"))
    atomic_write_bytes(csv_path.with_suffix(".toml"), tomli_w.dumps(doc).encode())
    log(f"[jitsize] wrote {csv_path}: {int((df.status == 'loaded').sum())} loaded, "
        f"{int((df.status != 'loaded').sum())} not")
    return csv_path


def _busybox() -> pathlib.Path:
    import shutil

    p = shutil.which("busybox")
    if not p:
        raise JitSizeError("busybox not found: apt-get install busybox-static")
    return pathlib.Path(p)


def provenance(df: pd.DataFrame, k: kernels.Fetched, pkgs: list[Package], qemu_wall: float,
               record_wall: float, guest_log: str) -> dict:
    from ..provenance import record_date

    loaded = df[df.status == "loaded"]
    return {
        "table": {
            "name": OUT_NAME, "kind": "bpf-jit-measurement",
            "description": ("x86-64 JIT sizes of real BPF programs (libbpf-tools 0.26 and the fleet-mix "
                            "packages) loaded into Debian's 6.1 kernel under QEMU/TCG: xlated and JITed "
                            "sizes from BPF_OBJ_GET_INFO_BY_FD, bpf_jit_binary_pack_alloc() requests "
                            "from a tracefs kprobe"),
            "rows": len(df), "objects": int(df.object_sha256.nunique()), "loaded": len(loaded),
            "failed": int((df.status == "failed").sum()), "not_jited": int((df.status == "not_jited").sum()),
            "columns": list(COLUMNS),
            "synthetic": False,
            "notes": ("elf_insns = insns + subprog_insns as recorders/bpf.py counts them; load_insns = what "
                      "libbpf submitted; alloc_bytes = sum of bpf_jit_binary_pack_alloc(proglen) = "
                      "roundup(jited, 4) + 12 x exception-table entries per function; .rodata at the "
                      "object's compiled defaults; maps with max_entries 0 given 10240 entries (ring "
                      "buffers 256 KiB; local storage kept at 0); maps unpinned; objects deduplicated "
                      "by sha256 (object_sha256 is its first 16 hex digits; package/tool name the first "
                      "file it was found in)"),
        },
        "source": {
            "kernel": {"package": k.package, "version": k.version, "sha256": k.sha256, "suite": "bookworm",
                       "release": k.release},
            "packages": [{"name": p.name, "version": p.version, "suite": p.suite, "sha256": p.sha256,
                          "licence": p.licence} for p in pkgs],
            "host": host_versions(),
            "qemu": "qemu-system-x86_64 -accel tcg -cpu max -m 2G -smp 2 (recorders/qemu/boot.py)",
            "date": record_date(),
            "guest_log": guest_log.strip().splitlines(),
        },
        "method": {
            "guest": ("workloads/recorders/qemu/guest/jitload.c (libbpf, static) loads every object with "
                      "all its programs, else each program alone; the whole list twice in one process"),
            "sizes": ("xlated_prog_len, jited_prog_len and jited_func_lens from BPF_OBJ_GET_INFO_BY_FD "
                      "(kernel/bpf/syscall.c bpf_prog_get_info_by_fd); alloc_bytes from a tracefs kprobe "
                      "on bpf_jit_binary_pack_alloc (kernel/bpf/core.c) between trace_marker lines, in "
                      "load order, after dropping libbpf's bpf_object__probe_loading program; each "
                      "request checked to be roundup(func_len, 4) + 12 x extable entries "
                      "(arch/x86/net/bpf_jit_comp.c bpf_int_jit_compile, v6.1), both passes equal"),
            "sysctl": "net.core.bpf_jit_enable=1, bpf_jit_harden=0 (the Debian defaults, guest_log)",
        },
        "summary": summary(df),
        "failed_by_reason": failures(df),
        "measured": {"qemu_wall_s": round(qemu_wall), "record_wall_s": round(record_wall)},
        "regenerate": {"command": "execbench record jit-sizes  (= python -m "
                                  "execbench.workloads.recorders.qemu.jitsize)"},
        "licence": {"note": "derived numbers and names only; no object bytes are shipped"},
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m execbench.workloads.recorders.qemu.jitsize",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scratch", type=pathlib.Path, default=pathlib.Path("/var/tmp/execbench-qemu"))
    ap.add_argument("--out", type=pathlib.Path, default=DATA / "bpf")
    ap.add_argument("--timeout", type=float, default=7200.0)
    a = ap.parse_args(argv)
    try:
        record(a.scratch, a.out, a.timeout)
    except (JitSizeError, kernels.FetchError, boot.BootError, parse.ParseError, OSError) as exc:
        print(f"jitsize: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
