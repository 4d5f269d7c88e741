"""Text pokes by source and W+X exposure by cause, on the simulated kernel
alone (execbench/kernel/text_poke.py, pagetable.py, machine.py).

Rules used (arch/x86/kernel/alternative.c, v6.1): text_poke_copy()/
text_poke_set() call __text_poke() on chunks of
min(2 * PAGE_SIZE - offset_in_page(ptr), len - patched) bytes; text_poke_bp()
on an n-byte site is 3 pokes (INT3, tail, first byte).  mm/vmalloc.c
__vmalloc_node_range() with VM_ALLOW_HUGE_VMAP rounds an area of >= PMD_SIZE
up to whole PMDs with the same pgprot.
"""
from __future__ import annotations

import pytest

from execbench.errors import KernelBug
from execbench.kernel import Costs, Kernel, KernelConfig
from execbench.kernel.pagetable import WX_CAUSES
from execbench.kernel.text_poke import SOURCES, chunks
from execbench.units import PAGE_SIZE, PMD_SIZE

from invariants import assert_aggregates


def _pokes(k):
    return {s: k.counters[f"text_pokes_{s}"] for s in SOURCES if k.counters[f"text_pokes_{s}"]}


def test_chunks_of_text_poke_copy():
    # 10000 bytes at offset 100 of a page: first chunk 8192 - 100 = 8092,
    # then 1908 from a page boundary -> 2 chunks.  8192 bytes at 0: 1 chunk;
    # 8193 bytes at 0: 8192 + 1 -> 2; 20000 at 4095: 4097 + 8192 + 7711 -> 3.
    assert chunks(100, 10000) == 2
    assert chunks(0, 8192) == 1 and chunks(0, 8193) == 2
    assert chunks(4095, 20000) == 3
    assert chunks(0, 0) == 0


def test_pokes_land_in_their_source_and_sum_to_the_total():
    k = Kernel(KernelConfig())
    a = k.vmalloc(4 * PAGE_SIZE)
    k.user = "module"
    with k.poke_source("fill"):
        k.text_poke_copy(a + 100, 10000)        # 2 chunks (test above)
    with k.poke_source("reloc"):
        k.text_poke_repeat(a, 4 * PAGE_SIZE, 4, 7)   # 7 pokes
        with k.poke_source("patch"):
            k.text_poke_bp(a + 8, 5)            # 3 pokes: nested block wins
        k.text_poke(a + 16, 4)                  # back to reloc: 1 poke
    k.user = "bpf"
    k.text_poke_set(a, PAGE_SIZE)               # no block: the user's default, 1 poke
    k.user = ""
    k.text_poke(a, 1)                           # no user, no block: other
    assert _pokes(k) == {"fill": 2, "reloc": 8, "patch": 3, "bpf": 1, "other": 1}
    assert sum(_pokes(k).values()) == k.counters["text_pokes"] == 15
    with pytest.raises(KernelBug):
        with k.poke_source("nonsense"):
            pass


def test_text_poke_copy_in_one_step_matches_per_chunk_clock():
    # one step: 2 pokes x 1500 ns + 10000 B x 0.1 ns = 4000 ns
    k = Kernel(KernelConfig(costs=Costs()))
    a = k.vmalloc(4 * PAGE_SIZE)
    t0 = k.now
    k.text_poke_copy(a + 100, 10000)
    assert k.now - t0 == pytest.approx(2 * 1500 + 10000 * 0.1)
    assert k.counters["text_poke_bytes"] == 10000


def test_wx_causes_partition_the_wx_pages_and_their_integral():
    costs = Costs()
    k = Kernel(KernelConfig(costs=costs))
    # 3 pages PAGE_KERNEL_EXEC charged to data_until_nx: W+X from the map on.
    # vmalloc ticks vmalloc_call + 3 vmalloc_page = 2000 + 750 ns after mapping.
    with k.wx_cause("data_until_nx"):
        d = k.vmalloc(3 * PAGE_SIZE, w=True, x=True)
    assert k.pt.wx_by_cause[WX_CAUSES.index("data_until_nx")] == 3
    assert k.wx_page_ns_by_cause[WX_CAUSES.index("data_until_nx")] == pytest.approx(3 * 2750)
    # 1 page with the default cause (alloc_window), then 1000 ns idle:
    # alloc_window: 1 x (2000 + 250) + 1 x 1000; data_until_nx: + 3 x (2250 + 1000)
    a = k.vmalloc(PAGE_SIZE, w=True, x=True)
    k.advance_to(k.now + 1000)
    by = dict(zip(WX_CAUSES, k.wx_page_ns_by_cause))
    assert by["alloc_window"] == pytest.approx(2250 + 1000)
    assert by["data_until_nx"] == pytest.approx(3 * 2750 + 3 * (2250 + 1000))
    assert sum(k.wx_page_ns_by_cause) == pytest.approx(k.wx_page_ns, rel=1e-12)
    # a permission change that makes an RO+X page writable: unprotect_window
    r = k.vmalloc(PAGE_SIZE)
    k.set_memory_ro(r, 1)                       # v6.1: RO, then X
    k.set_memory_x(r, 1)
    k.set_memory_rw(r, 1)
    assert k.pt.wx_by_cause[WX_CAUSES.index("unprotect_window")] == 1
    assert_aggregates(k.pt)
    assert k.pt.recount()["wx_by_cause"]
    # freeing and NX-ing take pages out of their own cause
    k.set_memory_nx(d, 3)
    k.vfree(a)
    k.set_memory_nx(r, 1)
    assert k.pt.wx_by_cause == [0] * len(WX_CAUSES) and k.pt.wx_pages == 0


def test_huge_tail_is_charged_by_the_kernel():
    # 2 MiB + 1 page with VM_ALLOW_HUGE_VMAP: rounded to 2 PMDs = 1024 pages;
    # the 1024 - 513 = 511 pages beyond the request are huge_tail, the rest
    # alloc_window; set_memory_rox(addr, 513) leaves only the tail W+X.
    k = Kernel(KernelConfig(version=(6, 4)))
    a = k.vmalloc(PMD_SIZE + PAGE_SIZE, w=True, x=True, huge=True)
    by = dict(zip(WX_CAUSES, k.pt.wx_by_cause))
    assert by["huge_tail"] == 511 and by["alloc_window"] == 513
    k.set_memory_rox(a, 513)
    assert dict(zip(WX_CAUSES, k.pt.wx_by_cause))["huge_tail"] == 511 and k.pt.wx_pages == 511
    assert k.pt.recount()["wx_by_cause"]


def test_wx_accrued_during_text_poke_is_told_apart():
    # 2 W+X pages; a 4-byte text_poke costs 1500 + 0.4 ns: 2 x 1500.4 page*ns
    # accrue inside __text_poke(), the 1000 ns of idle time after it do not.
    k = Kernel(KernelConfig())
    a = k.vmalloc(2 * PAGE_SIZE, w=True, x=True)
    before = k.wx_page_ns
    k.text_poke(a, 4)
    k.advance_to(k.now + 1000)
    assert k.wx_page_ns_text_poke == pytest.approx(2 * 1500.4)
    assert k.wx_page_ns - before == pytest.approx(2 * 1500.4 + 2 * 1000)
