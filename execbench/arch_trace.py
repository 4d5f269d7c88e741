"""One workload on another architecture: the one place module sizes change with ``--arch``.

A shipped workload names the modules it loads and carries the sizes and
loader work of their x86-64 build.  Replayed on the arm64 model, each module
load must use the same module's arm64 build instead -- and the arm64 loader
needs per-module PLT candidates the arch-neutral trace schema does not have.
:func:`for_arch` is the single function every replay goes through
(:func:`execbench.replay.run`, and the commands before their sweeps and the
floor): it returns a trace whose module loads carry ``arch``'s sizes, with the
per-module arm64 columns attached as ``trace.arch_modinfo`` (module name ->
``{"plt_core": .., "plt_core_ext": .., "plt_init": .., ...}``), which the
replay hands to the simulated kernel (``Kernel.module_arch_info``).

The data side is workloads/archsizes.py (``retarget_trace()``: the arm64
module tables recorded from Debian's arm64 packages, the rules for modules
the arm64 build lacks, patch offsets and kprobe slot sizes; docs/data-sources.md).
Until that module is present, :func:`_stub_same_sizes` stands in at this one
place: it returns the trace with **its own (x86-64) sizes**, no PLT
candidates, and marks the trace (``trace.arch_sizes == "stub"``) so that
results and reports say arm64 ran on x86-64 module sizes.

The module table of a workload's own kernel series is used (the series in
its provenance: ``module_table`` / ``kernel``; 6.1 for every shipped
workload), the same for every design -- like for like, as on x86-64, where
all designs replay the same recorded sizes.
"""
from __future__ import annotations

import re

from .trace import Trace

#: the series used when a trace's provenance names none
DEFAULT_SERIES = "6.1"


def trace_arch(trace: Trace) -> str:
    """The architecture whose sizes ``trace`` carries."""
    got = trace.__dict__.get("arch")
    if got:
        return got
    return str((trace.provenance or {}).get("workload", {}).get("arch", "x86_64"))


def trace_series(trace: Trace) -> str:
    """The kernel series of the module table a trace was built from."""
    prov = trace.provenance or {}
    for section in prov.values():
        if not isinstance(section, dict):
            continue
        for key in ("module_table", "kernel"):
            m = re.search(r"(\d+)\.(\d+)", str(section.get(key, "")))
            if m:
                return f"{m.group(1)}.{m.group(2)}"
    # a QEMU recording names its kernel in the command that regenerates it
    # (``execbench record qemu ... --kernel 7.2``)
    m = re.search(r"--kernel (\d+)\.(\d+)", str((prov.get("regenerate") or {}).get("command", "")))
    if m:
        return f"{m.group(1)}.{m.group(2)}"
    return DEFAULT_SERIES


_CACHE: dict[tuple[int, str], tuple[Trace, Trace]] = {}


def for_arch(trace: Trace, arch: str) -> Trace:
    """``trace`` with ``arch``'s module sizes (module doc); ``trace`` itself
    when it already carries them (every x86-64 replay of an x86-64 trace)."""
    if trace_arch(trace) == arch:
        if arch == "x86_64" or "arch_modinfo" in trace.__dict__:
            return trace
        return _with_modinfo(trace, arch)
    hit = _CACHE.get((id(trace), arch))
    if hit is not None and hit[0] is trace:
        return hit[1]
    try:
        from .workloads import archsizes
    except ImportError:
        out = _stub_same_sizes(trace, arch)
    else:
        out = _retarget(archsizes, trace, arch)
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[(id(trace), arch)] = (trace, out)
    return out


def _retarget(archsizes, trace: Trace, arch: str) -> Trace:
    new, per_mod, cov = archsizes.retarget_trace(trace, arch, trace_series(trace))
    if new is trace:
        return trace
    new.name = trace.name                        # the workload keeps its name; arch is in the meta
    new.__dict__["arch"] = arch
    new.__dict__["arch_sizes"] = cov.table
    new.__dict__["arch_coverage"] = cov
    new.__dict__["arch_modinfo"] = {str(m): {k: int(v) for k, v in row.items()}
                                    for m, row in per_mod.iterrows()}
    return new


def _with_modinfo(trace: Trace, arch: str) -> Trace:
    """A trace recorded on ``arch`` (its sizes are that architecture's
    already): attach the per-module PLT candidates of its series' module
    table, by module name (none when the table is not available)."""
    new = Trace(df=trace.df, path=trace.path, name=trace.name, provenance=trace.provenance)
    new.__dict__["arch"] = arch
    new.__dict__["arch_sizes"] = "recorded"
    info: dict = {}
    try:
        from .workloads import archsizes
    except ImportError:
        pass
    else:
        table = archsizes.module_table(arch, trace_series(trace))
        cols = [c for c in table.columns if c.startswith("plt_")]
        names = set(trace.df.loc[trace.df["user"] == "module", "obj"])
        info = {str(m): {c: int(row[c]) for c in cols} for m, row in table.loc[table.index.isin(names)].iterrows()}
    new.__dict__["arch_modinfo"] = info
    return new


def _stub_same_sizes(trace: Trace, arch: str) -> Trace:
    """STUB until workloads/archsizes.py is merged: the trace's own sizes,
    no PLT candidates (every module load counts in ``plt_info_missing``),
    marked ``arch_sizes = "stub"``."""
    new = Trace(df=trace.df, path=trace.path, name=trace.name, provenance=dict(trace.provenance or {}))
    new.__dict__["arch"] = arch
    new.__dict__["arch_sizes"] = "stub"
    new.__dict__["arch_modinfo"] = {}
    return new


def sizes_note(trace: Trace) -> str:
    """What module sizes a trace carries, for results meta and reports."""
    src = trace.__dict__.get("arch_sizes")
    if src == "recorded":
        return "module sizes as recorded on this architecture"
    if src == "stub":
        return "x86-64 module sizes (arm64 module tables not available: stub)"
    if src:
        cov = trace.__dict__.get("arch_coverage")
        extra = ""
        if cov is not None and cov.missing_loads:
            extra = f"; {cov.missing_loads} loads of {len(cov.missing)} modules the build lacks dropped"
        return f"module sizes from {src}{extra}"
    return ""
