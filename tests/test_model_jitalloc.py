"""``jitalloc`` (Kent Overstreet, 80ceffd6b110 "mm: jit/text allocator",
Message-ID ZHEy5SkFwI+dZjOC@moria.home.lan) against hand-worked expectations.

The rules used in the arithmetic, from mm/jitalloc.c of that commit:
``JITALLOC_MIN_SIZE = 16``; ``NR_JIT_CACHES = ilog2(PAGE_SIZE / 16) = 8``;
cache index ``ilog2(roundup_pow_of_two(len) / 16)``; ``objs_per_slab =
PAGE_SIZE >> obj_size_bits``; a slab is one ``module_alloc(PAGE_SIZE)`` page
made ``set_memory_rox(page, 1)``; len > 2048 is ``module_alloc(len)`` +
``set_memory_rox(DIV_ROUND_UP(len, PAGE_SIZE))``; ``jit_update`` =
``text_poke_copy`` on x86.  CPA rules: arch/x86/mm/pat/set_memory.c (v6.2+:
any effective change on vmalloc memory ends in flush_tlb_all).  Module
loader: kernel/module/main.c + strict_rwx.c of v6.4 for non-text types.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execbench.kernel import Costs, Kernel, KernelConfig
from execbench.kernel.pagetable import PRESENT, W, X
from execbench.models.jitalloc import JitAlloc
from execbench.models.jitalloc.slab import NR_JIT_CACHES, cache_index
from execbench.replay import run
from execbench.trace import COLUMNS, from_frame
from execbench.users import dispatch_table
from invariants import assert_aggregates

EASY = Costs(vmalloc_call=0, vmalloc_page=0, vfree_call=0, vfree_page=0, cpa_call=1000,
             cpa_page=0, split_large_page=0, flush_tlb_all=0, flush_ipi_per_page=0,
             text_poke=500, text_poke_sync=0, memcpy_byte=0)


def test_size_classes():
    # roundup_pow_of_two(len) / 16, ilog2:
    assert NR_JIT_CACHES == 8                  # ilog2(4096 / 16) = ilog2(256) = 8
    assert cache_index(16) == 0                # 16/16 = 1 -> 0
    assert cache_index(17) == 1                # 32/16 = 2 -> 1
    assert cache_index(200) == 4               # 256/16 = 16 -> 4: the 256-byte class
    assert cache_index(2048) == 7              # 2048/16 = 128 -> 7: last slab class
    assert cache_index(2049) == 8              # 4096/16 = 256 -> 8 >= 8: page-granular
    assert cache_index(1) == 0                 # len < 16: the 16-byte class (sketch: ilog2(0))


def test_300_trampolines_fill_19_slabs_of_the_256_byte_class(tb):
    # Issue example: 200-byte BPF trampolines -> 256-byte class; a slab is one
    # 4 KiB page holding 4096/256 = 16 objects -> ceil(300/16) = 19 slabs.
    for i in range(300):
        tb.add("bpf", "tramp_attach", f"t{i}", size=200)
    r = run(tb.trace(), "jitalloc")
    c, f = r.counters, r.final
    assert c["jit_slabs_new"] == 19
    assert c["vmalloc_calls"] == 19 and c["vmalloc_bytes"] == 19 * 4096
    # one set_memory_rox per slab, 1 page each, RW->RO changes the alias ->
    # flush_tlb_all; nothing else changes permissions.  The 19 contiguous
    # frames sit in one 2 MiB region of one 1 GiB leaf: the first slab's alias
    # change splits both, a flush_tlb_all() per split -> 19 + 2
    assert c["cpa_calls"] == 19 and c["cpa_calls_rox"] == 19 and c["cpa_pages"] == 19
    assert (f["direct_map_level3_splits"], f["direct_map_level2_splits"]) == (1, 1)
    assert c["tlb_flush_all"] == 19 + 2
    # jit_update = text_poke_copy of 200 bytes inside one page -> 1 __text_poke each
    assert c["text_pokes"] == 300 and c["text_poke_bytes"] == 300 * 200
    # per attach: jit_alloc + jit_update
    assert c["api_calls"] == 600 and r.entry_points == {"bpf": ["jit_alloc", "jit_update"]}
    # live text: 19 pages of 4 KiB PTEs; backing 19 pages
    assert f["text_ptes_4k"] == 19 and f["backing_bytes"] == 19 * 4096
    # requested 300*200 = 60000 of 77824 backed -> 1 - 60000/77824
    assert abs(f["internal_frag"] - (1 - 60000 / 77824)) < 1e-12
    assert f["wx_pages_peak_instant"] == 0


def test_trampolines_detached_release_every_slab(tb):
    for i in range(40):
        tb.add("bpf", "tramp_attach", f"t{i}", size=200)
    for i in range(40):
        tb.add("bpf", "tramp_detach", f"t{i}")
    r = run(tb.trace(), "jitalloc")
    # 40 objects / 16 per slab -> 3 slabs, all released when empty
    assert r.counters["jit_slabs_new"] == 3 and r.counters["jit_slabs_freed"] == 3
    assert r.final["vmap_areas"] == 0 and r.final["backing_bytes"] == 0
    # each release is vfree with VM_FLUSH_RESET_PERMS (set at slab creation)
    assert r.counters["vfree_reset_perms"] == 3


def _design(**params):
    k = Kernel(KernelConfig(seed=0, version=JitAlloc.kernel_version))
    return k, JitAlloc(k, **params)


def test_slab_order_first_free_slot_and_full_slab_returns_to_head():
    k, d = _design()
    j = d.allocator
    objs = [j.alloc(200) for _ in range(17)]   # 16 fill slab 1, the 17th opens slab 2
    s1, s2 = objs[0], objs[16]
    assert [o - s1 for o in objs[:16]] == [i * 256 for i in range(16)]   # slots 0..15
    assert s2 & 4095 == 0 and s2 != s1
    j.free(objs[5])                  # slab 1 was full: back to the head of partial
    assert j.alloc(200) == objs[5]   # first partial slab, first zero bit = slot 5
    assert j.alloc(200) == s2 + 256  # slab 1 full again -> slab 2, slot 1


def test_module_under_jitalloc(tb):
    # text 5000 > 2048: page-granular jit_alloc -> module_alloc(5000) = 2 pages,
    #   set_memory_rox(2); one jit_update -> text_poke_copy of 5000 bytes from a
    #   page boundary = 1 __text_poke (chunk = min(8192, 5000)).
    # init_text 300 -> 512-byte class: one slab page (rox 1) + 1 poke.
    # rodata 3000, ro_after_init 100, data 2000, init_data 50: module_alloc of
    #   1 page each (RW+NX); init_rodata empty -> no area.
    tb.module("A", text=5000, rodata=3000, ro_after_init=100, data=2000,
              init_text=300, init_data=50)
    r = run(tb.trace(), "jitalloc")
    c, f = r.counters, r.final
    assert c["vmalloc_calls"] == 1 + 1 + 4
    assert c["vmalloc_bytes"] == (2 + 1 + 4) * 4096
    # CPA calls: 2 rox (text area, slab) + complete_formation(): set_memory_ro
    # on MOD_RODATA and MOD_INIT_RODATA (0 pages) + set_memory_nx on the 5
    # data-class types = 2 + 2 + 5 = 9; no set_memory_x at all
    assert c["cpa_calls"] == 9 and c["cpa_calls_x"] == 0
    # pages changed: rox 2 + 1, ro 1 (rodata), nx 0 (module_alloc is already NX)
    assert c["cpa_pages"] == 4
    assert c["text_pokes"] == 2 and c["text_poke_bytes"] == 5300
    # live text: 2 pages of module text + 1 slab page
    assert f["text_ptes_4k"] == 3
    assert f["wx_pages_peak_instant"] == 0


def test_module_data_pages_are_never_writable_and_executable():
    k, d = _design()
    table = dispatch_table(d)
    rows = [dict.fromkeys(COLUMNS) for _ in range(2)]
    rows[0].update(seq=0, t_ns=0, cpu=0, user="module", op="load", obj="m", text=100,
                   rodata=5000, ro_after_init=10, data=9000, init_text=0, init_rodata=70,
                   init_data=300, align=16, relocs=5, reloc_secs=1, alt_sites=0,
                   orc_entries=0, mcount_locs=0)
    rows[1].update(seq=1, t_ns=1000, cpu=0, user="module", op="init_done", obj="m")
    tr = from_frame(pd.DataFrame(rows, columns=COLUMNS), "t")
    evs = list(tr.events())
    table[("module", "load")](evs[0])
    m = d.module.mods["m"]
    for t in ("rodata", "ro_after_init", "data", "init_rodata", "init_data"):
        p = k.page_of(m.base[t])
        n = m.size[t] // 4096
        f = k.pt.flags[p:p + n]
        assert np.all(f & PRESENT) and not np.any(f & X), t
    # rodata became RO at formation, data stays RW, ro_after_init RW until init
    assert not np.any(k.pt.flags[k.page_of(m.base["rodata"])] & W)
    assert np.all(k.pt.flags[k.page_of(m.base["data"])] & W)
    assert np.all(k.pt.flags[k.page_of(m.base["ro_after_init"])] & W)
    table[("module", "init_done")](evs[1])
    assert not np.any(k.pt.flags[k.page_of(m.base["ro_after_init"])] & W)
    assert "init_data" not in m.base and "init_rodata" not in m.base
    assert k.wx_pages_peak_instant == 0


def _pair(tb):
    tb.add("bpf", "tramp_attach", "a", size=200)
    tb.add("bpf", "tramp_attach", "b", size=200)
    return tb.trace()


def test_fallback_nx_rw_costs_neighbours(tb):
    # text_poke=False, unprotect = set_memory_nx + set_memory_rw, protect =
    # set_memory_rox: 3 CPA per update; with EASY costs each CPA is 1000 ns ->
    # window 3000 ns per update.  a's update: no other object on the page;
    # b's update: a is allocated (neighbour 1) and live (200 text bytes).
    r = run(_pair(tb), "jitalloc", costs=EASY, params={"text_poke": False})
    c = r.counters
    assert c["jit_fallback_updates"] == 2
    assert c["jit_fallback_window_ns"] == 6000
    assert c["jit_fallback_neighbour_obj_ns"] == 1 * 3000
    assert c["jit_fallback_live_text_byte_ns"] == 200 * 3000
    # 1 slab rox + 2 x 3 CPA, no text_poke
    assert c["cpa_calls"] == 7 and c["text_pokes"] == 0
    assert r.final["wx_pages_peak_instant"] == 0        # NX before RW: never W+X


def test_fallback_rw_only_exposes_wx(tb):
    # unprotect = set_memory_rw only: the page is W+X from the rw change until
    # set_memory_rox clears W.  EASY costs: after rw's PTE change nothing costs
    # (cpa_page, flush, memcpy = 0) until rox's cpa_call tick of 1000 ns,
    # which happens before rox changes the PTE -> 1000 page-ns per update, 2 updates.
    r = run(_pair(tb), "jitalloc", costs=EASY,
            params={"text_poke": False, "fallback_unprotect": "rw"})
    assert r.final["wx_pages_peak_instant"] == 1
    assert r.final["wx_page_ns"] == 2000
    # a permission change made the ROX page writable: cause unprotect_window
    assert r.final["wx_page_ns_unprotect_window"] == 2000
    assert r.counters["cpa_calls"] == 1 + 2 * 2


def test_bpf_programs_on_jit_alloc_directly(tb):
    # proglen 100 + bpf_binary_header 8 + random hole 16 = 124 -> 128-byte
    # class, 4096/128 = 32 per slab: 33 programs -> 2 slabs
    for i in range(33):
        tb.add("bpf", "prog_load", f"p{i}", size=100)
    r = run(tb.trace(), "jitalloc")
    assert r.counters["jit_slabs_new"] == 2
    assert r.counters["text_pokes"] == 33 and r.counters["text_poke_bytes"] == 33 * 124
    # with bpf_prog_pack kept on top: one 2 MiB pack = jit_alloc(2 MiB), page-granular
    r2 = run(tb.trace(), "jitalloc", params={"bpf_prog_pack": True})
    assert r2.counters["vmalloc_calls"] == 1 and r2.counters["vmalloc_bytes"] == 2 << 20
    assert r2.counters.get("jit_slabs_new", 0) == 0


def test_kprobe_slots_are_16_byte_objects(tb):
    # jit_alloc(16): 16-byte class, 256 per page -> 257 probes need 2 slabs
    for i in range(257):
        tb.add("kprobe", "register", f"k{i}", size=16)
    for i in range(257):
        tb.add("kprobe", "unregister", f"k{i}")
    r = run(tb.trace(), "jitalloc")
    assert r.counters["jit_slabs_new"] == 2
    # unlike the insn-slot cache, no page is kept once the last slot is freed
    assert r.final["vmap_areas"] == 0


# -- property tests ------------------------------------------------------------------

_OPS = st.lists(st.tuples(st.integers(0, 11), st.integers(1, 12000), st.integers(0, 1),
                          st.integers(0, 3000)), min_size=1, max_size=40)


def _random_trace(ops):
    """A valid trace from drawn (kind, size, cpu, dt); everything is torn down at the end."""
    rows, t = [], 0
    live = {"module": set(), "bpf_p": set(), "bpf_t": set(), "ftrace": set(), "kprobe": set()}
    inited = set()
    n = 0

    def add(user, op, obj, cpu, **kw):
        r = dict.fromkeys(COLUMNS)
        r.update(seq=len(rows), t_ns=t, cpu=cpu, user=user, op=op, obj=obj, **kw)
        rows.append(r)

    add("bpf", "prog_load", "first", 0, size=64)
    live["bpf_p"].add("first")
    for kind, size, cpu, dt in ops:
        t += dt
        n += 1
        name = f"o{n}"
        if kind == 0:
            add("module", "load", name, cpu, text=size, rodata=size // 3, ro_after_init=size % 50,
                data=size // 2, init_text=size % 3000, init_rodata=0, init_data=size % 700,
                align=16, relocs=size // 10, reloc_secs=1, alt_sites=2, orc_entries=3, mcount_locs=1)
            live["module"].add(name)
        elif kind == 1 and live["module"] - inited:
            m = sorted(live["module"] - inited)[0]
            add("module", "init_done", m, cpu)
            inited.add(m)
        elif kind == 2 and live["module"]:
            m = sorted(live["module"])[size % len(live["module"])]
            add("module", "unload", m, cpu)
            live["module"].discard(m)
            inited.discard(m)
        elif kind in (3, 4):
            add("bpf", "prog_load", name, cpu, size=size)
            live["bpf_p"].add(name)
        elif kind == 5 and live["bpf_p"]:
            p = sorted(live["bpf_p"])[0]
            add("bpf", "prog_unload", p, cpu)
            live["bpf_p"].discard(p)
        elif kind == 6:
            add("bpf", "tramp_attach", name, cpu, size=min(size, 4096))
            live["bpf_t"].add(name)
        elif kind == 7 and live["bpf_t"]:
            add("bpf", "tramp_update", sorted(live["bpf_t"])[0], cpu, size=min(size, 4096))
        elif kind == 8:
            add("bpf", "dispatcher_update", "xdp", cpu)
        elif kind == 9:
            add("ftrace", "ops_register", name, cpu, size=size % 600 + 100)
            live["ftrace"].add(name)
        elif kind == 10:
            add("kprobe", "register", name, cpu, size=16)
            if size % 2:
                add("kprobe", "optimize", name, cpu, size=size % 200 + 40)
            live["kprobe"].add(name)
        elif kind == 11 and live["ftrace"]:
            add("ftrace", "ops_update", sorted(live["ftrace"])[0], cpu)
    t += 1000
    for m in sorted(live["module"]):
        add("module", "unload", m, 0)
    for p in sorted(live["bpf_p"]):
        add("bpf", "prog_unload", p, 1)
    for x in sorted(live["bpf_t"]):
        add("bpf", "tramp_detach", x, 0)
    for x in sorted(live["ftrace"]):
        add("ftrace", "ops_unregister", x, 1)
    for x in sorted(live["kprobe"]):
        add("kprobe", "unregister", x, 0)
    return from_frame(pd.DataFrame(rows, columns=COLUMNS), "random")


def _live_ranges(d) -> list[tuple[int, int]]:
    out = []
    for m in d.module.mods.values():
        out += [(m.base[t], m.size[t]) for t in m.base]
    out += [(ro, size) for ro, size, _, _ in d.bpf.progs.values()]
    out += list(d.bpf.tramps.values())
    out += [(im, 4096) for im, _, _ in d.bpf.dispatchers.values()]
    out += list(d.ftrace.tramps.values())
    for slot, n, oslot, on in d.kprobe.probes.values():
        out.append((slot, n))
        if oslot is not None:
            out.append((oslot, on))
    return sorted(out)


def _check_replay(trace, **params):
    k, d = _design(**params)
    table = dispatch_table(d)
    for ev in trace.events():
        k.advance_to(ev.t_ns)
        k.cpu, k.user = ev.cpu, ev.user
        table[(ev.user, ev.op)](ev)
        rs = _live_ranges(d)
        for (a0, n0), (a1, _) in zip(rs, rs[1:]):
            assert a0 + n0 <= a1, "two live allocations overlap"
        if params.get("fallback_unprotect") != "rw":
            assert k.pt.wx_pages == 0
    # torn down: only the dispatcher, which lives forever, keeps its page
    assert len(k.areas) == len(d.bpf.dispatchers)
    assert k.pt.text_bytes == 2048 * len(d.bpf.dispatchers)
    assert_aggregates(k.pt)
    r = k.pt.recount()
    assert r["blk_present"] and r["blk_text_pages"]
    return k


_PROP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROP
@given(_OPS)
def test_property_text_poke_never_wx(ops):
    k = _check_replay(_random_trace(ops))
    assert k.wx_pages_peak_instant == 0


@_PROP
@given(_OPS)
def test_property_fallback_nx_rw_never_wx(ops):
    k = _check_replay(_random_trace(ops), text_poke=False)
    assert k.wx_pages_peak_instant == 0


@_PROP
@given(_OPS)
def test_property_variants_free_everything(ops):
    _check_replay(_random_trace(ops), bpf_prog_pack=True, kprobe_cache=False)
