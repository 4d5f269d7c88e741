"""Recorder support for Debian sid's 7.2 kernel: apt configuration, probes, truth rows.

Expected values are worked out from the 7.2 source (Debian 7.2.13) named at each test.
"""

from __future__ import annotations

import pandas as pd

from execbench.workloads.recorders.qemu import build, kernels, probes, truth

BASE = 0xFFFFFFFFC0000000


def ev(t, event, pid=10, addr="", size="", len_="", ret="", type_="", args="", caller="", npages=""):
    return {"seq": t, "t_ns": t, "cpu": 0, "pid": pid, "comm": "x", "event": event, "site": "",
            "addr": addr, "size": size, "npages": npages, "len": len_, "ret": ret,
            "type": type_, "args": args, "context": "", "caller": caller, "stack": ""}


def test_sid_spec_is_split_and_signed_by(tmp_path):
    ks = kernels.spec("7.2")
    assert (ks.suite, ks.private_apt, ks.split) == ("sid", True, True)
    assert not kernels.spec("6.12").split
    opts = kernels._apt_opts(tmp_path, ks)
    src = (tmp_path / "apt-sid" / "etc" / "sources.list").read_text()
    assert src.startswith("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ")
    assert src.rstrip().endswith(" sid main")
    assert "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false" in opts


def test_7_2_insn_cache_offsets():
    # include/linux/mutex_types.h (7.2, no DEBUG_MUTEXES/LOCKDEP): owner 8 + wait_lock 4
    # + osq 4 + first_waiter 8 = 24 bytes; struct kprobe_insn_cache (include/linux/kprobes.h):
    # mutex 24, alloc +24, free +32, sym +40, pages +48 (16), insn_size +64.
    line = next(p.line() for p in probes.probes_for("7.2") if p.name == "__get_insn_slot")
    assert "sym=+0(+40(%di)):string" in line and "insn_size=+64(%di):u64" in line
    # 6.12: the mutex's wait_list is a 16-byte list_head -> 32 bytes, sym +48, insn_size +72
    line = next(p.line() for p in probes.probes_for("6.12") if p.name == "__get_insn_slot")
    assert "sym=+0(+48(%di)):string" in line and "insn_size=+72(%di):u64" in line
    names = {p.line().split()[1] for p in probes.probes_for("7.2")}
    # arch/x86/kernel/alternative.c (7.2) and mm/execmem.c (7.2) entry points
    assert {"smp_text_poke_batch_add", "smp_text_poke_single", "execmem_alloc_rw"} <= names


def test_7_2_truth_rows_by_hand():
    # One module text allocation out of a fresh ROX cache block (mm/execmem.c, 7.2):
    # execmem_alloc_rw(MODULE_TEXT, 8192) -> execmem_alloc -> execmem_cache_populate_alloc:
    # __vmalloc_node_range(2 MiB, VM_ALLOW_HUGE_VMAP=0x400) -> set_memory_rox(block, 512);
    # then execmem_force_rw: set_memory_nx(p, 2) + set_memory_rw(p, 2); later execmem_restore_rox.
    # One data allocation: vmalloc with VM_FLUSH_RESET_PERMS (0x100) only -> not a cache block.
    # Two sites patched: one smp_text_poke_single (which calls smp_text_poke_batch_add and
    # smp_text_poke_batch_finish), one batch_add + finish.
    blk = BASE + 0x200000
    rows = [
        ev(1, "execmem_alloc_rw", type_="0", size="8192", caller="load_module"),
        ev(2, "execmem_alloc", type_="0", size="8192", caller="load_module"),
        ev(3, "vmalloc_node_range", size="2097152", args="size=2097152 vm_flags=0x400"),
        ev(4, "set_memory_rox", addr=hex(blk), npages="512"),
        ev(5, "execmem_alloc_ret", ret=hex(blk)),
        ev(6, "set_memory_nx", addr=hex(blk), npages="2"),
        ev(7, "set_memory_rw", addr=hex(blk), npages="2"),
        ev(8, "execmem_restore_rox", addr=hex(blk), size="8192"),
        ev(9, "set_memory_rox", addr=hex(blk), npages="2"),
        ev(10, "execmem_alloc_rw", type_="4", size="4096", caller="load_module"),
        ev(11, "execmem_alloc", type_="4", size="4096", caller="load_module"),
        ev(12, "vmalloc_node_range", size="4096", args="size=4096 vm_flags=0x100"),
        ev(13, "smp_text_poke_single", addr=hex(blk + 0x10), len_="5"),
        ev(14, "text_poke_queue", addr=hex(blk + 0x10), len_="5"),
        ev(15, "smp_text_poke_batch_finish"),
        ev(16, "text_poke_queue", addr="0xffffffff81000000", len_="5"),
        ev(17, "smp_text_poke_batch_finish"),
        ev(18, "set_direct_map_valid_noflush", args="page=0x1 nr=512 valid=0"),
    ]
    t = truth.truth(pd.DataFrame(rows), "").set_index("metric")["value"]
    assert t["execmem_alloc_rw_calls"] == 2 and t["execmem_alloc_calls"] == 2
    assert t["execmem_alloc_rw_calls_module_text"] == 1 and t["execmem_alloc_rw_calls_module_data"] == 1
    assert t["execmem_cache_blocks"] == 1 and t["execmem_cache_block_bytes"] == 2 * 1024 * 1024
    assert t["execmem_restore_rox_calls"] == 1
    assert t["cpa_calls_rox"] == 2 and t["cpa_pages_rox"] == 512 + 2
    assert t["cpa_calls_nx"] == 1 and t["cpa_calls_rw"] == 1
    assert t["smp_text_poke_single_calls"] == 1 and t["smp_text_poke_single_calls_module_range"] == 1
    assert t["text_poke_queue_calls"] == 2 and t["text_poke_queue_calls_module_range"] == 1
    assert t["smp_text_poke_batch_finish_calls"] == 2
    assert t["set_direct_map_valid_noflush_calls"] == 1 and t["set_direct_map_valid_noflush_pages"] == 512


def test_truth_of_older_kernels_has_no_7_2_rows():
    rows = [ev(1, "execmem_alloc", type_="0", size="4096", caller="load_module")]
    t = truth.truth(pd.DataFrame(rows), "")
    assert not t.metric.str.startswith(("execmem_alloc_rw", "smp_text_poke", "execmem_cache")).any()


def test_build_takes_the_address_from_execmem_alloc_ret():
    # 7.2: the module's text comes from the ROX cache -- no vmalloc of its own; only
    # execmem_alloc's return value says where it is (mm/execmem.c execmem_cache_alloc).
    lay = pd.DataFrame([{"module": "m1", "text": 5000, "rodata": 0, "ro_after_init": 0,
                         "data": 300, "init_text": 0, "init_rodata": 0, "init_data": 0,
                         "align": 16, "relocs": 0, "reloc_secs": 0, "alt_sites": 0,
                         "orc_entries": 0, "mcount_locs": 0}])
    blk = BASE + 0x200000
    rows = [
        ev(1, "execmem_alloc", type_="0", size="8192", caller="load_module"),
        ev(2, "vmalloc_node_range_ret", ret=hex(blk)),  # the cache block: not the allocation
        ev(3, "execmem_alloc_ret", ret=hex(blk + 0x3000)),
        ev(4, "execmem_alloc", type_="4", size="4096", caller="load_module"),
        ev(5, "vmalloc_node_range_ret", ret=hex(BASE + 0x900000)),
        ev(6, "execmem_alloc_ret", ret=hex(BASE + 0x900000)),
        ev(7, "text_poke_queue", addr=hex(blk + 0x3000 + 0x20), len_="5"),
        ev(8, "module_load", type_="m1"),
    ]
    tr, _ = build.build(pd.DataFrame(rows), lay, "execmem_alloc", "execmem_free", "execmem_alloc_ret")
    patch = tr[tr.op == "patch"]
    assert list(patch["offset"]) == [0x20]  # blk+0x3020 - text start blk+0x3000
