"""Ground truth of an arm64 recording: what the real kernel did, per primitive.

Same shape as :mod:`.truth` (``metric,value,scope`` rows, fixed order) and the same
metric names where the meaning is the same on both architectures (``module_alloc_calls``,
``cpa_calls_ro``, ``vfree_calls``, ``insn_slots_kprobe_insn_page`` ...).  What differs:

* "executable" is not an address range on arm64 (the module window lies inside the
  vmalloc area and BPF/kprobe memory uses all of it) but the set of areas made under an
  executable allocator (:func:`.arm64.exec_areas`); ``_outside`` rows count calls on
  anything else.
* arm64-only rows: where module areas landed (window, attempts, distance to kernel text),
  PLT entries emitted at relocation, ``__change_memory_common()`` calls (one
  ``flush_tlb_kernel_range()`` each; linear-map aliases apart), text writes through the
  fixmap by kind (:func:`.arm64.text_writes`).

docs/arm64.md §12 lists which row a model counter is compared with.
"""

from __future__ import annotations

import pandas as pd

from . import arm64
from .arm64 import BRANCH_RANGE, LINEAR_END, PAGE, Area, AreaIndex
from .parse import num, records
from .truth import _n, alloc_entry_rows

CPA_KINDS = ("ro", "rw", "x", "nx")
WRITE_KINDS = ("ftrace_init", "jump_label", "text", "kprobe_arm", "kprobe_slot", "bpf")


def _distance(lo: int, hi: int, text: tuple[int, int]) -> tuple[int, int]:
    """(smallest, largest) distance in bytes between any byte of [lo, hi) and of kernel text."""
    s, e = text
    if hi <= s:
        return s - hi + 1, e - lo
    if lo >= e:
        return lo - e + 1, hi - s
    return 0, max(e - lo, hi - s)


def truth(ev: pd.DataFrame, areas: list[Area], writes: pd.DataFrame, vmallocinfo: str,
          kernel_text: tuple[int, int] | None) -> pd.DataFrame:
    """Rows ``metric,value,scope`` (deterministic order).

    ``ev`` is the normalized event table, ``areas``/``writes`` come from
    :func:`.arm64.normalize`, ``vmallocinfo`` is the executable part of the final
    ``/proc/vmallocinfo`` (``guest/vmallocinfo_exec.txt``), ``kernel_text`` is
    ``(_stext, _etext)`` of the guest.
    """
    rows: list[tuple[str, int, str]] = []

    def add(metric: str, value: int, scope: str) -> None:
        rows.append((metric, int(value), scope))

    def sel(name: str) -> pd.DataFrame:
        return ev[ev.event == name]

    idx = AreaIndex(areas)
    traced = [a for a in areas if a.seq >= 0]

    # -- allocation entry points (x86 names)
    alloc_entry_rows(sel, add, "caller (link register at entry)")
    rw = sel("execmem_alloc_rw")
    if len(rw):
        add("execmem_alloc_rw_calls", len(rw), "all calls")
    for fn in ("module_memfree", "execmem_free"):
        d = sel(fn)
        if len(d):
            add(f"{fn}_calls", len(d), "all calls (NULL included)")
            add(f"{fn}_calls_nonnull", sum(1 for a in _n(d["addr"]) if a), "non-NULL address")

    # -- executable areas made while tracing
    for kind in sorted({a.kind for a in traced}):
        ka = [a for a in traced if a.kind == kind]
        add(f"exec_areas_{kind}", len(ka), "vmalloc areas made under an executable allocator")
        add(f"exec_area_bytes_{kind}", sum(a.size for a in ka), "PAGE_ALIGN(size), no guard page")
    mod = [a for a in traced if a.kind in ("module", "module_data") or a.owner == "load_module"]
    add("module_vmalloc_failed_attempts", sum(a.attempts - 1 for a in mod),
        "__vmalloc_node_range returning NULL before a module area was made (full window)")
    add("module_areas_after_a_failed_attempt", sum(1 for a in mod if a.attempts > 1),
        "module areas made in a later (fallback) window")
    for w in sorted({a.window for a in mod}):
        add(f"module_areas_window_{w >> 20}m", sum(1 for a in mod if a.window == w),
            "module areas by end - start of the window they were made in")
    if mod:
        add("module_window_starts", len({a.start for a in mod}),
            "distinct start arguments (6.1: module_alloc_base; v6.5+: module_plt_base)")
    if kernel_text is not None and mod:
        starts = sorted({a.start for a in mod})
        add("module_window_start_from_stext_mib", (starts[0] - kernel_text[0]) >> 20,
            "lowest window start minus _stext, MiB (negative: below the kernel)")
        add("kernel_text_mib", (kernel_text[1] - kernel_text[0]) >> 20, "_etext - _stext, MiB")
        d = [_distance(a.lo, a.lo + a.size, kernel_text) for a in mod]
        add("module_areas_in_branch_range", sum(1 for lo, hi in d if hi < BRANCH_RANGE),
            "every byte within +-128 MiB of every byte of [_stext, _etext)")
        add("module_areas_out_of_branch_range", sum(1 for lo, hi in d if lo >= BRANCH_RANGE),
            "no byte within +-128 MiB of any byte of [_stext, _etext)")
        add("module_areas_partly_in_branch_range",
            sum(1 for lo, hi in d if lo < BRANCH_RANGE <= hi), "the rest")
        add("module_area_min_distance_mib", min(lo for lo, _ in d) >> 20, "to kernel text")
        add("module_area_max_distance_mib", max(hi for _, hi in d) >> 20, "to kernel text")

    # -- PLT entries written by apply_relocate_add() (plain stores into the RW module)
    rets = sel("module_emit_plt_entry_ret")
    add("plt_emit_calls", len(rets), "module_emit_plt_entry(): branch relocations out of range")
    seg: dict[int, int] = {}
    seen: set[tuple[int, int, int]] = set()
    core = init = 0
    for r in records(ev, {"module_emit_plt_entry_ret", "module_load"}):
        if r.event == "module_load":
            seg[r.pid] = seg.get(r.pid, 0) + 1
            continue
        a = num(r.ret)
        key = (r.pid, seg.get(r.pid, 0), a)
        if a and key not in seen:
            seen.add(key)
            area = idx.find(a, int(r.seq))
            if area is not None and area.freed_by == "do_free_init":
                init += 1
            else:
                core += 1
    add("plt_entries", core + init, "distinct PLT entries returned per module load")
    add("plt_entries_core", core, "in a core area")
    add("plt_entries_init", init, "in an init area (freed by do_free_init)")
    add("plt_emit_null", sum(1 for a in _n(rets["ret"]) if not a), "returned 0 (more entries than counted)")

    # -- permissions
    tot_c = tot_p = 0
    for k in CPA_KINDS:
        d = sel(f"set_memory_{k}")
        ex = [(a, p) for a, p, s in zip(_n(d["addr"]), _n(d["npages"]), d["seq"])
              if idx.find(a, int(s)) is not None]
        add(f"cpa_calls_{k}", len(ex), "set_memory_* on an executable area")
        add(f"cpa_pages_{k}", sum(p for _, p in ex), "numpages argument")
        add(f"cpa_calls_{k}_zero_pages", sum(1 for _, p in ex if p == 0), "numpages == 0")
        add(f"cpa_calls_{k}_outside", len(d) - len(ex), "on anything else")
        tot_c += len(ex)
        tot_p += sum(p for _, p in ex)
    add("cpa_calls", tot_c, "sum over ro, rw, x, nx")
    add("cpa_pages", tot_p, "sum over ro, rw, x, nx")
    add("set_memory_valid_calls", len(sel("set_memory_valid")), "all calls")
    cm = sel("change_memory_common")
    # 7.2: set_direct_map_{invalid,default}_noflush() walk the page table through the same
    # update_range_prot() but do not flush: the walk right after one of them on that pid
    # is theirs, not a __change_memory_common()
    last: dict[int, str] = {}
    theirs: set[int] = set()
    for r in records(ev, {"change_memory_common", "set_direct_map_invalid_noflush",
                          "set_direct_map_default_noflush", "set_direct_map_valid_noflush"}):
        if r.event == "change_memory_common":
            if "end=" in r.args and last.get(r.pid, "").startswith("set_direct_map"):
                theirs.add(int(r.seq))
            last[r.pid] = r.event
        else:
            last[r.pid] = r.event
    add("direct_map_walks", len(theirs), "7.2: page-table walks of set_direct_map_*_noflush (no flush)")
    cm = cm[~cm["seq"].astype(int).isin(theirs)]
    kv = [arm64._kv(a) for a in cm["args"]]
    starts = [num(k["start"]) for k in kv]
    # __change_memory_common(start, size) (6.1, 6.12) or, where it is inlined (7.2), the
    # page-table walk inside it (start, end)
    sizes = [num(k["size"]) if "size" in k else num(k["end"]) - num(k["start"]) for k in kv]
    lin = [(a, s) for a, s in zip(starts, sizes) if a < LINEAR_END]
    exe = [(a, s) for a, s, q in zip(starts, sizes, cm["seq"]) if a >= LINEAR_END
           and idx.find(a, int(q)) is not None]
    add("change_memory_common_calls", len(cm), "__change_memory_common(): one flush_tlb_kernel_range each")
    add("change_memory_common_calls_linear", len(lin), "on the linear map (rodata_full aliases)")
    add("change_memory_common_calls_exec", len(exe), "on an executable area")
    add("change_memory_common_pages", sum(s for s in sizes) // PAGE, "size / 4096")
    add("change_memory_common_pages_linear", sum(s for _, s in lin) // PAGE, "size / 4096")
    add("change_memory_common_pages_exec", sum(s for _, s in exe) // PAGE, "size / 4096")
    add("vm_unmap_aliases_calls", len(sel("vm_unmap_aliases")), "all calls")
    add("set_direct_map_invalid_noflush", len(sel("set_direct_map_invalid_noflush")),
        "one per page, vm_reset_perms() of VM_FLUSH_RESET_PERMS frees")
    add("set_direct_map_default_noflush", len(sel("set_direct_map_default_noflush")), "one per page")
    vf = sel("vfree")
    add("vfree_calls", sum(1 for a, s in zip(_n(vf["addr"]), vf["seq"]) if idx.find(a, int(s)) is not None),
        "vfree of an executable area")

    # -- text writes through the fixmap
    add("text_writes", len(writes), "patch_map() + __set_fixmap(FIX_TEXT_POKE0): one per write")
    add("text_writes_image", int(writes["area"].eq("image").sum()), "kernel image text")
    for k in WRITE_KINDS:
        add(f"text_writes_{k}", int(writes["kind"].eq(k).sum()), "by kind (arm64.text_writes)")
    live = writes[writes["kind"].eq("text") & writes["area"].isin(["module", "module_data"])]
    add("text_writes_module_live", len(live), "kind text into a live module (ftrace call sites)")
    jl = sel("jump_label_transform")
    sites = [num(k["entry"]) + int(k["code"]) for k in (arm64._kv(a) for a in jl["args"])]
    add("jump_label_transform_calls", len(jl), "arch_jump_label_transform_queue()")
    add("jump_label_transform_calls_exec", sum(1 for a, s in zip(sites, jl["seq"])
                                               if idx.find(a, int(s)) is not None), "site in an executable area")
    al = sel("apply_alternatives_module")
    add("apply_alternatives_module_calls", len(al), "module_finalize(): plain stores, no fixmap")
    add("apply_alternatives_module_bytes", sum(_n(al["len"])), ".altinstructions bytes (12 per entry)")
    for fn in ("bpf_arch_text_copy", "bpf_arch_text_invalidate"):
        d = sel(fn)
        add(f"{fn}_calls", len(d), "v6.9+: aarch64_insn_copy()/_set()")
        add(f"{fn}_bytes", sum(_n(d["len"])), "sum of len")

    # -- BPF
    for fn, what in (("bpf_jit_binary_alloc", "proglen argument"), ("bpf_jit_alloc_exec", "size argument"),
                     ("bpf_jit_binary_pack_alloc", "proglen argument"), ("bpf_prog_pack_alloc", "size argument")):
        d = sel(fn)
        add(f"{fn}_calls", len(d), "all calls")
        add(f"{fn}_bytes", sum(_n(d["size"])), what)
    add("bpf_jit_free_exec_calls", len(sel("bpf_jit_free_exec")), "all calls")
    add("bpf_prog_pack_free_calls", len(sel("bpf_prog_pack_free")), "chunk frees")

    # -- kprobes
    add("insn_pages_new", len(sel("alloc_insn_page")), "alloc_insn_page calls")
    for sym, g in sorted(sel("__get_insn_slot").groupby("type")):
        add(f"insn_slots_{sym}", len(g), "__get_insn_slot on this cache")
    add("insn_slot_frees", len(sel("__free_insn_slot")), "__free_insn_slot calls")

    # -- modules
    add("module_load_events", len(sel("module_load")), "module:module_load tracepoint")
    add("module_free_events", len(sel("module_free")), "module:module_free tracepoint")

    # -- /proc/vmallocinfo at the end
    end = arm64.vmallocinfo_areas(vmallocinfo)
    add("vmap_areas", len(end), "executable areas in /proc/vmallocinfo at the end")
    for caller, n in sorted(end["caller"].value_counts().items()):
        add(f"vmap_areas_{caller}", n, "by caller in /proc/vmallocinfo")
    add("vmap_area_bytes", int(end["size"].sum()), "sizes in /proc/vmallocinfo (include the guard page)")
    old = end[~end["lo"].isin({a.lo for a in traced})]
    add("vmap_areas_untraced", len(old), "made before tracing (or by no traced allocation)")
    return pd.DataFrame(rows, columns=["metric", "value", "scope"])
