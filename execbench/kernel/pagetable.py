"""Per-page state of the module range: the kernel page tables we model.

One entry per 4 KiB virtual page of MODULES_VADDR..MODULES_END, in numpy
arrays (258,048 pages):

* ``flags``: PRESENT, W (``_PAGE_RW``), X (not ``_PAGE_NX``), HUGE (the page is
  mapped by a 2 MiB PMD leaf rather than a 4 KiB PTE).  Read access is
  implied by PRESENT: x86 has no no-read kernel mappings.
* ``pfn``: the backing frame, -1 when not present.
* ``text``: bytes of live executable text the kernel knows of in this page
  (module text, JITed programs, trampolines, insn slots).  This is what the
  kernel's own text lookups (``__module_text_address()``,
  ``is_bpf_text_address()``, ``is_ftrace_trampoline()``,
  ``is_kprobe_insn_slot()``) know; the iTLB metrics count the leaves that map
  it.

Aggregates that metrics read after every event are kept per 2 MiB block
(504 blocks) or as scalars, updated on every change, so sampling never scans
the whole range.
"""
from __future__ import annotations

import numpy as np

from ..units import PAGES_PER_PMD

PRESENT = np.uint8(1)
W = np.uint8(2)
X = np.uint8(4)
HUGE = np.uint8(8)
WX = np.uint8(W | X)


class PageTable:
    def __init__(self, n_pages: int):
        self.n_pages = n_pages
        self.n_blocks = -(-n_pages // PAGES_PER_PMD)
        self.flags = np.zeros(n_pages, dtype=np.uint8)
        self.pfn = np.full(n_pages, -1, dtype=np.int64)
        self.text = np.zeros(n_pages, dtype=np.int32)
        self.blk_present = np.zeros(self.n_blocks, dtype=np.int32)
        self.blk_text_pages = np.zeros(self.n_blocks, dtype=np.int32)
        self.blk_huge = np.zeros(self.n_blocks, dtype=bool)
        self.present_pages = 0
        self.wx_pages = 0
        self.text_bytes = 0

    # -- helpers -------------------------------------------------------------
    def _blocks_add(self, arr: np.ndarray, pages: np.ndarray, delta: int) -> None:
        if pages.size:
            np.add.at(arr, pages // PAGES_PER_PMD, delta)

    def _wx(self, lo: int, hi: int) -> int:
        f = self.flags[lo:hi]
        return int(np.count_nonzero((f & (PRESENT | WX)) == (PRESENT | WX)))

    # -- mapping -------------------------------------------------------------
    def map(self, lo: int, frames: np.ndarray, w: bool, x: bool, huge: bool) -> None:
        hi = lo + frames.size
        if np.any(self.flags[lo:hi] & PRESENT):
            raise AssertionError(f"map over present pages at page {lo}")
        f = PRESENT | (W if w else 0) | (X if x else 0) | (HUGE if huge else 0)
        self.flags[lo:hi] = f
        self.pfn[lo:hi] = frames
        self._blocks_add(self.blk_present, np.arange(lo, hi), 1)
        if huge:
            self.blk_huge[lo // PAGES_PER_PMD:hi // PAGES_PER_PMD] = True
        self.present_pages += frames.size
        if w and x:
            self.wx_pages += frames.size

    def unmap(self, lo: int, n: int) -> np.ndarray:
        hi = lo + n
        if np.any(self.text[lo:hi]):
            raise AssertionError(f"unmap of pages {lo}..{hi} that still hold live text")
        present = np.flatnonzero(self.flags[lo:hi] & PRESENT) + lo
        frames = self.pfn[present].copy()
        self.wx_pages -= self._wx(lo, hi)
        self._blocks_add(self.blk_present, present, -1)
        b0, b1 = lo // PAGES_PER_PMD, -(-hi // PAGES_PER_PMD)
        self.flags[lo:hi] = 0
        self.pfn[lo:hi] = -1
        for b in range(b0, b1):
            if self.blk_huge[b] and not np.any(self.flags[b * PAGES_PER_PMD:(b + 1) * PAGES_PER_PMD] & HUGE):
                self.blk_huge[b] = False
        self.present_pages -= present.size
        return frames

    def change(self, lo: int, n: int, set_bits: int, clr_bits: int) -> np.ndarray:
        """Set/clear W/X bits on ``[lo, lo+n)``; return the mask of pages whose
        bits actually changed (CPA flushes only when something changed)."""
        hi = lo + n
        old = self.flags[lo:hi]
        if not np.all(old & PRESENT):
            raise AssertionError(f"permission change on unmapped pages in {lo}..{hi}")
        new = (old | np.uint8(set_bits)) & np.uint8(~clr_bits & 0xFF)
        changed = new != old
        if changed.any():
            before = self._wx(lo, hi)
            self.flags[lo:hi] = new
            self.wx_pages += self._wx(lo, hi) - before
        return changed

    def set_huge(self, block: int, huge: bool) -> None:
        """Split (``huge=False``) or collapse a PMD leaf over one 2 MiB block."""
        lo, hi = block * PAGES_PER_PMD, (block + 1) * PAGES_PER_PMD
        if huge:
            self.flags[lo:hi] |= HUGE
        else:
            self.flags[lo:hi] &= np.uint8(~HUGE & 0xFF)
        self.blk_huge[block] = huge

    # -- live text -------------------------------------------------------------
    def add_text(self, lo_byte: int, nbytes: int, sign: int) -> None:
        """Account ``nbytes`` of live text starting at byte offset ``lo_byte``
        (relative to the range start); ``sign`` is +1 (claim) or -1 (release)."""
        if nbytes <= 0:
            return
        p0, p1 = lo_byte >> 12, (lo_byte + nbytes - 1) >> 12
        pages = np.arange(p0, p1 + 1)
        per = np.full(pages.size, 4096, dtype=np.int64)
        per[0] = min(4096 - (lo_byte & 4095), nbytes)
        if pages.size > 1:
            per[-1] = (lo_byte + nbytes - 1) % 4096 + 1
        was = self.text[p0:p1 + 1] > 0
        self.text[p0:p1 + 1] += (sign * per).astype(np.int32)
        if np.any(self.text[p0:p1 + 1] < 0):
            raise AssertionError("released more text than was claimed")
        if sign > 0 and not np.all(self.flags[p0:p1 + 1] & PRESENT):
            raise AssertionError("live text on an unmapped page")
        now = self.text[p0:p1 + 1] > 0
        self._blocks_add(self.blk_text_pages, pages[now & ~was], 1)
        self._blocks_add(self.blk_text_pages, pages[was & ~now], -1)
        self.text_bytes += sign * nbytes

    # -- aggregates for metrics -------------------------------------------------
    def text_ptes_4k(self) -> int:
        return int(self.blk_text_pages[~self.blk_huge].sum())

    def text_pmds_2m(self) -> int:
        return int(np.count_nonzero(self.blk_huge & (self.blk_text_pages > 0)))

    def free_in_partial_2m(self) -> int:
        """Pages not backed inside 2 MiB blocks that are partly backed."""
        p = self.blk_present
        part = (p > 0) & (p < PAGES_PER_PMD)
        return int((PAGES_PER_PMD - p[part]).sum())

    def recount(self) -> dict[str, int]:
        """Full recomputation of the incremental aggregates (for tests)."""
        f = self.flags
        present = (f & PRESENT) != 0
        textp = self.text > 0
        huge = (f & HUGE) != 0
        blocks = np.arange(self.n_pages) // PAGES_PER_PMD
        return {
            "present_pages": int(present.sum()),
            "wx_pages": int(np.count_nonzero(present & ((f & WX) == WX))),
            "text_bytes": int(self.text.sum()),
            "text_ptes_4k": int(np.count_nonzero(textp & ~huge)),
            "text_pmds_2m": int(np.unique(blocks[textp & huge]).size),
        }
