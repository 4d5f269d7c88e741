"""Build every shipped table and workload from pinned packages and committed inputs.

Why one module: the shipped files must be regenerable by one command
(``execbench record shipped``) and the tests must be able to rebuild the workloads from
the *committed* tables (no network) and get the committed bytes back.  The two stages:

1. tables from packages (needs the pinned .debs; ``apt-get download`` on demand):
   ``data/modules/<kernel>.modules.csv[.gz]`` (cloud and generic 6.1; arm64 6.1, 6.12 and
   7.2, :data:`ARM64_TABLES`) and ``data/bpf/libbpf-tools-<ver>.csv``;
2. workloads from the committed tables + listings (pure, deterministic, seeded):
   ``boot-cloud``, ``boot-server``, ``boot-desktop``, ``bpf-observability``,
   ``cloud-session`` (the default), ``kprobe-churn``, ``ftrace-trampolines``, ``fleet-day``.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
import subprocess

from . import boot as rb
from . import bpf as rbpf
from . import modules as rm
from . import session as rs
from .provenance import record_date, sidecar_path, write_toml
from .sources import sha256_file
from .tracebuild import TraceBuilder, merge


@dataclasses.dataclass(frozen=True)
class Pinned:
    package: str
    version: str
    sha256: str
    arch: str = "amd64"   # Debian architecture
    suite: str = ""       # for foreign-architecture packages: the suite of the private apt

    @property
    def filename(self) -> str:
        return f"{self.package}_{self.version}_{self.arch}.deb"


#: Debian bookworm-security, newest 6.1 cloud ABI on the recording date.
KERNEL_DEB = Pinned("linux-image-6.1.0-56-cloud-amd64-unsigned", "6.1.192-2",
                    "7ff7fc8da85d313242c20698c6b34542aea447673c7c1975b0d38bd6005100b5")
#: Debian bookworm-security, the generic (server/desktop hardware) flavour of the same ABI.
GENERIC_DEB = Pinned("linux-image-6.1.0-56-amd64-unsigned", "6.1.192-2",
                     "530631662c9ad84758eca2d7609cf40623309afd4bccbeb563f33e9c7f220bdf")
#: Debian bookworm main.
BPF_DEB = Pinned("libbpf-tools", "0.26.0+ds-1",
                 "a699f420be4f47662622d9505538e1c9f4499d23bca8961460001df288778519")

#: arm64 module tables (docs/arm64.md §11): the same 6.1 ABI as the x86-64 tables
#: (bookworm-security), trixie's 6.12 and sid's 7.2 (modules + base packages).
ARM64_TABLES: tuple[tuple[pathlib.Path, tuple[Pinned, ...]], ...] = (
    (pathlib.Path("modules") / "6.1.0-56-arm64.modules.csv.gz",
     (Pinned("linux-image-6.1.0-56-arm64-unsigned", "6.1.192-2",
             "f8357fc813e879efb7f467f5b8a37e2426e177bb3d683fac644d70a8343e6a49", "arm64", "bookworm"),)),
    (pathlib.Path("modules") / "6.12.117+deb13-arm64.modules.csv.gz",
     (Pinned("linux-image-6.12.117+deb13-arm64-unsigned", "6.12.117-1",
             "cc5be026b4113d670d4355f719b7a0103297a36e59717e45a89d0fbd985af041", "arm64", "trixie"),)),
    (pathlib.Path("modules") / "7.2.13+deb14-arm64.modules.csv.gz",
     (Pinned("linux-modules-7.2.13+deb14-arm64", "7.2.13-1",
             "a9425ac3d90f86d92cf2469e1e8f6a985b3335403adfa1ce002d6996374de912", "arm64", "sid"),
      Pinned("linux-base-7.2.13+deb14-arm64", "7.2.13-1",
             "60e3b0f2a150562f1cf0f15830924cdd7ed8931bdc1a8c826c39c6dd4d33e056", "arm64", "sid"))),
)

KERNEL = "6.1.0-56-cloud-amd64"
MODULE_TABLE = pathlib.Path("modules") / f"{KERNEL}.modules.csv"
GENERIC_KERNEL = "6.1.0-56-amd64"
GENERIC_TABLE = pathlib.Path("modules") / f"{GENERIC_KERNEL}.modules.csv.gz"
SERVER_LISTING = pathlib.Path("listings") / "centos-7.7-vmware-server.lsmod"
#: Server hardware drivers added to the server set.  SYNTHETIC CHOICE: no complete public
#: lsmod of a bare-metal server was found (docs/data-sources.md §2.1); these are the drivers
#: seen in `lsmod | grep` fragments there: Mellanox ConnectX (mlx5 + RDMA), IPMI, and
#: the two common SAS RAID/HBA drivers.
SERVER_DRIVERS = ("mlx5_core", "mlx5_ib", "ib_uverbs", "ipmi_si", "ipmi_devintf", "ipmi_msghandler",
                  "megaraid_sas", "mpt3sas")
DESKTOP_LISTING = pathlib.Path("listings") / "hp-omen-16-laptop.lsmod"
BPF_TABLE = pathlib.Path("bpf") / "libbpf-tools-0.26.0.csv"
CLOUD_LISTING = pathlib.Path("listings") / "jc-ubuntu-18.04-vmware-guest.lsmod"
CLOUD_PROVIDERS = ("ena",)
SEED = 20230526   # the date of Song Liu's module_alloc_type v1 posting; any fixed value works
DEFAULT_WORKLOAD = "cloud-session"
#: Offset kprobes of cloud-session: the first N distinct function targets of the BPF table.
N_OFFSET_KPROBES = 20
#: Tools whose section targets are placeholders retargeted at run time (ksnoop "foo",
#: funclatency "dummy_kprobe", gethostlatency's libc "handle_entry"/"handle_return").
PLACEHOLDER_TOOLS = frozenset({"ksnoop", "funclatency", "gethostlatency"})
FTRACE_OPS = ("ftrace_ops:function_filter_tcp", "ftrace_ops:function_graph_vfs")
BOOT_TO_SESSION_NS = 30_000_000_000


class ShippedError(RuntimeError):
    """A pinned package is missing or does not match its sha256."""


def fetch(pinned: Pinned, debs: pathlib.Path, download: bool) -> pathlib.Path:
    """The pinned .deb in ``debs`` (``apt-get download`` it when asked); sha256-checked."""
    path = debs / pinned.filename.replace(":", "%3a")
    if not path.exists():
        if not download:
            raise ShippedError(f"{path}: missing; run 'apt-get download {pinned.package}={pinned.version}' "
                               f"there (an {pinned.arch} package of {pinned.suite or 'bookworm'}) "
                               f"or pass --download")
        debs.mkdir(parents=True, exist_ok=True)
        if pinned.arch != "amd64":
            # a foreign architecture: a private apt configuration (recorders/qemu/kernels.py)
            from .qemu import kernels

            series = next(k for k, (suite, _) in kernels.SPECS.items() if suite == pinned.suite)
            ks = kernels.spec(series, arch={v: k for k, v in kernels.DEB_ARCH.items()}[pinned.arch])
            kernels.download(ks, debs / ".apt", pinned.package, pinned.version, debs=debs)
        else:
            subprocess.run(["apt-get", "download", f"{pinned.package}={pinned.version}"], cwd=debs,
                           check=True)
    got = sha256_file(path)
    if got != pinned.sha256:
        raise ShippedError(f"{path}: sha256 {got} != pinned {pinned.sha256}")
    return path


# ---------------------------------------------------------------- stage 1: tables

def write_module_table(deb: pathlib.Path | list[pathlib.Path], data: pathlib.Path,
                       rel: pathlib.Path = MODULE_TABLE) -> int:
    from execbench.commands.record import module_table_provenance

    table = rm.record_modules(deb)
    out = data / rel
    rm.atomic_write_bytes(out, rm.table_csv_text(table.rows, table.columns).encode())
    doc = module_table_provenance(table, pathlib.Path("workloads/data") / rel, record_date())
    if table.arch != "x86_64":
        # arm64 packages need a private apt configuration on an amd64 host (fetch() has it)
        doc["regenerate"]["command"] = "execbench record shipped --stage tables --download"
    write_toml(sidecar_path(out), doc)
    return len(table.rows)


def bpf_table_text(rows: list[dict[str, object]]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=rbpf.TABLE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def bpf_table_provenance(rows: list[dict[str, object]], deb, output: pathlib.Path, date: str) -> dict:
    pk = [{"name": deb.package, "version": deb.version, "architecture": deb.architecture,
           "sha256": deb.sha256, "bytes": deb.size}] if deb else []
    return {
        "table": {
            "name": output.name, "kind": "bpf-program-table",
            "description": "BPF programs embedded in libbpf-tools executables: section, instructions, "
                           "subprogram instructions, attach category and target, fallback twins",
            "rows": len(rows), "tools": len({r["tool"] for r in rows}),
            "columns": list(rbpf.TABLE_COLUMNS),
            "synthetic": True,
            "synthetic_note": _JIT_NOTE,
            "jit_bytes_per_insn": rbpf.JIT_BYTES_PER_INSN,
        },
        "source": {"packages": pk, "artifacts": ["usr/sbin/* (embedded EM_BPF ELF objects)"], "date": date},
        "regenerate": {"command": f"apt-get download {BPF_DEB.package}={BPF_DEB.version} && execbench record "
                                  f"bpf {BPF_DEB.filename} -o {output.as_posix()}"},
        "licence": {"note": "libbpf-tools user space is Apache-2.0 (bcc); the embedded BPF objects declare "
                            "GPL or Dual BSD/GPL; only derived numbers and names are kept"},
    }


_JIT_NOTE = (f"jit_bytes_est = the bpf_jit_binary_pack_alloc() request measured for the program on "
             f"Debian's 6.1 kernel (workloads/data/bpf/jit-sizes-6.1.csv, matched on package, section, "
             f"program, insns, subprog_insns); programs that did not load there: (insns + subprog_insns) "
             f"* {rbpf.JIT_BYTES_PER_INSN} (recorders/bpf.py JIT_BYTES_PER_INSN, the measurement's pooled "
             f"bytes per ELF instruction); every other column is read from the objects")

FLEET_TABLE = pathlib.Path("bpf") / "fleet-mix-programs.csv"


def refresh_jit_estimates(data: pathlib.Path) -> dict[str, int]:
    """Rewrite ``jit_bytes_est`` of the committed BPF tables (libbpf-tools 0.26, fleet-mix)
    from the committed JIT measurement and rebuild the fleet-mix trace from its table;
    no packages needed.  Returns the number of measured rows per table."""
    import pandas as pd

    from execbench.trace import save_trace

    from . import fleetmix

    measured = rbpf.measured_jit_sizes(data / "bpf" / rbpf.JIT_MEASUREMENT.name)
    out = {}
    rows = read_bpf_table(data / BPF_TABLE)
    for r in rows:
        r["jit_bytes_est"] = rbpf.jit_bytes_est(r["package"], r["section"], r["program"], int(r["insns"]),
                                                int(r["subprog_insns"]), measured)
    rm.atomic_write_bytes(data / BPF_TABLE, bpf_table_text(rows).encode())
    out[BPF_TABLE.name] = sum(1 for r in rows if (r["package"], r["section"], r["program"], int(r["insns"]),
                                                  int(r["subprog_insns"])) in measured)
    fm = pd.read_csv(data / FLEET_TABLE, dtype=str, keep_default_na=False)
    fm["jit_bytes_est"] = [rbpf.jit_bytes_est(r.package, r.section, r.program, int(r.insns), int(r.subprog_insns),
                                              measured) for r in fm.itertuples()]
    rm.atomic_write_bytes(data / FLEET_TABLE, fm.to_csv(index=False, lineterminator="\n").encode())
    out[FLEET_TABLE.name] = sum(1 for r in fm.itertuples() if (r.package, r.section, r.program, int(r.insns),
                                                                  int(r.subprog_insns)) in measured)
    save_trace(fleetmix.trace(fm), data / "fleet-mix.csv.gz")
    return out


def write_bpf_table(deb: pathlib.Path, data: pathlib.Path) -> int:
    rows, info = rbpf.record_bpf(deb)
    out = data / BPF_TABLE
    rm.atomic_write_bytes(out, bpf_table_text(rows).encode())
    write_toml(sidecar_path(out), bpf_table_provenance(rows, info, pathlib.Path("workloads/data") / BPF_TABLE,
                                                       record_date()))
    return len(rows)


def read_bpf_table(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        if tuple(r.fieldnames or ()) != rbpf.TABLE_COLUMNS:
            raise rm.RecordError(f"{path}: row 1: header is not the BPF-table header {rbpf.TABLE_COLUMNS}")
        return list(r)


# ---------------------------------------------------------------- stage 2: workloads

def _boot(data: pathlib.Path, table_rel: pathlib.Path = MODULE_TABLE, listing: pathlib.Path = CLOUD_LISTING,
          providers: tuple[str, ...] = CLOUD_PROVIDERS) -> tuple[TraceBuilder, rb.BootSet, list[dict[str, str]]]:
    rows = rm.read_table(data / table_rel)
    table = {r["module"]: r for r in rows}
    bs = rb.choose_boot_set(table, rb.read_listing(data / listing), providers)
    return rb.boot_trace(table, bs.order), bs, rows


def _session_streams(data: pathlib.Path, start_ns: int, with_probes: bool) -> tuple[list[TraceBuilder], dict]:
    bpf_rows = read_bpf_table(data / BPF_TABLE)
    progs = rs.tool_programs(bpf_rows)
    plan = rs.plan_session(rs.CHECKLIST_TOOLS, SEED, start_ns)
    s_bpf = TraceBuilder()
    rs.bpf_session(s_bpf, progs, plan)
    streams = [s_bpf]
    info: dict = {"tools": list(rs.CHECKLIST_TOOLS), "runs": len(plan.runs), "seed": SEED}
    if with_probes:
        end = max(t1 for *_, t1 in plan.runs)
        funcs = sorted({r["target"] for r in bpf_rows
                        if r["attach_category"] in ("kprobe", "trampoline") and r["target"]
                        and r["tool"] not in PLACEHOLDER_TOOLS
                        and not r["target"].startswith("dummy")})[:N_OFFSET_KPROBES]
        s_kp = TraceBuilder()
        nopt = rs.probe_session(s_kp, funcs, SEED + 1, start_ns + 5_000_000_000, end - 10_000_000_000)
        s_ft = TraceBuilder()
        rs.ftrace_ops_session(s_ft, FTRACE_OPS, start_ns + 15_000_000_000, end - 20_000_000_000)
        streams += [s_kp, s_ft]
        info.update(offset_kprobes=len(funcs), optimized=nopt, kprobe_functions=funcs,
                    ftrace_ops=list(FTRACE_OPS))
    return streams, info


def _common_source(data: pathlib.Path) -> dict:
    return {"module_table": (pathlib.Path("workloads/data") / MODULE_TABLE).as_posix(),
            "bpf_table": (pathlib.Path("workloads/data") / BPF_TABLE).as_posix(),
            "jit_measurement": "workloads/data/bpf/jit-sizes-6.1.csv",
            "packages": [{"name": p.package, "version": p.version, "sha256": p.sha256}
                         for p in (KERNEL_DEB, BPF_DEB)],
            "tool_list": "Brendan Gregg's BCC tool checklist, iovisor/bcc docs/tutorial.md "
                         "('1. General Performance'), tools present in libbpf-tools 0.26",
            "date": record_date()}


_PARAMS = {
    "jit_bytes_per_insn": rbpf.JIT_BYTES_PER_INSN,
    "bpf_tramp_bytes": f"{rs.BPF_TRAMP_BASE_BYTES} + {rs.BPF_TRAMP_PER_PROG_BYTES}/prog "
                       f"+ {rs.BPF_TRAMP_FEXIT_BYTES} with fexit (estimate)",
    "ftrace_tramp_bytes": rs.FTRACE_TRAMP_BYTES,
    "kprobe_slot_bytes": rs.KPROBE_SLOT_BYTES,
    "optprobe_slot_bytes": rs.OPTPROBE_SLOT_BYTES,
    "entry_kprobes": "ftrace (CONFIG_KPROBES_ON_FTRACE=y: kprobe_ftrace_ops, no insn slot)",
}
_LICENCE = {"note": "derived numbers and names only (sizes, counts, module/program/function names); "
                    "no code or object bytes from GPL-2.0 modules or libbpf-tools objects"}


def build_workloads(data: pathlib.Path) -> dict[str, int]:
    """Write boot-cloud, bpf-observability and cloud-session into ``data``; return event counts."""
    counts: dict[str, int] = {}

    boot, bs, rows = _boot(data)
    _save(data, "boot-cloud", boot, rb.boot_provenance(
        "boot-cloud", f"boot of a cloud VM: {len(bs.order)} modules of Debian {KERNEL} (a real VM's lsmod set "
                      f"∩ cloud flavour ∪ ena, dependency closure), each load then init_done",
        rows, pathlib.Path("workloads/data") / MODULE_TABLE, data / CLOUD_LISTING, bs, boot, record_date(),
        CLOUD_PROVIDERS, spacing_ns=10_000_000))
    _fix_listing_path(data, "boot-cloud", CLOUD_LISTING)
    counts["boot-cloud"] = len(boot)

    for name, listing, providers, what in (
            ("boot-server", SERVER_LISTING, SERVER_DRIVERS,
             "a container-host server VM's lsmod set (CentOS 7.7) ∪ server NIC/RDMA/IPMI/SAS drivers"),
            ("boot-desktop", DESKTOP_LISTING, (), "an HP Omen 16 laptop's lsmod set (i915, SOF audio, Wi-Fi, KVM)")):
        if not (data / GENERIC_TABLE).exists():
            continue
        b, bs2, rows2 = _boot(data, GENERIC_TABLE, listing, providers)
        doc = rb.boot_provenance(
            name, f"boot: {len(bs2.order)} modules of Debian {GENERIC_KERNEL} from {what}, dependency order, "
                  f"each load then init_done",
            rows2, pathlib.Path("workloads/data") / GENERIC_TABLE, data / listing, bs2, b, record_date(),
            providers, spacing_ns=10_000_000)
        if providers:
            doc["workload"]["synthetic_note"] += ("; the added server drivers are a synthetic choice "
                                                  "(no public bare-metal server lsmod was found)")
            doc["workload"]["synthetic_columns"] += ["module:obj (the added server drivers)"]
        _save(data, name, b, doc)
        _fix_listing_path(data, name, listing)
        counts[name] = len(b)

    streams, info = _session_streams(data, 0, with_probes=False)
    obs = merge(streams)
    _save(data, "bpf-observability", obs, {
        "workload": {"name": "bpf-observability",
                     "description": "libbpf-tools from the BCC checklist run twice each on a BTF kernel: real "
                                    "programs, fentry/fexit trampolines, entry kprobes via kprobe_ftrace_ops",
                     "users": sorted({str(r["user"]) for r in obs._rows}), "events": len(obs),
                     "synthetic": True,
                     "synthetic_columns": ["t_ns", "cpu", "bpf:size (trampoline bytes, and JIT bytes of "
                                           "programs not measured on 6.1, are estimates)"],
                     "synthetic_note": "the schedule (start gaps 2-8 s, run lengths 10-60 s, seeded) and the "
                                       "trampoline byte estimates are synthetic (JIT bytes: measured on 6.1, "
                                       "workloads/data/bpf/jit-sizes-6.1.csv, else estimated); programs, targets and "
                                       "instruction counts are real",
                     "default": False},
        "session": info, "parameters": _PARAMS, "source": _common_source(data),
        "regenerate": {"command": "execbench record shipped --stage workloads"}, "licence": _LICENCE})
    counts["bpf-observability"] = len(obs)

    boot2, _, _ = _boot(data)
    streams, info = _session_streams(data, boot2.last_t_ns + BOOT_TO_SESSION_NS, with_probes=True)
    cloud = merge([boot2] + streams)
    _save(data, "cloud-session", cloud, {
        "workload": {"name": "cloud-session",
                     "description": "boot-cloud, then an observability session: BCC-checklist libbpf-tools, "
                                    "offset kprobes (most optimized) and two ftrace ops",
                     "users": sorted({str(r["user"]) for r in cloud._rows}), "events": len(cloud),
                     "synthetic": True,
                     "synthetic_columns": ["t_ns", "cpu", "bpf:size (estimates)", "kprobe:size",
                                           "kprobe:op (which are optimized)", "ftrace:obj", "ftrace:size"],
                     "synthetic_note": "boot timing, the session schedule, kprobe offsets, the optimized subset "
                                       "and the ftrace ops names/times are synthetic (seeded); the module set, "
                                       "module sizes, BPF programs, targets and instruction counts are real",
                     "default": True},
        "session": info, "parameters": _PARAMS,
        "source": {**_common_source(data), "listing": (pathlib.Path("workloads/data") / CLOUD_LISTING).as_posix(),
                   "providers": list(CLOUD_PROVIDERS)},
        "regenerate": {"command": "execbench record shipped --stage workloads"}, "licence": _LICENCE})
    counts["cloud-session"] = len(cloud)

    counts.update(build_churn_workloads(data))
    return counts


def _probe_functions(bpf_rows: list[dict[str, str]], limit: int | None = None) -> list[str]:
    """Real kernel functions that libbpf-tools attach kprobes/fentry to (placeholders dropped)."""
    funcs = sorted({r["target"] for r in bpf_rows
                    if r["attach_category"] in ("kprobe", "trampoline") and r["target"]
                    and r["tool"] not in PLACEHOLDER_TOOLS and not r["target"].startswith("dummy")})
    return funcs[:limit] if limit else funcs


#: Modules a container host loads on demand (networking, storage, filesystems).
#: SYNTHETIC CHOICE of candidates; sizes and dependencies come from the generic table.
FLEET_MODULES = ("veth", "vxlan", "ip_vs", "nf_tables", "wireguard", "nbd", "rbd", "ceph", "nfsv4",
                 "cifs", "fuse", "isofs")


def build_churn_workloads(data: pathlib.Path) -> dict[str, int]:
    """kprobe-churn, ftrace-trampolines and fleet-day (synthetic schedules, real objects)."""
    from . import churn

    counts: dict[str, int] = {}
    bpf_rows = read_bpf_table(data / BPF_TABLE)
    funcs = _probe_functions(bpf_rows)
    src = _common_source(data)

    kc = churn.kprobe_churn(funcs, SEED + 10)
    _save(data, "kprobe-churn", kc, {
        "workload": {"name": "kprobe-churn",
                     "description": "a tracing agent's rounds of 16-300 offset kprobes (register, optimize "
                                    "21/25, hold, unregister) over 8 resident probes",
                     "users": ["kprobe"], "events": len(kc), "synthetic": True,
                     "synthetic_columns": ["t_ns", "cpu", "kprobe:size", "kprobe:op (which are optimized)"],
                     "synthetic_note": "schedule, round sizes and probe offsets are synthetic (seeded); probed "
                                       "functions are those libbpf-tools 0.26 attaches to; slot sizes as in "
                                       "[parameters]",
                     "default": False},
        "parameters": {k: _PARAMS[k] for k in ("kprobe_slot_bytes", "optprobe_slot_bytes")}
        | {"rounds": 40, "per_round": [16, 300], "resident": 8, "seed": SEED + 10},
        "source": src, "regenerate": {"command": "execbench record shipped --stage workloads"},
        "licence": _LICENCE})
    counts["kprobe-churn"] = len(kc)

    pb = [int(r["jit_bytes_est"]) for r in bpf_rows if r["attach_category"] == "trampoline"]
    tc = churn.trampoline_churn(funcs, pb, SEED + 20)
    _save(data, "ftrace-trampolines", tc, {
        "workload": {"name": "ftrace-trampolines",
                     "description": "retsnoop-style rounds: fentry+fexit on 4-60 kernel functions (one shared "
                                    "BPF trampoline each) plus 1-3 filtered ftrace_ops, then teardown",
                     "users": sorted({str(r["user"]) for r in tc._rows}), "events": len(tc), "synthetic": True,
                     "synthetic_columns": ["t_ns", "cpu", "obj (which functions)", "bpf:size (estimates)",
                                           "ftrace:size"],
                     "synthetic_note": "schedule and function choice are synthetic (seeded); program sizes are "
                                       "drawn from real libbpf-tools fentry/fexit programs; trampoline sizes "
                                       "are the estimate in [parameters]",
                     "default": False},
        "parameters": {k: _PARAMS[k] for k in ("bpf_tramp_bytes", "ftrace_tramp_bytes", "jit_bytes_per_insn")}
        | {"rounds": 30, "per_round": [4, 60], "seed": SEED + 20},
        "source": src, "regenerate": {"command": "execbench record shipped --stage workloads"},
        "licence": _LICENCE})
    counts["ftrace-trampolines"] = len(tc)

    if (data / GENERIC_TABLE).exists():
        rates = churn.FleetRates()
        boot, bs, rows = _boot(data, GENERIC_TABLE, SERVER_LISTING, SERVER_DRIVERS)
        t0 = boot.last_t_ns
        end = t0 + int(rates.day_s * churn.NS)
        table = {r["module"]: r for r in rows}
        period = rates.probe_burst_every_s
        streams = [
            boot,
            churn.containers(rates, SEED + 31, t0, end),
            churn.monitor(rs.tool_programs(bpf_rows), rates, SEED + 32, t0, end),
            churn.module_churn(table, FLEET_MODULES, set(bs.order), rates, SEED + 33, t0, end),
            churn.kprobe_churn(funcs, SEED + 34, rounds=int(rates.day_s // period), start_ns=t0,
                               gap_s=(0.7 * period, 0.9 * period), hold_s=(30.0, 300.0), resident=0,
                               prefix="oncall:"),
        ]
        fleet = merge(streams)
        _save(data, "fleet-day", fleet, {
            "workload": {"name": "fleet-day",
                         "description": "24 h of a container-host server: boot-server, container cgroup-BPF "
                                        "churn, a monitoring agent running checklist tools every minute, "
                                        "on-call kprobe bursts, on-demand module loads/unloads",
                         "users": sorted({str(r["user"]) for r in fleet._rows}), "events": len(fleet),
                         "synthetic": True,
                         "synthetic_columns": ["t_ns", "cpu", "obj (which objects, the whole schedule)",
                                               "bpf:size (estimates; container programs invented)",
                                               "kprobe:size"],
                         "synthetic_note": "the whole schedule is synthetic (rates in [rates], seeded); objects are "
                                           "real: module set and sizes (Debian 6.1 generic), libbpf-tools "
                                           "programs and targets; container cgroup programs are synthetic "
                                           "sizes (no package ships systemd's generated programs)",
                         "default": False},
            "rates": dataclasses.asdict(rates), "parameters": _PARAMS,
            "source": {**src, "generic_module_table": (pathlib.Path("workloads/data") / GENERIC_TABLE).as_posix(),
                       "listing": (pathlib.Path("workloads/data") / SERVER_LISTING).as_posix(),
                       "server_drivers": list(SERVER_DRIVERS), "on_demand_modules": list(FLEET_MODULES)},
            "regenerate": {"command": "execbench record shipped --stage workloads"}, "licence": _LICENCE})
        counts["fleet-day"] = len(fleet)
    return counts


def _save(data: pathlib.Path, name: str, b: TraceBuilder, doc: dict) -> None:
    b.save(data / f"{name}.csv.gz")
    write_toml(data / f"{name}.toml", doc)


def _fix_listing_path(data: pathlib.Path, name: str, listing: pathlib.Path) -> None:
    """Store repo-relative paths in the boot sidecar (not the absolute data dir)."""
    import tomllib

    p = data / f"{name}.toml"
    doc = tomllib.loads(p.read_text())
    doc["source"]["listing"] = (pathlib.Path("workloads/data") / listing).as_posix()
    doc["regenerate"]["command"] = "execbench record shipped --stage workloads"
    write_toml(p, doc)
