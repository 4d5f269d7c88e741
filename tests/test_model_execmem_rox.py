"""``execmem_rox`` (v6.13, v6.15, v6.17) against hand-worked expectations.

Derivations cite mm/execmem.c (execmem_cache_alloc/populate/free/clean, v6.13
and the 2025 rework), kernel/module/main.c + strict_rwx.c (is_rox text:
shadow + execmem_update_copy in v6.13; execmem_make_temp_rw /
execmem_restore_rox in v6.15), arch/x86/mm/init.c execmem_arch_setup() and
arch/x86/mm/pat/set_memory.c (CPA_COLLAPSE, v6.15).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from execbench.errors import DesignError
from execbench.kernel import Kernel, KernelConfig
from execbench.kernel.layout import MODULES_END
from execbench.models.execmem_rox import ExecmemRox
from execbench.models.execmem_rox.cache import ExecmemCache
from execbench.replay import run
from execbench.units import MiB, PMD_SIZE

from test_model_execmem import _three_1mib, build, kept_kprobe_pages, random_trace_rows, replay_checked

V613 = {"version": (6, 13)}
V615 = {"version": (6, 15)}
V617 = {"version": (6, 17)}
V72 = {"version": (7, 2)}


def test_cache_is_address_ordered_first_fit():
    k = Kernel(KernelConfig(seed=0, version=(6, 13)))
    cache = ExecmemCache(k, k.vstart, MODULES_END, (6, 13))
    a = cache.alloc(4096)            # populate: one PMD-aligned 2 MiB block
    b = cache.alloc(8192)
    c = cache.alloc(4096)
    assert a % PMD_SIZE == 0 and len(k.areas) == 1
    assert (b, c) == (a + 4096, a + 12288)
    cache.free(b, k.text_poke_set)
    # free areas now [a+4K, a+12K) and [a+16K, a+2M): 4 KiB takes the lowest hole,
    # 8 KiB no longer fits what is left of it ([a+8K, a+12K)) -> a+16K
    assert cache.alloc(4096) == a + 4096
    assert cache.alloc(8192) == a + 16384
    for p in (a, a + 4096, c, a + 16384):
        cache.free(p, k.text_poke_set)
    # wholly free again -> execmem_cache_clean() vfrees the block
    assert k.areas == {} and cache.free_bytes() == 0
    assert not k.phys.alias_invalid.any()


def test_v613_three_1mib_modules_share_two_rox_leaves(tb):
    r = run(_three_1mib(tb).trace(), "execmem_rox", seed=0, params=V613)
    f, c = r.final, r.counters
    # text: A at block 1 [0, 1M), B at [1M, 2M) (first fit), C needs a new block:
    # 3 MiB of text in two 2 MiB ROX leaves and not one 4 KiB PTE
    assert f["text_pmds_2m"] == 2 and f["text_ptes_4k"] == 0
    assert c["vmalloc_huge"] == 2
    # data and rodata stay v6.10's: 2 areas per module + the 2 cache blocks
    assert c["vmalloc_calls"] == 3 * 2 + 2
    # no set_memory_* on text: module_enable_text_rox() skips is_rox, the cache
    # remaps ROX without CPA.  Remaining per module: ro(rodata), nx(data),
    # nx(rodata), ro(rodata) after init = 4
    assert c["cpa_calls_rox"] == 0 and c["cpa_calls_x"] == 0
    assert c["cpa_calls"] == 3 * 4
    # one execmem_update_copy (text_poke_copy) of 1 MiB per module from a page-aligned
    # address: 1048576 / 8192 = 128 __text_poke calls
    assert c["text_pokes"] == 3 * 128
    # the frames of both blocks leave the direct map, 512 at a time
    assert c["direct_map_invalid_pages"] == 2 * 512
    # flushes: ro(rodata) per module 3 + vunmap_range per populated block 2
    # (flush_tlb_kernel_range over 512 pages > 33: a full flush); and one per
    # direct-map split: the rodata frames' 1 GiB and 2 MiB leaf (RO alias) and
    # the 1 GiB leaf over the blocks' frames at the top of memory
    # (set_direct_map_invalid_noflush: whole 2 MiB blocks keep their 2 MiB
    # leaves, the 1 GiB one above them must split) -> 3
    assert (f["direct_map_level3_splits"], f["direct_map_level2_splits"]) == (2, 1)
    assert c["tlb_flush_all"] == 3 + 2 + 3
    assert c["tlb_shootdowns_vunmap"] == 2
    assert f["wx_pages_peak_instant"] == 0


def test_v613_unload_returns_blocks(tb):
    _three_1mib(tb)
    for m in "ABC":
        tb.add("module", "unload", m)
    k, d = replay_checked(tb.trace(), "execmem_rox", V613)
    c = k.counters
    # execmem_cache_free: text_poke_set(INT3) over each 1 MiB -> 128 more pokes each
    assert c["text_pokes"] == 2 * 3 * 128
    # both blocks wholly free -> direct map restored, vfree'd
    assert c["execmem_cache_blocks_freed"] == 2
    assert c["direct_map_valid_pages"] == 1024 and not k.phys.alias_invalid.any()
    assert k.areas == {}
    # data/rodata vfrees carry VM_FLUSH_RESET_PERMS (1 flush each, 6); the cache
    # blocks' vfree does not (lazy): each block waits on the purge list and goes
    # in the flush of the next VM_FLUSH_RESET_PERMS vfree (the same module's
    # rodata, free_mod_mem()) -- no flush of its own -> 8 (load) + 6
    assert c["tlb_flush_all"] == 8 + 6
    assert c["tlb_shootdowns_lazy"] == 0 and k.lazy_nr == 0


def test_one_3mib_module_gets_a_4mib_block(tb):
    tb.module("big", text=3 * MiB, data=100)
    r = run(tb.trace(), "execmem_rox", seed=0, params=V613)
    # populate: round_up(3 MiB, PMD_SIZE) = 4 MiB, PMD-aligned -> 2 leaves
    assert r.counters["vmalloc_bytes"] == 4 * MiB + 4096
    assert r.final["text_pmds_2m"] == 2 and r.final["text_ptes_4k"] == 0
    # one text_poke_copy of 3 MiB: 3145728 / 8192 = 384 pokes
    assert r.counters["text_pokes"] == 384


def test_v615_temp_rw_splits_and_collapses(tb):
    trace = _three_1mib(tb).trace()
    r = run(trace, "execmem_rox", seed=0, params=V615)
    f, c = r.final, r.counters
    # populate: set_memory_rox over each block (2); per module execmem_make_temp_rw =
    # set_memory_nx + set_memory_rw and execmem_restore_rox = set_memory_rox (3);
    # plus ro(rodata), nx(data), nx(rodata) at formation (3); after init
    # module_enable_rodata_ro_after_init() finds no MOD_RO_AFTER_INIT (0)
    # -> 2 + 3*3 + 3*3
    assert c["cpa_calls"] == 2 + 9 + 9
    assert c["cpa_calls_rox"] == 2 + 3
    # each module's nx on part of a 2 MiB leaf splits it; restore_rox re-collapses it
    assert c["vmalloc_pmd_splits"] == 3 and c["vmalloc_pmd_collapses"] == 3
    assert f["text_pmds_2m"] == 2 and f["text_ptes_4k"] == 0
    # written with plain stores while RW+NX: no text_poke, never W+X
    assert c["text_pokes"] == 0 and f["wx_pages_peak_instant"] == 0
    # flushes: populate rox 2; per module nx, rw, rox (+1 for the collapse) = 4 -> 12;
    # ro(rodata) 3; one per split: the 3 vmalloc PMD splits and the direct-map
    # splits (1 GiB: 2, 2 MiB: 3; see the next assertion) -> 8
    assert f["direct_map_level3_splits"] == 2 and f["direct_map_level2_splits"] == 3
    assert c["tlb_flush_all"] == 2 + 12 + 3 + 3 + 2 + 3
    # rw on 256 frames of an aligned 2 MiB physical block splits its direct-map
    # leaf: one split per block used (A and B share one) -> v6.13 + 2
    r13 = run(trace, "execmem_rox", seed=0, params=V613)
    assert f["direct_map_level2_splits"] == r13.final["direct_map_level2_splits"] + 2


def test_v617_ftrace_and_kprobes_on_the_cache(tb):
    tb.add("ftrace", "ops_register", "f", size=300)
    tb.add("kprobe", "register", "k", size=16)
    r = run(tb.trace(), "execmem_rox", seed=0, params=V617)
    c, f = r.counters, r.final
    # one block; ftrace: populate rox 1 + execmem_alloc_rw's nx + rw 2 +
    # create_trampoline's set_memory_rox 1; kprobe page: ROX from the cache, no CPA
    assert c["vmalloc_calls"] == 1 and c["vmalloc_huge"] == 1
    assert c["cpa_calls"] == 4
    assert c["vmalloc_pmd_splits"] == 1 and c["vmalloc_pmd_collapses"] == 1
    # trampoline and slot share one 2 MiB leaf
    assert f["text_pmds_2m"] == 1 and f["text_ptes_4k"] == 0
    assert r.entry_points["ftrace"] == ["execmem_alloc_rw", "set_memory_rox"]
    assert r.entry_points["kprobe"] == ["execmem_alloc", "text_poke"]
    # before v6.17 both are v6.10's page-granular RW+NX allocations
    r13 = run(tb.trace(), "execmem_rox", seed=0, params=V613)
    assert r13.counters["vmalloc_huge"] == 0 and r13.final["text_ptes_4k"] == 2


def test_version_parameter():
    assert ExecmemRox.parse_params(["version=6.15"]) == {"version": (6, 15)}
    assert ExecmemRox.parse_params(["version=7.2"]) == {"version": (7, 2)}
    k = Kernel(KernelConfig(seed=0, version=(6, 13)))
    with pytest.raises(DesignError, match="version must be one of"):
        ExecmemRox(k, version=(6, 14))


@pytest.mark.parametrize("params", [V613, V615, V617, V72], ids=["6.13", "6.15", "6.17", "7.2"])
def test_random_traces_rox(tb, params):
    @settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows=random_trace_rows(max_actions=30))
    def check(rows):
        tb.rows.clear()
        k, d = replay_checked(build(tb, rows), "execmem_rox", params)
        cache = d.module.api.cache
        # text is never writable and executable at once, in any version
        assert k.wx_pages_peak_instant == 0
        assert k.pt.text_bytes == 0
        # the cache's free and busy ranges partition its blocks
        assert cache.free_bytes() + sum(cache.busy.values()) == sum(cache.blocks.values())
        kept = kept_kprobe_pages(d)
        if params in (V617, V72):
            # kprobe pages live in the cache: only they stay busy, and only the
            # blocks holding them stay populated
            assert len(cache.busy) == kept
            assert len(k.areas) == len(cache.blocks) <= kept
        else:
            assert cache.busy == {} and cache.blocks == {}
            assert len(k.areas) == kept
        assert not k.phys.alias_invalid.any()

    check()


def test_v615_unload_restores_the_direct_map(tb):
    _three_1mib(tb)
    for m in "ABC":
        tb.add("module", "unload", m)
    k, d = replay_checked(tb.trace(), "execmem_rox", V615)
    # execmem_cache_clean(): execmem_set_direct_map_valid(vm, true) -> __set_pages_p
    # (PRESENT | RW) undoes the RO alias set_memory_rox gave the block; data and
    # rodata areas are reset by VM_FLUSH_RESET_PERMS -> no frame is left RO
    assert k.counters["execmem_cache_blocks_freed"] == 2
    assert not k.phys.alias_ro.any() and k.areas == {}


def test_v617_every_module_type_comes_from_execmem_alloc_rw(tb):
    r = run(_three_1mib(tb).trace(), "execmem_rox", seed=0, params=V617)
    c = r.counters
    # populate: set_memory_rox per block 2.  Per module: text execmem_alloc_rw ->
    # nx + rw, restore_rox 1 (3); data and rodata execmem_alloc_rw -> nx + rw each (4,
    # changing nothing on RW+NX memory); ro(rodata), nx(data), nx(rodata) at
    # formation (3), nothing after init (no MOD_RO_AFTER_INIT) -> 10 per module
    assert c["cpa_calls"] == 2 + 3 * 10
    # flushes: populate 2; per module text nx, rw, rox + the collapse (4) and
    # ro(rodata) (1); the no-op calls flush nothing -> 2 + 3 * 5; plus a flush
    # per split, as in v6.15: 3 vmalloc PMD + 2 (1 GiB) + 3 (2 MiB) direct map
    assert (r.final["direct_map_level3_splits"], r.final["direct_map_level2_splits"]) == (2, 3)
    assert c["tlb_flush_all"] == 2 + 15 + 3 + 2 + 3
    assert r.final["text_pmds_2m"] == 2 and r.final["wx_pages_peak_instant"] == 0


# -- v7.2 (Debian 7.2.13) ---------------------------------------------------------------------

#: Kernel primitives whose calls the 7.2 call-sequence test records
_RECORDED = ("vmalloc", "vfree", "memcpy", "set_memory_ro", "set_memory_rw", "set_memory_nx",
             "set_memory_x", "set_memory_rox", "text_poke", "text_poke_copy", "text_poke_set",
             "text_poke_bp", "set_direct_map_valid")


def _record_calls(monkeypatch) -> list[tuple]:
    """Wrap the Kernel primitives: log (name, addr, size/npages) for every call."""
    log: list[tuple] = []
    for name in _RECORDED:
        orig = getattr(Kernel, name)

        def wrapped(self, *a, _orig=orig, _name=name, **kw):
            out = _orig(self, *a, **kw)
            if _name == "vmalloc":
                log.append(("vmalloc", out, a[0]))
            else:
                log.append((_name, *a[:2]))
            return out

        monkeypatch.setattr(Kernel, name, wrapped)
    return log


def test_v72_one_module_call_sequence(tb, monkeypatch):
    # text 10000 B (3 pages), data 3000 B (1 page), rodata 5000 B (2 pages),
    # init_text 2000 B (1 page); no ro_after_init, init_data, init_rodata
    tb.module("m", text=10000, rodata=5000, data=3000, init_text=2000)
    tb.add("module", "init_done", "m")
    log = _record_calls(monkeypatch)
    k, d = replay_checked(tb.trace(), "execmem_rox", V72)
    blk = log[0][1]                          # the first vmalloc is the cache block
    data_p, rodata_p = log[6][1], log[10][1]
    M = MiB
    expected = [
        # kernel/module/main.c module_memory_alloc(), enum order: MOD_TEXT first.
        # execmem_alloc_rw(EXECMEM_MODULE_TEXT, 12288) -> execmem_cache_alloc: cache empty ->
        # execmem_cache_populate_alloc: execmem_vmalloc(round_up(12288, PMD_SIZE) = 2 MiB),
        # execmem_fill_trapping_insns = memset(INT3) over 2 MiB, set_memory_rox(p, 512)
        ("vmalloc", blk, 2 * M), ("memcpy", blk, 2 * M), ("set_memory_rox", blk, 512),
        # execmem_force_rw(p, 12288): set_memory_nx + set_memory_rw on 3 pages; memset(0)
        ("set_memory_nx", blk, 3), ("set_memory_rw", blk, 3), ("memcpy", blk, 12288),
        # MOD_DATA: execmem_alloc_rw(EXECMEM_MODULE_DATA, 4096): plain vmalloc + the same
        # force_rw (no-op on RW+NX) + memset
        ("vmalloc", data_p, 4096), ("set_memory_nx", data_p, 1), ("set_memory_rw", data_p, 1),
        ("memcpy", data_p, 4096),
        # MOD_RODATA: 8192
        ("vmalloc", rodata_p, 8192), ("set_memory_nx", rodata_p, 2), ("set_memory_rw", rodata_p, 2),
        ("memcpy", rodata_p, 8192),
        # MOD_INIT_TEXT: first fit in the cache, right after the text: blk + 12288
        ("set_memory_nx", blk + 12288, 1), ("set_memory_rw", blk + 12288, 1),
        ("memcpy", blk + 12288, 4096),
        # move_module() copies the sections in place (plain stores, text is RW+NX)
        ("memcpy", blk, 10000), ("memcpy", data_p, 3000), ("memcpy", rodata_p, 5000),
        ("memcpy", blk + 12288, 2000),
        # complete_formation(): module_enable_rodata_ro -> MOD_RODATA (MOD_INIT_RODATA absent);
        # module_enable_data_nx -> MOD_DATA, MOD_RODATA; module_enable_text_rox ->
        # execmem_restore_rox(MOD_TEXT, 3 pages), execmem_restore_rox(MOD_INIT_TEXT, 1 page)
        ("set_memory_ro", rodata_p, 2), ("set_memory_nx", data_p, 1), ("set_memory_nx", rodata_p, 2),
        ("set_memory_rox", blk, 3), ("set_memory_rox", blk + 12288, 1),
        # do_init_module(): module_enable_rodata_ro_after_init (MOD_RO_AFTER_INIT absent: none);
        # do_free_init(): execmem_free(init_text) -> __execmem_cache_free: force_rw,
        # fill with INT3, restore_rox; the block is not wholly free -> stays
        ("set_memory_nx", blk + 12288, 1), ("set_memory_rw", blk + 12288, 1),
        ("memcpy", blk + 12288, 4096), ("set_memory_rox", blk + 12288, 1),
    ]
    assert log == expected
    # ... and execmem_free(NULL) for init_data and init_rodata: 2 calls that do nothing
    assert k.counters["execmem_free_null"] == 2
    # no text_poke anywhere: module text is written while RW+NX (7.2 has no
    # execmem_update_copy); the block is one 2 MiB ROX leaf again after the collapses
    assert k.counters.get("text_pokes", 0) == 0
    assert d.module.api.cache.free_bytes() == 2 * M - 12288


def test_v72_unload_entry_points_and_counts(tb):
    tb.module("m", text=10000, rodata=5000, data=3000, init_text=2000)
    tb.add("module", "init_done", "m")
    tb.add("module", "patch", "m", offset=16, len=5)
    tb.add("module", "unload", "m")
    r = run(tb.trace(), "execmem_rox", seed=0, params=V72)
    c = r.counters
    # CPA calls, counted from the sequence above: populate rox 1; text nx+rw 2; data nx+rw 2;
    # rodata nx+rw 2; init_text nx+rw 2 (= 9); formation ro 1 + nx 2 + rox 2 (= 14); free
    # init nx+rw+rox 3 (= 17); unload: text cache free nx+rw+rox 3 -> 20 (data/rodata:
    # plain vfree)
    assert c["cpa_calls"] == 20
    assert c["cpa_calls_rox"] == 1 + 2 + 1 + 1
    assert c["cpa_calls_nx"] == 4 + 2 + 1 + 1
    assert c["cpa_calls_rw"] == 4 + 1 + 1
    # one block made and, once text and init_text are both free, given back
    assert c["execmem_cache_blocks_new"] == 1 and c["execmem_cache_blocks_freed"] == 1
    # the jump-label patch is smp_text_poke_single() (v6.16 rename of text_poke_bp())
    assert r.entry_points["module"] == sorted([
        "execmem_alloc_rw", "execmem_is_rox", "execmem_restore_rox", "execmem_free",
        "set_memory_ro", "set_memory_nx", "set_vm_flush_reset_perms", "smp_text_poke_single"])


def test_v72_meta_names_the_release():
    # each reference row's kernel is the release its parameters select
    from execbench.report.data import _design_meta
    assert _design_meta("execmem_rox", V72).kernel == "7.2"
    assert _design_meta("execmem_rox", {"version": (6, 15)}).kernel == "6.15"
    assert _design_meta("execmem", {}).kernel == "6.10"


def test_default_is_the_release_that_ships_today_and_6_13_stays_labelled(tb):
    # 7.2 (Debian sid 7.2.13) is validated against a real 7.2 kernel under QEMU
    # (tests/test_validation.py); a9bbe3413331 disabled ARCH_HAS_EXECMEM_ROX before
    # v6.13 final, 64f6a4e10c05 re-enabled it for v6.15 -- both stay as variants
    assert ExecmemRox.defaults["version"] == (7, 2) == ExecmemRox.kernel_version
    assert "never shipped" in ExecmemRox.UNSHIPPED[(6, 13)]
    from execbench.report.data import _design_meta
    assert _design_meta("execmem_rox", {}).kernel == "7.2"
    assert _design_meta("execmem_rox", V613).kernel == "6.13, rc only, never shipped on x86 (a9bbe3413331)"
    # the simulated kernel runs the release the parameters select
    tb.module("m", text=100, data=10)
    assert run(tb.trace(), "execmem_rox", params=V615).config.version == (6, 15)
    assert run(tb.trace(), "execmem_rox").config.version == (7, 2)
