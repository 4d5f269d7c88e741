"""The simulated kernel's rules, with expectations worked out from the
kernel source by hand (file + function cited per test)."""
from __future__ import annotations

import numpy as np
import pytest

from execbench.errors import KernelBug
from execbench.kernel import Kernel, KernelConfig
from execbench.kernel.layout import MODULES_END, MODULES_LEN, MODULES_VADDR
from execbench.kernel.text_poke import chunks
from execbench.units import GiB, MiB, PAGE_SIZE, PMD_SIZE
from invariants import assert_aggregates


def test_module_range_constants():
    # pgtable_64_types.h: MODULES_VADDR = __START_KERNEL_map (0xffffffff80000000)
    # + KERNEL_IMAGE_SIZE (1 GiB with RANDOMIZE_BASE) = 0xffffffffc0000000;
    # MODULES_END = 0xffffffffff000000 -> 0x3f000000 bytes = 1008 MiB.
    assert MODULES_VADDR == 0xFFFFFFFFC0000000
    assert MODULES_LEN == 1008 * MiB


def test_kaslr_offset_is_seeded_and_in_range():
    # get_module_load_offset(): (1..1024) * PAGE_SIZE, once per boot
    offs = {Kernel(KernelConfig(seed=s)).offset for s in range(50)}
    assert all(PAGE_SIZE <= o <= 1024 * PAGE_SIZE and o % PAGE_SIZE == 0 for o in offs)
    assert len(offs) > 1
    assert Kernel(KernelConfig(seed=7)).offset == Kernel(KernelConfig(seed=7)).offset
    assert Kernel(KernelConfig(kaslr=False)).offset == 0


def test_vmalloc_lowest_fit_with_guard_page():
    # alloc_vmap_area(): size + one guard page (VM_NO_GUARD unset), lowest
    # address >= vstart.  Three 1-page areas from vstart: pages 0,2,4 after
    # vstart (each followed by its guard page).
    k = Kernel(KernelConfig(kaslr=False))
    a = [k.vmalloc(PAGE_SIZE) for _ in range(3)]
    assert a == [MODULES_VADDR, MODULES_VADDR + 2 * PAGE_SIZE, MODULES_VADDR + 4 * PAGE_SIZE]
    # freeing the middle one leaves a 2-page hole (area + guard): a 1-page
    # request goes there (lowest fit), a 2-page request (needs 3 with guard) does not
    k.vfree(a[1])
    b = k.vmalloc(2 * PAGE_SIZE)
    assert b == MODULES_VADDR + 6 * PAGE_SIZE
    c = k.vmalloc(PAGE_SIZE)
    assert c == a[1]


def test_vmalloc_alignment():
    k = Kernel(KernelConfig(kaslr=False))
    k.vmalloc(PAGE_SIZE)                          # pages 0 (+ guard 1)
    x = k.vmalloc(PAGE_SIZE, align=8 * PAGE_SIZE)
    assert (x - MODULES_VADDR) == 8 * PAGE_SIZE   # next multiple of 8 pages


def test_huge_vmalloc_uses_pmd_leaves_only_from_pmd_size():
    # __vmalloc_node_range(): VM_ALLOW_HUGE_VMAP and size >= PMD_SIZE ->
    # shift = PMD_SHIFT, align = max(align, PMD_SIZE), size = ALIGN(size, PMD_SIZE)
    k = Kernel(KernelConfig(seed=3))
    small = k.vmalloc(PMD_SIZE - PAGE_SIZE, huge=True)
    assert not k.find_area(small).huge
    big = k.vmalloc(PMD_SIZE + 1, huge=True)
    area = k.find_area(big)
    assert area.huge and area.npages == 1024          # rounded up to two PMDs
    assert (big - MODULES_VADDR) % PMD_SIZE == 0
    assert k.counters["vmalloc_bytes"] == (511 + 1024) * PAGE_SIZE


def test_alias_ro_splits_once_and_only_once():
    # set_memory_ro on a vmalloc address changes the direct-map alias
    # (cpa_process_alias): frames in one 2 MiB region under a 1 GiB leaf ->
    # split_large_page twice: the 1 GiB leaf (level 3) then that 2 MiB (level 2),
    # each ending in flush_tlb_all() (__split_large_page()), then cpa_flush()
    # with force_flush_all: 3 flushes.
    # A second identical call changes nothing: no split, no flush.
    k = Kernel(KernelConfig(seed=0))
    a = k.vmalloc(3 * PAGE_SIZE)
    frames = k.pt.pfn[k.page_of(a):k.page_of(a) + 3]
    assert len(set(frames // 512)) == 1 and frames.min() >= 262144   # precondition: one 2M, above 1 GiB
    k.set_memory_ro(a, 3)
    assert (k.phys.splits_1g, k.phys.splits_2m) == (1, 1)
    assert k.counters["tlb_flush_all"] == 2 + 1
    k.set_memory_ro(a, 3)
    assert (k.phys.splits_1g, k.phys.splits_2m) == (1, 1)
    assert k.counters["tlb_flush_all"] == 3
    assert k.counters["cpa_calls"] == 2 and k.counters["cpa_pages"] == 3
    assert k.counters["cpa_calls_effective"] == 1


def test_nx_changes_skip_the_alias_in_v61_but_flush_all_in_v62():
    # v6.1 change_page_attr_set_clr(): "No alias checking for _NX bit
    # modifications"; <= tlb_single_page_flush_ceiling (33) pages ->
    # on_each_cpu(__cpa_flush_tlb) per-page IPI, > 33 -> flush_tlb_all().
    k = Kernel(KernelConfig(seed=0, version=(6, 1)))
    a = k.vmalloc(40 * PAGE_SIZE)
    k.set_memory_x(a, 3)
    assert k.counters["tlb_flush_ipis"] == 1 and k.counters["tlb_flush_all"] == 0
    assert k.phys.splits_2m == 0
    k.set_memory_x(a, 40)      # 37 more pages change; the call covers 40 > 33
    assert k.counters["tlb_flush_all"] == 1
    # v6.2+: cpa_process_alias() runs for NX changes too (force_flush_all),
    # with NX stripped from the alias mask -> no split, but a global flush.
    k2 = Kernel(KernelConfig(seed=0, version=(6, 2)))
    b = k2.vmalloc(3 * PAGE_SIZE)
    k2.set_memory_x(b, 3)
    assert k2.counters["tlb_flush_all"] == 1 and k2.phys.splits_2m == 0


def test_set_memory_rox_is_one_call_from_v62_only():
    k = Kernel(KernelConfig(version=(6, 1)))
    a = k.vmalloc(PAGE_SIZE)
    with pytest.raises(KernelBug):
        k.set_memory_rox(a, 1)
    k2 = Kernel(KernelConfig(version=(6, 10)))
    b = k2.vmalloc(2 * PAGE_SIZE)
    frames = k2.pt.pfn[k2.page_of(b):k2.page_of(b) + 2]
    assert len(set(frames // 512)) == 1 and frames.min() >= 262144   # precondition: one 2M, above 1 GiB
    k2.set_memory_rox(b, 2)
    # one call, both pages change (RW->RO, NX->X): the alias turns RO, which
    # splits the 1 GiB then the 2 MiB direct-map leaf (a flush each), then
    # one global flush for the change
    assert (k2.counters["cpa_calls"], k2.counters["cpa_pages"], k2.counters["tlb_flush_all"]) == (1, 2, 2 + 1)


def test_wx_exposure_is_integrated_over_virtual_time():
    # PAGE_KERNEL_EXEC = RW + X: 2 pages W+X for exactly 1000 ns of idle time
    k = Kernel(KernelConfig())
    a = k.vmalloc(2 * PAGE_SIZE, w=True, x=True)
    assert k.pt.wx_pages == 2 and k.wx_pages_peak_instant == 2
    before = k.wx_page_ns
    k.advance_to(k.now + 1000)
    assert k.wx_page_ns - before == pytest.approx(2 * 1000)
    k.set_memory_nx(a, 2)
    assert k.pt.wx_pages == 0 and k.wx_pages_peak_instant == 2


def test_vfree_with_reset_perms_flushes_once_and_resets_alias():
    # vm_reset_perms(): direct map invalid -> one flush (_vm_unmap_aliases)
    # -> default; the split stays split.
    k = Kernel(KernelConfig(seed=0))
    a = k.vmalloc(PAGE_SIZE)
    k.set_vm_flush_reset_perms(a)
    k.set_memory_ro(a, 1)
    f = int(k.pt.pfn[k.page_of(a)])
    assert k.phys.alias_ro[f]
    flushes = k.counters["tlb_flush_all"]
    k.vfree(a)
    assert k.counters["tlb_flush_all"] == flushes + 1
    assert not k.phys.alias_ro[f]
    assert k.phys.split_2m[f // 512]
    # a plain vfree (no VM_FLUSH_RESET_PERMS) is lazy: no immediate flush
    b = k.vmalloc(PAGE_SIZE)
    k.vfree(b)
    assert k.counters["tlb_flush_all"] == flushes + 1
    # ... until the next set_memory_*: vm_unmap_aliases() purges it with one
    # flush_tlb_kernel_range() over its 1 page + 1 guard page (<= 33 pages:
    # a ranged flush, not a full one), before the call does anything else
    shoot = k.counters["tlb_shootdowns"]
    c = k.vmalloc(PAGE_SIZE)
    k.set_memory_nx(c, 1)            # already NX: changes nothing, flushes nothing itself
    assert k.counters["tlb_shootdowns"] == shoot + 1
    assert k.counters["tlb_flush_range"] == 1 and k.counters["tlb_flush_all"] == flushes + 1


def test_writes_to_read_only_pages_are_model_bugs():
    k = Kernel(KernelConfig())
    a = k.vmalloc(PAGE_SIZE)
    k.memcpy(a, 100)
    k.set_memory_ro(a, 1)
    with pytest.raises(KernelBug):
        k.memcpy(a, 100)
    k.text_poke_copy(a, 100)          # text_poke does not need W
    assert k.counters["text_pokes"] == 1


def test_text_poke_copy_chunking():
    # text_poke_copy(): s = min(2*PAGE_SIZE - offset_in_page(ptr), len - patched)
    # addr at page offset 4000, 10000 bytes: 8192-4000 = 4192, then offset 0:
    # min(8192, 5808) = 5808 -> 2 chunks
    assert chunks(MODULES_VADDR + 4000, 10000) == 2
    # 20000 bytes from a page start: 8192 + 8192 + 3616 -> 3 chunks
    assert chunks(MODULES_VADDR, 20000) == 3


def test_text_poke_bp_costs_three_pokes_and_three_syncs():
    # text_poke_bp_batch(): int3, sync; tail (len-1 bytes), sync; first byte, sync
    k = Kernel(KernelConfig())
    a = k.vmalloc(PAGE_SIZE)
    k.text_poke_bp(a, 5)
    c = k.counters
    assert (c["text_pokes"], c["text_poke_bytes"], c["sync_core_ipis"]) == (3, 1 + 4 + 1, 3)


def test_incremental_aggregates_match_recount():
    k = Kernel(KernelConfig(seed=5))
    rng = np.random.default_rng(0)
    live = []
    for i in range(200):
        if live and rng.random() < 0.4:
            a, n = live.pop(int(rng.integers(len(live))))
            k.text_release(a, n)
            k.vfree(a)
        else:
            size = int(rng.integers(1, 5 * PAGE_SIZE))
            a = k.vmalloc(size, huge=bool(rng.random() < 0.05), w=True, x=bool(rng.random() < 0.3))
            n = int(rng.integers(1, size + 1))
            k.text_claim(a, n)
            live.append((a, n))
    assert_aggregates(k.pt)


def test_vmalloc_that_does_not_fit_is_refused():
    from execbench.errors import DesignError
    k = Kernel(KernelConfig(kaslr=False))
    with pytest.raises(DesignError):
        k.vmalloc(MODULES_END - MODULES_VADDR)     # + guard page does not fit
