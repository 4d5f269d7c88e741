"""The page allocator of one zone, as mm/page_alloc.c (v6.1) hands out pages.

Why: where executable pages land in physical memory decides how many
direct-map leaves a permission change splits, and that depends on what the
kernel allocates *between* them and on how the allocator hands pages out.
This module follows v6.1's code paths, simplified where said:

* **Buddy free areas** per migratetype and order 0..10 (``MAX_ORDER`` 11).
  ``__rmqueue_smallest()`` takes the head of the smallest non-empty list of
  the requested type and ``expand()`` puts the upper halves back at the list
  heads, so a large block is handed out from its low end upwards.
  ``__free_one_page()`` merges with free buddies and adds the result at the
  head, or at the tail when ``buddy_merge_likely()`` says the next-higher
  buddy is free; boot frees use ``FPI_TO_TAIL`` (``__free_pages_core()``).
* **Per-CPU lists** (``struct per_cpu_pages``) for orders 0..3
  (``PAGE_ALLOC_COSTLY_ORDER``) and each pcp migratetype.  An empty list is
  refilled by ``rmqueue_bulk()`` with ``max(batch >> order, 2)`` blocks in
  the order the buddy hands them out, appended at the tail; allocation takes
  the head (``__rmqueue_pcplist()``); a free adds at the head
  (``free_unref_page_commit()``, so the most recently freed page is reused
  first) and, once ``pcp->count >= pcp->high``, ``free_pcppages_bulk()``
  returns ``nr_pcp_free()`` pages from the list tails to the buddy.
  ``batch`` and ``high`` are ``zone_batchsize()`` and ``zone_highsize()``.
* **Migratetypes and pageblocks** (``pageblock_order`` 9): UNMOVABLE (kernel
  allocations: GFP_KERNEL) and MOVABLE (user and page-cache pages,
  GFP_HIGHUSER_MOVABLE).  RECLAIMABLE is folded into UNMOVABLE (simplified:
  only slab caches with SLAB_RECLAIM_ACCOUNT use it).  A freed page goes to
  the list of its pageblock's current type (``free_unref_page_prepare()``).
  When a type's lists are empty, ``__rmqueue_fallback()`` takes the largest
  block of the other type; with ``ALLOC_NOFRAGMENT`` (x86-64 ZONE_NORMAL,
  ``alloc_flags_nofragment()``) the first pass only takes whole pageblocks
  (order >= 9); ``steal_suitable_fallback()`` then claims the pageblocks
  (order >= 9) or moves the pageblock's free pages to the requesting type
  (``move_freepages_block()``) and claims the pageblock when at least half
  of it is free or compatible.  The second, fragmenting pass is what an
  aged machine gets.
* **Watermarks and kswapd** (aged preset only): ``min_free_kbytes =
  int_sqrt(lowmem_kbytes * 16)`` (``calculate_min_free_kbytes()``), low =
  min + max(min/4, managed * 10/10000), high = low + the same step
  (``__setup_per_zone_wmarks()``, watermark_scale_factor 10).  When free
  pages drop below low, "kswapd" reclaims page-cache pages until high plus
  the watermark boost (``boost_watermark()``: +1 pageblock per fragmenting
  fallback, at most high * 15000/10000).

Simplified: one zone (ZONE_NORMAL; the DMA32 zone that the
``ALLOC_NOFRAGMENT`` pass would also try is not modelled), no CMA, no
highatomic reserve, no compaction (2 MiB blocks for huge mappings come from
a reserve, see :mod:`.physmem`), reclaimed pages go straight to the buddy
(the real kswapd frees through its own CPU's pcp list, which overflows to
the buddy within ``high`` pages).
"""
from __future__ import annotations

from collections import deque
from math import isqrt

import numpy as np

from ..errors import OutOfMemory

MAX_ORDER = 11                 # include/linux/mmzone.h (v6.1): orders 0..10
PAGEBLOCK_ORDER = 9            # pageblock_order = HUGETLB_PAGE_ORDER on x86-64
PAGEBLOCK_PAGES = 1 << PAGEBLOCK_ORDER
PAGE_ALLOC_COSTLY_ORDER = 3    # include/linux/mmzone.h; pcp lists hold orders 0..3
UNMOVABLE, MOVABLE = 0, 1      # enum migratetype (MIGRATE_RECLAIMABLE folded into UNMOVABLE)
FREE = -1
WATERMARK_SCALE_FACTOR = 10    # mm/page_alloc.c default
WATERMARK_BOOST_FACTOR = 15000  # mm/page_alloc.c default


def zone_batchsize(managed_pages: int) -> int:
    """``zone_batchsize()`` (mm/page_alloc.c, v6.1): ~0.1 % of the zone or
    1 MiB, whichever is smaller, /4, then clamped to 2^n - 1."""
    batch = min(managed_pages >> 10, (1 << 20) // 4096) // 4
    batch = max(batch, 1)
    b = batch + batch // 2
    return (1 << (b.bit_length() - 1)) - 1


def watermarks(managed_pages: int) -> tuple[int, int, int]:
    """(min, low, high) in pages for a single-zone machine
    (``calculate_min_free_kbytes()`` + ``__setup_per_zone_wmarks()``, v6.1)."""
    min_kb = min(max(isqrt(managed_pages * 4 * 16), 128), 262144)
    wmin = min_kb // 4
    step = max(wmin >> 2, managed_pages * WATERMARK_SCALE_FACTOR // 10000)
    return wmin, wmin + step, wmin + 2 * step


def zone_highsize(low_wmark: int, batch: int, cpus: int) -> int:
    """``zone_highsize()`` (v6.1): the low watermark split over the CPUs of
    the node, at least ``batch * 4``."""
    return max(low_wmark // max(cpus, 1), batch << 2)


#: the order-0 pcp list keys of UNMOVABLE and MOVABLE (no tuple built per freed page)
_ORDER0 = ((UNMOVABLE, 0), (MOVABLE, 0))


class _Pcp:
    """``struct per_cpu_pages``: one list per (migratetype, order), head at the end."""

    __slots__ = ("lists", "count", "free_factor")

    def __init__(self):
        self.lists = {(mt, o): [] for mt in (UNMOVABLE, MOVABLE)
                      for o in range(PAGE_ALLOC_COSTLY_ORDER + 1)}
        self.count = 0
        self.free_factor = 0


class Zone:
    """Free areas, pageblock types and per-CPU lists of one zone.

    ``movable[pfn]`` marks allocated MOVABLE pages so that
    ``move_freepages_block()`` can count them;
    ``cache[pfn]`` marks page-cache pages that the aged preset's reclaim may
    free.
    """

    def __init__(self, n_frames: int, lo: int, hi: int, cpus: int):
        self.n_frames = n_frames
        self.lo, self.hi = lo, hi                    # the zone's pfn range [lo, hi)
        managed = hi - lo
        self.batch = max(1, zone_batchsize(managed))   # zone_set_high_and_batch()
        self.wmin, self.wlow, self.whigh = watermarks(managed)
        self.high = zone_highsize(self.wlow, self.batch, cpus)
        self.boost = 0
        self.max_boost = max(PAGEBLOCK_PAGES, self.whigh * WATERMARK_BOOST_FACTOR // 10000)
        self.free_order = np.full(n_frames, -1, dtype=np.int8)   # order of a free block head
        self.free_ver = np.zeros(n_frames, dtype=np.int32)       # stale-entry check for the deques
        self.free_mt = np.zeros(n_frames, dtype=np.int8)         # the list a free block is on
        self.movable = np.zeros(n_frames, dtype=bool)             # allocated MOVABLE pages
        self.isfree = np.zeros(n_frames, dtype=bool)              # in the buddy free areas
        self.cache = np.zeros(n_frames, dtype=bool)
        # pageblock migratetypes; a bytearray because the free path reads it
        # one page at a time and numpy's per-call overhead dominated there
        self.block_mt = bytearray([MOVABLE]) * (n_frames // PAGEBLOCK_PAGES)
        self.areas = [[deque() for _ in range(MAX_ORDER)] for _ in (UNMOVABLE, MOVABLE)]
        self.nr_free = 0
        self.pcp: dict[int, _Pcp] = {}
        self.reclaim = None                          # aged preset: callable(n) -> None
        self.compact = None                          # aged preset: callable(order) -> bool
        self.stats = {"fallback_steals": 0, "pageblocks_claimed": 0, "kswapd_runs": 0,
                      "reclaimed_pages": 0}

    # -- buddy free lists ---------------------------------------------------------
    def _add(self, pfn: int, order: int, mt: int, tail: bool) -> None:
        self.free_order[pfn] = order
        self.free_mt[pfn] = mt
        v = int(self.free_ver[pfn]) + 1
        self.free_ver[pfn] = v
        (self.areas[mt][order].append if tail else self.areas[mt][order].appendleft)((pfn, v))

    def _del(self, pfn: int) -> None:
        self.free_order[pfn] = -1
        self.free_ver[pfn] += 1                      # any deque entry for it is now stale

    def _head(self, mt: int, order: int) -> int:
        """``get_page_from_free_area()``: the list head, or -1."""
        dq = self.areas[mt][order]
        fv = self.free_ver
        while dq:
            pfn, v = dq[0]
            if fv[pfn] == v:
                return pfn
            dq.popleft()
        return -1

    def free_block(self, pfn: int, order: int, mt: int | None = None, to_tail: bool = False) -> None:
        """``__free_one_page()``: merge with free buddies, then list head or tail."""
        if mt is None:
            mt = int(self.block_mt[pfn >> PAGEBLOCK_ORDER])
        fo = self.free_order
        self.isfree[pfn:pfn + (1 << order)] = True
        self.nr_free += 1 << order
        buddy = pfn
        while order < MAX_ORDER - 1:
            buddy = pfn ^ (1 << order)
            if buddy < self.lo or buddy + (1 << order) > self.hi or fo[buddy] != order:
                break
            # v6.1 merges across pageblock types (only isolated blocks are
            # kept apart); the merged block goes to the freeing page's list
            self._del(buddy)
            pfn &= buddy
            order += 1
        tail = to_tail
        if not tail and order < MAX_ORDER - 2:
            # buddy_merge_likely(): the higher-order buddy is free -> tail
            hb = (pfn & ~((2 << order) - 1)) ^ (2 << order)
            tail = self.lo <= hb < self.hi and fo[hb] >= 0 and fo[hb] == order + 1
        self._add(pfn, order, mt, tail)

    def _rmqueue_smallest(self, order: int, mt: int) -> int:
        for cur in range(order, MAX_ORDER):
            pfn = self._head(mt, cur)
            if pfn < 0:
                continue
            self.areas[mt][cur].popleft()
            self._del(pfn)
            self.isfree[pfn:pfn + (1 << order)] = False
            while cur > order:                       # expand(): upper halves back to the heads
                cur -= 1
                self._add(pfn + (1 << cur), cur, mt, tail=False)
            return pfn
        return -1

    def _fallback(self, order: int, mt: int, nofragment: bool) -> bool:
        """``__rmqueue_fallback()`` + ``steal_suitable_fallback()``."""
        other = MOVABLE if mt == UNMOVABLE else UNMOVABLE
        min_order = PAGEBLOCK_ORDER if (nofragment and order < PAGEBLOCK_ORDER) else order
        found = -1
        for cur in range(MAX_ORDER - 1, min_order - 1, -1):
            pfn = self._head(other, cur)
            if pfn < 0:
                continue
            can_steal = (cur >= PAGEBLOCK_ORDER or cur >= PAGEBLOCK_ORDER // 2 or mt == UNMOVABLE)
            if not can_steal and mt == MOVABLE and cur > order:
                for cur2 in range(order, MAX_ORDER):       # find_smallest
                    p2 = self._head(other, cur2)
                    if p2 >= 0:
                        pfn, cur = p2, cur2
                        break
            found = pfn
            break
        if found < 0:
            return False
        pfn, cur = found, int(self.free_order[found])
        self.stats["fallback_steals"] += 1
        blk = pfn >> PAGEBLOCK_ORDER
        if cur >= PAGEBLOCK_ORDER:
            nb = 1 << (cur - PAGEBLOCK_ORDER)
            self.block_mt[blk:blk + nb] = bytes([mt]) * nb     # change_pageblock_range()
            self.stats["pageblocks_claimed"] += nb
            self._move(pfn, cur, mt)
            return True
        if self.hi - self.lo > 4 * PAGEBLOCK_PAGES:     # boost_watermark()
            self.boost = min(self.boost + PAGEBLOCK_PAGES, self.max_boost)
        can_steal = cur >= PAGEBLOCK_ORDER // 2 or mt == UNMOVABLE
        if not can_steal:
            self._move(pfn, cur, mt)
            return True
        # move_freepages_block(): every free block inside the pageblock
        b0 = blk << PAGEBLOCK_ORDER
        fo = self.free_order[b0:b0 + PAGEBLOCK_PAGES]
        heads = np.flatnonzero(fo >= 0)
        free_pages = 0
        for h in heads:
            o = int(fo[h])
            self._move(b0 + int(h), o, mt)
            free_pages += 1 << o
        movable = int(self.movable[b0:b0 + PAGEBLOCK_PAGES].sum())
        old = int(self.block_mt[blk])
        alike = PAGEBLOCK_PAGES - (free_pages + movable) if (mt != MOVABLE and old == MOVABLE) else (
            movable if mt == MOVABLE else 0)
        if free_pages + alike >= PAGEBLOCK_PAGES // 2:
            self.block_mt[blk] = mt
            self.stats["pageblocks_claimed"] += 1
        return True

    def _move(self, pfn: int, order: int, mt: int) -> None:
        """``move_to_free_list()``: same block, the list of ``mt`` (head)."""
        self._del(pfn)
        self._add(pfn, order, mt, tail=False)

    def _rmqueue(self, order: int, mt: int) -> int:
        """``__rmqueue()`` with the ALLOC_NOFRAGMENT retry of
        ``get_page_from_freelist()``."""
        for nofrag in (True, False):
            while True:
                pfn = self._rmqueue_smallest(order, mt)
                if pfn >= 0:
                    return pfn
                if not self._fallback(order, mt, nofrag):
                    break
        if order and self.compact is not None and self.compact(order):
            return self._rmqueue(order, mt)
        return -1

    def reclaim_block(self, order: int) -> bool:
        """Stand-in for the slow path of an order > 0 request on the aged
        machine (``__alloc_pages_slowpath()``: direct compaction and reclaim
        retry until a block of that order exists; for order <= 3 the
        allocator does not give up): take the first free buddy block on the
        lists whose aligned order-``order`` block holds only free and
        page-cache pages, and drop those page-cache pages so that the block
        merges."""
        n = 1 << order
        for mt in (UNMOVABLE, MOVABLE):
            for o in range(order - 1, -1, -1):
                for pfn, v in list(self.areas[mt][o])[:64]:
                    if self.free_ver[pfn] != v:
                        continue
                    b = pfn & ~(n - 1)
                    if b < self.lo or b + n > self.hi:
                        continue
                    blk = slice(b, b + n)
                    if not (self.isfree[blk] | self.cache[blk]).all():
                        continue
                    for p in (np.flatnonzero(self.cache[blk]) + b).tolist():
                        self.cache[p] = self.movable[p] = False
                        self.free_block(p, 0)
                        self.stats["reclaimed_pages"] += 1
                    return True
        return False

    # -- per-CPU lists -------------------------------------------------------------
    # A pcp list is a Python list with its HEAD AT THE END: allocation pops
    # from the end, a free appends, a refill (only ever into an empty list)
    # is stored reversed, and a drain removes from the front (the tail).
    def _pcp(self, cpu: int) -> _Pcp:
        p = self.pcp.get(cpu)
        if p is None:
            p = self.pcp[cpu] = _Pcp()
        return p

    def _rmqueue_bulk(self, order: int, mt: int, count: int) -> list[int]:
        """Up to ``count`` blocks of ``order``, in exactly the order that
        ``count`` calls of :meth:`_rmqueue` hand them out
        (:func:`rmqueue_bulk_reference`), a buddy block at a time instead of
        a page at a time.

        Why that is the same: ``__rmqueue_smallest()`` takes the head of the
        smallest non-empty list at or above ``order`` -- say order ``cur``
        at ``pfn`` -- and ``expand()`` puts the upper halves at the heads of
        the lists ``order..cur-1``, which were empty (else the search had
        stopped there).  The next calls therefore find those halves first,
        smallest order (= lowest address) first, and split them the same
        way: ``k`` calls hand out ``pfn, pfn + 2^order, ...`` ascending, and
        what is left of the block is, for every level ``i`` of the buddy
        tree where the path to the last block handed out goes left, its
        right sibling of order ``i``.  Only when no list of ``mt`` has a
        block does a call go through :meth:`_rmqueue` (fallback stealing,
        compaction), one block at a time as before.  The deque version
        counters (``free_ver``) of the intermediate halves are not bumped;
        they only ever tell stale entries from live ones, and every old
        entry stays stale."""
        got: list[int] = []
        areas = self.areas[mt]
        size = 1 << order
        while len(got) < count:
            for cur in range(order, MAX_ORDER):
                pfn = self._head(mt, cur)
                if pfn >= 0:
                    break
            else:
                pfn = self._rmqueue(order, mt)
                if pfn < 0:
                    break
                got.append(pfn)
                continue
            areas[cur].popleft()
            self._del(pfn)
            k = min(count - len(got), 1 << (cur - order))
            end = pfn + k * size
            self.isfree[pfn:end] = False
            got.extend(range(pfn, end, size))
            last = (k - 1) << order                   # offset of the last block handed out
            for i in range(cur - 1, order - 1, -1):   # expand(): highest half first
                if not (last >> i) & 1:
                    self._add(pfn + ((last >> i) << i) + (1 << i), i, mt, tail=False)
        return got

    def _refill(self, pcp: _Pcp, lst: list, order: int, mt: int) -> None:
        """``rmqueue_bulk()``: ``max(batch >> order, 2)`` blocks, in the order
        the buddy hands them out, onto the (empty) list's tail."""
        batch = max(self.batch >> order, 2) if self.batch > 1 else 1
        got = self._rmqueue_bulk(order, mt, batch)
        self.nr_free -= len(got) << order
        pcp.count += len(got) << order
        got.reverse()
        lst[:0] = got

    def alloc(self, order: int, mt: int, cpu: int) -> int:
        """``alloc_pages(gfp, order)``: pcp for orders <= 3, else the buddy."""
        if order <= PAGE_ALLOC_COSTLY_ORDER:
            pcp = self._pcp(cpu)
            pcp.free_factor >>= 1
            lst = pcp.lists[(mt, order)]
            if not lst:
                self._refill(pcp, lst, order, mt)
                if not lst:
                    raise OutOfMemory(f"simulated machine is out of memory (order-{order} allocation)")
            pfn = lst.pop()
            pcp.count -= 1 << order
        else:
            pfn = self._rmqueue(order, mt)
            if pfn < 0:
                raise OutOfMemory(f"simulated machine is out of memory (order-{order} allocation)")
            self.nr_free -= 1 << order
        if mt == MOVABLE:
            self.movable[pfn:pfn + (1 << order)] = True
        self._watermark_check()
        return pfn

    def alloc_many(self, n: int, mt: int, cpu: int) -> list[int]:
        """``n`` order-0 pages one after the other from the pcp list
        (``__alloc_pages_bulk()`` calls ``__rmqueue_pcplist()`` per page)."""
        pcp = self._pcp(cpu)
        if n == 1:      # __alloc_pages_bulk() hands a single page to __alloc_pages()
            pcp.free_factor >>= 1
        lst = pcp.lists[(mt, 0)]
        out: list[int] = []
        while len(out) < n:
            if not lst:
                self._refill(pcp, lst, 0, mt)
                if not lst:
                    raise OutOfMemory("simulated machine is out of memory (order-0 allocation)")
            k = min(n - len(out), len(lst))
            take = lst[-k:]
            del lst[-k:]
            take.reverse()
            out.extend(take)
            pcp.count -= k
        if mt == MOVABLE and out:
            self.movable[out] = True
        self._watermark_check()
        return out

    def free(self, pfn: int, order: int, cpu: int) -> None:
        """``__free_pages()``: pcp for orders <= 3 (``free_unref_page``), else buddy."""
        self.movable[pfn:pfn + (1 << order)] = False
        if order > PAGE_ALLOC_COSTLY_ORDER:
            self.free_block(pfn, order)
            return
        mt = int(self.block_mt[pfn >> PAGEBLOCK_ORDER])
        pcp = self._pcp(cpu)
        pcp.lists[(mt, order)].append(pfn)
        pcp.count += 1 << order
        if pcp.count >= self.high:
            self._drain(pcp, (mt, order), self._nr_pcp_free(pcp))

    def free_many(self, pfns: np.ndarray, cpu: int, movable: bool = False) -> None:
        """Order-0 pages freed one after the other (``vfree()`` walks the
        area's pages in index order): each to the head of the list of its
        pageblock's type, draining when the pcp goes over ``high``."""
        if pfns.size == 0:
            return
        if movable:
            self.movable[pfns] = False
        pcp = self._pcp(cpu)
        bm = self.block_mt
        lists = pcp.lists
        if pfns.size <= 8:
            for pfn in pfns.tolist():
                mt = bm[pfn >> PAGEBLOCK_ORDER]
                lists[_ORDER0[mt] if mt < 2 else (mt, 0)].append(pfn)
        else:
            # the same appends grouped by list: each list gets its pages in
            # the order they are freed
            mts = np.frombuffer(bm, dtype=np.uint8)[pfns >> PAGEBLOCK_ORDER]
            for mt in (UNMOVABLE, MOVABLE):
                lists[(mt, 0)].extend(pfns[mts == mt].tolist())
        last = (bm[int(pfns[-1]) >> PAGEBLOCK_ORDER], 0)
        pcp.count += int(pfns.size)
        if pcp.count >= self.high:
            self._drain(pcp, last, self._nr_pcp_free(pcp))

    def _nr_pcp_free(self, pcp: _Pcp) -> int:
        """``nr_pcp_free()`` (v6.1, CONFIG_PCP_BATCH_SCALE_MAX 5)."""
        high, batch = self.high, self.batch
        if high < batch:
            return 1
        lo, hi = batch, high - batch
        b = batch << pcp.free_factor
        if b < hi and pcp.free_factor < 5:
            pcp.free_factor += 1
        return min(max(b, lo), hi)

    def _drain(self, pcp: _Pcp, first: tuple[int, int], count: int) -> None:
        """``free_pcppages_bulk()``: round-robin over the lists, starting
        with the one just freed to, each from its tail."""
        keys = list(pcp.lists)
        i = keys.index(first)
        count = min(count, pcp.count)
        while count > 0:
            key = keys[i % len(keys)]
            lst = pcp.lists[key]
            i += 1
            if not lst:
                continue
            n = 1 << key[1]
            k = min(len(lst), -(-count // n))
            out = lst[:k]
            del lst[:k]
            count -= k * n
            pcp.count -= k * n
            for pfn in out:
                self.free_block(pfn, key[1], key[0])

    # -- watermarks ----------------------------------------------------------------
    def _watermark_check(self) -> None:
        if self.reclaim is not None and self.nr_free < self.wlow:
            self.stats["kswapd_runs"] += 1
            need = self.whigh + self.boost - self.nr_free
            self.boost = 0
            self.reclaim(need)


def rmqueue_bulk_reference(zone: Zone, order: int, mt: int, count: int) -> list[int]:
    """:meth:`Zone._rmqueue_bulk` one :meth:`Zone._rmqueue` call per block,
    as ``rmqueue_bulk()`` loops (the readable reference the tests compare
    the block-at-a-time version with)."""
    got = []
    for _ in range(count):
        pfn = zone._rmqueue(order, mt)
        if pfn < 0:
            break
        got.append(pfn)
    return got
