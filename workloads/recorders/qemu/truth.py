"""Ground truth: what the real kernel did with executable memory, counted per primitive.

Why these rows: each one is a counter the simulated kernel also keeps
(``res.counters`` of ``execbench.replay.run``) under the same name, so that
``execbench.validation`` can put them side by side.  Rows the simulator has no
counter for (per-caller splits, ``__text_poke`` inside module text, ...) are
kept because they explain the differences.

Scope: events between ``tracing_on`` in ``/init`` and the end of the workload,
addresses inside the module range ``[EXEC_LO, EXEC_HI)`` unless the row says
otherwise.  ``vmap_areas`` comes from ``/proc/vmallocinfo`` at the end, so it
*includes* areas made before ``/init`` (boot-time BPF pack, kprobe-ftrace
trampoline, on 7.2 the first ROX-cache block, ...) that no traced event created;
``vmap_areas_untraced*`` are those (start address not returned by any traced
``__vmalloc_node_range``), by kind.  On 7.2 the caller vmallocinfo prints for an
area made by ``execmem_alloc()`` while its return probe (a kretprobe) was armed is
``arch_rethook_trampoline``: the kretprobe replaces the return address that
``execmem_vmalloc()`` (inlined) passes as the caller.  ``direct_map_*`` rows are the
change of ``/proc/vmstat`` between ``tracing_on`` and the end (recordings made since
the guest dumps it); ``direct_map_2m_regions_*`` / ``direct_map_pages_changed_*``
say which calls changed which 2 MiB direct-map regions (:mod:`.dmap`, recordings
made with the ``cpa_set_clr`` probe).
"""

from __future__ import annotations

import re

import pandas as pd

from . import dmap
from .build import EXEC_HI, EXEC_LO, in_exec
from .parse import num

CPA_KINDS = ("ro", "rw", "x", "nx", "rox")
#: execmem_type values (include/linux/execmem.h, v6.10+)
EXECMEM_TYPES = {0: "module_text", 1: "kprobes", 2: "ftrace", 3: "bpf", 4: "module_data"}


def _n(series) -> list[int]:
    return [num(v) for v in series]


def alloc_entry_rows(sel, add, caller_scope: str) -> None:
    """Rows of the allocation entry points ``module_alloc`` and
    ``execmem_alloc`` (calls, bytes, per caller, per execmem type); the same
    probes on x86-64 and arm64, only what ``caller`` means differs."""
    for fn in ("module_alloc", "execmem_alloc"):
        d = sel(fn)
        if len(d):
            add(f"{fn}_calls", len(d), "all calls")
            add(f"{fn}_bytes", sum(_n(d["size"])), "sum of size argument")
            for caller, g in sorted(d.groupby(d["caller"].replace("", "?"))):
                add(f"{fn}_calls_from_{caller}", len(g), caller_scope)
            if fn == "execmem_alloc":
                for t, g in sorted(d.groupby(d["type"])):
                    name = EXECMEM_TYPES.get(int(t), t) if str(t).lstrip("-").isdigit() else t
                    add(f"execmem_alloc_calls_{name}", len(g), "type argument")
                    add(f"execmem_alloc_bytes_{name}", sum(_n(g["size"])), "type argument")


def truth(ev: pd.DataFrame, vmallocinfo: str, vmstat: str | None = None) -> pd.DataFrame:
    """Rows ``metric,value,scope`` in a fixed order (deterministic output)."""
    rows: list[tuple[str, int, str]] = []

    def add(metric: str, value: int, scope: str) -> None:
        rows.append((metric, int(value), scope))

    def sel(name: str) -> pd.DataFrame:
        return ev[ev.event == name]

    alloc_entry_rows(sel, add, "owner frame of the stack")
    v = sel("vmalloc_node_range")
    add("vmalloc_calls", len(v), "__vmalloc_node_range with start in the module range")
    add("vmalloc_bytes", sum(_n(v["size"])), "size argument (before PAGE_ALIGN)")
    add("vmalloc_pages", sum(-(-s // 4096) for s in _n(v["size"])), "PAGE_ALIGN(size)/4096")
    add("vmalloc_bytes_page_aligned", 4096 * sum(-(-s // 4096) for s in _n(v["size"])),
        "sum of PAGE_ALIGN(size): what __vmalloc_node_range maps")
    vf = sel("vfree")
    vf = vf[[in_exec(a) for a in _n(vf["addr"])]]
    add("vfree_calls", len(vf), "vfree of a module-range address")
    for fn in ("module_memfree", "execmem_free"):
        d = sel(fn)
        if len(d):
            add(f"{fn}_calls", len(d), "all calls (NULL included)")
            add(f"{fn}_calls_nonnull", sum(1 for a in _n(d["addr"]) if a), "non-NULL address")
    # permissions
    tot_c = tot_p = 0
    for k in CPA_KINDS:
        d = sel(f"set_memory_{k}")
        addrs = _n(d["addr"])
        pages = _n(d["npages"])
        ex = [(a, p) for a, p in zip(addrs, pages) if in_exec(a)]
        add(f"cpa_calls_{k}", len(ex), "set_memory_* on a module-range address")
        add(f"cpa_pages_{k}", sum(p for _, p in ex), "numpages argument")
        add(f"cpa_calls_{k}_zero_pages", sum(1 for _, p in ex if p == 0), "numpages == 0 (no-op)")
        add(f"cpa_calls_{k}_outside", len(addrs) - len(ex), "outside the module range")
        tot_c += len(ex)
        tot_p += sum(p for _, p in ex)
    add("cpa_calls", tot_c, "sum over ro, rw, x, nx, rox")
    add("cpa_pages", tot_p, "sum over ro, rw, x, nx, rox")
    add("set_direct_map_invalid_noflush", len(sel("set_direct_map_invalid_noflush")),
        "one per page, VM_FLUSH_RESET_PERMS frees (vm_reset_perms)")
    # text patching
    tp = sel("__text_poke")
    lens = _n(tp["len"])
    add("text_pokes", len(tp), "__text_poke calls, any address")
    add("text_poke_bytes", sum(lens), "sum of len")
    tpe = [(a, l) for a, l in zip(_n(tp["addr"]), lens) if in_exec(a)]
    add("text_pokes_module_range", len(tpe), "__text_poke into the module range")
    add("text_poke_bytes_module_range", sum(l for _, l in tpe), "sum of len")
    for fn in ("text_poke_bp", "text_poke_queue", "text_poke", "text_poke_copy", "text_poke_set"):
        d = sel(fn)
        ex = [a for a in _n(d["addr"]) if in_exec(a)]
        add(f"{fn}_calls", len(d), "any address")
        add(f"{fn}_calls_module_range", len(ex), "address in the module range")
        if fn in ("text_poke_copy", "text_poke_set"):
            add(f"{fn}_bytes", sum(_n(d["len"])), "sum of len")
    add("text_poke_bp_batch", len(sel("text_poke_bp_batch")), "batches (one sync sequence each)")
    add("text_poke_bp_batch_sites", sum(_n(sel("text_poke_bp_batch")["len"])), "nr_entries summed")
    _rows_7_2(ev, sel, add)
    # BPF
    pa = sel("bpf_prog_pack_alloc")
    add("bpf_prog_pack_alloc_calls", len(pa), "chunk requests")
    add("bpf_prog_pack_alloc_bytes", sum(_n(pa["size"])), "size argument")
    ma = ev[(ev.event.isin(["module_alloc", "execmem_alloc"])) & (ev.caller.isin(["bpf_prog_pack_alloc", "bpf_jit_alloc_exec"]))]
    add("bpf_prog_pack_new", len(ma), "2 MiB packs allocated (module_alloc from bpf_prog_pack_alloc)")
    add("bpf_prog_pack_free_calls", len(sel("bpf_prog_pack_free")), "chunk frees")
    add("bpf_jit_binary_pack_alloc_calls", len(sel("bpf_jit_binary_pack_alloc")), "JIT images")
    add("bpf_jit_binary_pack_alloc_bytes", sum(_n(sel("bpf_jit_binary_pack_alloc")["size"])),
        "proglen argument")
    # kprobes
    add("insn_pages_new", len(sel("alloc_insn_page")), "alloc_insn_page calls")
    pages = [num(a) for a in sel("alloc_insn_page_ret")["ret"] if num(a)]
    slot_pokes = [(a, ln) for a, ln in zip(_n(sel("text_poke")["addr"]), _n(sel("text_poke")["len"]))
                  if any(p <= a < p + 4096 for p in pages)]
    add("text_poke_calls_insn_pages", len(slot_pokes), "text_poke into a page alloc_insn_page returned")
    add("text_poke_bytes_insn_pages", sum(ln for _, ln in slot_pokes), "sum of len")
    gs = sel("__get_insn_slot")
    for sym, g in sorted(gs.groupby("type")):
        add(f"insn_slots_{sym}", len(g), "__get_insn_slot on this cache")
    add("insn_slot_frees", len(sel("__free_insn_slot")), "__free_insn_slot calls")
    # modules
    add("module_load_events", len(sel("module_load")), "module:module_load tracepoint")
    add("module_free_events", len(sel("module_free")), "module:module_free tracepoint")
    # vmallocinfo at the end
    areas = exec_areas(vmallocinfo)
    add("vmap_areas", len(areas), "/proc/vmallocinfo areas in the module range at the end")
    for caller, n in sorted(areas["caller"].value_counts().items()):
        add(f"vmap_areas_{caller}", n, "by caller in /proc/vmallocinfo")
    add("vmap_area_bytes", int(areas["size"].sum()), "sizes in /proc/vmallocinfo (include the guard page)")
    traced = {num(a) for a in sel("vmalloc_node_range_ret")["ret"]}
    old = areas[~areas["lo"].isin(traced)]
    add("vmap_areas_untraced", len(old), "areas at the end that no traced __vmalloc_node_range returned")
    add("vmap_area_bytes_untraced", int(old["size"].sum()), "their sizes (with the guard page)")
    for kind, n in sorted(old.apply(_untraced_kind, axis=1).value_counts().items()):
        add(f"vmap_areas_untraced_{kind}", n, "by kind (caller; 2 MiB execmem_alloc areas: ROX-cache blocks)")
    if vmstat is not None:
        for key, n in vmstat_delta(vmstat).items():
            add(key, n, "/proc/vmstat at the end minus at tracing_on")
    dm = dmap.changes(ev)
    if dm is not None:
        for metric, n, scope in dm.rows():
            add(metric, n, scope)
    return pd.DataFrame(rows, columns=["metric", "value", "scope"])


#: an execmem ROX-cache block in vmallocinfo: 2 MiB mapped + the guard page
CACHE_BLOCK_AREA = 2 * 1024 * 1024 + 4096


def _untraced_kind(a: pd.Series) -> str:
    if a["caller"] == "execmem_alloc" and a["size"] == CACHE_BLOCK_AREA:
        return "execmem_cache_block"
    return a["caller"]


#: /proc/vmstat counters of the direct map (arch/x86/mm/pat/set_memory.c
#: split_page_count()/collapse_page_count(); only direct-map addresses are counted)
VMSTAT_KEYS = ("direct_map_level2_splits", "direct_map_level3_splits",
               "direct_map_level2_collapses", "direct_map_level3_collapses")


def vmstat_delta(text: str) -> dict[str, int]:
    """``start <key> <n>`` / ``end <key> <n>`` lines (guest/vmstat.txt) -> end - start.

    A kernel without a key (``*_collapses`` are v6.15+) has no row for it."""
    seen: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("start", "end") and parts[2].isdigit():
            seen[(parts[0], parts[1])] = int(parts[2])
    return {k: seen[("end", k)] - seen[("start", k)] for k in VMSTAT_KEYS
            if ("end", k) in seen and ("start", k) in seen}


#: include/linux/vmalloc.h (v6.13+): the ROX cache maps its blocks with
#: VM_ALLOW_HUGE_VMAP (mm/execmem.c execmem_cache_populate_alloc)
VM_ALLOW_HUGE_VMAP = 0x400


def _rows_7_2(ev: pd.DataFrame, sel, add) -> None:
    """Rows of the 7.2 entry points; written only when the kernel has them
    (``execmem_alloc_rw`` probed), so older recordings' tables are unchanged.

    * ``execmem_alloc_rw`` = ``execmem_alloc`` + ``execmem_force_rw``
      (``set_memory_nx`` + ``set_memory_rw``), mm/execmem.c (7.2).
    * ``execmem_cache_blocks``: ``__vmalloc_node_range`` calls with
      ``VM_ALLOW_HUGE_VMAP`` -- ``execmem_cache_populate_alloc()`` maps one
      ``round_up(size, PMD_SIZE)`` block per cache refill.
    * ``smp_text_poke_single`` / ``smp_text_poke_batch_finish``
      (arch/x86/kernel/alternative.c, 7.2; v6.16 rename of ``text_poke_bp`` /
      ``text_poke_finish``).  ``text_poke_queue`` rows count
      ``smp_text_poke_batch_add``, which ``smp_text_poke_single`` calls too.
    * ``set_direct_map_valid_noflush(page, nr, valid)``: calls and pages.
    """
    rw = sel("execmem_alloc_rw")
    if not len(rw):
        return
    add("execmem_alloc_rw_calls", len(rw), "all calls")
    for t, g in sorted(rw.groupby(rw["type"])):
        name = EXECMEM_TYPES.get(int(t), t) if str(t).lstrip("-").isdigit() else t
        add(f"execmem_alloc_rw_calls_{name}", len(g), "type argument")
    add("execmem_restore_rox_calls", len(sel("execmem_restore_rox")), "all calls")
    v = sel("vmalloc_node_range")
    flags = [num(m) if m else 0 for m in v["args"].str.extract(r"vm_flags=(\S+)")[0].fillna("")]
    sizes = _n(v["size"])
    blocks = [s for s, f in zip(sizes, flags) if f & VM_ALLOW_HUGE_VMAP]
    add("execmem_cache_blocks", len(blocks), "__vmalloc_node_range with VM_ALLOW_HUGE_VMAP")
    add("execmem_cache_block_bytes", sum(blocks), "their sizes")
    s = sel("smp_text_poke_single")
    add("smp_text_poke_single_calls", len(s), "any address")
    add("smp_text_poke_single_calls_module_range", sum(1 for a in _n(s["addr"]) if in_exec(a)),
        "address in the module range")
    add("smp_text_poke_batch_finish_calls", len(sel("smp_text_poke_batch_finish")),
        "calls (one per single, one per batch; empty batches return early)")
    d = sel("set_direct_map_valid_noflush")
    nr = [num(m) or 0 for m in d["args"].str.extract(r"nr=(\S+)")[0].fillna("0")]
    add("set_direct_map_valid_noflush_calls", len(d), "all calls")
    add("set_direct_map_valid_noflush_pages", sum(nr), "nr argument")


_VMI = re.compile(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+(\d+)\s+(\S+)")


def exec_areas(vmallocinfo: str) -> pd.DataFrame:
    """Areas of ``/proc/vmallocinfo`` inside the module range: lo, hi, size, caller."""
    out = []
    for line in vmallocinfo.splitlines():
        m = _VMI.match(line)
        if not m:
            continue
        lo = int(m.group(1), 16)
        if EXEC_LO <= lo < EXEC_HI:
            out.append((lo, int(m.group(2), 16), int(m.group(3)), m.group(4).split("+")[0]))
    return pd.DataFrame(out, columns=["lo", "hi", "size", "caller"])
