"""The loader strategy (design parameter ``loader``) on one module, worked
out by hand from the kernel's rules, for module_alloc_type, jitalloc and
execmem_rox.

The module M: text 5000 B, rodata 3000 B, data 100 B, align 16,
7 relocation entries in 3 SHT_RELA sections, 4 alternatives sites, 3 ORC
entries, 2 __mcount_loc entries.

Rules (models/common/load_work.py has them with their sources):
* kernel/module/main.c load_module() order: move_module() (alloc +
  invalidate/memset per type in enum order, then the section copies),
  apply_relocations(), post_relocation() -> module_finalize()
  (alternatives, unwind_module_init(): ORC sort), ftrace_module_init()
  (mcount sort, then ftrace_init_nop() per __mcount_loc entry),
  complete_formation().
* relocation section i targets the i-th present type of (text, rodata,
  init_text, init_rodata) round robin; section i holds 7 // 3 = 2 entries,
  +1 for i < 7 % 3 = 1: sec0 -> text 3, sec1 -> rodata 2, sec2 -> text 2:
  text 5, rodata 2.
* lib/sort.c on ascending input: 3 entries -> 4 swaps, 2 entries -> 2 swaps
  (hand-traced in tests/test_model_module_alloc_type.py).
* arch/x86/kernel/alternative.c text_poke_copy()/text_poke_set(): chunks of
  min(2 * PAGE_SIZE - offset_in_page(ptr), len - patched): 8192 B at a page
  boundary = 1 chunk; anything <= 8192 B from a page boundary = 1 chunk.
"""
from __future__ import annotations

import pytest

from execbench.kernel.text_poke import SOURCES
from execbench.replay import run

MAT, JIT, ROX = "module_alloc_type", "jitalloc", "execmem_rox"


def _m(tb):
    tb.module("M", text=5000, rodata=3000, data=100, relocs=7, reloc_secs=3, alt_sites=4,
              orc_entries=3, mcount_locs=2)
    return tb.trace()


def _src(c):
    return {s: c[f"text_pokes_{s}"] for s in SOURCES if c[f"text_pokes_{s}"]}


def test_module_alloc_type_inplace(tb):
    # v1 as posted (patches 1/3, 3/3):
    # invalidate: text_poke_set(text, 8192) 1 + text_poke_set(rodata, 4096) 1      -> 2
    # fill: text_poke_copy(text, 5000) 1 + text_poke_copy(rodata, 3000) 1          -> 2
    # write_relocate_add(): one text_poke per entry: 5 in text + 2 in rodata      -> 7
    #   and one text_poke_sync() per section                                        (3 syncs)
    # apply_alternatives & co: do_text_poke() per site                             -> 4
    # orc_sort_swap(): 4 swaps x 4 text_poke_copy                                  -> 16
    # ftrace_swap_func(): 2 swaps x 2 text_poke_copy                               -> 4
    # ftrace_modify_code_direct(): 2 __fentry__ sites x text_poke(5 B)             -> 2
    c = run(_m(tb), MAT, params={"loader": "inplace"}).counters
    assert _src(c) == {"invalidate": 2, "fill": 2, "reloc": 7, "alternatives": 4,
                       "orc_sort": 16, "mcount_sort": 4, "ftrace_init": 2}
    assert c["text_pokes"] == 37
    assert c["text_poke_syncs"] == 3
    assert c["text_poke_bytes"] == (8192 + 4096) + (5000 + 3000) + 7 * 4 + 4 * 5 \
        + 4 * (4 + 4 + 6 + 6) + 2 * (8 + 8) + 2 * 5


def test_module_alloc_type_staged(tb):
    # the writable copy takes every write; each poked area (text 8192 B, rodata
    # 4096 B, page-aligned) is published with one module_memory_fill_type():
    # 1 chunk each -> 2 fill pokes; no invalidate, no per-item poke, no sync.
    tr = _m(tb)
    c = run(tr, MAT, params={"loader": "staged"}).counters
    assert _src(c) == {"fill": 2}
    assert c["text_poke_bytes"] == 8192 + 4096
    assert c["text_poke_syncs"] == 0
    # the allocation and permissions are v1's either way
    ci = run(tr, MAT, params={"loader": "inplace"}).counters
    for k in ("vmalloc_calls", "cpa_calls", "cpa_pages", "tlb_flush_all"):
        assert c[k] == ci[k], k


def test_jitalloc_staged(tb):
    # text 5000 B > 2048: page-granular jit_alloc; the image is built in the
    # buffer and written with one jit_update(text, 5000) = text_poke_copy: 1
    # chunk; rodata/data are v6.4 module_alloc memory written with plain stores.
    c = run(_m(tb), JIT, params={"loader": "staged"}).counters
    assert _src(c) == {"fill": 1}
    assert c["text_poke_bytes"] == 5000


def test_jitalloc_inplace(tb):
    # every write into text through jit_update (= text_poke_copy, one chunk each):
    # memset of the object (invalidate) 1, section copy (fill) 1, relocations in
    # text 5 (the 2 into rodata are plain stores: rodata is RW+NX), alternatives 4,
    # __fentry__ NOPs 2; the ORC and mcount tables are in RW rodata: plain stores.
    r = run(_m(tb), JIT, params={"loader": "inplace"})
    c = r.counters
    assert _src(c) == {"invalidate": 1, "fill": 1, "reloc": 5, "alternatives": 4,
                       "ftrace_init": 2}
    assert c["text_poke_bytes"] == 5000 + 5000 + 5 * 4 + 4 * 5 + 2 * 5
    assert c["text_pokes"] == 13


def test_jitalloc_inplace_needs_text_poke(tb):
    from execbench.errors import DesignError
    with pytest.raises(DesignError, match="text_poke"):
        run(_m(tb), JIT, params={"loader": "inplace", "text_poke": False})


def test_execmem_rox_by_version(tb):
    # v6.13 (staged, as the kernel did): one execmem_update_copy(text, 8192)
    # (page-aligned mem->size, 1 chunk), published in module_post_finalize()
    # before ftrace_module_init(), so the 2 __fentry__ sites are text_pokes.
    tr = _m(tb)
    r = run(tr, ROX, params={"version": (6, 13)})
    assert r.params["loader"] == "staged"
    assert _src(r.counters) == {"fill": 1, "ftrace_init": 2}
    # v6.15 (temp_rw): plain stores into the temporarily RW text: no poke
    r = run(tr, ROX)
    assert r.params["loader"] == "temp_rw" and r.counters["text_pokes"] == 0
    # inplace what-if: execmem_update_copy(text, 5000) 1, relocations in text 5,
    # alternatives 4, __fentry__ 2 (rodata is RW: sorts and its relocations plain)
    c = run(tr, ROX, params={"loader": "inplace"}).counters
    assert _src(c) == {"fill": 1, "reloc": 5, "alternatives": 4, "ftrace_init": 2}


def test_execmem_rox_temp_rw_needs_v615(tb):
    from execbench.errors import DesignError
    with pytest.raises(DesignError, match="6.15"):
        run(_m(tb), ROX, params={"version": (6, 13), "loader": "temp_rw"})


def test_wx_exposure_by_cause_under_both_strategies(tb):
    # module_alloc_type, a module with text 5000 B (2 pages) and data 100 B
    # (1 page), 7 relocations in 3 sections (all in text), 4 alternatives sites;
    # default costs (ns): vmalloc 2000 + 250/page, cpa_call 1000, text_poke 1500,
    # text_poke_sync 5000, memcpy 0.1/B.
    # alloc_window: the text area is PAGE_KERNEL_EXEC from its map to the
    #   change in set_memory_rox: its vmalloc tick (2000 + 2 x 250) and the
    #   cpa_call tick before the change (1000): 2 pages x 3500        = 7000
    # data_until_nx: the data page from its map (vmalloc 2000 + 250) to the
    #   change in complete_formation()'s set_memory_nx (cpa_call 1000 first):
    #   inplace: + memset 409.6 + fill text_poke_copy(5000) 1500 + 500
    #            + memcpy(100) 10 + 7 relocs x 1500.4 + 3 syncs x 5000
    #            + 4 sites x 1500.5                            = 37174.4
    #   staged:  + memset 409.6 + copy into the buffer 500 + memcpy(100) 10
    #            + relocs 28 B 2.8 + sites 20 B 2 + publish
    #            text_poke_copy(8192) 1500 + 819.2             =  6493.6
    tb.module("T", text=5000, data=100, relocs=7, reloc_secs=3, alt_sites=4)
    tr = tb.trace()
    for loader, data_ns, in_poke in (("inplace", 37174.4, 2000 + 7 * 1500.4 + 4 * 1500.5),
                                     ("staged", 6493.6, 1500 + 819.2)):
        f = run(tr, MAT, params={"loader": loader}).final
        assert f["wx_page_ns_alloc_window"] == pytest.approx(7000), loader
        assert f["wx_page_ns_data_until_nx"] == pytest.approx(data_ns), loader
        assert f["wx_page_ns"] == pytest.approx(7000 + data_ns), loader
        # the pokes inside the data page's window, 1 W+X page each
        assert f["text_poke_wx_page_ns"] == pytest.approx(in_poke), loader


@pytest.mark.parametrize("design", ["legacy", MAT, "module_alloc_type_pmd", JIT, "execmem", ROX])
def test_module_patch_pokes_are_counted_as_patch(tb, design):
    # text_poke_bp() on a 5-byte site in module text: INT3, the 4-byte tail,
    # the first byte -> 3 pokes (arch/x86/kernel/alternative.c text_poke_bp_batch)
    tb.module("P", text=5000)
    tb.add("module", "patch", "P", offset=16, len=5)
    c = run(tb.trace(), design).counters
    assert c["text_pokes_patch"] == 3
    assert sum(c[f"text_pokes_{s}"] for s in SOURCES) == c["text_pokes"]
    assert c["text_pokes_other"] == 0


def test_faults_as_posted(tb):
    # v1 as posted (patch 1/3): d->rw_image = bpf_jit_alloc_exec(PAGE_SIZE) is a
    # RO+X MOD_TEXT page and bpf_dispatcher_prepare() emits into it with plain
    # stores: one fault per dispatcher update (2 here).  create_trampoline()
    # with X86_FEATURE_RETHUNK stores the return-thunk jmp with
    # __text_gen_insn(ip, ...): one more per trampoline, only with rethunk.
    tb.add("bpf", "dispatcher_update", "xdp")
    tb.add("bpf", "dispatcher_update", "xdp")
    tb.add("ftrace", "ops_register", "ops", size=200)
    tr = tb.trace()
    c = run(tr, MAT).counters
    assert (c["faults_as_posted"], c["faults_as_posted_dispatcher"]) == (2, 2)
    c = run(tr, MAT, params={"rethunk": True}).counters
    assert c["faults_as_posted"] == 3 and c["faults_as_posted_ftrace_rethunk"] == 1
    # the fix writes the 5-byte jmp with text_poke_copy instead of 2 bytes of retq+int3
    c0 = run(tr, MAT).counters
    assert c["text_poke_bytes"] - c0["text_poke_bytes"] == 5 - 2
    for d in ("legacy", JIT, "execmem", ROX):
        assert run(tr, d).counters["faults_as_posted"] == 0, d


def test_plain_store_loaders_write_the_same_item_bytes(tb):
    # rw/temp_rw make every item a plain store: 7 x 4 (relocations) + 4 x 5
    # (sites) + 4 swaps x (4+4+6+6) (ORC) + 2 swaps x (8+8) (mcount) + 2 x 5
    # (__fentry__ NOPs) = 28 + 20 + 80 + 32 + 10 = 170 bytes, the bytes the
    # batches of the other strategies carry
    from execbench.models.common.load_work import item_bytes, load_items
    ev = next(_m(tb).events())
    assert item_bytes(ev) == 170
    assert sum(b.bytes for b in load_items(ev, {"text", "rodata", "data"})[0]) == 170
