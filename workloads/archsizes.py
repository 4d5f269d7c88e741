"""One workload, another architecture's sizes: retarget a trace's module loads.

Why: a shipped workload names the modules it loads (``obj`` of the ``module`` rows) and
carries the sizes and loader work of their x86-64 build.  Replaying it on the arm64 model
with those numbers would mix architectures.  :func:`retarget` swaps in the sizes and work
of the same module in Debian's arm64 build of the same kernel series (the module tables
under ``data/modules/``, recorded by ``execbench record modules``), so the only thing
that changes between the two replays is the architecture.

Rules (each is a choice; docs/data-sources.md §7 says why):

* **Module loads**: every column the trace schema has for a ``load`` row
  (``text`` .. ``init_data``, ``align``, ``relocs`` .. ``mcount_locs``, ``kallsyms``,
  ``init_kallsyms``) comes from the arm64 table row of that module.  arm64 has no ORC
  unwinder, so ``orc_entries`` is 0; ``mcount_locs`` counts ``__patchable_function_entries``;
  ``alt_sites`` counts ``.altinstructions`` (modlayout docstring).  The arm64-only columns
  (:data:`ARM64_COLUMNS`: the PLT slots ``module_frob_arch_sections()`` reserves, core and
  init, and how many of them are for undefined symbols and for vmlinux symbols) do not fit
  the architecture-neutral trace schema; they come back in a per-module frame beside it.
* **Modules the arm64 build does not have** (x86-only drivers and accelerators such as
  ``kvm_intel``, ``aesni_intel``, ``i915``): ``missing="drop"`` (the default) removes
  the module's rows (load, patch, init_done, unload) -- an arm64 machine would not load
  them, and keeping their x86 sizes would put x86 numbers into an arm64 result.
  ``missing="keep"`` keeps the trace's own numbers (for a sensitivity check); either way
  :class:`Coverage` lists them.
* **Text patches** (``patch`` rows): a patch is one instruction at a site in the module's
  text.  On arm64 every instruction is 4 bytes (``AARCH64_INSN_SIZE``), so ``len``
  becomes 4 and the offset keeps its relative position in the text:
  ``offset = floor(offset_x86 * text_arm64 / text_x86)`` rounded down to a multiple of 4
  (and at most ``text_arm64 - 4``).  SYNTHETIC: the real arm64 site is not known from an
  x86 trace; the relative position keeps the page a patch touches comparable.
* **kprobe slots** (``register`` rows): ``size`` becomes arm64's slot size,
  ``MAX_INSN_SIZE * sizeof(kprobe_opcode_t)`` = 2 * 4 = 8 bytes
  (arch/arm64/include/asm/probes.h, kprobe_opcode_t is u32; 6.1-7.2).  ``optimize`` rows
  stay: the model decides what they mean where optprobes do not exist.
* Everything else (BPF, ftrace rows) is passed through unchanged: their sizes are the
  arm64 model's business (ftrace makes no trampolines on arm64).

A trace already recorded on arm64 (provenance ``arch = "arm64"``) is returned unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import pathlib
import re

import pandas as pd

from execbench.errors import ExecbenchError, UnknownName

#: arm64 module tables per kernel series (data/modules/, docs/data-sources.md §7)
TABLES: dict[str, dict[str, str]] = {
    "arm64": {
        "6.1": "6.1.0-56-arm64.modules.csv.gz",
        "6.12": "6.12.117+deb13-arm64.modules.csv.gz",
        "7.2": "7.2.13+deb14-arm64.modules.csv.gz",
    },
}
ARCHES = ("x86_64", "arm64")
#: the trace's load-row columns that come from the table
LOAD_COLUMNS = ("text", "rodata", "ro_after_init", "data", "init_text", "init_rodata", "init_data",
                "align", "relocs", "reloc_secs", "alt_sites", "orc_entries", "mcount_locs",
                "kallsyms", "init_kallsyms")
#: per-module columns only an arm64 table has (``count_plts()`` slots; of which for
#: undefined symbols; of which for vmlinux symbols -- the rest target other modules)
ARM64_COLUMNS = ("plt_core", "plt_core_ext", "plt_core_kernel", "plt_init", "plt_init_ext",
                 "plt_init_kernel")
#: arch/arm64/include/asm/insn-def.h AARCH64_INSN_SIZE
ARM64_INSN_SIZE = 4
#: arch/arm64/include/asm/probes.h: MAX_INSN_SIZE 2 x kprobe_opcode_t (u32)
ARM64_KPROBE_SLOT = 8


class ArchSizesError(ExecbenchError):
    """No table for that architecture/series, or a table that cannot be read."""


@dataclasses.dataclass(frozen=True)
class Coverage:
    """How much of a workload the target architecture's table covers."""

    arch: str
    table: str                      # file name of the table used ("" for x86_64)
    loads: int                      # module load rows in the input trace
    found: int                      # ... whose module the table has
    missing: tuple[str, ...]        # modules the table lacks (sorted, distinct)
    missing_loads: int              # load rows of those modules
    dropped_rows: int               # rows removed (missing="drop")
    patches_moved: int              # patch rows whose offset/len were retargeted

    @property
    def fraction(self) -> float:
        return self.found / self.loads if self.loads else 1.0


def series_key(series: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", str(series))
    if not m:
        raise ArchSizesError(f"kernel series {series!r} is not of the form <major>.<minor>")
    return int(m.group(1)), int(m.group(2))


def table_name(arch: str, series: str) -> str:
    """The table for ``series``: the newest one at or below it, else the oldest.

    (A v6.4 or v6.10 model replays with the 6.1 table; 6.13-7.1 with 6.12's.)"""
    if arch not in TABLES:
        raise UnknownName("architecture with module tables", arch, list(TABLES))
    want = series_key(series)
    by = sorted(TABLES[arch].items(), key=lambda kv: series_key(kv[0]))
    below = [name for s, name in by if series_key(s) <= want]
    return below[-1] if below else by[0][1]


def _data_dir() -> pathlib.Path:
    from execbench.workloads import catalog

    return catalog.data_dir()


@functools.lru_cache(maxsize=8)
def _read(path: pathlib.Path) -> pd.DataFrame:
    try:
        with gzip.open(path, "rt", newline="") as f:
            df = pd.read_csv(f, dtype={"module": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise ArchSizesError(f"{path}: cannot read the module table: {exc}") from exc
    need = set(LOAD_COLUMNS) | set(ARM64_COLUMNS) | {"module"}
    if not need <= set(df.columns):
        raise ArchSizesError(f"{path}: row 1: not an arm64 module table (missing "
                             f"{sorted(need - set(df.columns))})")
    if df["module"].duplicated().any():
        raise ArchSizesError(f"{path}: module {df['module'][df['module'].duplicated()].iloc[0]!r} "
                             "appears twice")
    return df.set_index("module")


def module_table(arch: str, series: str) -> pd.DataFrame:
    """The ``arch`` module table of ``series``, indexed by module name (read once)."""
    return _read(_data_dir() / "modules" / table_name(arch, series))


def _trace_arch(provenance: dict | None) -> str:
    return str((provenance or {}).get("workload", {}).get("arch", "x86_64"))


def retarget(trace: pd.DataFrame, arch: str, series: str, missing: str = "drop",
             provenance: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, Coverage]:
    """(trace with ``arch``'s sizes, per-module ``arch``-only columns, coverage).

    ``trace`` is a trace frame in the schema's column order (``Trace.df``); the result is
    one too (``seq`` renumbered when rows are dropped) and passes ``trace.from_frame``.
    The per-module frame has one row per module the result loads, indexed by name, with
    :data:`ARM64_COLUMNS` (empty for ``x86_64``).  ``provenance`` (the trace's TOML) tells
    a trace recorded on arm64 apart: it is returned unchanged.
    """
    if arch not in ARCHES:
        raise UnknownName("architecture", arch, list(ARCHES))
    if missing not in ("drop", "keep"):
        raise UnknownName("missing-module rule", missing, ["drop", "keep"])
    loads = trace[(trace["user"] == "module") & (trace["op"] == "load")]
    if arch == "x86_64" or _trace_arch(provenance) == arch:
        if _trace_arch(provenance) != arch:
            raise ArchSizesError(f"a {_trace_arch(provenance)} trace has no {arch} counterpart here")
        cov = Coverage(arch, "", len(loads), len(loads), (), 0, 0, 0)
        return trace, pd.DataFrame(index=pd.Index([], name="module"), columns=list(ARM64_COLUMNS)), cov
    table = module_table(arch, series)
    name = table_name(arch, series)
    mods = trace["obj"].where(trace["user"] == "module")
    have = mods.isin(table.index)
    gone = sorted(set(loads["obj"]) - set(table.index))
    out = trace.copy()
    dropped = 0
    if missing == "drop":
        keep = ~((trace["user"] == "module") & mods.notna() & ~have)
        dropped = int((~keep).sum())
        out = out[keep].reset_index(drop=True)
        out["seq"] = range(len(out))
    m = out["user"].eq("module")
    sel = m & out["op"].eq("load") & out["obj"].isin(table.index)
    # the trace's x86 text size of each load, for the patch offsets below (a module loaded
    # twice keeps the text of the load that precedes each patch)
    x86_text = out["text"].where(m & out["op"].eq("load")).groupby(out["obj"].where(m)).ffill()
    rows = table.loc[out.loc[sel, "obj"]]
    for c in LOAD_COLUMNS:
        out.loc[sel, c] = rows[c].astype("int64").to_numpy()
    patch = m & out["op"].eq("patch") & out["obj"].isin(table.index)
    moved = int(patch.sum())
    if moved:
        t_arm = table.loc[out.loc[patch, "obj"], "text"].astype("int64").to_numpy()
        t_x86 = x86_text[patch].astype("int64").to_numpy()
        off = out.loc[patch, "offset"].astype("int64").to_numpy()
        new = (off * t_arm // t_x86) // ARM64_INSN_SIZE * ARM64_INSN_SIZE
        new = new.clip(0, t_arm - ARM64_INSN_SIZE)
        out.loc[patch, "offset"] = new
        out.loc[patch, "len"] = ARM64_INSN_SIZE
    reg = out["user"].eq("kprobe") & out["op"].eq("register")
    out.loc[reg, "size"] = ARM64_KPROBE_SLOT
    for c in ("offset", "len", "size", *LOAD_COLUMNS):
        out[c] = out[c].astype("Int64")
    loaded = sorted(set(out.loc[m & out["op"].eq("load"), "obj"]) & set(table.index))
    per_mod = table.loc[loaded, list(ARM64_COLUMNS)].astype("int64")
    per_mod.index.name = "module"
    cov = Coverage(arch, name, len(loads), int(loads["obj"].isin(table.index).sum()), tuple(gone),
                   int((~loads["obj"].isin(table.index)).sum()), dropped, moved)
    return out, per_mod, cov


def retarget_trace(trace, arch: str, series: str, missing: str = "drop"):
    """:func:`retarget` on a loaded :class:`execbench.trace.Trace`; returns
    (``Trace`` with ``arch``'s sizes, per-module frame, :class:`Coverage`)."""
    from execbench.trace import from_frame

    df, per_mod, cov = retarget(trace.df, arch, series, missing, getattr(trace, "provenance", None))
    if df is trace.df:
        return trace, per_mod, cov
    out = from_frame(df, f"{trace.name}@{arch}-{series}")
    prov = {k: dict(v) if isinstance(v, dict) else v for k, v in (trace.provenance or {}).items()}
    prov.setdefault("workload", {})["arch"] = arch
    prov["workload"]["retargeted"] = {"from": _trace_arch(trace.provenance), "table": cov.table,
                                      "missing": missing, "missing_modules": list(cov.missing)}
    out.provenance = prov
    return out, per_mod, cov
