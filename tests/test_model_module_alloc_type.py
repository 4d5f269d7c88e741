"""``module_alloc_type`` / ``module_alloc_type_pmd`` against hand-worked
expectations.

Sources of every rule used below (Song Liu, "[PATCH 0/3] Type aware module
allocator", May 2023):
* patch 1/3 (20230526051529.3387103-2-song@kernel.org) kernel/module/main.c:
  module_alloc_type(), module_memory_enable_protection(), move_module()
  (invalidate + fill), and strict_rwx.c module_set_memory() returning early
  for MOD_ALLOC_SET_MEMORY types;
* patch 3/3 (...-4-song@kernel.org) arch/x86/kernel/module.c: the three x86
  allocators (PAGE_KERNEL_EXEC; text/ro_data SET_MEMORY + text_poke fill),
  write_relocate_add() (text_poke per entry + text_poke_sync),
  unwind_orc.c orc_sort_swap() (4 text_poke_copy), ftrace.c
  ftrace_swap_func() (2 text_poke_copy), bpf_jit_comp.c
  arch_prepare_bpf_trampoline() (force_unprotect/force_protect);
* arch/x86/kernel/alternative.c text_poke_copy()/text_poke_set(): chunks of
  min(2 * PAGE_SIZE - offset_in_page(addr), len - patched) bytes;
* lib/sort.c sort_r() (v6.4) for the swap counts.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from execbench import registry
from execbench.kernel import Kernel, KernelConfig
from execbench.replay import run
from execbench.units import PMD_SIZE
from execbench.users import dispatch_table

from randtrace import build
from randtrace import random_trace_rows as _random_trace_rows
from execbench.models.common.sort_swaps import heapsort_swaps, heapsort_swaps_of
from invariants import assert_aggregates, kept_kprobe_pages

V1, PMD = "module_alloc_type", "module_alloc_type_pmd"


# -- lib/sort.c swap counts --------------------------------------------------------------

def test_heapsort_swaps_hand_traced():
    # sort_r() on ascending input, traced by hand (a = num/2, n = num):
    # n=2: sift a=0: only child 1 (d == n) -> b=1; v[0]=0 >= v[1]=1? no -> swap(0,1)
    #      [1,0]; extract: n=1 swap(0,1) [0,1]                          -> 2 swaps
    # n=3: sift a=0: children 1,2 -> larger 2; 0 >= 2? no -> swap(0,2) [2,1,0];
    #      n=2: swap(0,2) [0,1,2]; sift: child 1 only -> swap(0,1) [1,0,2];
    #      n=1: swap(0,1)                                                -> 4 swaps
    # n=4: a=1: child 3 only -> swap(1,3) [0,3,2,1]; a=0: path 0->1->3, 0 >= 1? no
    #      -> swap(1,3), swap(0,3) [3,1,2,0]; n=3: swap(0,3) [0,1,2,3], sift ->2:
    #      swap(0,2); n=2: swap(0,2), sift ->1: swap(0,1); n=1: swap(0,1) -> 8 swaps
    assert [heapsort_swaps(n) for n in (0, 1, 2, 3, 4)] == [0, 0, 2, 4, 8]
    # heapsort is not adaptive: sorted input costs about what a shuffle does
    rng = np.random.default_rng(0)
    shuffled = [int(x) for x in rng.permutation(2000)]
    assert abs(heapsort_swaps_of(shuffled) - heapsort_swaps(2000)) < 0.1 * heapsort_swaps(2000)


# -- module loading under v1 -------------------------------------------------------------------

def test_three_relocations_in_text_text_pokes(tb):
    # text 5000 B -> module_alloc_type(8192, MOD_TEXT): vmalloc + set_memory_rox(2)
    # move_module(): invalidate = text_poke_set(base, 8192): base is page aligned,
    #   one chunk of min(8192 - 0, 8192) = 8192 bytes                    -> 1 poke
    # fill = text_poke_copy(base, 5000): one chunk                      -> 1 poke
    # data 100 B: rw_data allocator, memset/memcpy (no poke)
    # write_relocate_add(): 3 x text_poke(loc, 4) + 1 text_poke_sync    -> 3 pokes
    tb.module("M", text=5000, data=100, relocs=3, reloc_secs=1)
    r = run(tb.trace(), V1)
    c = r.counters
    assert c["text_pokes"] == 1 + 1 + 3
    assert c["text_poke_bytes"] == 8192 + 5000 + 3 * 4
    assert c["text_poke_syncs"] == 1
    # CPA: text set_memory_rox at allocation (1 call, 2 pages).  Formation:
    # module_enable_ro() -- all four types SET_MEMORY -> skipped; module_enable_nx()
    # on the data class minus SET_MEMORY types: DATA (1 page, X -> NX),
    # RO_AFTER_INIT and INIT_DATA (size 0: set_memory_nx(NULL, 0), still a call);
    # module_enable_x() -- text types SET_MEMORY -> skipped.
    assert (c["cpa_calls_rox"], c["cpa_calls_nx"], c["cpa_calls_ro"], c["cpa_calls_x"]) == (1, 3, 0, 0)
    assert c["cpa_pages"] == 2 + 1
    assert c["vmalloc_calls"] == 2          # one per non-empty type, page granular
    assert r.final["text_ptes_4k"] == 2


def test_orc_and_mcount_sort_swaps_are_text_pokes(tb):
    # text 5000 B, rodata 5000 B (2 pages each): invalidate + fill on each -> 4 pokes
    #   of 8192, 5000, 8192, 5000 bytes.
    # ORC: 3 entries -> 4 swaps (test above) x 4 text_poke_copy (two 4-byte ip
    #   entries, two 6-byte struct orc_entry)                  -> 16 pokes, 80 bytes
    # mcount: 2 entries -> 2 swaps x 2 text_poke_copy of 8 B  -> 4 pokes, 32 bytes
    # ftrace_init: the 2 __fentry__ calls become NOPs, one 5-byte text_poke each
    #   (ftrace_modify_code_direct() in patch 3/3)            -> 2 pokes, 10 bytes
    tb.module("M", text=5000, rodata=5000, orc_entries=3, mcount_locs=2)
    c = run(tb.trace(), V1).counters
    assert c["text_pokes"] == 4 + 16 + 4 + 2
    assert c["text_poke_bytes"] == (2 * (8192 + 5000) + 4 * (2 * 4 + 2 * 6) + 2 * (2 * 8)
                                    + 2 * 5)
    assert (c["text_pokes_orc_sort"], c["text_pokes_mcount_sort"], c["text_pokes_ftrace_init"]) \
        == (16, 4, 2)
    # rodata: set_memory_nx + set_memory_ro at allocation (MOD_RODATA case)
    assert c["cpa_calls_ro"] == 1 and c["cpa_calls_rox"] == 1
    # alternatives: one text_poke per site
    tb.module("N", text=5000, alt_sites=7)
    c2 = run(tb.trace(), V1).counters
    # N: 2 (invalidate, fill) + 7 sites
    assert c2["text_pokes"] == c["text_pokes"] + 2 + 7


def test_data_pages_are_wx_from_allocation_to_formation(tb):
    # No text.  move_module() allocates in enum order, every type PAGE_KERNEL_EXEC:
    #   DATA 9000 B -> 3 pages RWX (rw_data: no SET_MEMORY)              W+X = 3
    #   RODATA 100 B -> 1 page RWX, then set_memory_nx + set_memory_ro   W+X = 4 -> 3
    #   RO_AFTER_INIT 100 B -> 1 page RWX                                W+X = 4
    #   INIT_DATA 5000 B -> 2 pages RWX                                  W+X = 6
    # complete_formation(): module_enable_nx() -> set_memory_nx on DATA,
    # RO_AFTER_INIT, INIT_DATA -> 0.
    tb.module("D", data=9000, rodata=100, ro_after_init=100, init_data=5000)
    r = run(tb.trace(), V1)
    assert r.final["wx_pages_peak_instant"] == 6
    assert r.final["wx_pages"] == 0
    # at least the 3 DATA pages for the 2000 + 3*250 ns of its own vmalloc
    assert r.final["wx_page_ns"] >= 3 * (2000 + 3 * 250)


def test_init_rodata_stays_wx_until_freed(tb):
    # module_memory_enable_protection() has no case MOD_INIT_RODATA (default:
    # WARN_ONCE) and module_set_memory() skips it (SET_MEMORY): the page keeps
    # PAGE_KERNEL_EXEC until do_free_init().
    tb.module("I", text=100, init_rodata=100)
    tb.add("module", "init_done", "I")
    r = run(tb.trace(), V1)
    wx = r.timeline()["wx_pages"].tolist()
    assert wx == [1, 0]
    assert r.counters["mat_enable_protection_unknown_type"] == 1


def test_wx_causes_huge_tail_and_init_rodata():
    # text 2 MiB + 4 KiB: the text allocator's VM_ALLOW_HUGE_VMAP rounds the
    # area to 2 PMDs (1024 pages) mapped PAGE_KERNEL_EXEC; set_memory_rox
    # covers DIV_ROUND_UP(size, PAGE_SIZE) = 513 pages: 511 tail pages stay
    # RW+X for the area's life (huge_tail).  init rodata (1 page) stays RW+X
    # until do_free_init() (init_rodata).  With the init_done event 1 s later
    # instead of at +1 s the only change is 1 s more of idle time before it:
    # huge_tail grows by 511 page*s, init_rodata by 1 page*s, nothing else.
    from conftest import TraceBuilder
    finals = []
    for step in (10**9, 2 * 10**9):
        tb = TraceBuilder(step_ns=step)
        tb.module("H", text=PMD_SIZE + 4096, init_rodata=100)
        tb.add("module", "init_done", "H")
        finals.append(run(tb.trace(), V1).final)
    a, b = finals
    assert b["wx_page_ns_huge_tail"] - a["wx_page_ns_huge_tail"] == pytest.approx(511e9)
    assert b["wx_page_ns_init_rodata"] - a["wx_page_ns_init_rodata"] == pytest.approx(1e9)
    assert b["wx_page_ns_alloc_window"] == pytest.approx(a["wx_page_ns_alloc_window"])
    assert a["wx_pages"] == 511                        # after init_done: the tail only
    for f in (a, b):
        causes = [f[k] for k in f if k.startswith("wx_page_ns_")]
        assert sum(causes) == pytest.approx(f["wx_page_ns"], rel=1e-12)


def test_module_unload_frees_every_area(tb):
    tb.module("A", text=5000, rodata=3000, ro_after_init=100, data=2000,
              init_text=300, init_data=50, relocs=10, reloc_secs=2)
    tb.add("module", "init_done", "A")
    tb.add("module", "unload", "A")
    r = run(tb.trace(), V1)
    # 6 non-empty types -> 6 areas; init_done frees init_text and init_data,
    # unload the 4 core ones; each with VM_FLUSH_RESET_PERMS
    assert r.counters["vmalloc_calls"] == 6
    assert r.counters["vfree_calls"] == 6 and r.counters["vfree_reset_perms"] == 6
    assert r.final["vmap_areas"] == 0 and r.final["backing_bytes"] == 0
    # 2 relocation sections -> 2 text_poke_sync
    assert r.counters["text_poke_syncs"] == 2


# -- module_alloc_type_pmd ------------------------------------------------------------------

def test_ten_small_modules_share_one_text_granule(tb):
    for i in range(10):
        tb.module(f"m{i}", text=1000, data=100)
    r = run(tb.trace(), PMD)
    c = r.counters
    # one 2 MiB granule: vmalloc(PMD_SIZE, VM_ALLOW_HUGE_VMAP) -> PMD-mapped,
    # memset while RW+NX, then one set_memory_rox over 512 pages
    assert c["mat_granules_new"] == 1 and c["vmalloc_huge"] == 1
    assert c["cpa_calls_rox"] == 1 and c["cpa_pages_rox"] == 512
    # 10 text pieces (4 KiB-aligned, MODULE_ALIGN) in one 2 MiB leaf
    assert r.final["text_pmds_2m"] == 1 and r.final["text_ptes_4k"] == 0
    # the data types still take one vmalloc each: 1 granule + 10 data areas
    assert c["vmalloc_calls"] == 11
    # v1 for comparison: 10 text areas, each its own set_memory_rox and PTE
    r1 = run(tb.trace(), V1)
    assert r1.counters["cpa_calls_rox"] == 10 and r1.final["text_ptes_4k"] == 10


def test_granule_lowest_fit_and_release(tb):
    for i in range(3):
        tb.module(f"m{i}", text=5000)          # 2 pages each
    tb.add("module", "unload", "m1")
    tb.module("m3", text=4000)                 # 1 page: lowest fit = m1's old start
    for m in ("m0", "m2", "m3"):
        tb.add("module", "unload", m)
    trace = tb.trace()
    k, d = replay_checked(trace, PMD, stop=5)   # up to m3's load
    pool = d.allocators.pools["text_pmd"]
    g = pool.granules[0]
    starts = sorted(pool.allocs)
    # m0 at granule+0 (pages 0-1), m2 at +4 pages, m3 in m1's hole at +2 pages
    assert [a - g.addr for a in starts] == [0, 2 * 4096, 4 * 4096]
    k, d = replay_checked(trace, PMD)
    c = k.counters
    # last free empties the granule: set_memory_nx + set_memory_rw over 512 pages,
    # vfree without VM_FLUSH_RESET_PERMS (undone by hand)
    assert c["mat_granules_freed"] == 1
    assert c["cpa_calls_rw"] == 1 and c["cpa_pages_rw"] == 512
    assert c["vfree_reset_perms"] == 0
    assert len(k.areas) == 0


# -- other users ---------------------------------------------------------------------------

def test_bpf_trampoline_generation_flips_permissions(tb):
    tb.add("bpf", "tramp_attach", "t", size=300)
    tb.add("bpf", "tramp_update", "t", size=400)
    r = run(tb.trace(), V1)
    c = r.counters
    # per generation: module_alloc_type(PAGE_SIZE, MOD_TEXT) -> set_memory_rox (1),
    # force_unprotect -> set_memory_nx + set_memory_rw (2), force_protect ->
    # set_memory_rox (1): 4 CPA calls, 2 generations
    assert c["cpa_calls"] == 8
    assert (c["cpa_calls_rox"], c["cpa_calls_nx"], c["cpa_calls_rw"]) == (4, 2, 2)
    # W+X only for the instant between the PAGE_KERNEL_EXEC vmalloc and its rox
    assert r.final["wx_pages_peak_instant"] == 1
    assert "module_memory_force_unprotect" in r.entry_points["bpf"]


def test_bpf_programs_on_a_huge_rox_pack(tb):
    tb.add("bpf", "prog_load", "p", size=700)
    r = run(tb.trace(), V1)
    c = r.counters
    # pack = module_alloc_type(2 MiB, MOD_TEXT): VM_ALLOW_HUGE_VMAP -> PMD-mapped,
    # set_memory_rox by the allocator; jit_fill_hole = text_poke_set over 2 MiB
    # = 2 MiB / 8 KiB = 256 pokes; the program: round_up(700 + 8 + 16, 64) = 768 B
    # -> 1 text_poke_copy
    assert c["vmalloc_huge"] == 1 and c["cpa_calls_rox"] == 1
    assert c["text_pokes"] == 256 + 1
    assert r.final["text_pmds_2m"] == 1 and r.final["text_ptes_4k"] == 0
    # bpf calls module_memory_protect (no-op) instead of set_memory_rox
    assert sorted(r.entry_points["bpf"]) == ["module_alloc_type", "module_memory_protect",
                                             "text_poke_copy", "text_poke_set"]


def test_kprobe_and_ftrace_need_no_set_memory(tb):
    tb.add("kprobe", "register", "k", size=16)
    tb.add("ftrace", "ops_register", "f", size=300)
    r = run(tb.trace(), V1)
    c = r.counters
    # alloc_insn_page() and alloc_tramp(): one set_memory_rox each, inside the allocator
    assert c["cpa_calls"] == 2 and c["cpa_calls_rox"] == 2
    # kprobe slot: 1 text_poke; trampoline: 6 text_poke_copy (body, ret, nop,
    # ops pointer, op_ref, call) -- each under 8 KiB in one page -> 6 pokes
    assert c["text_pokes"] == 1 + 6
    assert r.entry_points["kprobe"] == ["module_alloc_type", "text_poke"]
    assert r.entry_points["ftrace"] == ["module_alloc_type", "text_poke_copy"]


def test_same_seed_same_result(tb):
    tb.module("A", text=50000, rodata=20000, data=3000, relocs=500, reloc_secs=5,
              alt_sites=40, orc_entries=900, mcount_locs=80)
    tb.add("bpf", "prog_load", "p", size=900)
    for design in (V1, PMD):
        a, b = run(tb.trace(), design, seed=3), run(tb.trace(), design, seed=3)
        assert a.counters == b.counters
        assert np.array_equal(a.samples, b.samples)


# -- property tests ---------------------------------------------------------------------

def random_trace_rows(max_actions: int = 30):
    # no 1.5 MiB text (a PMD-sized text area leaves the huge-tail W+X pages
    # counted separately), and the loader's write work, which this design pokes
    return _random_trace_rows(max_actions=max_actions, texts=(100, 5000, 300_000, 2_100_000),
                              loader_work=True)


def _expected_wx(k, d) -> int:
    """x86 W+X pages between events: (1) the init rodata of modules whose init
    has not been freed (no MOD_INIT_RODATA case in
    module_memory_enable_protection(), and module_set_memory() skips it);
    (2) v1 only: the tail of a huge (VM_ALLOW_HUGE_VMAP) text area beyond the
    requested size -- mm/vmalloc.c rounds the area up to whole PMDs, all
    mapped PAGE_KERNEL_EXEC, and set_memory_rox covers DIV_ROUND_UP(size,
    PAGE_SIZE) pages only."""
    n = 0
    for m in d.module.mods.values():
        if not m.init_freed and m.base.get("init_rodata") is not None:
            n += m.size["init_rodata"] // 4096
        if d.name == V1:
            for t in ("text", "init_text"):
                if m.base.get(t) is not None:
                    n += k.find_area(m.base[t]).npages - m.size[t] // 4096
    return n


def replay_checked(trace, design: str, stop: int | None = None):
    """Replay like execbench.replay.run with invariants checked after every
    event; returns (kernel, design instance)."""
    cls = registry.get(design)
    k = Kernel(KernelConfig(seed=0, version=cls.kernel_version))
    d = cls(k)
    table = dispatch_table(d)
    for i, ev in enumerate(trace.events()):
        if stop is not None and i >= stop:
            break
        k.advance_to(ev.t_ns)
        k.cpu, k.user = ev.cpu, ev.user
        table[(ev.user, ev.op)](ev)
        # no two live vmap areas (guard pages included) overlap
        starts = sorted(k.areas)
        for a, b in zip(starts, starts[1:]):
            assert a + k.areas[a].npages + k.areas[a].guard <= b
        # no two live granule sub-allocations overlap, each inside its granule
        for pool in d.allocators.pools.values():
            prev_end = 0
            for a in sorted(pool.allocs):
                g, size = pool.allocs[a]
                assert a >= prev_end and g.addr <= a and a + size <= g.addr + g.size
                prev_end = a + size
        assert k.pt.wx_pages == _expected_wx(k, d)
        if i % 5 == 0:
            assert_aggregates(k.pt)
    return k, d


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=random_trace_rows())
def test_random_traces_v1(tb, rows):
    tb.rows.clear()
    k, d = replay_checked(build(tb, rows), V1)
    assert k.pt.text_bytes == 0 and k.pt.wx_pages == 0
    # everything is freed except the kprobe caches' last pages (kernel/kprobes.c
    # collect_one_slot(): "We keep the last one so there is always a free slot")
    assert len(k.areas) == kept_kprobe_pages(d)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=random_trace_rows())
def test_random_traces_pmd(tb, rows):
    tb.rows.clear()
    k, d = replay_checked(build(tb, rows), PMD)
    assert k.pt.text_bytes == 0 and k.pt.wx_pages == 0
    pool = d.allocators.pools["text_pmd"]
    kept = kept_kprobe_pages(d)
    # only the kept kprobe pages remain, inside granules; every other granule is gone
    assert len(pool.allocs) == kept
    assert len(k.areas) == len(pool.granules) <= kept
    # granules are 2 MiB multiples, PMD aligned
    for g in pool.granules:
        assert g.size % PMD_SIZE == 0 and (g.addr - k.vstart + k.offset) % PMD_SIZE == 0


def test_sub_page_text_alignment_is_refused(tb):
    # arch_prepare_bpf_trampoline() force_unprotects image & PAGE_MASK for one
    # page: sub-page placement of MOD_TEXT pieces cannot work with it.
    import pytest
    from execbench.errors import DesignError
    tb.module("m", text=100)
    with pytest.raises(DesignError, match="text_alignment"):
        run(tb.trace(), PMD, params={"text_alignment": 64})
    r = run(tb.trace(), PMD, params={"text_alignment": 8192})
    assert r.counters["mat_granules_new"] == 1
