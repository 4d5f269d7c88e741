"""Parse the guest's ftrace text (``trace_pipe`` format) into an event table.

Why a table first: the two products of a recording -- the workload trace in
execbench's schema and the ground-truth counts -- are both derived from the same
flat list of events, and a CSV of that list is what a reader checks by eye.

Input lines (kernel/trace/trace_output.c, default options, ``sym-offset`` off)::

    insmod-111  [000] .....  3.724909: module_alloc: (module_alloc+0x0/0xe0) size=167936
    insmod-111  [000] .N...  3.726479: <stack trace>
     => kprobe_trace_func
     => module_alloc
     => load_module
    insmod-111  [000] .....  3.728832: vmalloc_node_range_ret: (module_alloc+0x81/0xe0 <- __vmalloc_node_range) ret=0xffffffffc051a000
    init-1      [001] .....  3.698619: tracing_mark_write: insmod jbd2

A ``<stack trace>`` entry belongs to the last event of the same pid on the same
CPU (the stacktrace trigger runs right after the event it was attached to).
The kprobe machinery's own frames (``kprobe_trace_func``, ``kprobe_dispatcher``,
``kprobe_ftrace_handler``, the ftrace trampoline's bare address) are dropped.
``context`` is the text of the last ``trace_marker`` write: what the guest
script was doing, not necessarily who caused the event (pitfall 7).
"""

from __future__ import annotations

import collections
import re

import pandas as pd

COLUMNS = ["seq", "t_ns", "cpu", "pid", "comm", "event", "site", "addr", "size", "npages",
           "len", "ret", "type", "args", "context", "caller", "stack"]

_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+"
    r"(?P<sec>\d+)\.(?P<frac>\d+): (?P<event>[^:]+):?(?: (?P<rest>.*))?$")
_KV = re.compile(r'(\w+)=("[^"]*"|\S+)')
_SITE = re.compile(r"^\((?P<site>[^)]*)\)\s*")
_DROP_FRAMES = {"kprobe_trace_func", "kprobe_dispatcher", "kprobe_ftrace_handler",
                "kretprobe_trace_func", "kretprobe_dispatcher", "pre_handler_kretprobe",
                "kprobe_int3_handler", "exc_int3", "asm_exc_int3", "optimized_callback",
                "event_triggers_call", "trace_event_buffer_commit"}
#: frames that name the allocation's real owner, searched in stack order
OWNER_FRAMES = ("load_module", "alloc_insn_page", "arch_ftrace_update_trampoline",
                "arch_ftrace_trampoline_free", "bpf_prog_pack_alloc", "bpf_prog_pack_free",
                "do_free_init", "free_module", "__do_sys_delete_module", "execmem_cache_populate",
                "execmem_cache_populate_alloc", "free_mod_mem",
                "alloc_optinsn_page", "bpf_jit_alloc_exec", "bpf_jit_free_exec",
                "arch_alloc_bpf_trampoline", "arch_free_bpf_trampoline")


class ParseError(ValueError):
    """A line of the guest trace that cannot be read (file and line named)."""


def _int(v: str) -> int:
    return int(v, 16) if v.startswith("0x") else int(v)


def _clean_frame(f: str) -> str:
    return f.split("+", 1)[0].strip()


def parse(text: str, where: str = "<trace>") -> pd.DataFrame:
    """One row per event, in time order (stable), stacks attached."""
    rows: list[dict] = []
    last_by_cpu_pid: dict[tuple[int, int], int] = {}
    context = ""
    stack_for: int | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.lstrip().startswith("=>"):
            if stack_for is not None:
                frame = line.split("=>", 1)[1].strip()
                name = _clean_frame(frame)
                if name not in _DROP_FRAMES and not name.startswith("0x"):
                    rows[stack_for]["_stack"].append(name)
            continue
        m = _LINE.match(line)
        if not m:
            raise ParseError(f"{where}:{lineno}: unreadable trace line: {line[:200]!r}")
        cpu, pid = int(m["cpu"]), int(m["pid"])
        t_ns = int(m["sec"]) * 1_000_000_000 + int(m["frac"].ljust(9, "0")[:9])
        event, rest = m["event"].strip(), m["rest"] or ""
        if event == "<stack trace>":
            stack_for = last_by_cpu_pid.get((cpu, pid))
            continue
        stack_for = None
        row = {"t_ns": t_ns, "cpu": cpu, "pid": pid, "comm": m["comm"].strip(), "event": event,
               "site": "", "_kv": {}, "_stack": [], "context": context}
        if event == "tracing_mark_write":
            context = rest.strip()
            row["context"] = context
            row["args"] = context
        elif event in ("module_load", "module_free"):
            row["_kv"] = {"name": rest.split()[0] if rest.split() else ""}
        else:
            sm = _SITE.match(rest)
            if sm:
                row["site"] = sm["site"]
                rest = rest[sm.end():]
            row["_kv"] = {k: v.strip('"') for k, v in _KV.findall(rest)}
        rows.append(row)
        last_by_cpu_pid[(cpu, pid)] = len(rows) - 1
    return _frame(rows)


def _frame(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        kv = r.pop("_kv")
        stack = r.pop("_stack")
        r["addr"] = kv.get("addr", kv.get("slot", ""))
        r["size"] = kv.get("size", kv.get("proglen", ""))
        r["npages"] = kv.get("npages", "")
        r["len"] = kv.get("len", kv.get("nr", ""))
        r["ret"] = kv.get("ret", "")
        r["type"] = kv.get("type", kv.get("sym", kv.get("name", "")))
        r.setdefault("args", " ".join(f"{k}={v}" for k, v in kv.items()))
        caller = ""
        if "caller" in kv:
            caller = _clean_frame(kv["caller"])
        for f in stack:
            if f in OWNER_FRAMES:
                caller = f
                break
        if not caller and r["event"].endswith("_ret") and "<-" in r["site"]:
            caller = _clean_frame(r["site"].split("<-")[0])
        r["caller"] = caller
        r["stack"] = ";".join(stack)
        out.append(r)
    df = pd.DataFrame(out, columns=[c for c in COLUMNS if c != "seq"])
    df = df.sort_values("t_ns", kind="stable").reset_index(drop=True)
    df.insert(0, "seq", range(len(df)))
    return df


def records(ev: pd.DataFrame, events: set[str] | None = None):
    """The rows of ``ev`` (only those of ``events`` when given) as namedtuples, in order.

    Why not ``itertuples``: with pandas' string columns it costs a boxed lookup per cell,
    seconds per recording; this reads each column once."""
    if events is not None:
        ev = ev[ev["event"].isin(events)]
    row = collections.namedtuple("Row", list(ev.columns))
    return map(row._make, zip(*(ev[c].tolist() for c in ev.columns)))


def num(v) -> int | None:
    """Integer value of an event cell ('' -> None)."""
    if v is None or v == "" or (isinstance(v, float) and pd.isna(v)):
        return None
    return _int(str(v))
