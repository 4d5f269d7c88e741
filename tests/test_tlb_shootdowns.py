"""TLB shootdowns as the kernel makes them, worked out by hand.

Kernel sources (Debian 6.1.176, 6.12.117, 7.2.13):

* arch/x86/mm/pat/set_memory.c ``change_page_attr_set_clr()``: first
  ``vm_unmap_aliases()``; then, if ``CPA_FLUSHTLB``, ``cpa_flush()``:
  ``force_flush_all || numpages > tlb_single_page_flush_ceiling`` ->
  ``flush_tlb_all()``, else ``on_each_cpu(__cpa_flush_tlb)``.  v6.1 skips the
  alias (and so ``force_flush_all``) for a pure NX change; v6.2+ (d597416683d5)
  always processes it.  ``__split_large_page()`` ends in ``flush_tlb_all()``.
* arch/x86/mm/tlb.c ``flush_tlb_kernel_range()``: more than 33 pages ->
  a full flush on every CPU, otherwise a ranged one: one broadcast either way.
* mm/vmalloc.c ``vfree()`` -> ``remove_vm_area()`` puts the area (pages +
  guard) on the lazy list; ``vm_reset_perms()`` (VM_FLUSH_RESET_PERMS) purges
  it with one flush spanning the direct map; ``vm_unmap_aliases()`` purges
  with one ``flush_tlb_kernel_range()`` over the purge list;
  ``free_vmap_area_noflush()`` schedules the drain above ``lazy_max_pages()``.
"""
from __future__ import annotations

import pytest

from execbench.kernel import Kernel, KernelConfig
from execbench.kernel.machine import LAZY_MAX_PAGES
from execbench.units import PAGE_SIZE, PMD_SIZE


def _fresh_frames(k: Kernel, addr: int, n: int) -> None:
    """Precondition: the frames behind [addr, +n pages) lie in one 2 MiB
    region above the first GiB, under a 1 GiB leaf nobody has split."""
    f = k.pt.pfn[k.page_of(addr):k.page_of(addr) + n]
    assert len(set(f // 512)) == 1 and f.min() >= 262144
    assert not k.phys.split_1g[f[0] // 262144]


@pytest.mark.parametrize("version", [(6, 1), (6, 10)])
def test_short_cpa_sequence(version):
    k = Kernel(KernelConfig(seed=0, version=version))
    c = k.counters
    a = k.vmalloc(3 * PAGE_SIZE)                  # PAGE_KERNEL: RW+NX
    b = k.vmalloc(40 * PAGE_SIZE, x=True)         # PAGE_KERNEL_EXEC: RW+X
    k.set_vm_flush_reset_perms(a)
    _fresh_frames(k, a, 3)
    v61 = version == (6, 1)

    # 1. set_memory_ro(a, 3): RW -> RO reaches the alias (force_flush_all).
    #    The alias change splits the 1 GiB leaf, then the 2 MiB leaf
    #    (__split_large_page(): flush_tlb_all() each), then cpa_flush():
    #    flush_tlb_all().  2 + 1 = 3, all full, in both versions.
    k.set_memory_ro(a, 3)
    assert (c["tlb_shootdowns"], c["tlb_flush_all"]) == (3, 3)

    # 2. set_memory_x(a, 3): a pure NX change.  v6.1: no alias, 3 <= 33 pages
    #    -> on_each_cpu(__cpa_flush_tlb): one page-by-page IPI.  v6.10: the
    #    alias is processed (NX stripped from its mask: no split) ->
    #    force_flush_all -> flush_tlb_all().  One shootdown either way.
    k.set_memory_x(a, 3)
    assert c["tlb_shootdowns"] == 3 + 1
    assert (c["tlb_flush_all"], c["tlb_flush_ipis"]) == ((3, 1) if v61 else (4, 0))

    # 3. set_memory_nx(b, 40): 40 pages lose X.  v6.1: no alias but 40 > 33
    #    -> flush_tlb_all(); v6.10: alias -> flush_tlb_all().  +1 full.
    k.set_memory_nx(b, 40)
    assert c["tlb_shootdowns"] == 4 + 1
    assert c["tlb_flush_all"] == (4 if v61 else 5)

    # 4. vfree(a) with VM_FLUSH_RESET_PERMS: a's frames were split in step 1
    #    (no new split); _vm_unmap_aliases() purges a's area with one flush
    #    whose range runs from the direct map to the module range: full.  +1.
    k.vfree(a)
    assert c["tlb_shootdowns"] == 5 + 1
    assert c["tlb_shootdowns_vfree"] == 1

    # 5. plain vfree(b): lazy, nothing now; b's area = 40 pages + 1 guard = 41
    #    waits on the purge list (41 <= lazy_max_pages(): no drain).
    k.vfree(b)
    assert c["tlb_shootdowns"] == 6 and k.lazy_nr == 41

    # 6. set_memory_ro(NULL, 0) -- the v6.1 loader's call for an absent init
    #    area: vm_unmap_aliases() purges b: flush_tlb_kernel_range over 41 > 33
    #    pages -> a full flush; the call itself changes nothing.  +1.
    k.set_memory_ro(0, 0)
    assert c["tlb_shootdowns"] == 6 + 1 and k.lazy_nr == 0
    assert c["tlb_shootdowns_lazy"] == 1

    # totals: 7 shootdowns in both versions; v6.1 sends one of them as the
    # page-by-page CPA IPI, v6.10 as a full flush
    assert c["tlb_flush_all"] == (6 if v61 else 7)
    assert c["tlb_shootdowns"] == c["tlb_flush_all"] + c["tlb_flush_range"] + c["tlb_flush_ipis"]
    assert (c["tlb_shootdowns_cpa"], c["tlb_shootdowns_split"]) == (3, 2)
    # 4 set_memory_* calls; the one on 0 pages changes nothing
    assert (c["cpa_calls"], c["cpa_calls_effective"]) == (4, 3)


def test_small_lazy_purge_is_a_ranged_flush():
    # one page + guard = 2 pages <= 33: flush_tlb_kernel_range() stays ranged
    k = Kernel(KernelConfig(seed=0))
    a = k.vmalloc(PAGE_SIZE)
    k.vfree(a)
    assert k.counters["tlb_shootdowns"] == 0
    k.set_memory_nx(0, 0)
    c = k.counters
    assert (c["tlb_shootdowns"], c["tlb_flush_range"], c["tlb_flush_all"]) == (1, 1, 0)
    # nothing waits now: the next call purges nothing
    k.set_memory_nx(0, 0)
    assert c["tlb_shootdowns"] == 1


def test_lazy_drain_above_lazy_max_pages():
    # lazy_max_pages() = fls(1 CPU) * 32 MiB / 4 KiB = 8192 pages.
    assert LAZY_MAX_PAGES == 8192
    k = Kernel(KernelConfig(seed=0))
    a = k.vmalloc(8191 * PAGE_SIZE)
    k.vfree(a)                        # 8191 + 1 guard = 8192: not > 8192
    assert k.counters["tlb_shootdowns"] == 0 and k.lazy_nr == 8192
    b = k.vmalloc(PAGE_SIZE)
    k.vfree(b)                        # 8192 + 2 > 8192: schedule_work(&drain_vmap_work)
    c = k.counters
    assert (c["tlb_shootdowns_lazy"], c["tlb_flush_all"]) == (1, 1) and k.lazy_nr == 0


def test_vmalloc_pmd_split_flushes():
    # A PMD-mapped area (huge frames: an aligned 2 MiB block at the top of
    # memory, under an unsplit 1 GiB leaf).  set_memory_ro on its first page:
    # the vmalloc PMD splits (flush), the alias of one frame changes inside a
    # 2 MiB direct-map leaf: split 1 GiB, split 2 MiB (a flush each), then
    # cpa_flush() -> 1 + 2 + 1 = 4 full flushes.
    k = Kernel(KernelConfig(seed=0, version=(6, 10)))
    a = k.vmalloc(PMD_SIZE, huge=True)
    k.set_memory_ro(a, 1)
    c = k.counters
    assert (c["vmalloc_pmd_splits"], k.phys.splits_1g, k.phys.splits_2m) == (1, 1, 1)
    assert (c["tlb_shootdowns"], c["tlb_shootdowns_split"]) == (4, 3)


def test_collapse_only_after_a_change():
    # v6.15 cpa_flush() ends in cpa_collapse_large_pages(); a call that
    # changes nothing never reaches cpa_flush() (no CPA_FLUSHTLB).
    k = Kernel(KernelConfig(seed=0, version=(6, 15)))
    a = k.vmalloc(PMD_SIZE, huge=True)
    k.set_memory_rox(a, 512, collapse=True)   # whole leaf RW->RO, NX->X
    k.set_memory_nx(a, 1)                     # splits the PMD
    k.set_memory_x(a, 1)                      # 512 PTEs agree again, no collapse asked
    before = dict(k.counters)
    k.set_memory_rox(a, 512, collapse=True)   # nothing changes
    c = k.counters
    assert c["vmalloc_pmd_collapses"] == 0
    assert c["tlb_shootdowns"] == before["tlb_shootdowns"]
    assert c["cpa_calls_effective"] == before["cpa_calls_effective"]
    # a change that makes them agree does collapse, with its own flush
    k.set_memory_nx(a, 1)
    n = c["tlb_shootdowns"]
    k.set_memory_rox(a, 1, collapse=True)
    assert c["vmalloc_pmd_collapses"] == 1
    assert c["tlb_shootdowns"] == n + 2 and c["tlb_shootdowns_collapse"] == 1


def test_text_poke_is_no_shootdown():
    # __text_poke() flushes its private poking_mm locally; text_poke_sync()
    # is on_each_cpu(do_sync_core): an IPI, not a TLB flush.
    k = Kernel(KernelConfig(seed=0, version=(6, 10)))
    a = k.vmalloc(PAGE_SIZE)
    k.set_memory_rox(a, 1)
    n = k.counters["tlb_shootdowns"]
    k.text_poke_bp(a, 5)
    assert k.counters["tlb_shootdowns"] == n and k.counters["sync_core_ipis"] == 3
