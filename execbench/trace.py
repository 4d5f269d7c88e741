"""The recorded-workload trace: schema, loading, validation and saving.

A workload is one table, one row per event in the order it happened
(docs/trace-schema.md).  This module is the only
place that knows the CSV layout; everything downstream gets a validated
:class:`Trace` whose events are plain :class:`Event` records.

Validation is all-or-nothing: a trace with any broken row raises
:class:`~execbench.errors.TraceError` naming the file, the row and the
reason, before a single event is replayed.  Nothing is silently fixed.
"""
from __future__ import annotations

import gzip
import io
import os
import tempfile
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .errors import TraceError
from .units import GiB, PAGE_SIZE

ID_COLUMNS = ["seq", "t_ns", "cpu", "user", "op", "obj"]
MODULE_SIZE_COLUMNS = ["text", "rodata", "ro_after_init", "data",
                       "init_text", "init_rodata", "init_data"]
MODULE_WORK_COLUMNS = ["relocs", "reloc_secs", "alt_sites", "orc_entries", "mcount_locs"]
#: bytes of data/init_data that layout_symtab() appends (v6.1 places them on their own
#: page(s)); added to the schema after the others, optional so that older traces load
MODULE_KALLSYMS_COLUMNS = ["kallsyms", "init_kallsyms"]
SIZE_COLUMNS = (MODULE_SIZE_COLUMNS + ["align"] + MODULE_WORK_COLUMNS + ["offset", "len", "size"]
                + MODULE_KALLSYMS_COLUMNS)
COLUMNS = ID_COLUMNS + SIZE_COLUMNS
#: the columns of traces written before MODULE_KALLSYMS_COLUMNS existed (still accepted)
COLUMNS_BEFORE_KALLSYMS = COLUMNS[:-len(MODULE_KALLSYMS_COLUMNS)]

MAX_SIZE = GiB  # "negative or absurd size": nothing in the module range exceeds 1 GiB
MAX_CPU = 8192  # CONFIG_NR_CPUS upper bound on x86-64 (arch/x86/Kconfig, MAXSMP)

#: (user, op) -> columns that op requires; every other size column must be empty.
OPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("module", "load"): tuple(MODULE_SIZE_COLUMNS + ["align"] + MODULE_WORK_COLUMNS),
    ("module", "init_done"): (),
    ("module", "patch"): ("offset", "len"),
    ("module", "unload"): (),
    ("bpf", "prog_load"): ("size",),
    ("bpf", "prog_unload"): (),
    ("bpf", "tramp_attach"): ("size",),
    ("bpf", "tramp_update"): ("size",),
    ("bpf", "tramp_detach"): (),
    ("bpf", "dispatcher_update"): (),
    ("ftrace", "ops_register"): ("size",),
    ("ftrace", "ops_update"): (),
    ("ftrace", "ops_unregister"): (),
    ("kprobe", "register"): ("size",),
    ("kprobe", "optimize"): ("size",),
    ("kprobe", "unregister"): (),
}
#: (user, op) -> columns that op may leave empty (all of them or none)
OPTIONAL: dict[tuple[str, str], tuple[str, ...]] = {
    ("module", "load"): tuple(MODULE_KALLSYMS_COLUMNS),
}
USERS = ("module", "bpf", "ftrace", "kprobe")

# Ops whose size must be > 0 and at most this many bytes, with the kernel rule.
_SIZE_LIMITS: dict[tuple[str, str], tuple[int, str]] = {
    ("bpf", "prog_load"): (MAX_SIZE, "JIT image"),
    # arch_prepare_bpf_trampoline() fails with -EFAULT past one page
    # (arch/x86/net/bpf_jit_comp.c; trampolines are <= PAGE_SIZE in every version)
    ("bpf", "tramp_attach"): (PAGE_SIZE, "BPF trampoline (<= PAGE_SIZE, arch_prepare_bpf_trampoline)"),
    ("bpf", "tramp_update"): (PAGE_SIZE, "BPF trampoline (<= PAGE_SIZE, arch_prepare_bpf_trampoline)"),
    ("ftrace", "ops_register"): (PAGE_SIZE, "ftrace trampoline (create_trampoline copies one caller stub)"),
    # a slot is carved from one insn page (kernel/kprobes.c slots_per_page)
    ("kprobe", "register"): (PAGE_SIZE, "kprobe insn slot"),
    ("kprobe", "optimize"): (PAGE_SIZE, "optprobe insn slot"),
}


@dataclass(slots=True)
class Event:
    """One row of a validated trace.  Size fields are ``None`` where unused."""

    seq: int
    t_ns: int
    cpu: int
    user: str
    op: str
    obj: str
    text: int | None = None
    rodata: int | None = None
    ro_after_init: int | None = None
    data: int | None = None
    init_text: int | None = None
    init_rodata: int | None = None
    init_data: int | None = None
    align: int | None = None
    relocs: int | None = None
    reloc_secs: int | None = None
    alt_sites: int | None = None
    orc_entries: int | None = None
    mcount_locs: int | None = None
    offset: int | None = None
    len: int | None = None
    size: int | None = None
    kallsyms: int | None = None
    init_kallsyms: int | None = None


@dataclass
class Trace:
    """A validated workload: the event table plus where it came from."""

    df: pd.DataFrame
    path: str
    name: str
    provenance: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.df)

    def events(self) -> Iterator[Event]:
        """Yield the events in order (the replay hot path reads these).

        Built once per trace and kept: a sweep replays the same trace for
        every design and seed, and no design writes to an event."""
        cache = self.__dict__.get("_events")
        if cache is None or cache[0] is not self.df:
            cols = [self.df[c].tolist() for c in COLUMNS]
            cache = (self.df, [Event(*[None if v is pd.NA else v for v in row]) for row in zip(*cols)])
            self.__dict__["_events"] = cache
        return iter(cache[1])

    def __getstate__(self) -> dict:
        # the event cache is rebuilt on demand; do not ship it to worker processes
        return {k: v for k, v in self.__dict__.items() if k != "_events"}


def _fail_first(path: str, mask: np.ndarray, reason) -> tuple[int, str] | None:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    r = int(idx[0])
    return r, (reason(r) if callable(reason) else reason)


def _read_csv(path: str) -> pd.DataFrame:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise TraceError(path, None, f"cannot read: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise TraceError(path, None, f"truncated or corrupt gzip data ({e})") from None
    if not raw.strip():
        raise TraceError(path, None, "empty file (no header, no events)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TraceError(path, None, f"not UTF-8 text at byte {e.start}") from None
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                           na_filter=False, skip_blank_lines=False)
    except pd.errors.ParserError as e:
        raise TraceError(path, None, f"malformed CSV: {e}") from None


def _int_column(path: str, df: pd.DataFrame, col: str, required: np.ndarray):
    """Parse one column to int64 (+ a 'present' mask); report non-integers."""
    s = df[col].str.strip()
    # The same string operations, applied once per distinct value: a big
    # trace repeats few values per column, and the regex dominated loading.
    codes, uniq = pd.factorize(s, sort=False)
    u = pd.Series(uniq, dtype=object)
    u_present = (u != "").to_numpy()
    u_ok = u.str.fullmatch(r"-?\d+").to_numpy(dtype=bool, na_value=False) | ~u_present
    present = u_present[codes]
    ok = u_ok[codes]
    bad = _fail_first(path, ~ok, lambda r: f"column {col!r}: {df[col].iat[r]!r} is not an integer")
    vals = np.zeros(len(df), dtype=np.int64)
    conv = present & ok
    if conv.any():
        u_vals = np.zeros(len(u), dtype=np.int64)
        u_conv = u_present & u_ok
        u_vals[u_conv] = u[u_conv].astype(np.int64).to_numpy()
        vals[conv] = u_vals[codes[conv]]
    missing = _fail_first(path, required & ~present, f"column {col!r} is empty")
    return vals, conv, [b for b in (bad, missing) if b]


def validate(df: pd.DataFrame, path: str = "<trace>") -> pd.DataFrame:
    """Check a raw string table against the schema; return it typed.

    Returns a frame whose id columns are int64/str and whose size columns are
    nullable ``Int64`` (``<NA>`` where the op does not use the column).
    Raises :class:`TraceError` for the earliest broken row.
    """
    if list(df.columns) == COLUMNS_BEFORE_KALLSYMS:
        df = df.assign(**{c: "" for c in MODULE_KALLSYMS_COLUMNS})
    if list(df.columns) != COLUMNS:
        missing = [c for c in COLUMNS if c not in df.columns]
        extra = [c for c in df.columns if c not in COLUMNS]
        detail = []
        if missing:
            detail.append(f"missing {missing}")
        if extra:
            detail.append(f"unknown {extra}")
        if not detail:
            detail.append("columns out of order")
        raise TraceError(path, None, f"wrong columns ({'; '.join(detail)}); expected {','.join(COLUMNS)}")
    n = len(df)
    if n == 0:
        raise TraceError(path, None, "no events")
    problems: list[tuple[int, str]] = []
    every = np.ones(n, dtype=bool)

    user = df["user"].str.strip().to_numpy()
    op = df["op"].str.strip().to_numpy()
    obj = df["obj"].str.strip().to_numpy()
    if (p := _fail_first(path, ~np.isin(user, USERS),
                         lambda r: f"unknown user {user[r]!r} (one of {', '.join(USERS)})")):
        problems.append(p)
    key = pd.Series(user) + "/" + pd.Series(op)
    known = key.isin([f"{u}/{o}" for u, o in OPS]).to_numpy()
    if (p := _fail_first(path, np.isin(user, USERS) & ~known,
                         lambda r: f"unknown op {op[r]!r} for user {user[r]!r} "
                                   f"(one of {', '.join(o for u, o in OPS if u == user[r])})")):
        problems.append(p)
    if (p := _fail_first(path, obj == "", "empty obj")):
        problems.append(p)

    ints: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for col in ("seq", "t_ns", "cpu"):
        ints[col], present[col], errs = _int_column(path, df, col, every)
        problems += errs
    required = {c: np.zeros(n, dtype=bool) for c in SIZE_COLUMNS}
    allowed = {c: np.zeros(n, dtype=bool) for c in SIZE_COLUMNS}
    for (u, o), cols in OPS.items():
        m = (user == u) & (op == o)
        for c in cols:
            required[c] |= m
        for c in OPTIONAL.get((u, o), ()):
            allowed[c] |= m
    for col in SIZE_COLUMNS:
        ints[col], present[col], errs = _int_column(path, df, col, required[col] & known)
        problems += errs
        if (p := _fail_first(path, present[col] & ~required[col] & ~allowed[col] & known,
                             lambda r, c=col: f"column {c!r} is not used by {user[r]}/{op[r]} "
                                              f"and must be empty")):
            problems.append(p)
        if (p := _fail_first(path, present[col] & ((ints[col] < 0) | (ints[col] > MAX_SIZE)),
                             lambda r, c=col: f"column {c!r}: {ints[c][r]} is negative or "
                                              f"absurd (limit {MAX_SIZE})")):
            problems.append(p)

    if (p := _fail_first(path, present["seq"] & (ints["seq"] != np.arange(n)),
                         lambda r: f"seq is {ints['seq'][r]}, expected {r}")):
        problems.append(p)
    t = ints["t_ns"]
    if (p := _fail_first(path, t < 0, "t_ns is negative")):
        problems.append(p)
    back = np.zeros(n, dtype=bool)
    back[1:] = t[1:] < t[:-1]
    if (p := _fail_first(path, back, lambda r: f"time goes backwards: t_ns {t[r]} < {t[r - 1]}")):
        problems.append(p)
    if (p := _fail_first(path, (ints["cpu"] < 0) | (ints["cpu"] >= MAX_CPU),
                         f"cpu outside 0..{MAX_CPU - 1}")):
        problems.append(p)
    for (u, o), (limit, what) in _SIZE_LIMITS.items():
        m = (user == u) & (op == o) & present["size"]
        if (p := _fail_first(path, m & ((ints["size"] <= 0) | (ints["size"] > limit)),
                             lambda r: f"{u}/{o}: size {ints['size'][r]} outside 1..{limit} "
                                       f"for a {what}")):
            problems.append(p)
    al = ints["align"]
    if (p := _fail_first(path, present["align"] & ((al <= 0) | ((al & (al - 1)) != 0)),
                         lambda r: f"align {al[r]} is not a power of two")):
        problems.append(p)
    if (p := _fail_first(path, present["len"] & (ints["len"] <= 0), "patch len must be >= 1")):
        problems.append(p)
    ks, iks = present["kallsyms"], present["init_kallsyms"]
    if (p := _fail_first(path, ks != iks, "kallsyms and init_kallsyms go together (both or neither)")):
        problems.append(p)
    for part, whole in (("kallsyms", "data"), ("init_kallsyms", "init_data")):
        if (p := _fail_first(path, present[part] & present[whole] & (ints[part] > ints[whole]),
                             lambda r, a=part, b=whole: f"{a} {ints[a][r]} is larger than {b} "
                                                        f"{ints[b][r]}, which includes it")):
            problems.append(p)

    first_bad = min(p[0] for p in problems) if problems else n
    life = _check_lifecycle(user[:first_bad], op[:first_bad], obj[:first_bad],
                            {c: ints[c][:first_bad] for c in ("text", "offset", "len")})
    if life:
        problems.append(life)
    if problems:
        row, reason = min(problems, key=lambda p: p[0])   # earliest row; first check wins
        raise TraceError(path, row, reason)

    out = pd.DataFrame({"seq": ints["seq"], "t_ns": ints["t_ns"], "cpu": ints["cpu"],
                        "user": user, "op": op, "obj": obj})
    for col in SIZE_COLUMNS:
        out[col] = pd.array(np.where(present[col], ints[col], 0), dtype="Int64")
        out.loc[~present[col], col] = pd.NA
    return out


# Which object kind each op creates, uses or frees: (kind, action).
_LIFE: dict[tuple[str, str], tuple[str, str]] = {
    ("module", "load"): ("module", "new"),
    ("module", "init_done"): ("module", "init"),
    ("module", "patch"): ("module", "use"),
    ("module", "unload"): ("module", "free"),
    ("bpf", "prog_load"): ("prog", "new"),
    ("bpf", "prog_unload"): ("prog", "free"),
    ("bpf", "tramp_attach"): ("trampoline", "new"),
    ("bpf", "tramp_update"): ("trampoline", "use"),
    ("bpf", "tramp_detach"): ("trampoline", "free"),
    ("bpf", "dispatcher_update"): ("dispatcher", "upsert"),
    ("ftrace", "ops_register"): ("ftrace_ops", "new"),
    ("ftrace", "ops_update"): ("ftrace_ops", "use"),
    ("ftrace", "ops_unregister"): ("ftrace_ops", "free"),
    ("kprobe", "register"): ("kprobe", "new"),
    ("kprobe", "optimize"): ("kprobe", "optimize"),
    ("kprobe", "unregister"): ("kprobe", "free"),
}


def _check_lifecycle(user, op, obj, ints) -> tuple[int, str] | None:
    """Objects are used only while live, created once, freed once."""
    live: dict[tuple[str, str], list] = {}   # (user, obj) -> [kind, flag, text]
    for r in range(len(user)):
        kind, action = _LIFE[(user[r], op[r])]
        k = (user[r], obj[r])
        cur = live.get(k)
        if action == "upsert":
            if cur is not None and cur[0] != kind:
                return r, f"{user[r]} object {obj[r]!r} is a live {cur[0]}, not a {kind}"
            live[k] = [kind, False, 0]
            continue
        if action == "new":
            if cur is not None:
                return r, f"{user[r]} object {obj[r]!r} is already live ({op[r]} twice?)"
            live[k] = [kind, False, int(ints["text"][r])]
            continue
        if cur is None:
            return r, f"{user[r]}/{op[r]} on {obj[r]!r}, which is not live (unknown or already freed)"
        if cur[0] != kind:
            return r, f"{user[r]}/{op[r]} on {obj[r]!r}, which is a {cur[0]}, not a {kind}"
        if action == "free":
            del live[k]
        elif action in ("init", "optimize"):
            if cur[1]:
                return r, f"{user[r]}/{op[r]} on {obj[r]!r} a second time"
            cur[1] = True
        elif op[r] == "patch" and ints["offset"][r] + ints["len"][r] > cur[2]:
            return r, (f"patch [{ints['offset'][r]}, +{ints['len'][r]}) lies outside "
                       f"module {obj[r]!r}'s {cur[2]} bytes of text")
    return None


def load_provenance(trace_path: str | os.PathLike) -> dict:
    """Read the TOML sidecar (``x.csv.gz`` -> ``x.toml``), or ``{}``."""
    p = Path(trace_path)
    stem = p.name.removesuffix(".gz").removesuffix(".csv")
    side = p.with_name(stem + ".toml")
    if not side.exists():
        return {}
    try:
        return tomllib.loads(side.read_text())
    except tomllib.TOMLDecodeError as e:
        raise TraceError(str(side), None, f"bad provenance TOML: {e}") from None


def load_trace(path: str | os.PathLike, name: str | None = None) -> Trace:
    """Load and validate a trace file (CSV, optionally gzip-compressed)."""
    path = str(path)
    df = validate(_read_csv(path), path)
    stem = Path(path).name.removesuffix(".gz").removesuffix(".csv")
    return Trace(df=df, path=path, name=name or stem, provenance=load_provenance(path))


def from_frame(df: pd.DataFrame, name: str = "<frame>") -> Trace:
    """Validate an in-memory table (e.g. a synthetic or test trace)."""
    def cell(v) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    raw = df.reindex(columns=COLUMNS).astype(object).map(cell)
    return Trace(df=validate(raw, name), path=name, name=name)


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """The canonical CSV encoding: schema column order, integers written as
    integers, empty cells where an op does not use a column."""
    out = df.reindex(columns=COLUMNS).copy()
    for c in ["seq", "t_ns", "cpu"] + SIZE_COLUMNS:
        if out[c].dtype == object:
            out[c] = pd.to_numeric(out[c].map(lambda v: None if v is None or v == "" else v),
                                   errors="raise")
        out[c] = out[c].astype("Int64")
    return out.to_csv(index=False, lineterminator="\n").encode()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename,
    so that readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp's 0600 is not what a user expects
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_trace(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validate, then write ``df`` as CSV (gzip when the name ends in .gz;
    the gzip header carries no timestamp so output is byte-identical)."""
    data = to_csv_bytes(df)
    validate(pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False), str(path))
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write_bytes(path, data)
