"""Physical placement by mechanism: the page allocator (execbench/kernel/pagealloc.py),
the presets (physmem.py), the side allocations (sidealloc.py) and the
/proc/meminfo DirectMap* arithmetic, each expectation worked out by hand from
mm/page_alloc.c and arch/x86/mm/pat/set_memory.c (v6.1)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from execbench.kernel import Kernel, KernelConfig
from execbench.kernel.pagealloc import MOVABLE, UNMOVABLE, Zone, watermarks, zone_batchsize
from execbench.kernel.physmem import PhysMem, preset_name
from execbench.kernel.sidealloc import SideAllocs, SideParams
from execbench.trace import Event
from execbench.units import GiB, PAGE_SIZE


def test_zone_batchsize_of_a_15_gib_zone():
    # managed 15 GiB = 3,932,160 pages; >> 10 = 3840; min(3840, 1 MiB/4 KiB = 256) = 256;
    # / 4 = 64; rounddown_pow_of_two(64 + 32) - 1 = 64 - 1 = 63 (zone_batchsize, v6.1)
    assert zone_batchsize(15 * GiB // PAGE_SIZE) == 63


def test_watermarks_of_16_gib():
    # lowmem 16,777,216 kB; int_sqrt(16,777,216 * 16) = 16384 kB -> min 4096 pages;
    # step = max(4096 / 4 = 1024, 4,194,304 * 10 / 10000 = 4194) = 4194;
    # low = 4096 + 4194 = 8290, high = 8290 + 4194 = 12484 (__setup_per_zone_wmarks)
    assert watermarks(16 * GiB // PAGE_SIZE) == (4096, 8290, 12484)


@pytest.mark.parametrize("n,k", [(64, 0), (100, 9), (10, 511), (40, 30)])
def test_fresh_boot_n_programs_with_k_interleaved_pages(n, k):
    # Fresh boot: the first unmovable request steals the lowest free order-10
    # block (4 MiB aligned, ALLOC_NOFRAGMENT fallback), and one CPU's pcp list
    # then hands out consecutive ascending frames (expand() keeps the low
    # half; rmqueue_bulk() appends in that order).  So N programs of one page,
    # each after K other resident pages, put their executable frames at
    # stride K+1 from a 2 MiB boundary: they touch ceil(N*(K+1)/512) 2 MiB
    # regions, and each region's first set_memory_ro splits its 2 MiB leaf.
    kern = Kernel(KernelConfig(seed=3, placement="fresh-boot"))
    keep = []
    for _ in range(n):
        keep.append(kern.phys.alloc_frames(k, 0))
        a = kern.vmalloc(PAGE_SIZE)
        kern.set_memory_ro(a, 1)
    assert kern.phys.splits_2m == math.ceil(n * (k + 1) / 512)


def test_fresh_boot_two_cpus_get_separate_batches():
    # Each CPU refills its own pcp list with batch = 63 pages: CPU 0 gets
    # p .. p+62, CPU 1 the next 63, so their first pages are 63 apart.
    pm = PhysMem(np.random.default_rng(0), 16 * GiB, "fresh-boot", cpus=2)
    a = int(pm.alloc_frames(1, cpu=0)[0])
    b = int(pm.alloc_frames(1, cpu=1)[0])
    c = int(pm.alloc_frames(1, cpu=0)[0])
    assert a % 1024 == 0                 # an order-10 block's first frame
    assert b == a + 63 and c == a + 1


def test_freed_page_is_reused_first():
    # free_unref_page_commit() adds at the pcp head; the next allocation takes the head.
    pm = PhysMem(np.random.default_rng(0), 16 * GiB, "fresh-boot")
    f = pm.alloc_frames(3, 0)
    pm.free_frames(f[1:2], cpu=0)
    assert int(pm.alloc_frames(1, 0)[0]) == int(f[1])


def test_meminfo_arithmetic_of_one_split():
    # Boot: first 2 MiB in 4 KiB pages (2048 kB), rest of the first GiB in
    # 511 x 2 MiB (1,046,528 kB), 15 x 1 GiB (15,728,640 kB).  One RO change
    # on a frame above 1 GiB: its 1 GiB leaf -> 512 x 2 MiB, then one of those
    # -> 512 x 4 KiB: 4k 2048 + 2048 = 4096; 2M 1,046,528 + 1,048,576 - 2048
    # = 2,093,056; 1G 14,680,064.  The sum stays 16 GiB = 16,777,216 kB.
    kern = Kernel(KernelConfig(seed=0))
    assert kern.phys.meminfo() == {"DirectMap4k": 2048, "DirectMap2M": 1046528,
                                   "DirectMap1G": 15728640}
    a = kern.vmalloc(PAGE_SIZE)
    kern.set_memory_ro(a, 1)
    m = kern.phys.meminfo()
    assert m == {"DirectMap4k": 4096, "DirectMap2M": 2093056, "DirectMap1G": 14680064}
    assert sum(m.values()) == 16 * 1024 * 1024
    assert (kern.phys.splits_1g, kern.phys.splits_2m) == (1, 1)


def test_qemu_2_gib_guest_direct_map_has_no_1_gib_leaf():
    # The recorder's QEMU guest (-m 2G, SeaBIOS): e820 RAM [1 MiB, 0x7ffe0000).
    # arch/x86/mm/init.c split_mem_range() + adjust_range_page_size_mask():
    # the second GiB is not RAM end to end (0x7ffe0000 < 0x80000000), so no
    # 1 GiB leaf anywhere.  2 MiB leaves: blocks 1..511 of the first GiB (511)
    # and 512..1022 of the second (0x7ffe0000 // 2 MiB = 1023 whole blocks ->
    # 1023 - 512 = 511): 1022 x 2048 kB = 2,093,056 kB.  4 KiB PTEs: the first
    # 2 MiB (512) + the RAM pages of block 1023, (0x7ffe0000 - 0x7fe00000) /
    # 4096 = 0x1e0000 / 4096 = 480: 992 x 4 kB = 3968 kB.  Sum 2,097,024 kB =
    # 2 GiB - 128 KiB, the reserved top.
    pm = PhysMem(np.random.default_rng(0), 2 * GiB, "fresh-boot", ram_end=0x7FFE0000)
    assert pm.meminfo() == {"DirectMap4k": 3968, "DirectMap2M": 2093056, "DirectMap1G": 0}
    # The reserve of 64 aligned blocks for huge mappings is the top 64 whole
    # blocks, 959..1022; never the partly reserved 1023.
    firsts = sorted(int(pm.alloc_huge_block()[0]) // 512 for _ in range(64))
    assert firsts == list(range(959, 1023))
    blk = np.arange(1022 * 512, 1023 * 512)
    # Changing a frame's alias in the second GiB splits one 2 MiB leaf and no 1 GiB leaf.
    assert pm.split_for(blk[:1]) == (0, 1)
    # A whole-2 MiB change (a PMD-mapped block's alias) splits nothing.
    assert pm.split_for(np.arange(1020 * 512, 1021 * 512), whole_2m=True) == (0, 0)


def test_ram_to_the_gib_boundary_keeps_the_1_gib_leaf():
    # Same 2 GiB machine with RAM up to 0x80000000: the second GiB is RAM end
    # to end -> one 1 GiB leaf (phys_pud_init() maps the whole PUD).  A
    # whole-2 MiB alias change inside it must still split that 1 GiB leaf.
    pm = PhysMem(np.random.default_rng(0), 2 * GiB, "fresh-boot")
    assert pm.meminfo() == {"DirectMap4k": 2048, "DirectMap2M": 1046528, "DirectMap1G": 1048576}
    assert pm.split_for(pm.alloc_huge_block(), whole_2m=True) == (1, 0)


def test_ram_end_outside_the_last_gib_is_refused():
    with pytest.raises(ValueError, match="ram_end"):
        PhysMem(np.random.default_rng(0), 2 * GiB, "fresh-boot", ram_end=GiB // 2)


def test_vmalloc_large_order_blocks_first_on_7_2():
    # 7.2 mm/vmalloc.c vm_area_alloc_pages(): 13 pages -> ilog2(13) = 3: one
    # order-3 block (8 pages, 8-aligned, contiguous), then ilog2(13 - 8 = 5) = 2:
    # one order-2 block (4 pages, 4-aligned), then ilog2(1) = 0 ends the loop and
    # the last page comes from the order-0 bulk path.  Blocks of order 1..3 come
    # from their own per-CPU lists, refilled from the buddy, so the three
    # pieces are three separate runs.
    pm = PhysMem(np.random.default_rng(0), 16 * GiB, "fresh-boot", vmalloc_large_order=True)
    f = pm.alloc_vmalloc_pages(13, cpu=0)
    assert f.size == 13 and np.unique(f).size == 13
    assert f[0] % 8 == 0 and (np.diff(f[:8]) == 1).all()
    assert f[8] % 4 == 0 and (np.diff(f[8:12]) == 1).all()
    assert not (f[12] == f[11] + 1 and f[8] == f[7] + 1)     # not one run of 13
    # v6.1-v6.12 (the default): 13 order-0 pages from one pcp list, which on a
    # fresh boot hands out consecutive ascending frames
    pm0 = PhysMem(np.random.default_rng(0), 16 * GiB, "fresh-boot")
    g = pm0.alloc_vmalloc_pages(13, cpu=0)
    assert (np.diff(g) == 1).all()


def test_vfree_on_7_2_gives_contiguous_runs_back_as_blocks():
    # 7.2 free_pages_bulk() -> __free_contig_range() -> free_prepared_contig_range().
    # Take one order-4 block b (16 frames, b a multiple of 16) and free b..b+11
    # plus b+13.  The run of 12 at b: order min(__ffs(b) >= 4, ilog2(12) = 3,
    # MAX_PAGE_ORDER) = 3 at b, then 4 left at b+8: min(__ffs(b+8) = 3,
    # ilog2(4) = 2) = 2 at b+8; the lone b+13: order 0.  Orders <= 3 go to the
    # head of the per-CPU list of their order (the list end here, where the
    # next allocation of that order takes from).
    from execbench.kernel.pagealloc import UNMOVABLE as U
    pm = PhysMem(np.random.default_rng(0), 16 * GiB, "fresh-boot", vmalloc_large_order=True)
    b = pm.zone.alloc(4, U, 0)
    assert b % 16 == 0
    pm.free_vmalloc_pages(np.array(list(range(b, b + 12)) + [b + 13], dtype=np.int64), cpu=0)
    pcp = pm.zone._pcp(0)
    assert pcp.lists[(U, 3)][-1] == b
    assert pcp.lists[(U, 2)][-1] == b + 8
    assert pcp.lists[(U, 0)][-1] == b + 13


def test_unmovable_fallback_steals_one_pageblocks_free_pages():
    # A zone of 8 pageblocks (4096 frames) full of page cache, with free pages
    # only at 1546-1547 (one order-1 buddy pair in pageblock 3) and 2660
    # (pageblock 5).  batch: 4096 >> 10 = 4, /4 = 1, rounddown_pow_of_two(1) - 1
    # = 0 -> pcp->batch = max(1, 0) = 1 (zone_set_high_and_batch).
    # 1st unmovable page: no block of order >= 9 (ALLOC_NOFRAGMENT pass fails);
    # the fragmenting pass takes the largest movable block, order 1 at 1546,
    # moves pageblock 3's free pages (2) to UNMOVABLE; free 2 + alike
    # 512 - 2 - 510 = 0 < 256, so the pageblock stays MOVABLE; expand() hands
    # out 1546 and leaves 1547.  2nd: 1547 from the unmovable list.  3rd: the
    # fallback again, now 2660.
    z = Zone(4096, 0, 4096, cpus=1)
    z.movable[:] = True
    for pfn in (1546, 1547, 2660):
        z.movable[pfn] = False
        z.free_block(pfn, 0)
    assert z.batch == 1
    got = [z.alloc(0, UNMOVABLE, 0) for _ in range(3)]
    assert got == [1546, 1547, 2660]
    assert z.block_mt[3] == MOVABLE and z.block_mt[5] == MOVABLE
    assert z.stats["fallback_steals"] == 2


def test_presets_and_old_names():
    assert preset_name("contiguous") == "fresh-boot"
    assert preset_name("scattered") == "aged"
    with pytest.raises(ValueError):
        preset_name("random")


def test_aged_machine_scatters_kernel_pages():
    # 64 one-page programs: on a fresh boot consecutive frames (1 region);
    # on the aged machine every pcp refill steals the few free pages of
    # many different pageblocks, so the 64 frames span many 2 MiB regions.
    res = {}
    for placement in ("fresh-boot", "aged"):
        kern = Kernel(KernelConfig(seed=1, placement=placement, mem_bytes=16 * GiB))
        for _ in range(64):
            a = kern.vmalloc(PAGE_SIZE)
            kern.set_memory_ro(a, 1)
        res[placement] = kern.phys.splits_2m
    assert res["fresh-boot"] == 1
    assert res["aged"] >= 10 * res["fresh-boot"]


def _ev(op, obj, size=None, user="bpf"):
    return Event(seq=0, t_ns=0, cpu=0, user=user, op=op, obj=obj, size=size)


def test_bpf_prog_struct_pages_and_loader_process():
    # size 5000 B at 5 B/insn = 1000 insns; bpf_prog_size = 72 + 8 * 1000 =
    # 8072 B -> 2 pages.  A new loader: stack 4 + PGD 2 + 11 page-table pages
    # + 28 anonymous pages = 45 pages; its second program adds only the prog.
    kern = Kernel(KernelConfig(seed=0))
    side = SideAllocs(kern, SideParams())
    side.before(_ev("prog_load", "tool.0:a", 5000))
    side.after(_ev("prog_load", "tool.0:a", 5000))
    assert side.progs["tool.0:a"].size == 2
    assert side.counters["side_pages_resident"] == 2 + 45
    side.before(_ev("prog_load", "tool.0:b", 100))
    side.after(_ev("prog_load", "tool.0:b", 100))
    assert side.counters["side_pages_resident"] == 2 + 45 + 1
    for o in ("tool.0:a", "tool.0:b"):
        side.after(_ev("prog_unload", o))
    # the exited loader's kernel stack stays in the CPU's stack cache (NR_CACHED_STACKS)
    assert side.counters["side_pages_resident"] == 0 and len(side.stacks[0]) == 1


def test_shared_loader_prefix_costs_no_process():
    kern = Kernel(KernelConfig(seed=0))
    side = SideAllocs(kern, SideParams(loader_shared_prefixes=("ctr",)))
    side.before(_ev("prog_load", "ctr7:dev", 400))
    assert side.counters["side_pages_resident"] == 1 and not side.loaders


def test_module_copy_is_freed_after_the_load():
    # sections 10,000 B x 2.23 = 22,300 B -> 6 pages held during the load, then vfree'd.
    kern = Kernel(KernelConfig(seed=0))
    side = SideAllocs(kern)
    ev = Event(seq=0, t_ns=0, cpu=0, user="module", op="load", obj="m", text=4000, rodata=3000,
               ro_after_init=0, data=3000, init_text=0, init_rodata=0, init_data=0)
    side.before(ev)
    held = side._held_frames.copy()
    assert held.size == 6
    side.after(ev)
    assert side._held_frames is None
    # the copy's pages went back to the pcp head: the next page is its last one
    assert int(kern.phys.alloc_frames(1, 0)[0]) == int(held[-1])
