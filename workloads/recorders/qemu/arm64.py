"""arm64 recordings: what the guest events mean on arm64, before build/truth read them.

Why a separate step: on arm64 the executable-memory primitives cannot all be probed
(``probes.ARM64_PROBES`` says which and why), and the module window lies inside the
vmalloc area, so two things the x86-64 recorder reads straight off its events have to be
reconstructed here, from events of the same run:

* **text writes** (:func:`text_writes`): every write into read-only text goes through
  arch/arm64/kernel/patching.c ``patch_map()`` (6.1, 6.12, 7.2): ``vmalloc_to_page(addr)``
  for anything outside the kernel image, then ``__set_fixmap(FIX_TEXT_POKE0, phys, ...)``.
  A ``fixmap`` event (``phys != 0``) is one write; the ``vmalloc_to_page`` that precedes it
  on the same CPU and pid, with nothing probed in between, gives its address (none: the
  kernel image).  ``patch_lock`` is a raw spinlock taken with interrupts off around both,
  so nothing else runs on that CPU in between.  Each write is then attributed:
  ``jump_label`` (an ``arch_jump_label_transform_queue`` for that address just before),
  ``bpf`` (inside ``bpf_arch_text_copy``/``_invalidate``), ``kprobe_slot`` (into a page
  ``alloc_insn_page``/``execmem_alloc(EXECMEM_KPROBES)`` returned), ``kprobe_arm``
  (``aarch64_insn_patch_text()`` runs the write in ``stop_machine``: comm
  ``migration/N``), ``ftrace_init`` (``ftrace_init_nop()`` at load: any other write into
  the memory of a module being loaded), else ``text`` (ftrace call-site updates and
  anything else into live text).
* **executable areas** (:func:`exec_areas`): the vmalloc areas made under an executable
  allocator (``module_alloc``, ``execmem_alloc[_rw]``, ``bpf_jit_alloc_exec``,
  ``alloc_insn_page``): the outermost ``__vmalloc_node_range`` on the same pid while such
  a call is pending; a return of 0 is a failed attempt (6.1 ``module_alloc()`` then tries
  its 2 GiB fallback window).  Areas made before tracing come from the
  ``/proc/vmallocinfo`` dump taken at ``tracing_on``, by caller (:data:`EXEC_CALLERS`).

:func:`normalize` writes both back into the event table (``addr``/``len``/``type`` of the
``fixmap`` rows, the caller of allocator rows), so ``build.build(..., arch="arm64")`` and
``truth_arm64.truth`` read one table.  Everything here is derived from ``events.csv.gz``
and the guest dumps; ``record.rebuild`` re-derives it byte for byte.
"""

from __future__ import annotations

import bisect
import dataclasses
import re

import pandas as pd

from .parse import num, records

PAGE = 4096
#: arch/arm64/include/asm/memory.h: the linear map ends at _PAGE_END(VA_BITS_MIN), and
#: VA_BITS_MIN is 48 for both Debian configs (VA_BITS 48 in 6.1, 52 in 6.12/7.2).
LINEAR_END = 0xFFFF800000000000
#: a direct branch reaches +-128 MiB (B/BL imm26 << 2, arch/arm64/kernel/module.c
#: reloc_insn_imm(..., 26, ...))
BRANCH_RANGE = 128 << 20
#: arm64 instructions are 4 bytes (AARCH64_INSN_SIZE)
INSN = 4
#: allocator entry events and the kind of area they make
ALLOCATORS = {"module_alloc": "module", "execmem_alloc": "execmem", "execmem_alloc_rw": "execmem",
              "bpf_jit_alloc_exec": "bpf", "alloc_insn_page": "kprobe"}
#: include/linux/execmem.h (v6.10+) enum execmem_type
EXECMEM_KINDS = {0: "module", 1: "kprobe", 2: "ftrace", 3: "bpf", 4: "module_data"}
#: /proc/vmallocinfo callers of executable areas (made before tracing): the caller
#: argument each allocator passes to __vmalloc_node_range
EXEC_CALLERS = {"load_module": "module", "module_alloc": "module", "bpf_jit_alloc_exec": "bpf",
                "__get_insn_slot": "kprobe", "alloc_insn_page": "kprobe", "execmem_alloc": "execmem",
                "execmem_vmalloc": "execmem", "__execmem_alloc": "execmem", "execmem_alloc_rw": "execmem",
                "bpf_prog_pack_alloc": "bpf", "alloc_new_pack": "bpf"}
_VMI = re.compile(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+(\d+)\s+(\S+)")
_KV = re.compile(r"(\w+)=(\S+)")


def _kv(args: str) -> dict[str, str]:
    return dict(_KV.findall(args or ""))


@dataclasses.dataclass
class Area:
    lo: int
    size: int          # mapped bytes (PAGE_ALIGN of the request; no guard page)
    kind: str          # module / execmem-<type> / bpf / kprobe
    owner: str         # the allocator's caller
    seq: int           # event seq of the vmalloc return (-1: before tracing)
    window: int = 0    # end - start of the __vmalloc_node_range call that made it
    start: int = 0     # its start argument
    pid: int = -1      # the task that made it
    attempts: int = 1  # __vmalloc_node_range calls it took (2: the first window was full)
    freed_seq: int | None = None
    freed_by: str = ""  # caller of the free (do_free_init: an init area)


def exec_areas(ev: pd.DataFrame, vmallocinfo_start: str = "") -> list[Area]:
    """Every executable vmalloc area of the run, in creation order (see the module docstring)."""
    out: list[Area] = []
    for line in vmallocinfo_start.splitlines():
        m = _VMI.match(line)
        if m:
            caller = m.group(4).split("+")[0]
            if caller in EXEC_CALLERS:
                lo = int(m.group(1), 16)
                out.append(Area(lo, int(m.group(3)) - PAGE, EXEC_CALLERS[caller], caller, -1))
    pending: dict[int, tuple[str, str]] = {}
    failed: dict[int, int] = {}   # pid -> failed attempts of the pending allocation
    stack: dict[int, list[tuple[str, str, int, int, int] | None]] = {}
    live: dict[int, Area] = {}
    frees = ("module_memfree", "execmem_free", "bpf_jit_free_exec", "vfree")
    for r in records(ev, {*ALLOCATORS, "vmalloc_node_range", "vmalloc_node_range_ret", *frees}):
        e = r.event
        if e in ALLOCATORS:
            kind = ALLOCATORS[e]
            if kind == "execmem":
                t = num(r.type)
                kind = EXECMEM_KINDS.get(t, f"execmem{t}") if t is not None else kind
            pending[r.pid] = (kind, r.caller or "")
            failed[r.pid] = 0
        elif e == "vmalloc_node_range":
            st = stack.setdefault(r.pid, [])
            kv = _kv(r.args)
            if not st and r.pid in pending:
                kind, owner = pending[r.pid]
                lo, hi = num(kv.get("start", "0")), num(kv.get("end", "0"))
                st.append((kind, owner, num(r.size), hi - lo, lo))
            else:
                st.append(None)
        elif e == "vmalloc_node_range_ret":
            st = stack.get(r.pid)
            if not st:
                continue
            top = st.pop()
            a = num(r.ret)
            if top is None:
                continue
            if not a:
                failed[r.pid] = failed.get(r.pid, 0) + 1
                continue
            kind, owner, size, window, start = top
            pending.pop(r.pid, None)
            area = Area(a, -(-size // PAGE) * PAGE, kind, owner, int(r.seq), window, start, int(r.pid),
                        attempts=1 + failed.pop(r.pid, 0))
            out.append(area)
            live[a] = area
        elif e in ("module_memfree", "execmem_free", "bpf_jit_free_exec"):
            a = num(r.addr)
            if a in live and not live[a].freed_by:
                live[a].freed_by = r.caller or ""
        elif e == "vfree":
            # every executable free ends in vfree() (module_memfree, execmem_free,
            # bpf_jit_free_exec, free_insn_page): the area is gone after it
            a = num(r.addr)
            if a in live:
                area = live.pop(a)
                area.freed_seq = int(r.seq)
                area.freed_by = area.freed_by or r.caller or ""
    return out


#: no executable area is larger (module text of the biggest Debian modules is < 16 MiB)
MAX_AREA = 1 << 30


class AreaIndex:
    """Which executable area (live at a given event) holds an address."""

    def __init__(self, areas: list[Area]):
        self.areas = sorted(areas, key=lambda x: (x.lo, x.seq))
        self.los = [a.lo for a in self.areas]

    def find(self, addr: int | None, seq: int | None = None) -> Area | None:
        """The area holding ``addr`` at event ``seq`` (any time when ``seq`` is None)."""
        if addr is None:
            return None
        i = bisect.bisect_right(self.los, addr)
        while i > 0:
            i -= 1
            a = self.areas[i]
            if addr - a.lo >= MAX_AREA:
                break
            if a.lo <= addr < a.lo + a.size and (seq is None or (
                    a.seq <= seq and (a.freed_seq is None or seq <= a.freed_seq))):
                return a
        return None


def text_writes(ev: pd.DataFrame, areas: list[Area]) -> pd.DataFrame:
    """One row per text write: seq of its ``fixmap`` event, t_ns, cpu, pid, addr (None:
    the kernel image), kind (see the module docstring), and the kind of area written."""
    idx = AreaIndex(areas)
    last_v2p: dict[int, tuple[int, int | None]] = {}   # cpu -> (pid, addr) of the last vmalloc_to_page
    last_jl: dict[int, int] = {}                       # pid -> site of the last jump-label transform
    in_bpf: dict[int, tuple[int, int]] = {}            # pid -> (addr, len) of the last bpf_arch_text_*
    loading: set[int] = set()                          # pids inside load_module
    rows = []
    for r in records(ev):
        e = r.event
        if e == "vmalloc_to_page":
            last_v2p[r.cpu] = (r.pid, num(r.addr))
            continue
        if e == "fixmap":
            v = last_v2p.pop(r.cpu, None)
            addr = v[1] if v is not None and v[0] == r.pid else None
            a = idx.find(addr, int(r.seq))
            jl = last_jl.pop(r.pid, None)
            if jl is not None and (addr is None or addr == jl):
                # arch_jump_label_transform_queue() makes exactly one write, right away
                kind = "jump_label"
            elif r.pid in in_bpf and addr is not None and in_bpf[r.pid][0] <= addr < sum(in_bpf[r.pid]):
                kind = "bpf"
            elif a is not None and a.kind == "kprobe":
                kind = "kprobe_slot"
            elif str(r.comm).startswith("migration/"):
                kind = "kprobe_arm"
            elif r.pid in loading and a is not None and a.pid == r.pid and a.owner == "load_module":
                kind = "ftrace_init"
            else:
                kind = "text"
            area = a.kind if a is not None else ("image" if addr is None else "other")
            rows.append((int(r.seq), int(r.t_ns), int(r.cpu), int(r.pid), addr, kind, area))
            continue
        if e != "tracing_mark_write":
            last_v2p.pop(r.cpu, None)
        if e == "jump_label_transform":
            kv = _kv(r.args)
            last_jl[r.pid] = num(kv["entry"]) + int(kv["code"])
        elif e in ("bpf_arch_text_copy", "bpf_arch_text_invalidate"):
            in_bpf[r.pid] = (num(r.addr), num(r.len))
        elif e in ("module_alloc", "execmem_alloc", "execmem_alloc_rw") and r.caller == "load_module":
            loading.add(r.pid)
        elif e == "module_load":
            loading.discard(r.pid)
    out = pd.DataFrame(rows, columns=["seq", "t_ns", "cpu", "pid", "addr", "kind", "area"])
    out["addr"] = pd.Series([row[4] for row in rows], dtype=object, index=out.index)
    return out


def vmallocinfo_exec(vmallocinfo: str, areas: list[Area]) -> str:
    """The lines of a ``/proc/vmallocinfo`` dump that are executable areas: made by a traced
    executable allocation, or with an executable allocator as caller (kept in the recording
    as ``guest/vmallocinfo_exec.txt``)."""
    traced = {a.lo for a in areas}
    keep = []
    for line in vmallocinfo.splitlines():
        m = _VMI.match(line)
        if m and (int(m.group(1), 16) in traced or m.group(4).split("+")[0] in EXEC_CALLERS):
            keep.append(line)
    return "\n".join(keep) + "\n"


def normalize(ev: pd.DataFrame, vmallocinfo_start: str = "") -> tuple[pd.DataFrame, list[Area], pd.DataFrame]:
    """(events with the arm64 reconstruction written in, executable areas, text writes).

    ``fixmap`` rows get ``addr`` (hex; empty for the kernel image), ``len`` = 4 (one
    instruction; 8-byte literals and aarch64_insn_copy() pages are one write each, the
    model counts writes) and ``type`` = the write's kind.  Nothing else changes.
    """
    areas = exec_areas(ev, vmallocinfo_start)
    tw = text_writes(ev, areas)
    out = ev.copy()
    pos = out.index[out["seq"].isin(tw["seq"])]
    by_seq = tw.set_index("seq")
    seqs = out.loc[pos, "seq"].astype(int)
    out.loc[pos, "addr"] = ["" if a is None or pd.isna(a) else f"{int(a):#x}"
                            for a in by_seq.loc[seqs, "addr"]]
    out.loc[pos, "len"] = str(INSN)
    out.loc[pos, "type"] = by_seq.loc[seqs, "kind"].to_list()
    return out, areas, tw


def kernel_text(kallsyms: str) -> tuple[int, int] | None:
    """(_stext, _etext) from the guest's kallsyms dump (``guest/kallsyms_probed.txt``)."""
    sym = {}
    for line in kallsyms.splitlines():
        parts = line.split()
        if len(parts) == 3:
            sym[parts[2]] = int(parts[0], 16)
    if "_stext" in sym and "_etext" in sym:
        return sym["_stext"], sym["_etext"]
    return None


def vmallocinfo_areas(text: str) -> pd.DataFrame:
    """lo, hi, size, caller of every line of a ``/proc/vmallocinfo`` dump."""
    out = []
    for line in text.splitlines():
        m = _VMI.match(line)
        if m:
            out.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3)), m.group(4).split("+")[0]))
    return pd.DataFrame(out, columns=["lo", "hi", "size", "caller"])
