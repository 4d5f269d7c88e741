"""The set-associative LRU iTLB + second-level TLB lookup loop (the hot path).

One call simulates a cold TLB hierarchy (:class:`execbench.itlb_cpus.CpuItlb`)
over a stream of fetches and returns the misses counted after a warm-up
prefix.  Each fetch is a *key* ``(page_number << 1) | is_2m`` -- page number
in units of the fetch's own leaf size, so a 4 KiB and a 2 MiB translation
never alias -- plus the index of the L1 array that holds its page size.

Per fetch (what an x86 front end does, simplified as stated in
:mod:`execbench.itlb_cpus`):

1. look the key up in its L1 array, set ``page_number % sets``; hit -> done;
2. L1 miss: look it up in the second-level TLB; hit -> refill L1;
3. second-level miss (a page walk): fill the second level and L1.

Within a set, replacement is true LRU: every entry carries the stamp of its
last use; an empty way (stamp -1) is taken first, else the smallest stamp.

Two implementations with identical results: :func:`simulate_py` (plain
Python, the readable reference the tests compare against) and the numba
kernel behind :func:`simulate`.  Why numba rather than numpy: an LRU update
depends on every earlier lookup in the same set, so the loop does not
vectorise; numba compiles the plain loop to machine code (measured against a
C build of the same loop in benchmarks/c/, see benchmarks/c/README.md).
Without numba installed :func:`simulate` falls back to :func:`simulate_py`.
"""
from __future__ import annotations

import numpy as np

from ..itlb_cpus import CpuItlb

_KERNEL = None       # the compiled loop, built on first use (importing numba costs ~1 s)


def _numba_kernel():
    """The numba-compiled loop, or None without numba (then Python is used)."""
    global _KERNEL
    if _KERNEL is None:
        try:   # optional accelerator; results are identical without it
            import numba
        except ImportError:   # pragma: no cover - exercised only without numba
            _KERNEL = False
        else:
            _KERNEL = numba.njit(cache=True, nogil=True)(_sim_loop)
    return _KERNEL or None


def _geometry(cpu: CpuItlb) -> tuple[np.ndarray, np.ndarray, int, int]:
    sets = np.array([a.sets for a in cpu.l1], dtype=np.int64)
    ways = np.array([a.ways for a in cpu.l1], dtype=np.int64)
    return sets, ways, cpu.l2.sets, cpu.l2.ways


def simulate_owners(cpu: CpuItlb, keys: np.ndarray, arr: np.ndarray, owner: np.ndarray,
                    n_owners: int, warm: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-owner (L1 misses, L2 misses) over ``keys[warm:]``: each miss is
    charged to ``owner[t]``, the user owning the fetched address (what perf
    does when it attributes iTLB misses to the symbol of the fetch).  The
    sums over owners equal :func:`simulate`."""
    kernel = _numba_kernel()
    loop = _sim_loop_owners if kernel is None else _numba_owners()
    l1_sets, l1_ways, l2_sets, l2_ways = _geometry(cpu)
    m1 = np.zeros(n_owners, dtype=np.int64)
    m2 = np.zeros(n_owners, dtype=np.int64)
    loop(np.ascontiguousarray(keys, dtype=np.int64), np.ascontiguousarray(arr, dtype=np.int64),
         np.ascontiguousarray(owner, dtype=np.int64), m1, m2,
         l1_sets, l1_ways, np.int64(l2_sets), np.int64(l2_ways), np.int64(warm))
    return m1, m2


_OWNERS = None


def _numba_owners():
    global _OWNERS
    if _OWNERS is None:
        import numba
        _OWNERS = numba.njit(cache=True, nogil=True)(_sim_loop_owners)
    return _OWNERS


def _sim_loop_owners(keys, arr, owner, m1, m2, l1_sets, l1_ways, l2_sets, l2_ways, warm):  # pragma: no cover - compiled
    """:func:`_sim_loop` with each counted miss added to ``m1/m2[owner[t]]``."""
    n_arr = l1_sets.shape[0]
    max_sets = 1
    max_ways = 1
    for i in range(n_arr):
        max_sets = max(max_sets, l1_sets[i])
        max_ways = max(max_ways, l1_ways[i])
    l1t = np.full((n_arr, max_sets, max_ways), -1, dtype=np.int64)
    l1s = np.full((n_arr, max_sets, max_ways), -1, dtype=np.int64)
    l2t = np.full((l2_sets, l2_ways), -1, dtype=np.int64)
    l2s = np.full((l2_sets, l2_ways), -1, dtype=np.int64)
    for t in range(keys.shape[0]):
        key = keys[t]
        a = arr[t]
        page = key >> 1
        s = page % l1_sets[a]
        nw = l1_ways[a]
        hit = False
        victim = 0
        best = l1s[a, s, 0]
        for w in range(nw):
            if l1t[a, s, w] == key:
                l1s[a, s, w] = t
                hit = True
                break
            st = l1s[a, s, w]
            if st < best:
                best = st
                victim = w
        if hit:
            continue
        s2 = page % l2_sets
        hit2 = False
        v2 = 0
        best2 = l2s[s2, 0]
        for w in range(l2_ways):
            if l2t[s2, w] == key:
                l2s[s2, w] = t
                hit2 = True
                break
            st = l2s[s2, w]
            if st < best2:
                best2 = st
                v2 = w
        if not hit2:
            l2t[s2, v2] = key
            l2s[s2, v2] = t
        l1t[a, s, victim] = key
        l1s[a, s, victim] = t
        if t >= warm:
            m1[owner[t]] += 1
            if not hit2:
                m2[owner[t]] += 1


def simulate_py(cpu: CpuItlb, keys: np.ndarray, arr: np.ndarray, warm: int = 0) -> tuple[int, int]:
    """Reference implementation: (L1 misses, L2 misses) over ``keys[warm:]``."""
    l1 = [[[-1] * a.ways for _ in range(a.sets)] for a in cpu.l1]
    l1s = [[[-1] * a.ways for _ in range(a.sets)] for a in cpu.l1]
    l2 = [[-1] * cpu.l2.ways for _ in range(cpu.l2.sets)]
    l2s = [[-1] * cpu.l2.ways for _ in range(cpu.l2.sets)]

    def touch(tags: list, stamps: list, key: int, t: int) -> bool:
        for w, k in enumerate(tags):
            if k == key:
                stamps[w] = t
                return True
        victim = min(range(len(tags)), key=lambda w: (stamps[w], w))
        tags[victim], stamps[victim] = key, t
        return False

    m1 = m2 = 0
    for t, (key, a) in enumerate(zip(keys.tolist(), arr.tolist())):
        page = key >> 1
        s = page % cpu.l1[a].sets
        if touch(l1[a][s], l1s[a][s], key, t):
            continue
        s2 = page % cpu.l2.sets
        hit2 = touch(l2[s2], l2s[s2], key, t)
        if t >= warm:
            m1 += 1
            m2 += not hit2
    return m1, m2


def _sim_loop(keys, arr, l1_sets, l1_ways, l2_sets, l2_ways, warm):   # pragma: no cover - compiled
    """The loop numba compiles (also valid, slow, plain Python)."""
    n_arr = l1_sets.shape[0]
    max_sets = 1
    max_ways = 1
    for i in range(n_arr):
        max_sets = max(max_sets, l1_sets[i])
        max_ways = max(max_ways, l1_ways[i])
    l1t = np.full((n_arr, max_sets, max_ways), -1, dtype=np.int64)
    l1s = np.full((n_arr, max_sets, max_ways), -1, dtype=np.int64)
    l2t = np.full((l2_sets, l2_ways), -1, dtype=np.int64)
    l2s = np.full((l2_sets, l2_ways), -1, dtype=np.int64)
    m1 = 0
    m2 = 0
    for t in range(keys.shape[0]):
        key = keys[t]
        a = arr[t]
        page = key >> 1
        s = page % l1_sets[a]
        nw = l1_ways[a]
        hit = False
        victim = 0
        best = l1s[a, s, 0]
        for w in range(nw):
            if l1t[a, s, w] == key:
                l1s[a, s, w] = t
                hit = True
                break
            st = l1s[a, s, w]
            if st < best:
                best = st
                victim = w
        if hit:
            continue
        # L1 miss: second level
        s2 = page % l2_sets
        hit2 = False
        v2 = 0
        best2 = l2s[s2, 0]
        for w in range(l2_ways):
            if l2t[s2, w] == key:
                l2s[s2, w] = t
                hit2 = True
                break
            st = l2s[s2, w]
            if st < best2:
                best2 = st
                v2 = w
        if not hit2:
            l2t[s2, v2] = key
            l2s[s2, v2] = t
        l1t[a, s, victim] = key
        l1s[a, s, victim] = t
        if t >= warm:
            m1 += 1
            if not hit2:
                m2 += 1
    return m1, m2


def simulate(cpu: CpuItlb, keys: np.ndarray, arr: np.ndarray, warm: int = 0) -> tuple[int, int]:
    """(L1 iTLB misses, second-level misses) over ``keys[warm:]``, from a cold TLB.

    ``keys`` int64, ``arr`` the L1 array index of each fetch (int64/int8)."""
    kernel = _numba_kernel()
    if kernel is None:
        return simulate_py(cpu, keys, arr, warm)
    l1_sets, l1_ways, l2_sets, l2_ways = _geometry(cpu)
    m1, m2 = kernel(np.ascontiguousarray(keys, dtype=np.int64),
                        np.ascontiguousarray(arr, dtype=np.int64),
                        l1_sets, l1_ways, np.int64(l2_sets), np.int64(l2_ways), np.int64(warm))
    return int(m1), int(m2)


def backend() -> str:
    """"numba" or "python": which implementation :func:`simulate` uses."""
    return "numba" if _numba_kernel() is not None else "python"
