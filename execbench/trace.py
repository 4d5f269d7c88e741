"""The recorded-workload trace: schema, loading, validation and saving.

A workload is one table, one row per event in the order it happened
(docs/trace-schema.md).  This module is the only
place that knows the CSV layout; everything downstream gets a validated
:class:`Trace` whose events are plain :class:`Event` records.

Validation is all-or-nothing: a trace with any broken row raises
:class:`~execbench.errors.TraceError` naming the file, the row, the column
and the reason (one line, at most 200 characters), before a single event is
replayed.  Nothing is silently fixed.  Loading raises nothing else: every
column has a documented range (:data:`RANGES`, docs/trace-schema.md), so an
accepted row costs bounded time and memory to replay.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
import stat
import tempfile
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .errors import TraceError, cell as _cell
from .units import MiB, PAGE_SIZE

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



@dataclass(frozen=True)
class Range:
    """The values a column accepts, ``lo..hi`` inclusive, and where ``hi``
    comes from (a kernel limit, or the largest real value with headroom).
    docs/trace-schema.md lists the same table with its sources."""

    lo: int
    hi: int
    source: str


_MOD_MAX = 256 * MiB
_MOD_SRC = ("55x the largest value of any of these columns in Debian 6.1.0-56-amd64's 4,023 "
            "modules (largest: amdgpu text 4,850,088 B); a quarter of the 1008 MiB module range")

#: Every column's range, keyed by column name.  A new column adds a row here
#: (tests/test_trace.py checks that every column has one).
RANGES: dict[str, Range] = {
    "seq": Range(0, 2**31 - 1, "must equal the row number"),
    "t_ns": Range(0, 10**17, "3.2 years; the longest shipped trace (fleet-day) spans 86,411 s"),
    "cpu": Range(0, 8191, "NR_CPUS <= 8192 on x86-64 (arch/x86/Kconfig NR_CPUS_RANGE_END)"),
    **{c: Range(0, _MOD_MAX, _MOD_SRC) for c in
       ("text", "rodata", "ro_after_init", "data", "init_text", "init_rodata", "init_data")},
    "align": Range(1, PAGE_SIZE, "a power of two; largest real 64 (qemu traces), and module_alloc() "
                                 "returns page-aligned memory, so no larger alignment can be honoured"),
    "relocs": Range(0, 2**24, "56x amdgpu's 297,400 text/rodata relocations"),
    "reloc_secs": Range(0, 1024, "48x kvm's 21 SHT_RELA sections into text/rodata"),
    "alt_sites": Range(0, 2**20, "39x the 26,826 of the largest module in the qemu-6.12 traces "
                                 "(amdgpu: 18,163 in the 6.1 table)"),
    "orc_entries": Range(0, 2**22, "39x amdgpu's 107,342 .orc_unwind_ip entries"),
    "mcount_locs": Range(0, 2**19, "47x amdgpu's 11,134 __mcount_loc entries"),
    **{c: Range(0, _MOD_MAX, "as data / init_data, which include them (kallsyms <= data)")
       for c in MODULE_KALLSYMS_COLUMNS},
    "offset": Range(0, _MOD_MAX - 1, "inside the module's text (offset + len <= text)"),
    "len": Range(1, 15, "one x86 instruction (MAX_INSN_SIZE 15, arch/x86/include/asm/insn.h); "
                        "text_poke_bp() patches one"),
    "size": Range(1, 128_000_000, "BPF JIT image: BPF_COMPLEXITY_LIMIT_INSNS (1,000,000, "
                                  "include/linux/bpf.h) x BPF_MAX_INSN_SIZE (128 B, "
                                  "arch/x86/net/bpf_jit_comp.c); trampolines, ftrace and kprobe "
                                  "slots are at most PAGE_SIZE (below)"),
}

#: Ops whose ``size`` has a tighter limit than :data:`RANGES`, with the kernel rule.
_SIZE_LIMITS: dict[tuple[str, str], tuple[int, str]] = {
    # arch_prepare_bpf_trampoline() fails with -EFAULT past one page
    # (arch/x86/net/bpf_jit_comp.c; trampolines are <= PAGE_SIZE in every version)
    ("bpf", "tramp_attach"): (PAGE_SIZE, "BPF trampoline"),
    ("bpf", "tramp_update"): (PAGE_SIZE, "BPF trampoline"),
    # create_trampoline() copies one caller stub
    ("ftrace", "ops_register"): (PAGE_SIZE, "ftrace trampoline"),
    # a slot is carved from one insn page (kernel/kprobes.c slots_per_page)
    ("kprobe", "register"): (PAGE_SIZE, "kprobe insn slot"),
    ("kprobe", "optimize"): (PAGE_SIZE, "optprobe insn slot"),
}

#: ``obj``: at most this many characters, printable ASCII other than space,
#: quotes, comma and backslash (the longest shipped name has 53)
OBJ_MAX = 128
OBJ_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "\"'`,\\")
_OBJ_RE = "[" + re.escape(OBJ_CHARS) + "]+"
#: what a trace file may take once decompressed: 33x fleet-day's 8 MB, about
#: 3 million events (loading one costs a few GB of memory)
MAX_TRACE_BYTES = 256 * MiB
_INT_RE = r"-?[0-9]+"          # ASCII digits only ("１２" and "٣" are not integers here)
_MAX_DIGITS = 18               # every range's hi has fewer: no 4,300-digit int() is ever parsed

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
            cache = (self.df, _events_of(self.df))
            self.__dict__["_events"] = cache
        return iter(cache[1])

    #: a whole trace in memory (:class:`TraceStream` reads its file in chunks)
    streamed = False

    def max_cpu(self) -> int:
        """The highest ``cpu`` of any event (-1 without events)."""
        return int(self.df["cpu"].astype(int).max()) if len(self.df) else -1

    def __getstate__(self) -> dict:
        # the event cache is rebuilt on demand; do not ship it to worker processes
        return {k: v for k, v in self.__dict__.items() if k != "_events"}


def _events_of(df: pd.DataFrame) -> list[Event]:
    """The rows of a validated table as :class:`Event` records."""
    cols = [df[c].tolist() for c in COLUMNS]
    return [Event(*[None if v is pd.NA else v for v in row]) for row in zip(*cols)]


Problem = tuple[int, str, "str | None"]      # (row, reason, column)


def _fail_first(mask: np.ndarray, reason, column: str | None = None) -> Problem | None:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    r = int(idx[0])
    return r, (reason(r) if callable(reason) else reason), column


def _read_bytes(path: str) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic,
    at most :data:`MAX_TRACE_BYTES` either way."""
    try:
        st = os.stat(path)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise TraceError(path, None, "not a regular file")
        size = st.st_size
        if size > MAX_TRACE_BYTES:
            raise TraceError(path, None, f"{size:,} bytes; a trace may have at most "
                                         f"{MAX_TRACE_BYTES:,} (execbench run --stream has no limit)")
        with open(path, "rb") as f:
            raw = f.read(MAX_TRACE_BYTES + 1)
    except OSError as e:
        raise TraceError(path, None, f"cannot read: {e.strerror or e}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as g:
            out = g.read(MAX_TRACE_BYTES + 1)
    except (EOFError, OSError, zlib.error) as e:     # BadGzipFile is an OSError
        raise TraceError(path, None, f"truncated or corrupt gzip data ({e})") from None
    if len(out) > MAX_TRACE_BYTES:
        raise TraceError(path, None, f"decompresses to more than {MAX_TRACE_BYTES:,} bytes "
                                     "(execbench run --stream has no limit)")
    return out


def _check_columns(columns: list, path: str) -> None:
    if list(columns) in (COLUMNS, COLUMNS_BEFORE_KALLSYMS):
        return
    missing = [c for c in COLUMNS if c not in columns]
    extra = [c for c in columns if c not in COLUMNS]

    def names(cs: list) -> str:
        shown = ", ".join(_cell(str(c), 16) for c in cs[:3])
        return shown + (f" and {len(cs) - 3} more" if len(cs) > 3 else "")

    detail = []
    if missing:
        detail.append(f"missing {names(missing)}")
    if extra:
        detail.append(f"unknown {names(extra)}")
    if not detail:
        dup = sorted({c for c in columns if list(columns).count(c) > 1})
        detail.append(f"duplicated {names(dup)}" if dup else "columns out of order")
    raise TraceError(path, None, f"wrong columns ({'; '.join(detail)}); docs/trace-schema.md "
                                 f"lists the {len(COLUMNS)}")


def _read_csv(path: str) -> pd.DataFrame:
    """Parse the file into a table of strings, one column per header name.

    Python's csv module rather than pandas: it reports the record where the
    quoting breaks (``strict``) and gives every record's field count, so a
    short or long row is named instead of padded or shifted."""
    raw = _read_bytes(path)
    if not raw.strip():
        raise TraceError(path, None, "empty file (no header, no events)")
    try:
        text = raw.decode("utf-8-sig")       # a UTF-8 byte-order mark is allowed
    except UnicodeDecodeError as e:
        body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw   # e.start counts after the mark
        raise TraceError(path, None, f"not UTF-8 text (byte {e.start}: "
                                     f"{body[e.start:e.start + 1]!r})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error as e:
        # line_num: physical lines read so far; the header is line 1
        row = reader.line_num - 2
        raise TraceError(path, row if row >= 0 else None, f"malformed CSV: {e}") from None
    while records and not records[-1]:
        records.pop()                        # blank lines at the end
    header = records[0]
    _check_columns(header, path)
    n = len(header)
    body = records[1:]
    widths = np.fromiter(map(len, body), dtype=np.int64, count=len(body))
    bad = np.flatnonzero(widths != n)
    if bad.size:
        r = int(bad[0])
        raise TraceError(path, r, "blank line" if not widths[r] else f"{widths[r]} fields, expected {n}")
    return pd.DataFrame(body, columns=header, dtype=object)


def _factor(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(codes, distinct values stripped of spaces and tabs): a big trace
    repeats few values per column, so every string check below runs once
    per distinct value, not once per row."""
    codes, uniq = pd.factorize(s, sort=False, use_na_sentinel=False)
    return codes, [str(v).strip(" \t") for v in uniq]


def _strip(s: pd.Series) -> np.ndarray:
    codes, uniq = _factor(s)
    return np.array(uniq, dtype=object)[codes] if len(uniq) else np.zeros(0, dtype=object)


_INT_FULL = re.compile(_INT_RE)
_OBJ_FULL = re.compile(_OBJ_RE)


def _int_column(df: pd.DataFrame, col: str, required: np.ndarray, needed_by=None):
    """Parse one column to int64 (+ a 'present' mask); report non-integers
    and values outside :data:`RANGES`."""
    rng = RANGES[col]
    codes, uniq = _factor(df[col])
    k = len(uniq)
    u_present = np.fromiter((v != "" for v in uniq), dtype=bool, count=k)
    u_int = np.fromiter((_INT_FULL.fullmatch(v) is not None for v in uniq), dtype=bool, count=k)
    u_vals = np.zeros(k, dtype=np.int64)
    u_inrange = np.zeros(k, dtype=bool)
    for i in np.flatnonzero(u_int):
        v = uniq[i]
        if len(v.lstrip("-").lstrip("0")) <= _MAX_DIGITS:     # never int() a 4,300-digit string
            x = int(v)
            if rng.lo <= x <= rng.hi:
                u_vals[i] = x
                u_inrange[i] = True
    present = u_present[codes]
    problems: list[Problem] = []

    def number(r: int) -> str:
        v = uniq[codes[r]]
        return v if len(v) <= 24 else f"a {len(v.lstrip('-')):,}-digit number"

    if (p := _fail_first(present & ~u_int[codes],
                         lambda r: f"{_cell(uniq[codes[r]])} is not an integer (ASCII digits)", col)):
        problems.append(p)
    if (p := _fail_first(present & u_int[codes] & ~u_inrange[codes],
                         lambda r: f"{number(r)} is outside {rng.lo}..{rng.hi} "
                                   "(docs/trace-schema.md)", col)):
        problems.append(p)
    if (p := _fail_first(required & ~present,
                         (lambda r: f"empty, but {needed_by(r)} needs it") if needed_by else "empty",
                         col)):
        problems.append(p)
    ok = present & u_inrange[codes]
    vals = np.where(ok, u_vals[codes], 0)
    return vals, ok, present, problems


def _name_column(df: pd.DataFrame, col: str) -> tuple[np.ndarray, list[Problem]]:
    """``obj``: non-empty, at most :data:`OBJ_MAX` characters of
    :data:`OBJ_CHARS` (no control characters, spaces or quotes)."""
    codes, uniq = _factor(df[col])
    good = np.fromiter((len(v) <= OBJ_MAX and _OBJ_FULL.fullmatch(v) is not None for v in uniq),
                       dtype=bool, count=len(uniq))
    problems: list[Problem] = []

    def why(r: int) -> str:
        v = uniq[codes[r]]
        if v == "":
            return "empty"
        if len(v) > OBJ_MAX:
            return f"{len(v):,} characters (at most {OBJ_MAX})"
        c = next(ch for ch in v if ch not in OBJ_CHARS)
        return (f"{_cell(v)} contains {c!r}: names are printable ASCII without spaces, "
                "quotes, commas or backslashes")

    if (p := _fail_first(~good[codes], why, col)):
        problems.append(p)
    names = np.array(uniq, dtype=object)[codes] if len(uniq) else np.zeros(0, dtype=object)
    return names, problems


def _module_rules(user, op, ints, present) -> list[Problem]:
    """What every real ``.ko`` satisfies and the loaders rely on (every
    module of both Debian 6.1.0-56 tables does):

    * relocations (and the SHT_RELA sections counted in ``reloc_secs``,
      which by definition apply to text or rodata) need a text or rodata
      section to point into; alternatives
      sites, ORC entries and mcount call sites need text."""
    m = (user == "module") & (op == "load") & present["relocs"] & present["text"] \
        & present["init_text"]
    g = {c: ints[c] for c in ("relocs", "reloc_secs", "text", "rodata", "init_text",
                              "init_rodata", "alt_sites", "orc_entries", "mcount_locs")}
    text = g["text"] + g["init_text"]
    rules = [
        ("relocs", (g["relocs"] > 0) & (text + g["rodata"] + g["init_rodata"] == 0),
         "relocations but no text or rodata to apply them to"),
        ("reloc_secs", (g["reloc_secs"] > 0) & (text + g["rodata"] + g["init_rodata"] == 0),
         "relocation sections but no text or rodata for them to apply to"),
        ("alt_sites", (g["alt_sites"] > 0) & (text == 0), "alternatives sites but no text"),
        ("orc_entries", (g["orc_entries"] > 0) & (text == 0), "ORC entries but no text"),
        ("mcount_locs", (g["mcount_locs"] > 0) & (text == 0), "mcount call sites but no text"),
    ]
    out = []
    for col, bad, why in rules:
        if (p := _fail_first(m & bad, why, col)):
            out.append(p)
    return out


@dataclass
class Carry:
    """What validating one chunk of a trace hands to the next (:class:`TraceStream`):
    the rows before it, the last event's time and the live objects."""

    start: int = 0
    last_t: int | None = None
    live: dict = field(default_factory=dict)


def validate(df: pd.DataFrame, path: str = "<trace>", carry: Carry | None = None) -> pd.DataFrame:
    """Check a raw string table against the schema; return it typed.

    Returns a frame whose id columns are int64/str and whose size columns are
    nullable ``Int64`` (``<NA>`` where the op does not use the column).
    Raises :class:`TraceError` for the earliest broken row.

    ``carry``: ``df`` is the chunk of a longer trace that starts at row
    ``carry.start``, after an event at ``carry.last_t`` with ``carry.live``
    objects live; rows in errors are the trace's rows, and ``carry`` is
    advanced past the chunk.  The checks are the same as for a whole trace.
    """
    if list(df.columns) == COLUMNS_BEFORE_KALLSYMS:
        df = df.assign(**{c: "" for c in MODULE_KALLSYMS_COLUMNS})
    _check_columns(list(df.columns), path)
    n = len(df)
    if n == 0:
        raise TraceError(path, None, "no events")
    carry = Carry() if carry is None else carry
    start = carry.start
    problems: list[Problem] = []
    every = np.ones(n, dtype=bool)

    user = _strip(df["user"])
    op = _strip(df["op"])
    obj, errs = _name_column(df, "obj")
    problems += errs
    known_user = np.isin(user, USERS)
    if (p := _fail_first(~known_user, lambda r: f"unknown user {_cell(user[r])} "
                                                f"(one of {', '.join(USERS)})", "user")):
        problems.append(p)
    key = pd.Series(user, dtype=object) + "/" + pd.Series(op, dtype=object)
    known = key.isin([f"{u}/{o}" for u, o in OPS]).to_numpy()
    if (p := _fail_first(known_user & ~known,
                         lambda r: f"unknown op {_cell(op[r])} for user {user[r]!r} "
                                   f"(one of {', '.join(o for u, o in OPS if u == user[r])})",
                         "op")):
        problems.append(p)

    ints: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for col in ("seq", "t_ns", "cpu"):
        ints[col], present[col], _, errs = _int_column(df, col, every)
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
        ints[col], present[col], raw_present, errs = _int_column(
            df, col, required[col] & known, lambda r: f"{user[r]}/{op[r]}")
        problems += errs
        if (p := _fail_first(raw_present & ~required[col] & ~allowed[col] & known,
                             lambda r: f"not used by {user[r]}/{op[r]}; must be empty", col)):
            problems.append(p)

    if (p := _fail_first(present["seq"] & (ints["seq"] != np.arange(start, start + n)),
                         lambda r: f"seq is {ints['seq'][r]}, expected {start + r}", "seq")):
        problems.append(p)
    t = ints["t_ns"]
    back = np.zeros(n, dtype=bool)
    back[1:] = present["t_ns"][1:] & present["t_ns"][:-1] & (t[1:] < t[:-1])
    if carry.last_t is not None:
        back[0] = present["t_ns"][0] and t[0] < carry.last_t
    prev_t = (lambda r: t[r - 1] if r else carry.last_t)
    if (p := _fail_first(back, lambda r: f"time goes backwards: {t[r]} < {prev_t(r)}", "t_ns")):
        problems.append(p)
    for (u, o), (limit, what) in _SIZE_LIMITS.items():
        m = (user == u) & (op == o) & present["size"]
        if (p := _fail_first(m & (ints["size"] > limit),
                             lambda r: f"{u}/{o}: {ints['size'][r]} is outside 1..{limit} "
                                       f"for a {what}", "size")):
            problems.append(p)
    al = ints["align"]
    if (p := _fail_first(present["align"] & ((al & (al - 1)) != 0),
                         lambda r: f"{al[r]} is not a power of two", "align")):
        problems.append(p)
    ks, iks = present["kallsyms"], present["init_kallsyms"]
    if (p := _fail_first(ks != iks, "kallsyms and init_kallsyms go together (both or neither)",
                         "init_kallsyms")):
        problems.append(p)
    for part, whole in (("kallsyms", "data"), ("init_kallsyms", "init_data")):
        if (p := _fail_first(present[part] & present[whole] & (ints[part] > ints[whole]),
                             lambda r, a=part, b=whole: f"{a} {ints[a][r]} is larger than {b} "
                                                        f"{ints[b][r]}, which includes it", part)):
            problems.append(p)
    problems += _module_rules(user, op, ints, present)

    first_bad = min(p[0] for p in problems) if problems else n
    life = _check_lifecycle(user[:first_bad], op[:first_bad], obj[:first_bad],
                            {c: ints[c][:first_bad] for c in ("text", "offset", "len")}, carry.live)
    if life:
        problems.append(life)
    if problems:
        row, reason, column = min(problems, key=lambda p: p[0])   # earliest row; first check wins
        raise TraceError(path, start + row, reason, column)
    carry.start += n
    carry.last_t = int(t[-1])

    out = pd.DataFrame({"seq": ints["seq"], "t_ns": ints["t_ns"], "cpu": ints["cpu"],
                        "user": user.astype(str), "op": op.astype(str), "obj": obj.astype(str)})
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


def _check_lifecycle(user, op, obj, ints, live: dict | None = None) -> Problem | None:
    """Objects are used only while live, created once, freed once.  ``live``
    (updated): the objects live before the first row, (user, obj) -> [kind, flag, text]."""
    live = {} if live is None else live
    for r in range(len(user)):
        kind, action = _LIFE[(user[r], op[r])]
        k = (user[r], obj[r])
        cur = live.get(k)
        if action == "upsert":
            if cur is not None and cur[0] != kind:
                return r, f"{user[r]} object {_cell(obj[r], 40)} is a live {cur[0]}, not a {kind}", "obj"
            live[k] = [kind, False, 0]
            continue
        if action == "new":
            if cur is not None:
                return r, f"{user[r]} object {_cell(obj[r], 40)} is already live ({op[r]} twice?)", "obj"
            live[k] = [kind, False, int(ints["text"][r])]
            continue
        if cur is None:
            return r, f"{user[r]}/{op[r]} on {_cell(obj[r], 40)}, which is not live (unknown or already freed)", "obj"
        if cur[0] != kind:
            return r, f"{user[r]}/{op[r]} on {_cell(obj[r], 40)}, which is a {cur[0]}, not a {kind}", "obj"
        if action == "free":
            del live[k]
        elif action in ("init", "optimize"):
            if cur[1]:
                return r, f"{user[r]}/{op[r]} on {_cell(obj[r], 40)} a second time", "op"
            cur[1] = True
        elif op[r] == "patch" and ints["offset"][r] + ints["len"][r] > cur[2]:
            return r, (f"patch [{ints['offset'][r]}, +{ints['len'][r]}) lies outside "
                       f"module {_cell(obj[r], 40)}'s {cur[2]} bytes of text"), "offset"
    return None


def trace_stem(path: str | os.PathLike) -> str:
    """A trace file's name without ``.csv``/``.csv.gz``: the workload's
    default name and its sidecar's stem (``x.csv.gz`` -> ``x``)."""
    return Path(path).name.removesuffix(".gz").removesuffix(".csv")


def load_provenance(trace_path: str | os.PathLike) -> dict:
    """Read the TOML sidecar (``x.csv.gz`` -> ``x.toml``), or ``{}``."""
    p = Path(trace_path)
    side = p.with_name(trace_stem(p) + ".toml")
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
    return Trace(df=df, path=path, name=name or trace_stem(path), provenance=load_provenance(path))


#: rows per chunk of a streamed trace: ~10-20 MB of parsed strings at a time
STREAM_CHUNK_ROWS = 16384
_BLOCK = 1 << 20                 # decompressed bytes read at a time
_LINE_MAX = 16 * MiB             # a "line" longer than this is not a trace row


def _stream_bytes(path: str) -> Iterator[bytes]:
    """The file's bytes in blocks, gunzipped when they start with the gzip
    magic; the errors of :func:`_read_bytes`, without its size limit."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise TraceError(path, None, "not a regular file (a streamed trace is read twice)")
        f = open(path, "rb")
    except OSError as e:
        raise TraceError(path, None, f"cannot read: {e.strerror or e}") from None
    with f:
        try:
            magic = f.read(2)
            f.seek(0)
            src = gzip.GzipFile(fileobj=f) if magic == b"\x1f\x8b" else f
            while True:
                block = src.read(_BLOCK)
                if not block:
                    return
                yield block
        except (EOFError, zlib.error) as e:
            raise TraceError(path, None, f"truncated or corrupt gzip data ({e})") from None
        except OSError as e:     # BadGzipFile is an OSError
            what = "truncated or corrupt gzip data" if magic == b"\x1f\x8b" else "cannot read"
            raise TraceError(path, None, f"{what} ({e.strerror or e})") from None


def _stream_lines(path: str) -> Iterator[str]:
    """The decoded text in lines, split as ``io.StringIO(text, newline="")``
    splits them (``\\n``, ``\\r\\n`` or ``\\r`` kept at the end), so that
    :func:`csv.reader` counts the same lines as for a whole trace.  A
    not-UTF-8 byte is named by its offset after an optional byte-order mark,
    as :func:`_read_csv` names it."""
    tail = ""
    pending = b""
    offset = 0                   # decoded bytes before ``pending``, after the BOM
    first = True
    seen_text = False
    for block in _stream_bytes(path):
        data = pending + block
        if first:
            if len(data) < 3 and data == b"\xef\xbb\xbf"[:len(data)]:
                pending = data
                continue
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            first = False
        try:
            text, used = codecs.utf_8_decode(data, "strict", False)
        except UnicodeDecodeError as e:
            raise TraceError(path, None, f"not UTF-8 text (byte {offset + e.start}: "
                                         f"{data[e.start:e.start + 1]!r})") from None
        offset += used
        pending = data[used:]
        seen_text = seen_text or bool(text.strip())
        text = tail + text
        cut = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1))
        tail = text[cut + 1:]
        if len(tail) > _LINE_MAX:
            raise TraceError(path, None, f"a line of more than {_LINE_MAX:,} characters")
        if cut >= 0 and seen_text:
            yield from io.StringIO(text[:cut + 1], newline="")
        elif cut >= 0:
            tail = text                  # only white space so far: maybe an empty file
    if pending:
        try:
            text, _ = codecs.utf_8_decode(pending, "strict", True)
        except UnicodeDecodeError as e:
            raise TraceError(path, None, f"not UTF-8 text (byte {offset + e.start}: "
                                         f"{pending[e.start:e.start + 1]!r})") from None
        seen_text = seen_text or bool(text.strip())
        tail += text
    if not seen_text:
        raise TraceError(path, None, "empty file (no header, no events)")
    yield from io.StringIO(tail, newline="")


def _stream_chunks(path: str, rows: int) -> Iterator[pd.DataFrame]:
    """The trace's rows as tables of strings, ``rows`` at a time, with
    :func:`_read_csv`'s checks (malformed CSV, field counts, blank lines)."""
    reader = csv.reader(_stream_lines(path), strict=True)
    header = None
    body: list[list[str]] = []
    blank = None                 # the first of a run of blank records (an error unless at the end)
    row = -1
    try:
        for rec in reader:
            if header is None:
                header = rec
                _check_columns(header, path)
                continue
            row += 1
            if not rec:
                blank = row if blank is None else blank
                continue
            if blank is not None:
                raise TraceError(path, blank, "blank line")
            if len(rec) != len(header):
                raise TraceError(path, row, f"{len(rec)} fields, expected {len(header)}")
            body.append(rec)
            if len(body) == rows:
                yield pd.DataFrame(body, columns=header, dtype=object)
                body = []
    except csv.Error as e:
        line = reader.line_num - 2
        raise TraceError(path, line if line >= 0 else None, f"malformed CSV: {e}") from None
    if header is None:
        raise TraceError(path, None, "empty file (no header, no events)")
    if body:
        yield pd.DataFrame(body, columns=header, dtype=object)


class TraceStream:
    """A trace file replayed in chunks, at memory that does not grow with its length.

    Reads the file twice and never holds it: construction validates every
    chunk with the checks of :func:`load_trace` (the row counter, the last
    event's time and the live objects carried from chunk to chunk) and
    counts the events; :meth:`events` then reads it again, chunk by chunk.
    A broken trace therefore still raises :class:`TraceError` before a
    single event is replayed.  Within a chunk the error is the one
    :func:`load_trace` reports; across chunks, the first broken chunk's
    (a whole-trace load would name a malformed CSV record or a short row
    further on before any broken value, a stream names the first in file
    order).  There is no size limit (:data:`MAX_TRACE_BYTES` bounds only
    whole loads), but the file must be a regular file.

    The replay (:func:`execbench.replay.run`) reduces metric samples on the
    fly for a streamed trace (:class:`~.metrics.streamstats.StreamStats`),
    so it keeps no timeline.
    """

    streamed = True

    def __init__(self, path: str | os.PathLike, name: str | None = None,
                 chunk_rows: int = STREAM_CHUNK_ROWS):
        self.path = str(path)
        self.name = name or trace_stem(self.path)
        self.provenance = load_provenance(self.path)
        self.chunk_rows = chunk_rows
        carry = Carry()
        cpu = -1
        for chunk in _stream_chunks(self.path, chunk_rows):
            cpu = max(cpu, int(validate(chunk, self.path, carry)["cpu"].max()))
        if carry.start == 0:
            raise TraceError(self.path, None, "no events")
        self._n = carry.start
        self._max_cpu = cpu

    def __len__(self) -> int:
        return self._n

    def max_cpu(self) -> int:
        return self._max_cpu

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The validated chunks, typed as :func:`validate` returns them."""
        carry = Carry()
        for chunk in _stream_chunks(self.path, self.chunk_rows):
            yield validate(chunk, self.path, carry)
        if carry.start != self._n:
            raise TraceError(self.path, None, f"changed while replaying ({carry.start:,} events, "
                                              f"{self._n:,} when validated)")

    def events(self) -> Iterator[Event]:
        for chunk in self.chunks():
            yield from _events_of(chunk)


def from_frame(df: pd.DataFrame, name: str = "<frame>") -> Trace:
    """Validate an in-memory table (e.g. a synthetic or test trace)."""
    def as_text(v) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    raw = df.reindex(columns=COLUMNS).astype(object).map(as_text)
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
    so that readers never see a half-written file.  An OSError becomes an
    :class:`~execbench.errors.OutputError` naming the path."""
    from .errors import OutputError, printable

    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp's 0600 is not what a user expects
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise OutputError(f"{printable(path)}: cannot write: {e.strerror or e}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def save_trace(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validate, then write ``df`` as CSV (gzip when the name ends in .gz;
    the gzip header carries no timestamp so output is byte-identical)."""
    data = to_csv_bytes(df)
    validate(pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False), str(path))
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write_bytes(path, data)
