"""Kprobe insn slots: the kernel's strides and the bytes it writes.

* ``kprobe_insn_slots.insn_size = MAX_INSN_SIZE`` (kernel/kprobes.c), x86
  ``MAX_INSN_SIZE`` = 15 (arch/x86/include/asm/insn.h): 4096 // 15 = 273
  slots per page.  ``kprobe_optinsn_slots.insn_size = MAX_OPTINSN_SIZE`` =
  TMPL_END_IDX + MAX_OPTIMIZED_LENGTH + JMP32_INSN_SIZE = 100 + (15 + 4) + 5
  = 124 (asm/kprobes.h, kprobes/opt.c): 4096 // 124 = 33 slots per page.
* ``arch_copy_kprobe()`` writes ``insn->length + INT3_INSN_SIZE`` bytes
  (CONFIG_PREEMPTION: no boost jump); ``arch_prepare_optimized_kprobe()``
  writes ``TMPL_END_IDX + op->optinsn.size + JMP32_INSN_SIZE``.  With the
  model's assumed instructions (2 bytes; 6 bytes copied for the detour):
  2 + 1 = 3 and 100 + 6 + 5 = 111 bytes.
* kprobe slots are freed clean (``boostable`` = 0), optprobe slots dirty.
"""
from __future__ import annotations

from execbench.models.common import kprobe_insn_cache as kic
from execbench.models.common import kprobes
from execbench.replay import run


def test_constants_follow_the_kernel():
    assert kic.MAX_INSN_SIZE == 15
    assert kic.MAX_OPTIMIZED_LENGTH == 15 + 4
    assert kic.MAX_OPTINSN_SIZE == 100 + 19 + 5 == 124
    assert (kprobes.KPROBE_WRITE, kprobes.OPTPROBE_WRITE) == (2 + 1, 100 + 6 + 5)


def test_slot_strides_and_write_sizes(tb):
    for i in range(274):
        tb.add("kprobe", "register", f"k{i}", size=15)
    for i in range(34):
        tb.add("kprobe", "optimize", f"k{i}", size=124)
    r = run(tb.trace(), "legacy", seed=0)
    c = r.counters
    # 274 kprobe slots: 273 in the first page, 1 in a second; 34 optprobe
    # slots: 33 + 1
    assert (c["kprobe_insn_pages_new"], c["kprobe_optinsn_pages_new"]) == (2, 2)
    # one text_poke per slot, of the bytes the kernel writes, not the slot
    assert c["text_pokes"] == 274 + 34
    assert c["text_poke_bytes"] == 274 * 3 + 34 * 111
    for i in range(274):
        tb.add("kprobe", "unregister", f"k{i}")
    r2 = run(tb.trace(), "legacy", seed=0)
    c2 = r2.counters
    # kprobe slots clean: page 1 (k0..k272) is freed as k272 goes, page 2 is
    # the last one and kept.  Optprobe slots dirty: the 34th dirty slot makes
    # nr_garbage 34 > 33 -> collect_garbage_slots(): the newer page (k33,
    # list head) empties first and is freed, the older one is then the only
    # page and is kept.  2 pages stay mapped.
    assert (c2["kprobe_insn_pages_freed"], c2["kprobe_optinsn_pages_freed"]) == (1, 1)
    assert r2.final["vmap_areas"] == 2


def test_jitalloc_slots_take_the_maximum_and_write_the_bytes(tb):
    # jit_alloc(NULL, MAX_INSN_SIZE = 15) -> the 16-byte class; jit_alloc(NULL,
    # MAX_OPTINSN_SIZE = 124) -> the 128-byte class; each written with one
    # jit_update (text_poke_copy) of 3 and 111 bytes
    tb.add("kprobe", "register", "k", size=15)
    tb.add("kprobe", "optimize", "k", size=124)
    r = run(tb.trace(), "jitalloc", seed=0)
    c = r.counters
    assert c["jit_slabs_new"] == 2
    assert (c["text_pokes"], c["text_poke_bytes"]) == (2, 3 + 111)
