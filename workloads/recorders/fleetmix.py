"""The ``fleet-mix`` workload: a server's resident BPF programs, from real objects.

Why: the BPF mix of the other workloads comes from libbpf-tools alone, which is
about 2x smaller at the median than a published fleet distribution and has almost
nothing at 2 KB or more (Song Liu, "[PATCH bpf-next v5 0/6] execmem_alloc for BPF
programs", Message-ID 20221128190245.2337461-1-song@kernel.org: "50% of the loaded
BPF programs are less than 500 byte in size, and 75% of them are less than 2kB").
Debian packages that ship compiled BPF objects (stand-alone ``.o``/``.bpf`` files or
libbpf skeletons embedded in executables and libraries) are read with the BPF
recorder (:func:`workloads.recorders.bpf.record_bpf`); every program of every
package is loaded once by its tool's process and stays loaded (a server's daemons:
XDP filters and dispatcher, PCP's BPF PMDA, bpftune's tuners, Suricata's XDP
programs, and the BCC checklist tools).

Programs that several executables of one package embed identically (xdp-tools
links the same objects into several binaries) are kept once per package.  JIT
bytes are the request measured on Debian's 6.1 kernel where the program loaded there,
else ``(insns + subprog_insns) * JIT_BYTES_PER_INSN``, as for every BPF table
(recorders/bpf.py ``jit_bytes_est``).

Regenerate: ``python -m workloads.recorders.fleetmix DEB_DIR`` with the .debs named
in :data:`PACKAGES` in DEB_DIR (``apt-get download``; bookworm and trixie).
"""
from __future__ import annotations

import pathlib
import sys

import pandas as pd

from execbench.trace import COLUMNS, save_trace

from .bpf import jit_bytes_est, measured_jit_sizes, record_bpf
from .sources import deb_info

#: (package, suite, why it is here)
PACKAGES = (
    ("libxdp1", "bookworm", "XDP dispatcher and xdp-filter/xdpdump objects in /usr/lib/*/bpf"),
    ("xdp-tools", "bookworm", "skeletons embedded in xdp-bench, xdp-filter, xdp-monitor, ..."),
    ("pcp", "bookworm", "PCP BPF PMDA modules (libbpf skeletons in pmdas/bpf/modules/*.so)"),
    ("libbpftune0", "trixie", "bpftune tuners (skeletons in /usr/lib/*/bpftune/*.so)"),
    ("suricata", "trixie", "XDP/socket filters in /usr/lib/suricata/ebpf"),
    ("libbpf-tools", "trixie", "BCC checklist tools (0.31)"),
)

GAP_NS = 100_000_000


def programs(deb_dir: pathlib.Path) -> tuple[pd.DataFrame, list[dict]]:
    """One row per distinct program of each package, and the packages read."""
    frames, pkgs = [], []
    measured = measured_jit_sizes()
    for name, suite, why in PACKAGES:
        debs = sorted(deb_dir.glob(f"{name}_*.deb"))
        if len(debs) != 1:
            raise SystemExit(f"{deb_dir}: expected one {name}_*.deb, found {len(debs)}")
        rows, _ = record_bpf(debs[0], ("usr/",), measured)
        info = deb_info(debs[0])
        pkgs.append({"name": info.package, "version": info.version, "suite": suite,
                     "sha256": info.sha256, "why": why})
        df = pd.DataFrame(rows)
        df = df.drop_duplicates(["section", "program", "insns", "subprog_insns"])
        frames.append(df)
    return pd.concat(frames, ignore_index=True), pkgs


def trace(progs: pd.DataFrame) -> pd.DataFrame:
    """Every program loaded once, tool by tool, on CPUs 0/1 in turn; none unloaded."""
    rows = []
    for i, p in enumerate(progs.itertuples()):
        pkg = p.package.split("=")[0]
        rows.append({"seq": i, "t_ns": i * GAP_NS, "cpu": i % 2, "user": "bpf", "op": "prog_load",
                     "obj": f"{pkg}.{p.tool}:{p.program}.{i}", "size": int(p.jit_bytes_est)})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def main(argv: list[str]) -> int:
    deb_dir = pathlib.Path(argv[1] if len(argv) > 1 else ".")
    progs, pkgs = programs(deb_dir)
    data = pathlib.Path(__file__).resolve().parents[1] / "data"
    keep = ["package", "tool", "section", "program", "insns", "subprog_insns", "n_subprogs",
            "attach_category", "target", "jit_bytes_est", "license"]
    progs[keep].to_csv(data / "bpf" / "fleet-mix-programs.csv", index=False, lineterminator="\n")
    save_trace(trace(progs), data / "fleet-mix.csv.gz")
    for p in pkgs:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
