"""``execmem`` (v6.10) against hand-worked expectations, plus property tests
shared with ``execmem_rox``.

Expected numbers are derived in the comments from v6.10 source:
kernel/module/main.c module_memory_alloc() (one execmem_alloc per non-empty
mod_mem_type, PAGE_ALIGN(size)), kernel/module/strict_rwx.c
(module_enable_rodata_ro / module_enable_data_nx / module_enable_text_rox;
module_set_memory() returns early for a NULL base), kernel/bpf/core.c
(bpf_prog_pack + set_memory_rox), kernel/bpf/trampoline.c +
arch/x86/net/bpf_jit_comp.c (trampolines in packs since v6.8),
arch/x86/kernel/kprobes/core.c alloc_insn_page(), arch/x86/kernel/ftrace.c
create_trampoline(); CPA rules of arch/x86/mm/pat/set_memory.c (v6.2+).
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from execbench import registry
from execbench.kernel import Kernel, KernelConfig
from execbench.replay import run
from execbench.units import MiB
from execbench.users import dispatch_table

from randtrace import build, random_trace_rows  # noqa: F401  (re-exported for test_model_execmem_rox)
from invariants import assert_aggregates, kept_kprobe_pages  # noqa: F401  (re-exported)

MB1 = 1 * MiB   # 1048576 bytes = 256 pages


def _three_1mib(tb, init_done=True):
    # three modules, text 1 MiB each (3 MiB in all), rodata 10000 B (3 pages),
    # data 5000 B (2 pages), nothing else
    for m in "ABC":
        tb.module(m, text=MB1, rodata=10000, data=5000)
        if init_done:
            tb.add("module", "init_done", m)
    return tb


def test_three_1mib_modules_page_granular_per_type_calls(tb):
    # without the loader's side allocations, the frames are the modules' own
    r = run(_three_1mib(tb).trace(), "execmem", seed=0, machine={"side_allocs": False})
    f, c = r.final, r.counters
    # module_memory_alloc(): text, data, rodata are non-empty -> 3 execmem_alloc
    # (3 vmalloc areas) per module, 256 + 2 + 3 pages
    assert c["vmalloc_calls"] == 9
    assert c["vmalloc_bytes"] == 3 * (256 + 2 + 3) * 4096
    assert f["vmap_areas"] == 9
    # complete_formation(): rodata_ro -> set_memory_ro(rodata) [MOD_INIT_RODATA is
    # NULL: no call]; data_nx -> set_memory_nx(data), set_memory_nx(rodata)
    # [ro_after_init/init_data/init_rodata NULL]; text_rox -> set_memory_rox(text)
    # [init_text NULL] = 4 calls; after init module_enable_rodata_ro(mod, true):
    # set_memory_ro(rodata) again [ro_after_init NULL] = 1 call -> 5 per module
    assert c["cpa_calls"] == 15
    assert (c["cpa_calls_ro"], c["cpa_calls_nx"], c["cpa_calls_rox"]) == (6, 6, 3)
    # the per-type call on text: set_memory_rox over 256 pages per module
    assert c["cpa_pages_rox"] == 3 * 256
    # pages changed: rodata 3 (ro, once), text 256 (rox); nx on PAGE_KERNEL: 0
    assert c["cpa_pages"] == 3 * (3 + 256)
    # live text in 4 KiB PTEs: 3 MiB / 4 KiB = 768, no 2 MiB leaf
    assert f["text_ptes_4k"] == 768 and f["text_pmds_2m"] == 0
    # flush_tlb_all: rodata ro (alias RW->RO) and text rox (alias RO) per module;
    # nx on already-NX pages and the second ro change nothing -> no flush.
    # On a fresh boot the ~783 frames come in ascending order from one free
    # area (mm/page_alloc.c expand() hands a block out from its low end), so
    # they lie in one 1 GiB direct-map leaf and in two or three 2 MiB ones
    # (783 < 2 * 512), depending on where the boot's own usage ended (seeded):
    # the first RO alias change splits the 1 GiB leaf, then each 2 MiB one as
    # it is reached -- one flush_tlb_all() per split (__split_large_page()).
    l3, l2 = f["direct_map_level3_splits"], f["direct_map_level2_splits"]
    assert l3 == 1 and l2 in (2, 3)
    assert c["tlb_flush_all"] == 3 * 2 + l3 + l2
    assert c["tlb_shootdowns"] == c["tlb_flush_all"]   # v6.10: no per-page IPI, no lazy free
    # written in place while RW: no text_poke at all
    assert c["text_pokes"] == 0
    assert f["wx_pages_peak_instant"] == 0


def test_module_with_init_and_ro_after_init(tb):
    # text 5000 (2 pages), rodata 3000 (1), ro_after_init 100 (1), data 2000 (1),
    # init_text 300 (1), init_data 50 (1) -> 6 areas
    tb.module("A", text=5000, rodata=3000, ro_after_init=100, data=2000,
              init_text=300, init_data=50)
    r = run(tb.trace(), "execmem", seed=0)
    c = r.counters
    assert c["vmalloc_calls"] == 6
    # formation: ro(rodata) 1 + nx(data, rodata, ro_after_init, init_data) 4
    #            + rox(text, init_text) 2 = 7 calls; pages changed: 1 + 0 + (2 + 1)
    assert c["cpa_calls"] == 7
    assert c["cpa_pages"] == 4
    # flushes: the ro and the two rox calls change pages -> 3; plus the
    # splits of the 1 GiB and the 2 MiB direct-map leaf over the (contiguous)
    # frames at the first RO alias change, a flush_tlb_all() each -> 3 + 2
    assert (r.final["direct_map_level3_splits"], r.final["direct_map_level2_splits"]) == (1, 1)
    assert c["tlb_flush_all"] == 3 + 2
    tb.add("module", "init_done", "A")
    r = run(tb.trace(), "execmem", seed=0)
    c = r.counters
    # after init: ro(rodata) no change + ro(ro_after_init) 1 page -> 2 calls, 1 flush;
    # do_free_init(): execmem_free(init_text), execmem_free(init_data): vfree with
    # VM_FLUSH_RESET_PERMS (execmem sets it) -> 1 flush each
    assert c["cpa_calls"] == 7 + 2
    assert c["vfree_calls"] == 2 and c["vfree_reset_perms"] == 2
    assert c["tlb_flush_all"] == 5 + 1 + 2
    assert r.final["vmap_areas"] == 4
    # do_free_init() also calls execmem_free(init_rodata) = execmem_free(NULL)
    # (kernel/module/main.c, v6.4+: three calls whatever the module has)
    assert c["free_null_calls"] == 1 and c["execmem_free_null"] == 1


def test_bpf_trampolines_live_in_packs(tb):
    # v6.8+: every trampoline image is a bpf_prog_pack chunk; the pack is made
    # ROX once (alloc_new_pack: one set_memory_rox over 512 pages) and the
    # images are written with text_poke_copy -- no CPA per generation
    tb.add("bpf", "tramp_attach", "t", size=300)
    tb.add("bpf", "tramp_update", "t", size=400)
    tb.add("bpf", "tramp_update", "t", size=400)
    tb.add("bpf", "tramp_detach", "t")
    r = run(tb.trace(), "execmem", seed=0)
    c = r.counters
    assert c["vmalloc_calls"] == 1 and c["vmalloc_bytes"] == 2 * MiB
    assert c["cpa_calls"] == 1 and c["cpa_calls_rox"] == 1 and c["cpa_pages"] == 512
    # text_poke_copy per image (300 and 400 B fit one __text_poke each) = 3;
    # bpf_prog_pack_free invalidates each freed image with text_poke_set = 3
    assert c["text_pokes"] == 6
    # the pack is freed when its bitmap empties -> nothing left
    assert r.final["vmap_areas"] == 0
    # legacy (v6.1) for comparison: a page + set_memory_ro + set_memory_x per
    # generation = 3 x 2 calls
    assert run(tb.trace(), "legacy", seed=0).counters["cpa_calls"] == 6


def test_kprobe_and_ftrace_pages(tb):
    tb.add("kprobe", "register", "k", size=16)
    tb.add("ftrace", "ops_register", "f", size=300)
    r = run(tb.trace(), "execmem", seed=0)
    c = r.counters
    # alloc_insn_page: execmem_alloc(EXECMEM_KPROBES, PAGE_SIZE) + set_memory_rox(1);
    # create_trampoline: execmem_alloc(EXECMEM_FTRACE, 300) (1 page) + set_memory_rox(1)
    assert c["vmalloc_calls"] == 2
    assert c["cpa_calls"] == 2 and c["cpa_calls_rox"] == 2 and c["cpa_pages"] == 2
    # the slot is written with text_poke (16 B, 1 poke); the trampoline with memcpy
    assert c["text_pokes"] == 1
    assert r.entry_points["kprobe"] == ["execmem_alloc", "set_memory_rox", "text_poke"]
    assert r.entry_points["ftrace"] == ["execmem_alloc", "set_memory_rox"]


# -- property tests ---------------------------------------------------------------------

def replay_checked(trace, design: str, params: dict | None = None, seed: int = 0):
    """Replay like execbench.replay.run, checking invariants after every event;
    returns (kernel, design instance)."""
    cls = registry.get(design)
    k = Kernel(KernelConfig(seed=seed, version=cls.kernel_version))
    d = cls(k, **(params or {}))
    table = dispatch_table(d)
    for i, ev in enumerate(trace.events()):
        k.advance_to(ev.t_ns)
        k.cpu, k.user = ev.cpu, ev.user
        table[(ev.user, ev.op)](ev)
        # no two live vmap areas (guard pages included) overlap
        starts = sorted(k.areas)
        for a, b in zip(starts, starts[1:]):
            assert a + k.areas[a].npages + k.areas[a].guard <= b
        if i % 7 == 0 or i == len(trace) - 1:
            assert_aggregates(k.pt)
    return k, d


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=random_trace_rows())
def test_random_traces_execmem(tb, rows):
    tb.rows.clear()
    trace = build(tb, rows)
    k, d = replay_checked(trace, "execmem")
    assert k.wx_pages_peak_instant == 0                 # RW+NX until set_memory_rox: never W+X
    assert k.pt.text_bytes == 0
    assert kept_kprobe_pages(d) <= 2
    # everything but the kept kprobe pages is freed; packs are freed when empty
    assert len(k.areas) == kept_kprobe_pages(d)
    assert not np.any(k.pt.blk_huge)            # v6.10 maps nothing with 2 MiB leaves
