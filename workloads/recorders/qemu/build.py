"""Turn the parsed guest events into (1) a workload trace and (2) ground-truth counts.

Why both from one event list: (2) is what the real kernel did with executable
memory; (1) is what its *users* asked for.  Replaying (1) on the design that
models that kernel (``legacy`` for 6.1, ``execmem`` for 6.12) must give back
(2) -- that is the validation (``execbench/validation.py``).

Attribution rules (pitfall 7 of the recording notes: the marker ``context``
says what the script was doing, not who caused an event):

* **modules** -- allocations whose owner frame (vmalloc ``caller`` argument or
  stack) is ``load_module`` are pending on their pid until the ``module:module_load``
  tracepoint names the module (kernel/module/main.c ``load_module()`` (v6.1)
  fires it after ``complete_formation()`` and ``prepare_coming_module()``, so the
  jump-label patches of the coming module come *before* it).  The ``load`` row is
  placed at the first allocation; patches seen in between are kept in order
  behind it.  Allocations freed before any tracepoint are failed loads (counted
  in the truth table, absent from the trace).  ``init_done`` is the first free by
  ``do_free_init`` of one of the module's allocations; ``unload`` is the
  ``module:module_free`` tracepoint.  Per-type sizes and loader work come from the
  same ``.ko`` (``modlayout.layout_module``), not from the allocation sizes.
* **patches** -- ``text_poke_bp``/``text_poke_queue`` (one per patched site) and
  out-of-line ``text_poke`` calls whose address lies in a live (or coming)
  module's core text: ``offset`` = address - text start.  ``__text_poke`` is the
  byte-level primitive those expand into (int3, tail, first byte) and is only
  counted in the truth table.
* **ftrace** -- an allocation owned by ``arch_ftrace_update_trampoline`` is an
  ``ops_register`` (size = the allocation request, i.e. ``create_trampoline()``'s
  size); pokes into a live trampoline outside its registering context are
  ``ops_update``; the free of that address is ``ops_unregister``.
* **bpf** -- ``bpf_jit_binary_pack_alloc(proglen)`` then
  ``bpf_prog_pack_alloc`` returning an address is a ``prog_load`` of ``proglen``
  bytes; ``bpf_jit_binary_pack_free``/``bpf_prog_pack_free`` of that address is
  the ``prog_unload``.
* **kprobe** -- ``__get_insn_slot`` on the ``kprobe_insn_page`` cache is a
  ``register`` (size = the cache's ``insn_size``), on ``kprobe_optinsn_page`` an
  ``optimize``; both are allocated by ``register_kprobe()`` (optprobes are
  prepared at registration, kernel/kprobes.c ``alloc_aggr_kprobe``).  The object
  is the probe the script was adding (``kprobe add kpN``; registration is
  synchronous in the writer).  The first ``__free_insn_slot`` of one of its slots
  is the ``unregister``.  Probes on an ftrace site use no slot and do not appear.
"""

from __future__ import annotations

import dataclasses
import re

import pandas as pd

from execbench.trace import COLUMNS as TRACE_COLUMNS

from .parse import num, records

PAGE = 4096
#: x86-64 module range with KASLR (arch/x86/include/asm/pgtable_64_types.h:
#: MODULES_VADDR = __START_KERNEL_map + KERNEL_IMAGE_SIZE, KERNEL_IMAGE_SIZE = 1 GiB
#: under CONFIG_RANDOMIZE_BASE (page_64_types.h); MODULES_END = 0xffffffffff000000).
EXEC_LO = 0xFFFFFFFFC0000000
EXEC_HI = 0xFFFFFFFFFF000000

LAYOUT_COLS = ("text", "rodata", "ro_after_init", "data", "init_text", "init_rodata",
               "init_data", "align", "relocs", "reloc_secs", "alt_sites", "orc_entries",
               "mcount_locs")
#: v6.1 places these on their own page(s); in every modules.csv written since they existed
KALLSYMS_COLS = ("kallsyms", "init_kallsyms")


class BuildError(ValueError):
    """The event list contradicts itself (event seq named)."""


def in_exec(a: int | None) -> bool:
    return a is not None and EXEC_LO <= a < EXEC_HI


@dataclasses.dataclass
class _Load:
    t_ns: int
    cpu: int
    allocs: list[tuple[int, int]]  # (addr, size) in allocation order
    held: list[dict]  # patch candidates seen before the name was known
    name: str = ""


def _row(t, cpu, user, op, obj, **cols) -> dict:
    r = {"t_ns": int(t), "cpu": int(cpu), "user": user, "op": op, "obj": obj}
    r.update({k: int(v) for k, v in cols.items()})
    return r


@dataclasses.dataclass(frozen=True)
class Events:
    """Guest event names the attribution reads, per architecture.

    x86-64 patches are ``text_poke*`` calls; arm64's are counted at the callers of
    ``aarch64_insn_patch_text_nosync()`` (its own probe is refused, see
    ``probes.ARM64_PROBES``): ``jump_label_transform`` and the ftrace call-site updates
    (``ftrace_make_call``/``_nop``/``ftrace_modify_call``), one 4-byte instruction each.
    ``ftrace_init_nop`` (load time, before the module is live) is work the ``load`` row's
    ``mcount_locs`` already stands for, as on x86-64, and is not a ``patch`` row.
    arm64 6.1 JITs each program into its own ``bpf_jit_alloc_exec()`` area
    (``bpf_jit_binary_alloc``), freed with ``bpf_jit_free_exec``.
    """

    pokes: tuple[str, ...] = ("text_poke_bp", "text_poke_queue", "text_poke")
    bpf_alloc: tuple[str, ...] = ("bpf_jit_binary_pack_alloc",)
    bpf_ret: tuple[str, ...] = ("bpf_prog_pack_alloc_ret",)
    bpf_free: tuple[str, ...] = ("bpf_jit_binary_pack_free", "bpf_prog_pack_free")
    #: bytes per unit of ``struct kprobe_insn_cache.insn_size`` (sizeof(kprobe_opcode_t))
    slot_unit: int = 1
    #: pokes into a module being loaded that become ``patch`` rows: all (x86-64) or only
    #: those of this ``type`` (arm64: jump labels; the rest is ``ftrace_init_nop()``)
    held_type: str | None = None


EVENTS = {
    "x86_64": Events(),
    # arm64: ``fixmap`` rows as arm64.normalize() wrote them (addr, len, type = kind)
    "arm64": Events(pokes=("fixmap",),
                    bpf_alloc=("bpf_jit_binary_pack_alloc", "bpf_jit_binary_alloc"),
                    bpf_ret=("bpf_prog_pack_alloc_ret", "bpf_jit_alloc_exec_ret"),
                    bpf_free=("bpf_jit_binary_pack_free", "bpf_prog_pack_free", "bpf_jit_free_exec"),
                    slot_unit=4, held_type="jump_label"),
}


def build(ev: pd.DataFrame, layouts: pd.DataFrame, alloc_event: str = "module_alloc",
          free_event: str = "module_memfree",
          ret_event: str = "vmalloc_node_range_ret", arch: str = "x86_64",
          exec_pred=None) -> tuple[pd.DataFrame, dict]:
    """(workload trace frame in schema column order, attribution notes).

    ``ret_event`` carries the address an ``alloc_event`` returned: the
    ``__vmalloc_node_range`` return on 6.1/6.12 (one vmalloc per allocation),
    ``execmem_alloc``'s own return on 7.2, where ROX-cache types are carved out
    of cached 2 MiB blocks without a vmalloc each (mm/execmem.c
    ``execmem_cache_alloc``).  A return value of 0 is a failed attempt (arm64 6.1
    ``module_alloc()`` retries in its 2 GiB fallback window): the allocation stays
    pending for the next return.  ``arch`` picks the event names (:data:`EVENTS`);
    ``exec_pred(addr)`` says whether an address is executable memory (default: the
    x86-64 module range), used only to classify pokes no object claims.
    """
    names = EVENTS[arch]
    is_exec = exec_pred or in_exec
    lay = layouts.set_index("module")
    rows: list[dict] = []
    notes: dict[str, int] = {"failed_load_allocs": 0, "pokes_in_module_text": 0,
                             "pokes_in_init_or_data": 0, "pokes_outside_modules": 0,
                             "ftrace_pokes_at_register": 0, "vmalloc_failed_attempts": 0}
    if names.held_type is not None:
        notes["pokes_at_load_not_held"] = 0
    want_ret: dict[int, tuple[str, int, int, int, dict]] = {}  # pid -> (owner, size, t, cpu, extra)
    pending: dict[int, _Load] = {}  # pid -> coming module
    live_mod: dict[str, dict] = {}  # name -> {text_lo, text_len, allocs, init_done}
    addr_owner: dict[int, tuple[str, str]] = {}  # alloc addr -> (kind, obj)
    tramps: dict[str, dict] = {}  # obj -> {addr, size, ctx}
    ft_n = 0
    bpf_pending: dict[int, int] = {}  # pid -> proglen
    bpf_live: dict[int, str] = {}  # addr -> obj
    bpf_n = 0
    slot_pending: dict[int, tuple[str, int, str]] = {}  # pid -> (cache sym, insn_size, ctx)
    kp_slots: dict[int, str] = {}  # slot addr -> kprobe obj
    kp_live: dict[str, dict] = {}

    def module_at(a: int):
        for name, m in live_mod.items():
            if m["text_lo"] <= a < m["text_lo"] + m["text_len"]:
                return name, m
        return None, None

    def handle_poke(r, a: int, ln: int):
        name, m = module_at(a)
        if m is not None:
            if a + ln > m["text_lo"] + m["text_len"]:
                raise BuildError(f"seq {r.seq}: poke {a:#x}+{ln} crosses the end of {name}'s text")
            notes["pokes_in_module_text"] += 1
            rows.append(_row(r.t_ns, r.cpu, "module", "patch", name, offset=a - m["text_lo"], len=ln))
            return
        for pl in pending.values():
            for lo, sz in pl.allocs:
                if lo <= a < lo + sz:
                    if names.held_type is not None and r.type != names.held_type:
                        notes["pokes_at_load_not_held"] += 1
                        return
                    pl.held.append({"t": r.t_ns, "cpu": r.cpu, "a": a, "len": ln, "seq": r.seq})
                    return
        for obj, tr in tramps.items():
            if tr["addr"] <= a < tr["addr"] + tr["size"]:
                if r.context == tr["ctx"]:
                    notes["ftrace_pokes_at_register"] += 1
                else:
                    rows.append(_row(r.t_ns, r.cpu, "ftrace", "ops_update", obj))
                return
        if is_exec(a):
            notes["pokes_in_init_or_data"] += 1
        else:
            notes["pokes_outside_modules"] += 1

    for r in records(ev):
        e = r.event
        if e == "tracing_mark_write":
            continue
        if e == alloc_event:
            owner = r.caller or ""
            want_ret[r.pid] = (owner, num(r.size), r.t_ns, r.cpu, {"type": r.type, "ctx": r.context})
            continue
        if e == ret_event:
            if r.pid not in want_ret:
                continue  # a vmalloc in the range not made through module_alloc/execmem_alloc
            owner, size, t, cpu, extra = want_ret.pop(r.pid)
            a = num(r.ret)
            if not a:
                notes["vmalloc_failed_attempts"] += 1
                want_ret[r.pid] = (owner, size, t, cpu, extra)
                continue
            if owner == "load_module":
                pl = pending.setdefault(r.pid, _Load(t, cpu, [], []))
                pl.allocs.append((a, size))
                addr_owner[a] = ("module?", str(r.pid))
            elif owner == "arch_ftrace_update_trampoline":
                ft_n += 1
                m = re.match(r"ftrace (\S+) ", extra["ctx"] + " ")
                obj = m.group(1) if m else f"ftrace{ft_n}"
                if obj in tramps:
                    obj = f"{obj}.{ft_n}"
                tramps[obj] = {"addr": a, "size": size, "ctx": extra["ctx"]}
                addr_owner[a] = ("ftrace", obj)
                rows.append(_row(t, cpu, "ftrace", "ops_register", obj, size=size))
            continue
        if e == "module_load":
            name = r.type
            pl = pending.pop(r.pid, None)
            if pl is None:
                raise BuildError(f"seq {r.seq}: module_load {name} without allocations on pid {r.pid}")
            if name not in lay.index:
                raise BuildError(f"seq {r.seq}: no .ko layout for loaded module {name!r}")
            L = lay.loc[name]
            rows.append(_row(pl.t_ns, pl.cpu, "module", "load", name,
                             **{c: L[c] for c in LAYOUT_COLS + KALLSYMS_COLS if c in L}))
            text_lo = pl.allocs[0][0]
            live_mod[name] = {"text_lo": text_lo, "text_len": int(L["text"]),
                              "allocs": [a for a, _ in pl.allocs], "init_done": False}
            for a, _ in pl.allocs:
                addr_owner[a] = ("module", name)
            for h in pl.held:
                if text_lo <= h["a"] < text_lo + int(L["text"]):
                    if h["a"] + h["len"] > text_lo + int(L["text"]):
                        raise BuildError(f"seq {h['seq']}: poke crosses the end of {name}'s text")
                    notes["pokes_in_module_text"] += 1
                    rows.append(_row(h["t"], h["cpu"], "module", "patch", name,
                                     offset=h["a"] - text_lo, len=h["len"]))
                else:
                    notes["pokes_in_init_or_data"] += 1
            continue
        if e == free_event:
            a = num(r.addr)
            kind, obj = addr_owner.pop(a, ("", ""))
            if kind == "module?":
                # freed before module_load: a failed load; drop its pending record
                pl = pending.get(int(obj))
                if pl is not None:
                    pl.allocs = [x for x in pl.allocs if x[0] != a]
                    if not pl.allocs:
                        pending.pop(int(obj))
                notes["failed_load_allocs"] += 1
            elif kind == "module":
                m = live_mod.get(obj)
                if m is not None and r.caller == "do_free_init" and not m["init_done"]:
                    m["init_done"] = True
                    rows.append(_row(r.t_ns, r.cpu, "module", "init_done", obj))
            elif kind == "ftrace":
                tramps.pop(obj, None)
                rows.append(_row(r.t_ns, r.cpu, "ftrace", "ops_unregister", obj))
            continue
        if e == "module_free":
            name = r.type
            if name in live_mod:
                live_mod.pop(name)
                rows.append(_row(r.t_ns, r.cpu, "module", "unload", name))
            continue
        if e in names.pokes:
            a = num(r.addr)
            if a is None:  # arm64: a write into the kernel image (no vmalloc_to_page)
                notes["pokes_outside_modules"] += 1
                continue
            handle_poke(r, a, num(r.len))
            continue
        if e in names.bpf_alloc:
            bpf_pending[r.pid] = num(r.size)
            continue
        if e in names.bpf_ret:
            if r.pid in bpf_pending:
                bpf_n += 1
                obj = f"prog{bpf_n}"
                bpf_live[num(r.ret)] = obj
                rows.append(_row(r.t_ns, r.cpu, "bpf", "prog_load", obj, size=bpf_pending.pop(r.pid)))
            continue
        if e in names.bpf_free:
            obj = bpf_live.pop(num(r.addr), None)
            if obj is not None:
                rows.append(_row(r.t_ns, r.cpu, "bpf", "prog_unload", obj))
            continue
        if e == "__get_insn_slot":
            m = re.search(r"insn_size=(\d+)", r.args)
            slot_pending[r.pid] = (r.type, int(m.group(1)) if m else 0, r.context)
            continue
        if e == "__get_insn_slot_ret":
            if r.pid not in slot_pending:
                continue
            sym, size, c = slot_pending.pop(r.pid)
            m = re.match(r"kprobe add (\S+)", c)
            if not m:
                continue
            obj = m.group(1)
            slot = num(r.ret)
            if sym == "kprobe_insn_page" and obj not in kp_live:
                kp_live[obj] = {"slots": [slot]}
                rows.append(_row(r.t_ns, r.cpu, "kprobe", "register", obj, size=size * names.slot_unit))
            elif sym == "kprobe_optinsn_page" and obj in kp_live:
                kp_live[obj]["slots"].append(slot)
                rows.append(_row(r.t_ns, r.cpu, "kprobe", "optimize", obj, size=size * names.slot_unit))
            kp_slots[slot] = obj
            continue
        if e == "__free_insn_slot":
            obj = kp_slots.pop(num(r.addr), None)
            if obj is not None and obj in kp_live:
                kp_live.pop(obj)
                rows.append(_row(r.t_ns, r.cpu, "kprobe", "unregister", obj))
            continue
    out = pd.DataFrame(rows)
    out = out.sort_values("t_ns", kind="stable").reset_index(drop=True)
    out.insert(0, "seq", range(len(out)))
    for c in TRACE_COLUMNS:
        if c not in out:
            out[c] = pd.NA
    out = out[TRACE_COLUMNS]
    for c in TRACE_COLUMNS[6:]:
        out[c] = out[c].astype("Int64")
    notes["live_modules_at_end"] = len(live_mod)
    notes["live_trampolines_at_end"] = len(tramps)
    return out, notes
