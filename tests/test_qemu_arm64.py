"""arm64 guest events -> executable areas, text writes, trace and truth, on hand-made events.

The rules are in workloads/recorders/qemu/arm64.py (reconstruction), build.py (trace) and
truth_arm64.py; every expected value below is worked out from the events by those rules,
in comments, not read off the code's output.
"""

from __future__ import annotations

import pandas as pd

from execbench.trace import from_frame
from execbench.workloads.recorders.qemu import arm64, build, truth_arm64

from test_qemu_build import ev, h

# a 6.1-style module window (module_alloc_base, 128 MiB) far below the kernel text
BASE = 0xFFFF_C000_1000_0000
STEXT, ETEXT = BASE + (1 << 30), BASE + (1 << 30) + (16 << 20)
INSN_PAGE = 0xFFFF_8000_0800_0000
LAYOUT = pd.DataFrame([{"module": "m1", "text": 5000, "rodata": 100, "ro_after_init": 0,
                        "data": 300, "init_text": 50, "init_rodata": 0, "init_data": 700,
                        "align": 64, "relocs": 10, "reloc_secs": 2, "alt_sites": 3,
                        "orc_entries": 0, "mcount_locs": 2, "kallsyms": 100, "init_kallsyms": 600}])
VMI_START = f"{h(INSN_PAGE)}-{h(INSN_PAGE + 0x2000)}    8192 __get_insn_slot+0x124/0x1bc pages=1 vmalloc\n"


def vm(t, size, start, end, ret, pid=10, caller="load_module"):
    args = f"size={size} align=4096 start={h(start)} end={h(end)} vm_flags=0x0 caller={caller}+0x9a8/0x2210"
    return [ev(t, "vmalloc_node_range", pid=pid, size=str(size), args=args, caller=caller),
            ev(t, "vmalloc_node_range_ret", pid=pid, ret=h(ret))]


def write(t, addr, pid=10, cpu=0, comm="x"):
    """patch_map(): vmalloc_to_page(addr) (not for kernel image text), then __set_fixmap."""
    out = [] if addr is None else [ev(t, "vmalloc_to_page", pid=pid, cpu=cpu, addr=h(addr))]
    row = ev(t, "fixmap", pid=pid, cpu=cpu, args="idx=1026 phys=0x4e2da000")
    row["comm"] = comm
    return out + [row]


def events() -> pd.DataFrame:
    core, init = BASE + 0x1000, BASE + 0x7000
    rows = [
        # core: the 128 MiB window is full (NULL), then the 2 GiB fallback window
        ev(100, "module_alloc", size="20480", caller="load_module", context="insmod m1"),
        *vm(101, 20480, BASE, BASE + (128 << 20), 0),
        *vm(102, 20480, BASE, BASE + (2 << 30), core),
        ev(103, "module_alloc", size="8192", caller="load_module"),
        *vm(104, 8192, BASE, BASE + (128 << 20), init),
        # relocation: two branches out of range share one PLT entry, one more entry in init
        ev(105, "module_emit_plt_entry_ret", ret=h(core + 0x1400)),
        ev(105, "module_emit_plt_entry_ret", ret=h(core + 0x1400)),
        ev(105, "module_emit_plt_entry_ret", ret=h(init + 0x40)),
        # ftrace_init_nop(): one write per call site of the coming module (mcount_locs 2)
        *write(106, core + 0x10),
        *write(106, core + 0x80),
        # a jump label of the coming module: its own write, kept as a patch row
        ev(107, "jump_label_transform", args=f"entry={h(core + 0x2000)} code={-0x2000 + 0x20} type=1"),
        *write(107, core + 0x20),
        ev(108, "set_memory_ro", addr=h(core), npages="2"),
        ev(108, "change_memory_common", args=f"start={h(core)} size=8192"),
        ev(108, "change_memory_common", args="start=0xffff000008003000 size=4096"),
        ev(108, "set_memory_ro", addr="0xffff000009000000", npages="1"),
        ev(109, "module_load", type_="m1"),
        # after the load: an ftrace call-site update in the live text, a jump label in the
        # kernel image (no vmalloc_to_page), a kprobe armed under stop_machine
        *write(110, core + 0x84),
        ev(111, "jump_label_transform", pid=11, args=f"entry={h(STEXT + 0x100)} code=-256 type=0"),
        *write(111, None, pid=11),
        *write(112, core + 0x90, pid=12, cpu=1, comm="migration/1"),
        # a kprobe slot in the page that existed before tracing: two writes
        *write(113, INSN_PAGE + 0x10, pid=13),
        *write(113, INSN_PAGE + 0x14, pid=13),
        # a vmalloc_to_page that is not followed by a write (someone else's)
        ev(114, "vmalloc_to_page", pid=14, addr=h(core + 0x3000)),
        ev(115, "module_memfree", pid=5, addr=h(init), caller="do_free_init"),
        ev(115, "vfree", pid=5, addr=h(init), caller="module_memfree"),
    ]
    df = pd.DataFrame(rows)
    df.insert(0, "seq", range(len(df)))
    return df


def test_exec_areas_follow_the_allocator_and_its_fallback():
    areas = arm64.exec_areas(events(), VMI_START)
    # the kprobe page from /proc/vmallocinfo at tracing_on (caller __get_insn_slot), 8192 -
    # the guard page = 4096 mapped; then core (made by the return at seq 4: 0 module_alloc,
    # 1-2 the NULL attempt, 3-4 the fallback) and init (seq 7)
    assert [(a.kind, a.size, a.seq) for a in areas] == [("kprobe", 4096, -1), ("module", 20480, 4),
                                                         ("module", 8192, 7)]
    core, init = areas[1], areas[2]
    # core needed two __vmalloc_node_range calls: 128 MiB (NULL) then 2 GiB
    assert (core.attempts, core.window, init.attempts, init.window) == (2, 2 << 30, 1, 128 << 20)
    assert init.freed_by == "do_free_init" and core.freed_seq is None


def test_text_writes_by_kind():
    e = events()
    tw = arm64.text_writes(e, arm64.exec_areas(e, VMI_START))
    # in order: 2 ftrace_init (pending load, no jump label), 1 jump_label (site = entry +
    # code = core + 0x2000 - 0x2000 + 0x20 = core + 0x20), 1 text (live module), 1 jump_label
    # into the image (no address), 1 kprobe_arm (migration/1), 2 kprobe_slot
    assert tw["kind"].tolist() == ["ftrace_init", "ftrace_init", "jump_label", "text", "jump_label",
                                   "kprobe_arm", "kprobe_slot", "kprobe_slot"]
    assert tw["area"].tolist() == ["module"] * 4 + ["image", "module", "kprobe", "kprobe"]
    assert tw["addr"].iloc[4] is None and tw["addr"].iloc[3] == BASE + 0x1000 + 0x84


def test_trace_keeps_jump_label_and_live_writes_as_patches():
    ev2, areas, _ = arm64.normalize(events(), VMI_START)
    idx = arm64.AreaIndex(areas)
    tr, notes = build.build(ev2, LAYOUT, arch="arm64", exec_pred=lambda a: idx.find(a) is not None)
    from_frame(tr)
    ops = [" ".join(str(v) for v in r) for r in tr[["op", "obj", "offset", "len"]].itertuples(index=False)]
    # load at the first allocation; the coming module's jump label (offset 0x20 = 32) held
    # behind it; the ftrace_init writes are not rows (mcount_locs stands for them); after
    # the load the live write at 0x84 = 132 and the kprobe arming at 0x90 = 144; init_done
    # at the init area's free
    assert ops == ["load m1 <NA> <NA>", "patch m1 32 4", "patch m1 132 4", "patch m1 144 4",
                   "init_done m1 <NA> <NA>"]
    assert notes["pokes_at_load_not_held"] == 2
    assert notes["pokes_outside_modules"] == 1        # the image jump label
    assert notes["pokes_in_init_or_data"] == 2        # the kprobe slot writes
    assert notes["vmalloc_failed_attempts"] == 1      # the full 128 MiB window


def test_truth_rows_by_hand():
    ev2, areas, tw = arm64.normalize(events(), VMI_START)
    vmi_end = f"{h(BASE + 0x1000)}-{h(BASE + 0x7000)}   24576 load_module+0x9a8/0x2210 pages=5 vmalloc\n"
    t = truth_arm64.truth(ev2, areas, tw, vmi_end, (STEXT, ETEXT))
    v = dict(zip(t["metric"], t["value"]))
    assert (v["module_alloc_calls"], v["module_alloc_bytes"]) == (2, 20480 + 8192)
    assert v["module_vmalloc_failed_attempts"] == 1
    assert v["module_areas_after_a_failed_attempt"] == 1
    assert (v["module_areas_window_128m"], v["module_areas_window_2048m"]) == (1, 1)
    # core [BASE+0x1000, BASE+0x6000), kernel text [BASE+1 GiB, +16 MiB): nearest bytes
    # BASE+1GiB - (BASE+0x6000) + 1 > 128 MiB: both areas are out of branch range;
    # farthest: ETEXT - (BASE + 0x1000) = 1 GiB + 16 MiB - 4 KiB -> 1039 MiB (floor)
    assert v["module_areas_out_of_branch_range"] == 2 and v["module_areas_in_branch_range"] == 0
    assert v["module_area_max_distance_mib"] == (1024 + 16) - 1
    # PLT: 3 calls, 2 distinct entries: 1 core, 1 init (the init area is freed by do_free_init)
    assert (v["plt_emit_calls"], v["plt_entries"], v["plt_entries_core"], v["plt_entries_init"]) == (3, 2, 1, 1)
    # set_memory_ro: one on the core area (2 pages), one on the linear map ("outside")
    assert (v["cpa_calls_ro"], v["cpa_pages_ro"], v["cpa_calls_ro_outside"]) == (1, 2, 1)
    # __change_memory_common: one on the area (2 pages), one linear alias (1 page)
    assert (v["change_memory_common_calls"], v["change_memory_common_calls_exec"],
            v["change_memory_common_calls_linear"]) == (2, 1, 1)
    assert (v["change_memory_common_pages_exec"], v["change_memory_common_pages_linear"]) == (2, 1)
    assert v["text_writes"] == 8 and v["text_writes_image"] == 1
    assert (v["text_writes_ftrace_init"], v["text_writes_jump_label"], v["text_writes_text"],
            v["text_writes_kprobe_arm"], v["text_writes_kprobe_slot"]) == (2, 2, 1, 1, 2)
    assert v["text_writes_module_live"] == 1
    assert (v["jump_label_transform_calls"], v["jump_label_transform_calls_exec"]) == (2, 1)
    assert v["vfree_calls"] == 1                      # the init area
    assert (v["vmap_areas"], v["vmap_areas_untraced"]) == (1, 0)


def test_7_2_page_table_walks_of_set_direct_map_are_not_flushes():
    # 7.2 inlines __change_memory_common(); the probe is its page-table walk
    # (walk_kernel_page_table_range_lockless(start, end)), which set_direct_map_*_noflush()
    # make too, without a flush: the walk right after one of them on that pid is theirs
    rows = [ev(1, "set_direct_map_invalid_noflush", pid=5, args="page=0xfffffc0000001000"),
            ev(2, "change_memory_common", pid=5, args="start=0xffff000001000000 end=0xffff000001001000"),
            ev(3, "change_memory_common", pid=6, args="start=0xffff000002000000 end=0xffff000002002000"),
            ev(4, "set_direct_map_default_noflush", pid=5, args="page=0xfffffc0000001000"),
            ev(5, "change_memory_common", pid=5, args="start=0xffff000001000000 end=0xffff000001001000")]
    df = pd.DataFrame(rows)
    df.insert(0, "seq", range(len(df)))
    ev2, areas, tw = arm64.normalize(df)
    v = dict(zip(*truth_arm64.truth(ev2, areas, tw, "", None)[["metric", "value"]].T.values))
    # seq 1 and 4 are set_direct_map_* on pid 5, so seq 2 and 5 are theirs; seq 3 (pid 6,
    # 2 pages on the linear map) is a __change_memory_common()
    assert v["direct_map_walks"] == 2
    assert (v["change_memory_common_calls"], v["change_memory_common_pages_linear"]) == (1, 2)
