"""Per-page state of the module range: the kernel page tables we model.

One entry per 4 KiB virtual page of MODULES_VADDR..MODULES_END, in numpy
arrays (258,048 pages):

* ``flags``: PRESENT, W (``_PAGE_RW``), X (not ``_PAGE_NX``), HUGE (the page is
  mapped by a 2 MiB PMD leaf rather than a 4 KiB PTE).  Read access is
  implied by PRESENT: x86 has no no-read kernel mappings.
* ``pfn``: the backing frame, -1 when not present.
* ``cause``: why the page is (or would be) writable and executable at once,
  an index into :data:`WX_CAUSES`, set when the page becomes W+X (mapped
  with ``PAGE_KERNEL_EXEC`` or made W+X by a permission change); the W+X
  count is kept per cause (``wx_by_cause``) so that W^X exposure can be
  told apart by what caused it.
* ``text``: bytes of live executable text the kernel knows of in this page
  (module text, JITed programs, trampolines, insn slots).  This is what the
  kernel's own text lookups (``__module_text_address()``,
  ``is_bpf_text_address()``, ``is_ftrace_trampoline()``,
  ``is_kprobe_insn_slot()``) know; the iTLB metrics count the leaves that map
  it.

Aggregates that metrics read after every event are kept per 2 MiB block
(504 blocks) and as scalars (4 KiB text leaves, 2 MiB text leaves, unbacked
pages in partly backed blocks), updated on every change, so sampling reads
three ints instead of scanning the block arrays.  Every change to a
``blk_*`` array goes through :meth:`PageTable._blk_present_add`,
:meth:`PageTable._blk_text_add` or :meth:`PageTable._set_blk_huge`, which
keep the scalars in step; :meth:`PageTable.recount` recomputes all of them
from scratch for the tests.
"""
from __future__ import annotations

import numpy as np

from ..units import PAGES_PER_PMD

PRESENT = np.uint8(1)
W = np.uint8(2)
X = np.uint8(4)
HUGE = np.uint8(8)
WX = np.uint8(W | X)
_PWX = np.uint8(PRESENT | WX)

#: Why a page is W+X, for ``wx_page_ns_<cause>`` (docs/metrics.md):
#:
#: * ``alloc_window`` -- mapped ``PAGE_KERNEL_EXEC`` and not yet through its
#:   first ``set_memory_*`` (v1's text/rodata allocators and BPF packs, for the
#:   instant between ``__vmalloc_node_range()`` and ``set_memory_rox``);
#: * ``data_until_nx`` -- a data area mapped ``PAGE_KERNEL_EXEC`` that stays
#:   so until the loader's ``set_memory_nx`` at ``complete_formation()``;
#: * ``init_rodata`` -- init rodata left RW+X until it is freed;
#: * ``huge_tail`` -- the pages a ``VM_ALLOW_HUGE_VMAP`` area was rounded up
#:   by (to whole PMDs) beyond the requested size, which no ``set_memory_*``
#:   of that size covers;
#: * ``unprotect_window`` -- an executable page made writable by a
#:   permission change (``set_memory_rw`` without ``set_memory_nx`` first).
#:
#: The designs name the cause when they map (``Kernel.wx_cause``); the
#: huge tail and permission changes are tagged by the kernel itself.
WX_CAUSES = ("alloc_window", "data_until_nx", "init_rodata", "huge_tail", "unprotect_window")
ALLOC_WINDOW, DATA_UNTIL_NX, INIT_RODATA, HUGE_TAIL, UNPROTECT_WINDOW = range(len(WX_CAUSES))


class PageTable:
    def __init__(self, n_pages: int):
        self.n_pages = n_pages
        self.n_blocks = -(-n_pages // PAGES_PER_PMD)
        self.flags = np.zeros(n_pages, dtype=np.uint8)
        self.pfn = np.full(n_pages, -1, dtype=np.int64)
        self.text = np.zeros(n_pages, dtype=np.int32)
        self.cause = np.zeros(n_pages, dtype=np.uint8)
        self.blk_present = np.zeros(self.n_blocks, dtype=np.int32)
        self.blk_text_pages = np.zeros(self.n_blocks, dtype=np.int32)
        self.blk_huge = np.zeros(self.n_blocks, dtype=bool)
        self.present_pages = 0
        self.wx_pages = 0
        self.wx_by_cause = [0] * len(WX_CAUSES)     # sums to wx_pages
        self.map_cause = ALLOC_WINDOW               # tag of pages mapped W+X (Kernel.wx_cause)
        self.change_cause = UNPROTECT_WINDOW        # tag of pages a permission change makes W+X
        self.text_bytes = 0
        # scalar aggregates kept in step with the block arrays (see module doc)
        self.n_text_ptes_4k = 0       # sum(blk_text_pages[~blk_huge])
        self.n_text_pmds_2m = 0       # count(blk_huge & blk_text_pages > 0)
        self.n_free_in_partial = 0    # sum(512 - p for 0 < p < 512 in blk_present)

    # -- block aggregates (the only writers of blk_*) --------------------------------
    @staticmethod
    def _partial_free(p: int) -> int:
        return PAGES_PER_PMD - p if 0 < p < PAGES_PER_PMD else 0

    def _blk_present_add(self, b: int, delta: int) -> None:
        old = int(self.blk_present[b])
        new = old + delta
        self.blk_present[b] = new
        self.n_free_in_partial += self._partial_free(new) - self._partial_free(old)

    def _blk_text_add(self, b: int, delta: int) -> None:
        old = int(self.blk_text_pages[b])
        new = old + delta
        self.blk_text_pages[b] = new
        if self.blk_huge[b]:
            self.n_text_pmds_2m += (new > 0) - (old > 0)
        else:
            self.n_text_ptes_4k += delta

    def _set_blk_huge(self, b: int, huge: bool) -> None:
        if bool(self.blk_huge[b]) == huge:
            return
        self.blk_huge[b] = huge
        t = int(self.blk_text_pages[b])
        sign = 1 if huge else -1
        self.n_text_ptes_4k -= sign * t
        self.n_text_pmds_2m += sign * (t > 0)

    def _blocks_add(self, which: str, pages: np.ndarray, delta: int) -> None:
        """Add ``delta`` per page in ``pages`` to the block aggregate ``which``."""
        if not pages.size:
            return
        add = self._blk_present_add if which == "present" else self._blk_text_add
        blocks = pages // PAGES_PER_PMD
        b0 = int(blocks[0])
        if int(blocks[-1]) == b0 and (pages.size == 1 or bool((blocks == b0).all())):
            add(b0, delta * int(pages.size))
            return
        bs, counts = np.unique(blocks, return_counts=True)
        for b, n in zip(bs.tolist(), counts.tolist()):
            add(b, delta * n)

    def _range_present_add(self, lo: int, hi: int, delta: int) -> None:
        """``_blocks_add('present', arange(lo, hi), delta)`` without the array."""
        b = lo // PAGES_PER_PMD
        while lo < hi:
            end = min(hi, (b + 1) * PAGES_PER_PMD)
            self._blk_present_add(b, delta * (end - lo))
            lo, b = end, b + 1

    def _wx_mask(self, lo: int, hi: int) -> np.ndarray:
        return (self.flags[lo:hi] & _PWX) == _PWX

    def _wx_cause_add(self, tags: np.ndarray, sign: int) -> None:
        """Add ``sign`` per page to ``wx_by_cause`` for pages tagged ``tags``."""
        if not tags.size:
            return
        for i, n in enumerate(np.bincount(tags, minlength=len(WX_CAUSES)).tolist()):
            if n:
                self.wx_by_cause[i] += sign * n

    # -- mapping -------------------------------------------------------------
    def map(self, lo: int, frames: np.ndarray, w: bool, x: bool, huge: bool,
            tail: int = 0) -> None:
        """Map ``frames`` at page ``lo``; the last ``tail`` pages are the
        PMD rounding of a huge area beyond its requested size (W+X cause
        ``huge_tail``), the others take :attr:`map_cause`."""
        hi = lo + frames.size
        if (self.flags[lo:hi] & PRESENT).any():
            raise AssertionError(f"map over present pages at page {lo}")
        f = PRESENT | (W if w else 0) | (X if x else 0) | (HUGE if huge else 0)
        self.flags[lo:hi] = f
        self.pfn[lo:hi] = frames
        self.cause[lo:hi] = self.map_cause
        if tail:
            self.cause[hi - tail:hi] = HUGE_TAIL
        if w and x:
            self.wx_by_cause[self.map_cause] += frames.size - tail
            self.wx_by_cause[HUGE_TAIL] += tail
        self._range_present_add(lo, hi, 1)
        if huge:
            for b in range(lo // PAGES_PER_PMD, hi // PAGES_PER_PMD):
                self._set_blk_huge(b, True)
        self.present_pages += frames.size
        if w and x:
            self.wx_pages += frames.size

    def unmap(self, lo: int, n: int) -> np.ndarray:
        hi = lo + n
        if self.text[lo:hi].any():
            raise AssertionError(f"unmap of pages {lo}..{hi} that still hold live text")
        present = np.flatnonzero(self.flags[lo:hi] & PRESENT) + lo
        frames = self.pfn[present].copy()
        wx = self._wx_mask(lo, hi)
        nwx = int(wx.sum())
        if nwx:
            self.wx_pages -= nwx
            self._wx_cause_add(self.cause[lo:hi][wx], -1)
        if present.size == n:
            self._range_present_add(lo, hi, -1)
        else:
            self._blocks_add("present", present, -1)
        b0, b1 = lo // PAGES_PER_PMD, -(-hi // PAGES_PER_PMD)
        self.flags[lo:hi] = 0
        self.pfn[lo:hi] = -1
        for b in range(b0, b1):
            if self.blk_huge[b] and not np.any(self.flags[b * PAGES_PER_PMD:(b + 1) * PAGES_PER_PMD] & HUGE):
                self._set_blk_huge(b, False)
        self.present_pages -= present.size
        return frames

    def change(self, lo: int, n: int, set_bits: int, clr_bits: int) -> np.ndarray:
        """Set/clear W/X bits on ``[lo, lo+n)``; return the mask of pages whose
        bits actually changed (CPA flushes only when something changed)."""
        hi = lo + n
        old = self.flags[lo:hi]
        if not (old & PRESENT).all():
            raise AssertionError(f"permission change on unmapped pages in {lo}..{hi}")
        new = (old | np.uint8(set_bits)) & np.uint8(~clr_bits & 0xFF)
        changed = new != old
        if changed.any():
            was = (old & _PWX) == _PWX
            now = (new & _PWX) == _PWX
            self.flags[lo:hi] = new
            if (was != now).any():
                self.wx_pages += int(now.sum()) - int(was.sum())
                self._wx_cause_add(self.cause[lo:hi][was & ~now], -1)
                became = now & ~was
                n = int(became.sum())
                if n:
                    self.cause[lo:hi][became] = self.change_cause
                    self.wx_by_cause[self.change_cause] += n
        return changed

    def set_huge(self, block: int, huge: bool) -> None:
        """Split (``huge=False``) or collapse a PMD leaf over one 2 MiB block."""
        lo, hi = block * PAGES_PER_PMD, (block + 1) * PAGES_PER_PMD
        if huge:
            self.flags[lo:hi] |= HUGE
        else:
            self.flags[lo:hi] &= np.uint8(~HUGE & 0xFF)
        self._set_blk_huge(block, huge)

    # -- live text -------------------------------------------------------------
    def add_text(self, lo_byte: int, nbytes: int, sign: int) -> None:
        """Account ``nbytes`` of live text starting at byte offset ``lo_byte``
        (relative to the range start); ``sign`` is +1 (claim) or -1 (release)."""
        if nbytes <= 0:
            return
        p0, p1 = lo_byte >> 12, (lo_byte + nbytes - 1) >> 12
        first = min(4096 - (lo_byte & 4095), nbytes)
        last = (lo_byte + nbytes - 1) % 4096 + 1
        if p1 - p0 < 8:
            # a few pages (a BPF program, a trampoline, a slot): plain Python
            # on numpy scalars beats building five small arrays
            text, flags = self.text, self.flags
            for p in range(p0, p1 + 1):
                per = first if p == p0 else (last if p == p1 else 4096)
                was = int(text[p])
                now = was + sign * per
                text[p] = now
                if now < 0:
                    raise AssertionError("released more text than was claimed")
                if sign > 0 and not flags[p] & PRESENT:
                    raise AssertionError("live text on an unmapped page")
                if (now > 0) != (was > 0):
                    self._blk_text_add(p // PAGES_PER_PMD, 1 if now > 0 else -1)
            self.text_bytes += sign * nbytes
            return
        pages = np.arange(p0, p1 + 1)
        per = np.full(pages.size, 4096, dtype=np.int64)
        per[0] = first
        per[-1] = last
        seg = self.text[p0:p1 + 1]
        was = seg > 0
        seg += (sign * per).astype(np.int32)
        if (seg < 0).any():
            raise AssertionError("released more text than was claimed")
        if sign > 0 and not (self.flags[p0:p1 + 1] & PRESENT).all():
            raise AssertionError("live text on an unmapped page")
        now = seg > 0
        self._blocks_add("text", pages[now & ~was], 1)
        self._blocks_add("text", pages[was & ~now], -1)
        self.text_bytes += sign * nbytes

    # -- aggregates for metrics -------------------------------------------------
    def text_ptes_4k(self) -> int:
        """4 KiB leaves mapping live text: ``sum(blk_text_pages[~blk_huge])``."""
        return self.n_text_ptes_4k

    def text_pmds_2m(self) -> int:
        """2 MiB leaves mapping live text: ``count(blk_huge & blk_text_pages > 0)``."""
        return self.n_text_pmds_2m

    def free_in_partial_2m(self) -> int:
        """Pages not backed inside 2 MiB blocks that are partly backed."""
        return self.n_free_in_partial

    def recount(self) -> dict[str, int]:
        """Full recomputation of the incremental aggregates (for tests)."""
        f = self.flags
        present = (f & PRESENT) != 0
        textp = self.text > 0
        huge = (f & HUGE) != 0
        blocks = np.arange(self.n_pages) // PAGES_PER_PMD
        p = self.blk_present
        part = (p > 0) & (p < PAGES_PER_PMD)
        return {
            "blk_present": np.bincount(blocks[present], minlength=self.n_blocks).tolist() == p.tolist(),
            "blk_text_pages": np.bincount(blocks[textp], minlength=self.n_blocks).tolist()
            == self.blk_text_pages.tolist(),
            "free_in_partial_2m": int((PAGES_PER_PMD - p[part]).sum()),
            "present_pages": int(present.sum()),
            "wx_pages": int(np.count_nonzero(present & ((f & WX) == WX))),
            "wx_by_cause": np.bincount(self.cause[present & ((f & WX) == WX)],
                                       minlength=len(WX_CAUSES)).tolist() == self.wx_by_cause,
            "text_bytes": int(self.text.sum()),
            "text_ptes_4k": int(np.count_nonzero(textp & ~huge)),
            "text_pmds_2m": int(np.unique(blocks[textp & huge]).size),
        }
