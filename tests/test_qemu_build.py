"""Guest events -> workload trace, on a hand-made event list (rules in recorders/qemu/build.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from execbench.trace import from_frame
from execbench.workloads.recorders.qemu import build, parse, truth

BASE = 0xFFFFFFFFC0000000


def ev(t, event, pid=10, cpu=0, addr="", size="", len_="", ret="", type_="", args="",
       context="", caller="", npages=""):
    return {"t_ns": t, "cpu": cpu, "pid": pid, "comm": "x", "event": event, "site": "",
            "addr": addr, "size": size, "npages": npages, "len": len_, "ret": ret,
            "type": type_, "args": args, "context": context, "caller": caller, "stack": ""}


def h(a: int) -> str:
    return f"{a:#x}"


LAYOUT = pd.DataFrame([{"module": "m1", "text": 5000, "rodata": 100, "ro_after_init": 0,
                        "data": 300, "init_text": 50, "init_rodata": 0, "init_data": 700,
                        "align": 16, "relocs": 10, "reloc_secs": 2, "alt_sites": 3,
                        "orc_entries": 4, "mcount_locs": 5}])


def events() -> pd.DataFrame:
    core, init = BASE + 0x1000, BASE + 0x6000
    rows = [
        ev(100, "module_alloc", size="16384", caller="load_module", context="insmod m1"),
        ev(101, "vmalloc_node_range_ret", ret=h(core)),
        ev(102, "module_alloc", size="8192", caller="load_module"),
        ev(103, "vmalloc_node_range_ret", ret=h(init)),
        # jump label of the coming module: before module:module_load, offset 0x10
        ev(104, "text_poke_bp", addr=h(core + 0x10), len_="5"),
        ev(105, "module_load", type_="m1"),
        # last 5 bytes of the 5000-byte text: offset 4995, 4995 + 5 = 5000 <= text
        ev(106, "text_poke_queue", addr=h(core + 4995), len_="5"),
        # core page but past the text (rodata): not a text patch
        ev(106, "text_poke", addr=h(core + 5000), len_="1"),
        # a failed load on another pid: allocated, freed by load_module, never named
        ev(107, "module_alloc", pid=11, size="4096", caller="load_module"),
        ev(107, "vmalloc_node_range_ret", pid=11, ret=h(BASE + 0x10000)),
        ev(107, "module_memfree", pid=11, addr=h(BASE + 0x10000), caller="load_module"),
        ev(108, "module_memfree", pid=5, addr=h(init), caller="do_free_init"),
        # ftrace instance: trampoline of 207 bytes, one update poke, freed
        ev(110, "module_alloc", pid=1, size="207", caller="arch_ftrace_update_trampoline",
           context="ftrace ft1 register"),
        ev(111, "vmalloc_node_range_ret", pid=1, ret=h(BASE + 0x20000)),
        ev(112, "text_poke_bp", pid=1, addr=h(BASE + 0x20010), len_="5", context="ftrace ft1 update"),
        ev(113, "module_memfree", pid=1, addr=h(BASE + 0x20000), caller="arch_ftrace_trampoline_free"),
        # BPF: JIT image of 300 bytes in a pack chunk, then freed
        ev(120, "bpf_jit_binary_pack_alloc", pid=20, size="300"),
        ev(121, "bpf_prog_pack_alloc_ret", pid=20, ret=h(BASE + 0x400040)),
        ev(122, "bpf_prog_pack_free", pid=20, addr=h(BASE + 0x400040), size="384"),
        # kprobe: an insn slot (16 B) and an optinsn slot (120 B), both freed
        ev(130, "__get_insn_slot", pid=1, type_="kprobe_insn_page", args="insn_size=16",
           context="kprobe add kp1 f"),
        ev(131, "__get_insn_slot_ret", pid=1, ret=h(BASE + 0x30000), context="kprobe add kp1 f"),
        ev(132, "__get_insn_slot", pid=1, type_="kprobe_optinsn_page", args="insn_size=120",
           context="kprobe add kp1 f"),
        ev(133, "__get_insn_slot_ret", pid=1, ret=h(BASE + 0x31000), context="kprobe add kp1 f"),
        ev(140, "__free_insn_slot", pid=1, addr=h(BASE + 0x30000)),
        ev(141, "__free_insn_slot", pid=1, addr=h(BASE + 0x31000)),
        ev(150, "module_free", pid=12, type_="m1"),
    ]
    df = pd.DataFrame(rows)
    df.insert(0, "seq", range(len(df)))
    return df


def test_build_attributes_every_user():
    tr, notes = build.build(events(), LAYOUT)
    got = [(r.t_ns, r.user, r.op, r.obj) for r in tr.itertuples()]
    assert got == [
        (100, "module", "load", "m1"),          # placed at its first allocation
        (104, "module", "patch", "m1"),
        (106, "module", "patch", "m1"),
        (108, "module", "init_done", "m1"),
        (110, "ftrace", "ops_register", "ft1"),
        (112, "ftrace", "ops_update", "ft1"),
        (113, "ftrace", "ops_unregister", "ft1"),
        (121, "bpf", "prog_load", "prog1"),
        (122, "bpf", "prog_unload", "prog1"),
        (131, "kprobe", "register", "kp1"),
        (133, "kprobe", "optimize", "kp1"),
        (140, "kprobe", "unregister", "kp1"),
        (150, "module", "unload", "m1"),
    ]
    load = tr.iloc[0]
    assert (load["text"], load["init_data"], load["align"], load["relocs"], load["mcount_locs"]) == (5000, 700, 16, 10, 5)
    assert (tr.iloc[1]["offset"], tr.iloc[1]["len"]) == (0x10, 5)
    assert (tr.iloc[2]["offset"], tr.iloc[2]["len"]) == (4995, 5)
    assert tr.iloc[4]["size"] == 207 and tr.iloc[7]["size"] == 300
    assert tr.iloc[9]["size"] == 16 and tr.iloc[10]["size"] == 120
    assert notes["failed_load_allocs"] == 1
    assert notes["pokes_in_init_or_data"] == 1
    assert notes["pokes_in_module_text"] == 2
    from_frame(tr, "hand")  # the schema accepts it


def test_build_rejects_a_poke_crossing_the_text_end():
    df = events()
    # offset 4998 + len 5 = 5003 > 5000 bytes of text
    df.loc[df.event == "text_poke_queue", "addr"] = h(BASE + 0x1000 + 4998)
    with pytest.raises(build.BuildError, match="crosses the end of m1's text"):
        build.build(df, LAYOUT)


def test_build_needs_a_layout_for_every_loaded_module():
    with pytest.raises(build.BuildError, match="no .ko layout for loaded module 'm1'"):
        build.build(events(), LAYOUT.assign(module="other"))


def test_truth_counts_by_hand():
    df = events()
    extra = pd.DataFrame([
        ev(200, "set_memory_ro", addr=h(BASE + 0x1000), npages="2"),
        ev(201, "set_memory_ro", addr=h(BASE + 0x3000), npages="0"),
        ev(202, "set_memory_nx", addr="0xffff888000000000", npages="4"),  # direct map: outside
        ev(203, "__text_poke", addr=h(BASE + 0x1010), len_="1"),
        ev(204, "__text_poke", addr=h(BASE + 0x1011), len_="4"),
        ev(205, "__text_poke", addr="0xffffffff81000000", len_="1"),  # vmlinux text
        ev(206, "vmalloc_node_range", size="5000"),
    ])
    extra.insert(0, "seq", range(100, 100 + len(extra)))
    df = pd.concat([df, extra], ignore_index=True)
    vmi = ("0xffffffffc0001000-0xffffffffc0006000   20480 load_module+0x1/0x2 pages=4 vmalloc\n"
           "0xffffffffc0400000-0xffffffffc0601000 2101248 bpf_prog_pack_alloc+0x1/0x2 pages=512 vmalloc\n"
           "0xffffc90000000000-0xffffc90000002000    8192 irq_init+0x1/0x2 vmap\n")
    t = truth.truth(df, vmi).set_index("metric")["value"]
    assert t["module_alloc_calls"] == 4                 # 16384, 8192, 4096, 207
    assert t["module_alloc_bytes"] == 16384 + 8192 + 4096 + 207
    assert t["module_alloc_calls_from_load_module"] == 3
    assert t["cpa_calls_ro"] == 2 and t["cpa_pages_ro"] == 2 and t["cpa_calls_ro_zero_pages"] == 1
    assert t["cpa_calls_nx"] == 0 and t["cpa_calls_nx_outside"] == 1
    assert t["cpa_calls"] == 2 and t["cpa_pages"] == 2
    assert t["text_pokes"] == 3 and t["text_poke_bytes"] == 6
    assert t["text_pokes_module_range"] == 2 and t["text_poke_bytes_module_range"] == 5
    # one vmalloc of 5000 bytes maps PAGE_ALIGN(5000) = 8192 bytes = 2 pages
    assert t["vmalloc_calls"] == 1 and t["vmalloc_pages"] == 2 and t["vmalloc_bytes_page_aligned"] == 8192
    # vmallocinfo: two areas in the module range, the irq stack is not
    assert t["vmap_areas"] == 2 and t["vmap_areas_load_module"] == 1
    assert t["vmap_area_bytes"] == 20480 + 2101248
    assert t["insn_slots_kprobe_insn_page"] == 1 and t["insn_slot_frees"] == 2


def test_num_reads_hex_and_decimal():
    assert parse.num("0x10") == 16 and parse.num("10") == 10 and parse.num("") is None
