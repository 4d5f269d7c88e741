"""A fuzz harness: mutated traces through loading and replay on every design.

    python -m execbench.fuzz --n 10000 [--seed S] [--jobs N] [--timeout SECONDS]
    python -m execbench.fuzz --case 1234 --seed S      # one case again, with its traceback

Each case is cut from a shipped trace (a window of 1-60 events, usually
repaired so that its objects are created before they are used), then
mutated 0-3 times -- cell values (integers beyond int64, u64 -1, 4,301-digit
numbers, Unicode digits, NUL, quotes, 200,000-character cells, range
boundaries, the largest valid values), rows (dropped, duplicated, swapped,
cut short, lengthened, garbage), columns (dropped, duplicated, swapped,
renamed, added, header lost), text (control characters, line endings,
byte-order marks, truncation), encodings (UTF-16, Latin-1, invalid UTF-8)
and gzip framing (truncated, corrupted, trailing garbage, two members,
double compression).  The bytes are written to a file and loaded with
:func:`execbench.trace.load_trace`; an accepted trace is replayed on every
registered design (and the design variants whose allocation paths differ)
on a machine drawn per case (2, 4 or 16 GiB, placement, KASLR, iTLB model
on or off).

Outcomes: *rejected cleanly* (a TraceError), *replayed fine*, *refused in
replay* (an ExecbenchError other than KernelBug from an accepted trace: the
loader should have rejected it), *crashed while loading* (any other
exception), *crashed in replay* (KernelBug or any other exception), *hung*
(the case ran past ``--timeout``; its worker process is killed).  Every
rejection is also checked to be one line of at most 200 characters.

Cases run in worker processes (one per CPU by default); each case is
determined by ``(seed, case number)`` alone, so a failing case can be
replayed by itself with ``--case``.  Exit status 0 when nothing crashed or
hung and every rejection was one short line, else 1.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import registry
from .errors import TRACE_ERROR_MAX, ExecbenchError, KernelBug, TraceError
from .trace import COLUMNS, RANGES, _LIFE, load_trace

OUTCOMES = ("rejected cleanly", "replayed fine", "refused in replay", "crashed while loading",
            "crashed in replay", "hung")
CRASHES = ("crashed while loading", "crashed in replay", "hung")

#: design variants beyond the defaults whose allocation paths differ
VARIANTS: tuple[tuple[str, dict], ...] = (
    ("legacy", {"bpf_prog_pack": False}),
    ("jitalloc", {"bpf_prog_pack": True, "kprobe_cache": True, "text_poke": False}),
    ("execmem_rox", {"version": (6, 13)}),
    ("execmem_rox", {"version": (7, 2)}),
)

#: cell values that have broken loaders: numbers no int64 holds, sentinels,
#: digits that are not ASCII, control characters, quotes, huge cells
NASTY: tuple[str, ...] = (
    "", " ", "-1", "-0", "+5", "0x10", "1e3", "1.5", "5.", "nan", "inf", "-inf", "NaN", "None", "null",
    "True", "9223372036854775807", "9223372036854775808", "18446744073709551615",
    "18446744073709551616", "-9223372036854775809", "9" * 20, "0" * 30 + "5", "9" * 4301,
    "\uff11\uff12", "\u0663", "\u00b2", "1_000", "1 000", "\x00", "a\x00b", '"', '""', "'",
    'a"b', "a'b", "\t5", "5\t", "\u200b5", "\ufeff5", "\u00a05", "\x1c5", "5\x85", "\\", "a,b",
    "x" * 300, "x" * 200_000, "\u00e9", "\U0001f642", "module", "bpf", "load", "prog_load",
    "unload", "kprobe", "register", "a b", "\x7f", "\x1b[31m",
)

SHIPPED_EXTRA = ("qemu",)


# -- sources --------------------------------------------------------------------------------

def _source_paths() -> list[Path]:
    from .workloads import catalog
    return [Path(w.path) for w in catalog.shipped()]


_SOURCES: list[tuple[str, list[list[str]]]] | None = None


def sources() -> list[tuple[str, list[list[str]]]]:
    """(name, rows) of every shipped trace, rows as lists of cell strings."""
    global _SOURCES
    if _SOURCES is None:
        out = []
        for p in _source_paths():
            raw = p.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
            out.append((p.name, rows[1:]))
        _SOURCES = out
    return _SOURCES


# -- building one case ----------------------------------------------------------------------

def _repair(rows: list[list[str]]) -> list[list[str]]:
    """Keep the rows of a window that are valid on their own: objects
    created in the window before they are used, freed once."""
    iu, io_, iobj = COLUMNS.index("user"), COLUMNS.index("op"), COLUMNS.index("obj")
    live: dict[tuple[str, str], list] = {}
    out = []
    for r in rows:
        kind, action = _LIFE.get((r[iu], r[io_]), (None, None))
        key = (r[iu], r[iobj])
        cur = live.get(key)
        if action == "upsert":
            if cur is None or cur[0] == kind:
                live[key] = [kind, False]
                out.append(r)
        elif action == "new":
            if cur is None:
                live[key] = [kind, False]
                out.append(r)
        elif cur is not None and cur[0] == kind:
            if action == "free":
                del live[key]
            elif action in ("init", "optimize"):
                if cur[1]:
                    continue
                cur[1] = True
            out.append(r)
    for i, r in enumerate(out):
        r[0] = str(i)
    return out


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _value_for(rng: np.random.Generator, col: str) -> str:
    """A hostile or boundary value for a cell of ``col``."""
    r = RANGES.get(col)
    u = rng.random()
    if u < 0.45 or r is None:
        return _pick(rng, NASTY)
    choices = [r.lo - 1, r.lo, r.hi, r.hi + 1, r.hi - 1, int(rng.integers(r.lo, r.hi + 1)),
               2**63 - 1, 2**63, 2**64 - 1, 2**31, 2**32, -(2**63)]
    return str(_pick(rng, choices))


def _mutate_rows(rng: np.random.Generator, header: list[str], rows: list[list[str]]) -> str:
    """One structural mutation in place; returns its name."""
    kind = _pick(rng, ("cell", "cell", "cell", "cell", "heavy", "edge", "edge", "row_drop", "row_dup",
                       "row_swap",
                       "row_short", "row_long", "row_garbage", "col_drop", "col_dup", "col_swap",
                       "col_rename", "col_add", "header_drop", "header_dup", "obj_reuse"))
    if kind in ("cell", "heavy", "edge", "row_drop", "row_dup", "row_swap", "row_short", "row_long",
                "obj_reuse") and not rows:
        kind = "row_garbage"
    if kind.startswith("col") and not header:
        kind = "row_garbage"
    n = len(rows)
    if kind == "cell":
        row = rows[int(rng.integers(n))]
        if row:
            c = int(rng.integers(len(row)))
            row[c] = _value_for(rng, header[c] if c < len(header) else "")
    elif kind == "heavy":
        # the largest values the schema accepts, on a row that uses them
        r = rows[int(rng.integers(n))]
        for c, name in enumerate(header):
            if c < len(r) and r[c] != "" and name in RANGES and name not in ("seq", "t_ns", "cpu"):
                rg = RANGES[name]
                v = rg.hi if rng.random() < 0.7 else int(rng.integers(rg.lo, rg.hi + 1))
                if name == "align":
                    v = 1 << int(rng.integers(0, 13))
                r[c] = str(v)
    elif kind == "edge":
        # every number of one row at its range's low or high end, or kept:
        # degenerate but valid rows (a module of nothing, a 1-byte program)
        r = rows[int(rng.integers(n))]
        for c, name in enumerate(header):
            if c < len(r) and r[c] != "" and name in RANGES and name not in ("seq", "t_ns"):
                u = rng.random()
                if u < 0.45:
                    r[c] = str(RANGES[name].lo)
                elif u < 0.6:
                    r[c] = str(RANGES[name].hi)
    elif kind == "row_drop":
        del rows[int(rng.integers(n))]
    elif kind == "row_dup":
        i = int(rng.integers(n))
        rows.insert(i, list(rows[i]))
    elif kind == "row_swap":
        i, j = int(rng.integers(n)), int(rng.integers(n))
        rows[i], rows[j] = rows[j], rows[i]
    elif kind == "row_short":
        r = rows[int(rng.integers(n))]
        del r[int(rng.integers(len(r) + 1)):]
    elif kind == "row_long":
        rows[int(rng.integers(n))].append(_pick(rng, ("", "0", "x", "1,2")))
    elif kind == "row_garbage":
        rows.insert(int(rng.integers(n + 1)), [_pick(rng, NASTY) for _ in range(int(rng.integers(1, 30)))])
    elif kind == "col_drop":
        c = int(rng.integers(len(header)))
        for r in [header] + rows:
            if c < len(r):
                del r[c]
    elif kind == "col_dup":
        c = int(rng.integers(len(header)))
        for r in [header] + rows:
            if c < len(r):
                r.insert(c, r[c])
    elif kind == "col_swap":
        a, b = int(rng.integers(len(header))), int(rng.integers(len(header)))
        for r in [header] + rows:
            if a < len(r) and b < len(r):
                r[a], r[b] = r[b], r[a]
    elif kind == "col_rename" and header:
        header[int(rng.integers(len(header)))] = _pick(rng, ("Seq", "size ", "sizes", "", "obj\x00", "x"))
    elif kind == "col_add":
        for r in [header] + rows:
            r.append("extra" if r is header else "1")
    elif kind == "header_drop":
        header[:] = rows.pop(0) if rows else []
    elif kind == "header_dup":
        rows.insert(int(rng.integers(n + 1)), list(header))
    elif kind == "obj_reuse":
        io_ = header.index("obj") if "obj" in header else 5
        a, b = rows[int(rng.integers(n))], rows[int(rng.integers(n))]
        if io_ < len(a) and io_ < len(b):
            a[io_] = b[io_]
    return kind


def _serialise(rng: np.random.Generator, header: list[str], rows: list[list[str]]) -> str:
    u = rng.random()
    if u < 0.8:
        return "".join(",".join(r) + "\n" for r in [header] + rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n",
                   quoting=csv.QUOTE_ALL if u < 0.9 else csv.QUOTE_MINIMAL)
    w.writerows([header] + rows)
    return buf.getvalue()


def _mutate_text(rng: np.random.Generator, text: str) -> tuple[str, str]:
    kind = _pick(rng, ("crlf", "cr", "no_final_newline", "bom", "control", "quote", "truncate",
                       "blank_lines", "trailing_spaces", "digits_unicode", "tabs"))
    if kind == "crlf":
        text = text.replace("\n", "\r\n")
    elif kind == "cr":
        text = text.replace("\n", "\r")
    elif kind == "no_final_newline":
        text = text.rstrip("\n")
    elif kind == "bom":
        text = "\ufeff" + text
    elif kind in ("control", "quote"):
        ch = _pick(rng, ("\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x7f", "\u2028", "\x85")) \
            if kind == "control" else _pick(rng, ('"', "'", '""', '"x'))
        i = int(rng.integers(len(text) + 1))
        text = text[:i] + ch + text[i:]
    elif kind == "truncate":
        text = text[:int(rng.integers(len(text) + 1))]
    elif kind == "blank_lines":
        lines = text.split("\n")
        lines.insert(int(rng.integers(len(lines) + 1)), "")
        text = "\n".join(lines)
    elif kind == "trailing_spaces":
        text = text.replace(",", " , ")
    elif kind == "digits_unicode":
        text = text.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"}) if rng.random() < 0.5 \
            else text.replace("1", "\u0661")
    elif kind == "tabs":
        text = text.replace(",", "\t")
    return text, kind


def _encode(rng: np.random.Generator, text: str) -> tuple[bytes, str]:
    u = rng.random()
    if u < 0.9:
        return text.encode("utf-8", "surrogatepass"), "utf-8"
    kind = _pick(rng, ("utf-16", "latin-1", "bad_utf8", "utf-32"))
    if kind == "latin-1":
        return ("\u00e9" + text).encode("latin-1", "replace"), kind
    if kind == "bad_utf8":
        b = text.encode("utf-8", "surrogatepass")
        i = int(rng.integers(len(b) + 1))
        return b[:i] + _pick(rng, (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80")) + b[i:], kind
    return text.encode(kind), kind


def _frame(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    u = rng.random()
    if u < 0.55:
        return data, "plain"
    if u < 0.8:
        return gzip.compress(data, mtime=0), "gzip"
    kind = _pick(rng, ("gzip_truncated", "gzip_flipped", "gzip_trailing", "gzip_two_members",
                       "gzip_twice", "gzip_magic_only", "gzip_empty", "zlib_not_gzip"))
    g = gzip.compress(data, mtime=0)
    if kind == "gzip_truncated":
        return g[:int(rng.integers(2, max(3, len(g))))], kind
    if kind == "gzip_flipped":
        i = int(rng.integers(len(g)))
        return g[:i] + bytes([g[i] ^ (1 << int(rng.integers(8)))]) + g[i + 1:], kind
    if kind == "gzip_trailing":
        return g + _pick(rng, (b"\x00" * 8, b"garbage", b"\x1f\x8b")), kind
    if kind == "gzip_two_members":
        return g + g, kind
    if kind == "gzip_twice":
        return gzip.compress(g, mtime=0), kind
    if kind == "gzip_magic_only":
        return b"\x1f\x8b" + data, kind
    if kind == "gzip_empty":
        return gzip.compress(b"", mtime=0), kind
    return zlib.compress(data), kind


def build_case(seed: int, case: int) -> tuple[bytes, str, list[str], dict]:
    """The file bytes, its suffix, the mutations made and the machine of
    one case; a function of ``(seed, case)`` only."""
    rng = np.random.default_rng([seed, case])
    src_name, src_rows = _pick(rng, sources())
    length = int(min(60, 1 + rng.geometric(0.08)))
    start = int(rng.integers(max(1, len(src_rows) - length + 1)))
    rows = [list(r) for r in src_rows[start:start + length]]
    header = list(COLUMNS)
    done = [f"cut {src_name}[{start}:{start + length}]"]
    if rng.random() < 0.85:
        rows = _repair(rows) or [list(r) for r in src_rows[:1]]
        done.append("repaired")
    k = int(rng.choice(4, p=[0.2, 0.4, 0.25, 0.15]))
    text_mutations = 0
    for _ in range(k):
        if rng.random() < 0.75:
            done.append(_mutate_rows(rng, header, rows))
        else:
            text_mutations += 1
    text = _serialise(rng, header, rows)
    for _ in range(text_mutations):
        text, kind = _mutate_text(rng, text)
        done.append(kind)
    data, enc = _encode(rng, text)
    if enc != "utf-8":
        done.append(enc)
    data, framing = _frame(rng, data)
    if framing != "plain":
        done.append(framing)
    suffix = ".csv.gz" if rng.random() < 0.5 else ".csv"
    machine = {"mem_bytes": int(_pick(rng, (2, 4, 4, 16, 16))) << 30,
               "placement": _pick(rng, ("contiguous", "contiguous", "scattered")),
               "kaslr": bool(rng.random() < 0.8),
               "itlb_cpu": "off" if rng.random() < 0.7 else "skylake-sp"}
    return data, suffix, done, machine


# -- running one case -----------------------------------------------------------------------

@dataclass
class Result:
    case: int
    outcome: str
    mutations: list[str]
    message: str = ""            # the rejection or error, first 300 characters
    msg_len: int = 0
    msg_lines: int = 0
    error: str = ""              # exception type (and where) for crashes
    events: int = 0
    replays: int = 0
    alloc_failures: int = 0
    seconds: float = 0.0
    detail: str = field(default="", repr=False)


def designs_to_run() -> list[tuple[str, dict]]:
    return [(d, {}) for d in registry.names()] + list(VARIANTS)


def run_case(seed: int, case: int, workdir: str | None = None,
             machine: dict | None = None) -> Result:
    """Build, load and (if accepted) replay one case; never raises.
    ``machine`` replaces the case's own machine (tests use a small one)."""
    from .replay import run

    t0 = time.perf_counter()
    try:
        data, suffix, done, case_machine = build_case(seed, case)
        machine = machine or case_machine
    except Exception as e:          # noqa: BLE001 - a bug in this harness, not in execbench
        return Result(case, "harness error", [], str(e)[:300], error=_where(e),
                      detail=traceback.format_exc())
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        path = os.path.join(d, f"case{case}{suffix}")
        with open(path, "wb") as f:
            f.write(data)
        try:
            tr = load_trace(path)
        except TraceError as e:
            msg = str(e)
            return Result(case, "rejected cleanly", done, msg[:300], len(msg), len(msg.splitlines()),
                          seconds=time.perf_counter() - t0)
        except Exception as e:      # noqa: BLE001 - that is what the fuzzer looks for
            return Result(case, "crashed while loading", done, str(e)[:300], error=_where(e),
                          seconds=time.perf_counter() - t0, detail=traceback.format_exc())
    res = Result(case, "replayed fine", done, events=len(tr))
    for design, params in designs_to_run():
        try:
            r = run(tr, design, params=params, machine=machine, progress=False)
        except KernelBug as e:
            res.outcome, res.message, res.error = "crashed in replay", str(e)[:300], f"{design}: KernelBug"
            res.detail = traceback.format_exc()
            break
        except ExecbenchError as e:
            res.outcome, res.message, res.error = "refused in replay", str(e)[:300], f"{design}: {type(e).__name__}"
            break
        except Exception as e:      # noqa: BLE001
            res.outcome, res.message, res.error = "crashed in replay", str(e)[:300], f"{design}: {_where(e)}"
            res.detail = traceback.format_exc()
            break
        res.replays += 1
        res.alloc_failures += int(r.counters.get("alloc_failures", 0))
    res.seconds = time.perf_counter() - t0
    return res


def _where(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    last = tb[-1] if tb else None
    at = f" at {Path(last.filename).name}:{last.lineno} {last.name}" if last else ""
    return f"{type(e).__name__}{at}"


# -- the pool -------------------------------------------------------------------------------

def _worker(conn, seed: int, workdir: str) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        case = conn.recv()
        if case is None:
            return
        conn.send(run_case(seed, case, workdir))


def run_cases(seed: int, cases: list[int], jobs: int, timeout: float, progress=None) -> list[Result]:
    """Run the cases in ``jobs`` worker processes; a case that takes longer
    than ``timeout`` seconds is recorded as hung and its worker replaced."""
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    sources()                                   # parsed once, inherited by forked workers
    workdir = tempfile.mkdtemp(prefix="execbench-fuzz-")
    todo = list(cases)
    results: list[Result] = []
    workers: list[list] = []                    # [process, conn, case, started]

    def spawn():
        a, b = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(b, seed, workdir), daemon=True)
        p.start()
        return [p, a, None, 0.0]

    try:
        workers = [spawn() for _ in range(max(1, min(jobs, len(todo))))]
        while todo or any(w[2] is not None for w in workers):
            for i, w in enumerate(workers):
                if w[2] is None and todo:
                    w[2], w[3] = todo.pop(0), time.monotonic()
                    w[1].send(w[2])
            from multiprocessing.connection import wait
            busy = [w[1] for w in workers if w[2] is not None]
            ready = wait(busy, timeout=0.5)
            now = time.monotonic()
            for i, w in enumerate(workers):
                if w[2] is None:
                    continue
                if w[1] in ready:
                    try:
                        results.append(w[1].recv())
                    except (EOFError, OSError):
                        results.append(Result(w[2], "crashed in replay", [], error="worker died"))
                        w[0].kill()
                        workers[i] = spawn()
                        continue
                    w[2] = None
                elif not w[0].is_alive():
                    results.append(Result(w[2], "crashed in replay", [], error="worker died"))
                    workers[i] = spawn()
                elif now - w[3] > timeout:
                    try:
                        done = build_case(seed, w[2])[2]
                    except Exception:       # noqa: BLE001
                        done = []
                    results.append(Result(w[2], "hung", done, error=f"over {timeout:g} s",
                                          seconds=now - w[3]))
                    w[0].kill()
                    w[0].join(1)
                    workers[i] = spawn()
                else:
                    continue
                if progress:
                    progress(len(results))
    finally:
        for w in workers:
            try:
                w[1].send(None)
            except (OSError, ValueError):
                pass
        for w in workers:
            w[0].join(1)
            if w[0].is_alive():
                w[0].kill()
        try:
            os.rmdir(workdir)
        except OSError:
            pass
    return sorted(results, key=lambda r: r.case)


# -- reporting ------------------------------------------------------------------------------

def summary(results: list[Result], seed: int, seconds: float, jobs: int, timeout: float) -> tuple[str, bool]:
    counts = Counter(r.outcome for r in results)
    rej = [r for r in results if r.outcome == "rejected cleanly"]
    bad_msgs = [r for r in rej if r.msg_lines != 1 or r.msg_len > TRACE_ERROR_MAX]
    lines = [f"execbench fuzz: {len(results):,} cases, seed {seed}, {jobs} workers, "
             f"{seconds:,.0f} s, per-case limit {timeout:g} s",
             "", "| outcome | count |", "|---|---|"]
    for o in OUTCOMES + ("harness error",):
        if o in OUTCOMES or counts.get(o):
            lines.append(f"| {o} | {counts.get(o, 0):,} |")
    longest = max((r.msg_len for r in rej), default=0)
    lines += ["", f"rejections: {len(rej):,}; one line of <= {TRACE_ERROR_MAX} characters: "
              f"{'all' if not bad_msgs else f'{len(rej) - len(bad_msgs):,} ({len(bad_msgs)} not)'}"
              f" (longest {longest})"]
    replayed = [r for r in results if r.replays]
    lines.append(f"replays: {sum(r.replays for r in replayed):,} ({len(designs_to_run())} design "
                 f"configurations per accepted case); {sum(1 for r in replayed if r.alloc_failures):,} "
                 f"cases had -ENOMEM (alloc_failures {sum(r.alloc_failures for r in replayed):,})")
    slow = sorted(results, key=lambda r: -r.seconds)[:3]
    lines.append("slowest cases: " + ", ".join(f"#{r.case} {r.seconds:.1f} s" for r in slow))
    kinds = Counter(m.split()[0] for r in results for m in r.mutations if not m.startswith("cut"))
    lines.append("mutations: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    problems = [r for r in results
                if r.outcome in CRASHES + ("refused in replay", "harness error")] + bad_msgs
    for r in problems[:30]:
        lines.append(f"  #{r.case} {r.outcome}: {r.error} {r.message[:150]!r} "
                     f"[{', '.join(r.mutations)}]")
    if len(problems) > 30:
        lines.append(f"  ... and {len(problems) - 30} more")
    ok = not problems
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m execbench.fuzz",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="number of cases (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                    help="worker processes (default: one per CPU)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a case may take before it counts as hung (default 60)")
    ap.add_argument("--case", type=int, help="run only this case, in this process, and print it")
    ap.add_argument("--first", type=int, default=0, help="number of the first case (default 0)")
    args = ap.parse_args(argv)
    if args.case is not None:
        data, suffix, done, machine = build_case(args.seed, args.case)
        r = run_case(args.seed, args.case)
        print(f"case {args.case}: {', '.join(done)}; machine {machine}; {len(data)} bytes {suffix}")
        print(f"{r.outcome}: {r.error} {r.message}")
        if r.detail:
            print(r.detail)
        return 0 if r.outcome not in CRASHES else 1
    t0 = time.perf_counter()
    step = max(1, args.n // 20)

    def progress(n: int) -> None:
        if n % step == 0:
            print(f"  {n:,}/{args.n:,} cases, {time.perf_counter() - t0:,.0f} s", file=sys.stderr)

    results = run_cases(args.seed, list(range(args.first, args.first + args.n)), args.jobs,
                        args.timeout, progress)
    text, ok = summary(results, args.seed, time.perf_counter() - t0, args.jobs, args.timeout)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
