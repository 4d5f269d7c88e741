"""``legacy`` (v6.1) against hand-worked expectations.

Every expected number below is derived from the v6.1 source in a comment:
kernel/module/main.c layout_sections() (strict_align = PAGE_ALIGN with
STRICT_MODULE_RWX), kernel/module/strict_rwx.c module_enable_ro/nx/x,
kernel/bpf/core.c bpf_prog_pack / bpf_jit_binary_pack_alloc,
arch/x86/kernel/kprobes/core.c alloc_insn_page.
"""
from __future__ import annotations

from execbench.replay import run


def _three_modules(tb):
    # A: text 5000 -> 2 pages; rodata 3000 -> 1; ro_after_init 100 -> 1;
    #    core size PAGE_ALIGN(16384 + 2000) = 20480 (5 pages)
    #    init: text 300 -> 1 page, rodata 0, size PAGE_ALIGN(4096 + 50) = 8192 (2 pages)
    tb.module("A", text=5000, rodata=3000, ro_after_init=100, data=2000,
              init_text=300, init_rodata=0, init_data=50)
    # B: text 100 -> 1 page, rodata 50 -> 1 page, no ro_after_init,
    #    core PAGE_ALIGN(8192 + 3000) = 12288 (3 pages); init size 0 -> no init area
    tb.module("B", text=100, rodata=50, data=3000)
    # C: text 9000 -> 3 pages, no rodata, core PAGE_ALIGN(12288 + 100) = 16384 (4 pages)
    #    init: text 5000 -> 2 pages, rodata 100 -> 1 page, size 12288 (3 pages)
    tb.module("C", text=9000, data=100, init_text=5000, init_rodata=100)
    return tb


def test_three_modules_load(tb):
    r = run(_three_modules(tb).trace(), "legacy", seed=0)
    f, c = r.final, r.counters
    # module_alloc per core and per non-empty init: A 2, B 1, C 2
    assert c["vmalloc_calls"] == 5
    assert c["vmalloc_bytes"] == (5 + 2 + 3 + 4 + 3) * 4096
    # complete_formation(): module_enable_ro 4 set_memory_ro (core text, core
    # rodata, init text, init rodata) + module_enable_nx 5 set_memory_nx +
    # module_enable_x 2 set_memory_x = 11 calls per module, whatever the sizes
    assert c["cpa_calls"] == 33
    assert (c["cpa_calls_ro"], c["cpa_calls_nx"], c["cpa_calls_x"]) == (12, 15, 6)
    # pages whose PTE changed:
    #   ro: A 2+1+1+0, B 1+1+0+0, C 3+0+2+1 -> 4 + 2 + 6 = 12
    #   nx: module_alloc() maps PAGE_KERNEL (already NX) -> 0
    #   x:  A 2+1, B 1+0, C 3+2 -> 3 + 1 + 5 = 9
    assert c["cpa_pages"] == 12 + 0 + 9
    # live text in 4 KiB PTEs: A 2 + 1, B 1, C 3 + 2
    assert f["text_ptes_4k"] == 9 and f["text_pmds_2m"] == 0
    # RO before X: never W+X (the 2019 "Avoid breaking W^X" ordering)
    assert f["wx_pages_peak_instant"] == 0
    # calls that change a PTE (cpa_calls_effective):
    #   ro: A core text, core rodata, init text (init rodata is 0 pages) = 3;
    #       B core text, core rodata (no init area: NULL, 0 pages) = 2;
    #       C core text, init text, init rodata (core rodata 0 pages) = 3
    #   nx: 0 of 15 (PAGE_KERNEL is NX already); x: A 2, B 1, C 2
    # -> 8 + 0 + 5 = 13 of 33: 20 calls change nothing
    assert c["cpa_calls_effective"] == 8 + 0 + 5
    # every effective set_memory_ro processes the alias -> flush_tlb_all:
    # A 3 (core text, core rodata, init text), B 2, C 3 (core text, init text, init rodata)
    # set_memory_x in v6.1 skips the alias: per-page IPIs instead (<= 33 pages)
    # The 17 frames lie in one 2 MiB region of one 1 GiB direct-map leaf
    # (contiguous placement, seed 0): A's first set_memory_ro splits the
    # 1 GiB leaf, then the 2 MiB one -- __split_large_page() ends each with
    # flush_tlb_all(): 2 more.
    assert (r.final["direct_map_level3_splits"], r.final["direct_map_level2_splits"]) == (1, 1)
    assert c["tlb_flush_all"] == 3 + 2 + 3 + 2
    assert c["tlb_flush_ipis"] == 2 + 1 + 2
    # shootdowns = every broadcast: 10 full flushes + 5 per-page IPIs
    assert c["tlb_shootdowns"] == 10 + 5


def test_kallsyms_get_their_own_pages(tb):
    # kernel/module/main.c layout_sections() ends the data mask with strict_align()
    # (PAGE_ALIGN), then kernel/module/kallsyms.c layout_symtab() appends the kallsyms
    # and strict_align()s again, in core and in init (v6.1):
    #   core = PA(1000 text) 4096 + PA(0) + PA(0) + PA(2500 - 1500 = 1000) 4096
    #          + PA(1500 kallsyms) 4096 = 12288; paging data+kallsyms as one would give
    #          PA(2500) = 4096 and 8192 in all, one page short.
    #   init = PA(200 init text) 4096 + PA(0) + PA(5000 - 4800 = 200) 4096
    #          + PA(4800) 8192 = 16384 (PA(5000) = 8192 would give 12288).
    tb.add("module", "load", "K", text=1000, rodata=0, ro_after_init=0, data=2500,
           init_text=200, init_rodata=0, init_data=5000, align=16, relocs=0, reloc_secs=0,
           alt_sites=0, orc_entries=0, mcount_locs=0, kallsyms=1500, init_kallsyms=4800)
    c = run(tb.trace(), "legacy", seed=0).counters
    assert (c["vmalloc_calls"], c["vmalloc_bytes"]) == (2, 12288 + 16384)
    # module_enable_nx: core [ro_after_init end, size) = 2 pages, init [ro end, size) = 3
    # pages, plus 0-page calls for core rodata, core ro_after_init and init rodata
    assert c["cpa_pages_nx"] == 2 + 3
    # a data part without kallsyms (only the data sections) needs no page of its own
    tb2 = type(tb)()
    tb2.add("module", "load", "K", text=1000, rodata=0, ro_after_init=0, data=1500,
            init_text=200, init_rodata=0, init_data=4800, align=16, relocs=0, reloc_secs=0,
            alt_sites=0, orc_entries=0, mcount_locs=0, kallsyms=1500, init_kallsyms=4800)
    # core 4096 + PA(0) + PA(1500) 4096 = 8192; init 4096 + PA(0) + PA(4800) 8192 = 12288
    assert run(tb2.trace(), "legacy", seed=0).counters["vmalloc_bytes"] == 8192 + 12288


def test_three_modules_init_done_and_unload(tb):
    _three_modules(tb)
    for m in "ABC":
        tb.add("module", "init_done", m)
    r1 = run(tb.trace(), "legacy", seed=0)
    c = r1.counters
    # do_init_module(): module_enable_ro(mod, true) = 5 more set_memory_ro each;
    # only A's ro_after_init page changes; then do_free_init() frees A's and
    # C's init areas (B has none) with VM_FLUSH_RESET_PERMS -> 1 flush each
    assert c["cpa_calls"] == 33 + 15
    assert c["cpa_calls_effective"] == 13 + 1
    assert c["cpa_pages"] == 21 + 1
    assert c["vfree_calls"] == 2
    # 10 at load (8 CPA + 2 splits) + A's ro_after_init + 2 vm_reset_perms
    assert c["tlb_flush_all"] == 10 + 1 + 2
    # do_free_init(): module_memfree(freeinit->module_init) for all three,
    # NULL for B (kernel/module/main.c v6.1): a call that frees nothing
    assert c["free_null_calls"] == 1 and c["module_memfree_null"] == 1
    # init text gone: A 2, B 1, C 3 text PTEs remain
    assert r1.final["text_ptes_4k"] == 6
    for m in "ABC":
        tb.add("module", "unload", m)
    r2 = run(tb.trace(), "legacy", seed=0)
    assert r2.final["vmap_areas"] == 0 and r2.final["backing_bytes"] == 0
    assert r2.counters["vfree_calls"] == 5
    # free_module(): module_memfree(mod->init_layout.base) -- NULL after
    # do_init_module() -- then the core: 3 more NULL calls, 1 + 3 = 4
    assert r2.counters["free_null_calls"] == 1 + 3


def test_100_bpf_programs_share_one_pack(tb):
    for i in range(100):
        tb.add("bpf", "prog_load", f"p{i}", size=700)
    r = run(tb.trace(), "legacy", seed=0)
    c, f = r.counters, r.final
    # bpf_jit_binary_pack_alloc(700): round_up(700 + sizeof(bpf_binary_header)=8
    # + 16, 64) = 768 bytes = 12 chunks; 100 x 12 = 1200 of 32768 chunks -> one pack
    assert c["bpf_prog_pack_new"] == 1
    assert c["vmalloc_calls"] == 1 and c["vmalloc_bytes"] == 2 * 1024 * 1024
    # alloc_new_pack(): set_memory_ro + set_memory_x over 512 pages (v6.1)
    assert (c["cpa_calls"], c["cpa_pages"]) == (2, 1024)
    # bpf_jit_binary_pack_finalize(): one text_poke_copy of 768 bytes each; a
    # 768-byte copy never needs a second __text_poke (chunk = 8192 - offset >= 4096)
    assert c["text_pokes"] == 100 and c["text_poke_bytes"] == 100 * 768
    # the programs fill chunks 0..1199 = bytes [0, 76800) of the pack: pages
    # 0..18 (76800 / 4096 = 18.75) each hold program bytes -> 19 4K entries
    assert f["text_ptes_4k"] == 19
    # requested 70,000 bytes against a 2 MiB pack
    assert f["requested_bytes"] == 70000 and f["backing_bytes"] == 2 * 1024 * 1024


def test_v517_bpf_without_pack(tb):
    for i in range(100):
        tb.add("bpf", "prog_load", f"p{i}", size=700)
    r = run(tb.trace(), "legacy", seed=0, params={"bpf_prog_pack": False})
    c = r.counters
    # bpf_jit_binary_alloc(): round_up(700 + 8 + 128, PAGE_SIZE) = 4096 -> one
    # module_alloc page per program; bpf_jit_binary_lock_ro(): ro + x per program
    assert c["vmalloc_calls"] == 100
    assert c["cpa_calls"] == 200 and c["cpa_pages"] == 200
    assert r.final["text_ptes_4k"] == 100
    assert c["text_pokes"] == 0


def test_pack_is_freed_when_its_last_program_goes(tb):
    for i in range(3):
        tb.add("bpf", "prog_load", f"p{i}", size=100)
    for i in range(3):
        tb.add("bpf", "prog_unload", f"p{i}")
    r = run(tb.trace(), "legacy", seed=0)
    c = r.counters
    # bpf_prog_pack_free(): text_poke_set over each program's chunks
    # (round_up(100 + 24, 64) = 128 bytes -> 1 poke each), then the empty pack
    # is vfree'd with VM_FLUSH_RESET_PERMS
    assert c["text_pokes"] == 3 + 3
    assert c["vfree_calls"] == 1 and c["vfree_reset_perms"] == 1
    assert r.final["vmap_areas"] == 0


def test_kprobe_slots_share_a_page_and_the_last_page_is_kept(tb):
    for i in range(300):
        tb.add("kprobe", "register", f"k{i}", size=16)
    for i in range(300):
        tb.add("kprobe", "unregister", f"k{i}")
    r = run(tb.trace(), "legacy", seed=0)
    c = r.counters
    # 4096 // MAX_INSN_SIZE (15, arch/x86/include/asm/insn.h) = 273 slots per
    # page: 300 probes need 2 pages, each alloc_insn_page() = module_alloc +
    # set_memory_ro + set_memory_x
    assert c["kprobe_insn_pages_new"] == 2
    assert c["cpa_calls"] == 4
    # one text_poke per arch_copy_kprobe() of insn + INT3 = 2 + 1 = 3 bytes
    assert c["text_pokes"] == 300 and c["text_poke_bytes"] == 300 * 3
    # slots freed clean (not boostable under CONFIG_PREEMPTION): the first
    # page (k0..k272) empties at k272 and is freed, 2 pages being listed;
    # the second (k273..k299) is the last one and is kept
    assert c["kprobe_insn_pages_freed"] == 1
    assert r.final["vmap_areas"] == 1


def test_trampoline_update_allocates_a_fresh_page(tb):
    tb.add("bpf", "tramp_attach", "t", size=300)
    tb.add("bpf", "tramp_update", "t", size=400)
    tb.add("bpf", "tramp_detach", "t")
    r = run(tb.trace(), "legacy", seed=0)
    c = r.counters
    # bpf_trampoline_update(): new image page each time, ro + x on it (v6.1);
    # the old image is freed with VM_FLUSH_RESET_PERMS
    assert c["vmalloc_calls"] == 2
    assert (c["cpa_calls_ro"], c["cpa_calls_x"]) == (2, 2)
    assert c["vfree_reset_perms"] == 2


def test_same_seed_same_result_other_seed_other_layout(tb):
    _three_modules(tb)
    t = tb.trace()
    a, b = run(t, "legacy", seed=4), run(t, "legacy", seed=4)
    assert (a.samples == b.samples).all()
    assert a.counters == b.counters
    c = run(t, "legacy", seed=5)
    assert c.config.seed == 5 and c.counters["cpa_calls"] == a.counters["cpa_calls"]
