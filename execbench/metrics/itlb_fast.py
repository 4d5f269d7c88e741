"""One iTLB checkpoint in compiled code: the same numbers as the Python path.

:meth:`.itlb.ItlbProbe.measure` draws the fetch stream in windows
(:meth:`.itlb.FetchStream.draw`), keeps the distinct pages seen with
``np.union1d`` until the steady-state criterion holds
(:meth:`.itlb.ItlbProbe.steady_stream`), then runs the LRU loop of
:mod:`.tlbsim`.  That is a few dozen numpy calls per window and a sort of
everything seen so far per window: ~40 ms per checkpoint, more than the
rest of a small replay.  :func:`checkpoint` does the same steps in one
numba function:

* **The same random numbers.**  ``Generator.random(a)`` followed by
  ``random(b)`` yields exactly ``random(a + b)`` split at ``a`` (each double
  is one 64-bit draw of the bit generator, no buffering), and each
  checkpoint has its own generator.  So the doubles every possible window
  would use are drawn up front in one call, and window ``w`` reads the
  slice the Python path's ``w``-th ``draw()`` would have drawn.
* **The same arithmetic.**  Each fetch goes through the operations of
  :meth:`~.itlb.FetchStream.draw` and :func:`~.itlb.keys_for` in the same
  order on the same float64/int64 values (``searchsorted(side="right")``
  as a binary search for the first element greater than the draw;
  truncation of ``u * len`` to int64).
* **The same stopping rule.**  Distinct pages are counted with a hash set
  instead of ``union1d``: the count after each window is the same.

The Python path stays as the readable reference (and the fallback without
numba); tests/test_speed_equivalence.py compares the two on many layouts.
"""
from __future__ import annotations

import numpy as np

from ..itlb_cpus import SIZE_2M, SIZE_4K, CpuItlb
from ..kernel.layout import MODULES_VADDR, START_KERNEL_MAP
from . import tlbsim

_KERNEL = None
# the compiled pieces _checkpoint calls, bound by _compiled() (numba resolves
# these globals when it compiles _checkpoint)
_FILL = _COUNT_NEW = _SIM = None


def _compiled():
    global _KERNEL, _FILL, _COUNT_NEW, _SIM
    if _KERNEL is None:
        if tlbsim.backend() != "numba":
            _KERNEL = False
        else:
            import numba
            _SIM = tlbsim._numba_owners()
            _FILL = numba.njit(cache=True, nogil=True)(_fill)
            _COUNT_NEW = numba.njit(cache=True, nogil=True)(_count_new)
            _KERNEL = numba.njit(cache=True, nogil=True)(_checkpoint)
    return _KERNEL or None


def available() -> bool:
    """True when the compiled checkpoint can be used (numba installed)."""
    return _compiled() is not None


def _fill(R, pos, n, vb, out_keys, out_arr, out_owner, at,
          cum, lens, obj_start, reg_addr, reg_len, reg_end, pick_owner, flags,
          vm_base, vm_len, user_base, user_len, rg_lo, rg_len, rg_idx, l1_4k, l1_2m):  # pragma: no cover - compiled
    """One ``FetchStream.draw(rng, n)`` + ``keys_for``: ``n`` fetches into
    ``out_*[at:at + n]`` from the doubles ``R[pos:pos + 2 * visits]``."""
    visits = (n + vb - 1) // vb
    n_pick = cum.shape[0]
    n_reg = reg_end.shape[0]
    t = at
    for v in range(visits):
        r = R[pos + v]
        # np.searchsorted(cum, r, side="right"): first index with cum[i] > r
        lo = 0
        hi = n_pick
        while lo < hi:
            mid = (lo + hi) >> 1
            if cum[mid] <= r:
                lo = mid + 1
            else:
                hi = mid
        pick = min(lo, n_pick - 1)
        u = R[pos + visits + v]
        off = np.int64(u * np.float64(lens[pick]))
        if pick == 0:
            base = vm_base + off
            last = vm_base + vm_len - 1
        elif pick == 1:
            base = user_base + off
            last = user_base + user_len - 1
        elif n_reg > 0:
            flat = obj_start[pick - 2] + off
            lo = 0
            hi = n_reg
            while lo < hi:
                mid = (lo + hi) >> 1
                if reg_end[mid] <= flat:
                    lo = mid + 1
                else:
                    hi = mid
            reg = min(lo, n_reg - 1)
            base = reg_addr[reg] + (flat - (reg_end[reg] - reg_len[reg]))
            last = reg_addr[reg] + reg_len[reg] - 1
        else:
            base = 0
            last = 0
        owner = pick_owner[pick]
        for s in range(vb):
            if t - at >= n:
                break
            addr = min(base + s * 64, last)
            if pick == 0:
                huge = True
            elif pick == 1:
                huge = False
            else:
                # layout.itlb_pages(): the page index of the window holding addr
                # (x86-64: one window from MODULES_VADDR; arm64: one per region)
                page = 0
                for q in range(rg_lo.shape[0]):
                    if addr >= rg_lo[q] and addr - rg_lo[q] < rg_len[q]:
                        page = rg_idx[q] + ((addr - rg_lo[q]) >> 12)
                        break
                huge = (flags[page] & 8) != 0
            if huge:
                out_keys[t] = ((addr >> 21) << 1) | 1
                out_arr[t] = l1_2m
            else:
                out_keys[t] = (addr >> 12) << 1
                out_arr[t] = l1_4k
            out_owner[t] = owner
            t += 1


def _count_new(table, keys, lo, hi):  # pragma: no cover - compiled
    """Insert ``keys[lo:hi]`` into the open-addressing set ``table`` (empty
    slots -1, size a power of two); return how many were new."""
    mask = table.shape[0] - 1
    new = 0
    for t in range(lo, hi):
        k = keys[t]
        h = (k * 0x5851F42D4C957F2D) & 0x7FFFFFFFFFFFFFFF
        i = (h >> 17) & mask
        while True:
            cur = table[i]
            if cur == k:
                break
            if cur == -1:
                table[i] = k
                new += 1
                break
            i = (i + 1) & mask
    return new


def _checkpoint(R, vb, warmup, windows, fetches, cover, new_frac, table,
                cum, lens, obj_start, reg_addr, reg_len, reg_end, pick_owner, flags,
                vm_base, vm_len, user_base, user_len, rg_lo, rg_len, rg_idx, l1_4k, l1_2m,
                m1, m2, l1_sets, l1_ways, l2_sets, l2_ways):  # pragma: no cover - compiled
    """Warm-up windows until the steady-state rule holds, then the counted
    fetches, then the LRU loop; returns the number of warm-up fetches."""
    total = warmup * windows + fetches
    keys = np.empty(total, dtype=np.int64)
    arr = np.empty(total, dtype=np.int64)
    owner = np.empty(total, dtype=np.int64)
    pos = 0
    warm = 0
    seen = 0
    wv = (warmup + vb - 1) // vb
    for w in range(windows):
        _FILL(R, pos, warmup, vb, keys, arr, owner, warm,
              cum, lens, obj_start, reg_addr, reg_len, reg_end, pick_owner, flags,
              vm_base, vm_len, user_base, user_len, rg_lo, rg_len, rg_idx, l1_4k, l1_2m)
        pos += 2 * wv
        before = seen
        seen += _COUNT_NEW(table, keys, warm, warm + warmup)
        warm += warmup
        if seen >= cover or (w > 0 and seen - before < new_frac * before):
            break
    _FILL(R, pos, fetches, vb, keys, arr, owner, warm,
          cum, lens, obj_start, reg_addr, reg_len, reg_end, pick_owner, flags,
          vm_base, vm_len, user_base, user_len, rg_lo, rg_len, rg_idx, l1_4k, l1_2m)
    n = warm + fetches
    _SIM(keys[:n], arr[:n], owner[:n], m1, m2, l1_sets, l1_ways, l2_sets, l2_ways, warm)
    return warm


def checkpoint(stream, p, cpu: CpuItlb, rng: np.random.Generator, n_owners: int,
               table: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(L1 misses per owner, L2 misses per owner, warm-up fetches) of one
    checkpoint, as ``ItlbProbe.steady_stream`` + ``tlbsim.simulate_owners``
    compute them (module doc).  ``table`` is scratch for the distinct-page
    set: int64, a power of two at least twice the warm-up fetches that can
    be distinct, refilled with -1 here."""
    kernel = _compiled()
    rg_lo, rg_len, rg_idx = windows_of(stream.k.layout)
    windows = p.warmup_windows if p.warmup > 0 else 0
    vb = p.visit_blocks
    wv = -(-p.warmup // vb)
    fv = -(-p.fetches // vb)
    R = rng.random(2 * wv * windows + 2 * fv)
    table.fill(-1)
    m1 = np.zeros(n_owners, dtype=np.int64)
    m2 = np.zeros(n_owners, dtype=np.int64)
    l1_sets = np.array([a.sets for a in cpu.l1], dtype=np.int64)
    l1_ways = np.array([a.ways for a in cpu.l1], dtype=np.int64)
    cover = p.steady_cover * cpu.l2.sets * cpu.l2.ways
    warm = kernel(R, vb, p.warmup, windows, p.fetches, float(cover), float(p.steady_new_keys), table,
                  stream.cum, stream.lens, stream.obj_start, stream.reg_addr, stream.reg_len,
                  stream.reg_end, stream.pick_owner, stream.k.pt.flags,
                  stream.vm_base, stream.vm_len, stream.user_base, stream.user_len,
                  rg_lo, rg_len, rg_idx, cpu.l1_for(SIZE_4K), cpu.l1_for(SIZE_2M),
                  m1, m2, l1_sets, l1_ways, cpu.l2.sets, cpu.l2.ways)
    return m1, m2, int(warm)


def windows_of(layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start offset from ``layout.itlb_base``, bytes, first page index) of
    each window whose pages the machine's arrays hold -- what
    ``layout.itlb_pages()`` maps through.  x86-64 (``layout.linear``): one
    window from ``MODULES_VADDR`` with no end, page ``(off - (MODULES_VADDR -
    __START_KERNEL_map)) >> 12`` exactly as ``X86Layout.itlb_pages``; arm64:
    one per region (``Arm64Layout.itlb_pages``, 0 outside every region)."""
    if layout.linear:
        return (np.array([MODULES_VADDR - START_KERNEL_MAP], dtype=np.int64),
                np.array([1 << 62], dtype=np.int64), np.zeros(1, dtype=np.int64))
    regs = layout.regions
    return (np.array([r.base - layout.itlb_base for r in regs], dtype=np.int64),
            np.array([r.npages * 4096 for r in regs], dtype=np.int64),
            np.array([r.index for r in regs], dtype=np.int64))


def table_size(p, cpu: CpuItlb) -> int:
    """Slots of the distinct-page set for ``p``: a power of two at least
    twice the distinct pages the warm-up can see before it stops (at most
    one window beyond ``cover``, at most every warm-up fetch)."""
    cover = int(np.ceil(p.steady_cover * cpu.l2.sets * cpu.l2.ways))
    most = min(p.warmup * p.warmup_windows, cover + p.warmup) + 1
    return 1 << max(4, (2 * most).bit_length())
