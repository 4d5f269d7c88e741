"""The dynamic iTLB model: LRU arrays, presets, fetch stream, metric.

Expected miss counts are worked out by hand from the model's rules
(execbench/metrics/tlbsim.py: set = page % sets, true LRU, L1 miss -> L2
lookup, L2 miss = page walk fills both) and from the preset geometry
(execbench/itlb_cpus.py, Intel 248966-045 Table 2-15 for Skylake).
"""
from __future__ import annotations

import numpy as np
import pytest

from execbench.itlb_cpus import CPUS, SIZE_2M, SIZE_4K, CpuItlb, TlbArray, get
from execbench.kernel import Kernel, KernelConfig
from execbench.kernel.layout import MODULES_VADDR
from execbench.metrics import itlb, tlbsim
from execbench.replay import run
from execbench.stress import stress_trace
from execbench.units import MiB

BOTH = (SIZE_4K, SIZE_2M)


def toy(l1_entries: int, l1_ways: int, l2_entries: int, l2_ways: int) -> CpuItlb:
    return CpuItlb("toy", "toy", (TlbArray("l1", l1_entries, l1_ways, BOTH),),
                   TlbArray("l2", l2_entries, l2_ways, BOTH), "test")


def keys4k(pages: list[int]) -> tuple[np.ndarray, np.ndarray]:
    k = np.array(pages, dtype=np.int64) << 1
    return k, np.zeros(k.size, dtype=np.int64)


SIMS = [tlbsim.simulate, tlbsim.simulate_py]


@pytest.mark.parametrize("sim", SIMS)
def test_lru_fully_associative_two_entries(sim):
    # L1: 2 entries fully associative; L2: 4 entries fully associative.
    # A B A C B:  A miss(walk)  B miss(walk)  A hit  C miss(walk; L1 evicts B,
    # the least recently used)  B L1 miss but L2 hit (L2 still holds A B C).
    # -> 4 L1 misses, 3 walks.
    cpu = toy(2, 2, 4, 4)
    k, a = keys4k([10, 20, 10, 30, 20])
    assert sim(cpu, k, a) == (4, 3)


@pytest.mark.parametrize("sim", SIMS)
def test_set_index_is_page_modulo_sets(sim):
    # L1: 2 sets x 1 way.  Pages 0, 2, 0 all map to set 0 (0 % 2 == 2 % 2):
    # each evicts the other -> 3 L1 misses.  Pages 0, 1, 0: sets 0 and 1 -> the
    # third access hits -> 2 misses.  L2 (8 entries, 8 ways) holds everything,
    # so walks = distinct pages.
    cpu = toy(2, 1, 8, 8)
    assert sim(cpu, *keys4k([0, 2, 0])) == (3, 2)
    assert sim(cpu, *keys4k([0, 1, 0])) == (2, 2)


@pytest.mark.parametrize("sim", SIMS)
def test_warmup_prefix_is_not_counted(sim):
    cpu = toy(2, 2, 4, 4)
    k, a = keys4k([10, 20, 10, 30, 20])
    # the first two lookups (the cold misses of 10 and 20) are warm-up
    assert sim(cpu, k, a, warm=2) == (2, 1)


@pytest.mark.parametrize("sim", SIMS)
def test_4k_and_2m_translations_do_not_alias(sim):
    # page number 5 as a 4 KiB page and as a 2 MiB page are different keys
    cpu = toy(4, 4, 4, 4)
    k = np.array([5 << 1, (5 << 1) | 1, 5 << 1, (5 << 1) | 1], dtype=np.int64)
    assert sim(cpu, k, np.zeros(4, dtype=np.int64)) == (2, 2)


def test_skylake_geometry_from_the_manual():
    # Intel 248966-045 Table 2-15: ITLB 4K 128 entries 8-way -> 16 sets;
    # 2M 8 entries; STLB 1536 entries 12-way -> 128 sets.
    sk = get("skylake-sp")
    assert (sk.l1[0].sets, sk.l1[0].ways) == (16, 8)
    assert (sk.l1[1].entries, sk.l1[1].sets) == (8, 1)
    assert (sk.l2.sets, sk.l2.ways) == (128, 12)
    # 7-cpu.com Zen 2: L1 64 fully associative, L2 512 8-way -> 64 sets
    z = get("zen2")
    assert (z.l1[0].sets, z.l1[0].ways, z.l2.sets) == (1, 64, 64)
    assert sk.l1_for(SIZE_4K) == 0 and sk.l1_for(SIZE_2M) == 1 and z.l1_for(SIZE_2M) == 0
    with pytest.raises(KeyError):
        get("pentium")
    with pytest.raises(ValueError):
        TlbArray("bad", 100, 8, BOTH)


@pytest.mark.parametrize("n_pages, l1_misses", [(128, 0), (136, 8 * 9)])
def test_skylake_4k_coverage_round_robin(n_pages, l1_misses):
    # Cycle over n consecutive 4 KiB pages.  Skylake's L1 4K array is 16 sets
    # x 8 ways.  128 pages put exactly 8 in each set: after the first round
    # (warm-up) everything hits.  136 pages put 9 pages in sets 0..7
    # (pages 128..135 land there) and 8 in sets 8..15; cycling 9 pages through
    # 8 LRU ways misses every time -> 8 sets x 9 pages = 72 misses per round.
    # The STLB (128 sets x 12 ways) holds at most 2 of them per set: no walks
    # after warm-up.
    sk = get("skylake-sp")
    pages = list(range(n_pages))
    k, a = keys4k(pages * 3)
    assert tlbsim.simulate(sk, k, a, warm=2 * n_pages) == (l1_misses, 0)


def test_simulate_equals_reference_on_random_streams():
    rng = np.random.default_rng(5)
    for cpu in CPUS.values():
        n = 4000
        huge = rng.random(n) < 0.3
        page = np.where(huge, rng.integers(0, 24, n), rng.integers(0, 3000, n))
        keys = (page.astype(np.int64) << 1) | huge
        arr = np.where(huge, cpu.l1_for(SIZE_2M), cpu.l1_for(SIZE_4K))
        assert tlbsim.simulate(cpu, keys, arr, 500) == tlbsim.simulate_py(cpu, keys, arr, 500), cpu.name


# -- the fetch stream ------------------------------------------------------------------------

def _kernel_with_text(huge: bool) -> tuple[Kernel, int]:
    k = Kernel(KernelConfig(seed=0, kaslr=False))
    k.user, k.obj = "bpf", "prog"
    addr = k.vmalloc(2 * MiB, x=True, huge=huge)
    k.text_claim(addr, 2 * MiB)
    return k, addr


def test_stream_stays_inside_live_text_and_reads_the_leaf_size():
    p = itlb.ItlbParams(fetches=4000, warmup=0, vmlinux_share=0.25, user_share=0.0)
    for huge in (False, True):
        k, addr = _kernel_with_text(huge)
        a, h = itlb.fetch_stream(k, p, np.random.default_rng(0))
        # addresses are offsets from __START_KERNEL_map (they fit in int64)
        vm0, m0 = itlb.VMLINUX_TEXT - itlb.START_KERNEL_MAP, addr - itlb.START_KERNEL_MAP
        vm = (a >= vm0) & (a < vm0 + 16 * MiB)
        mod = (a >= m0) & (a < m0 + 2 * MiB)
        assert np.all(vm | mod)
        assert np.all(h[vm])                      # vmlinux: 2 MiB leaves
        assert np.all(h[mod] == huge)             # module range: as mapped
        # about a quarter of the visits go to vmlinux
        assert 0.2 < vm.mean() < 0.3


def test_one_2m_leaf_beats_512_4k_leaves():
    # 2 MiB of text fetched uniformly.  As one PMD leaf it needs one L1 entry:
    # no misses after warm-up.  As 512 PTEs it overflows Skylake's 128-entry
    # L1 4K array, but fits the 1536-entry STLB: many L1 misses, no walks.
    p = itlb.ItlbParams(fetches=20000, warmup=80000, vmlinux_share=0.0, user_share=0.0)
    sk = get("skylake-sp")
    out = {}
    for huge in (False, True):
        k, _ = _kernel_with_text(huge)
        keys, arr = itlb.keys_for(sk, *itlb.fetch_stream(k, p, np.random.default_rng(1)))
        out[huge] = tlbsim.simulate(sk, keys, arr, p.warmup)
    assert out[True] == (0, 0)
    assert out[False][0] > 1000 and out[False][1] == 0


def test_params_parse_and_reject():
    p = itlb.ItlbParams.parse((("module_zipf", "1.5"), ("checkpoints", "4")))
    assert p.module_zipf == 1.5 and p.checkpoints == 4 and isinstance(p.checkpoints, int)
    with pytest.raises(ValueError, match="unknown iTLB parameter"):
        itlb.ItlbParams.parse({"zipf": 1})
    with pytest.raises(ValueError):
        itlb.ItlbParams.parse({"vmlinux_share": 2})


# -- the metric in a replay --------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    return stress_trace(400, 2)


def test_metric_is_seeded_checkpointed_and_optional(small):
    m = {"itlb_params": (("checkpoints", 4), ("fetches", 8192), ("warmup", 2048))}
    a = run(small, "legacy", seed=0, machine=m, progress=False)
    b = run(small, "legacy", seed=0, machine=m, progress=False)
    col = a.metrics.index("itlb_miss_per_mfetch")
    assert np.array_equal(a.samples, b.samples)
    v = a.samples[:, col]
    assert v.max() > 0
    # sample-and-hold between checkpoints at events 0, 100, 200, 300 and the last
    changes = np.flatnonzero(np.diff(v)) + 1
    assert set(changes.tolist()) <= {100, 200, 300, 399}
    off = run(small, "legacy", seed=0, machine={"itlb_cpu": "off"}, progress=False)
    assert not off.samples[:, col].any()
    # the other metrics do not depend on the iTLB probe
    other = [i for i, n in enumerate(a.metrics) if "mfetch" not in n]
    assert np.array_equal(a.samples[:, other], off.samples[:, other])


def test_kernel_text_regions_follow_claims():
    k, addr = _kernel_with_text(False)
    assert k.text_regions == {addr: (2 * MiB, "bpf", "prog")}
    k.text_release(addr, 2 * MiB)
    assert k.text_regions == {}
    assert addr >= MODULES_VADDR


# -- per-user attribution -----------------------------------------------------------------------

def test_misses_are_charged_to_the_owner_of_the_fetch():
    # Same stream as test_lru_fully_associative_two_entries (L1 2 entries, L2 4,
    # both fully associative): A B A C B with owners bpf, module, bpf, vmlinux,
    # module (itlb.OWNERS indices 0, 1, 0, 4, 1).
    #   A: L1 miss + walk -> bpf;   B: L1 miss + walk -> module;   A: hit;
    #   C: L1 miss + walk (L1 evicts B) -> vmlinux;  B: L1 miss, L2 hit -> module.
    # -> L1 misses bpf 1, module 2, vmlinux 1 (sum 4); walks bpf 1, module 1,
    #    vmlinux 1 (sum 3), as the unattributed totals (4, 3).
    cpu = toy(2, 2, 4, 4)
    k, a = keys4k([10, 20, 10, 30, 20])
    owner = np.array([0, 1, 0, 4, 1])
    m1, m2 = tlbsim.simulate_owners(cpu, k, a, owner, len(itlb.OWNERS))
    assert m1.tolist() == [1, 2, 0, 0, 1, 0]
    assert m2.tolist() == [1, 1, 0, 0, 1, 0]
    # warm-up prefix of 2 (A, B) is not charged to anyone
    m1, m2 = tlbsim.simulate_owners(cpu, k, a, owner, len(itlb.OWNERS), warm=2)
    assert m1.tolist() == [0, 1, 0, 0, 1, 0] and m2.tolist() == [0, 0, 0, 0, 1, 0]


def test_per_user_metrics_sum_to_the_totals(small):
    m = {"itlb_params": (("checkpoints", 2), ("fetches", 8192), ("warmup", 2048))}
    r = run(small, "legacy", seed=0, machine=m, progress=False)
    col = {n: i for i, n in enumerate(r.metrics)}
    for lvl in ("itlb", "stlb"):
        total = r.samples[:, col[f"{lvl}_miss_per_mfetch"]]
        parts = sum(r.samples[:, col[f"{lvl}_miss_per_mfetch_{u}"]] for u in itlb.OWNERS)
        assert np.allclose(total, parts)
    # user text (2 MiB on 4 KiB pages by default) overflows Skylake's 128-entry
    # L1 4K array, so it takes L1 misses of its own
    assert r.samples[:, col["itlb_miss_per_mfetch_userspace"]].min() > 0
    m0 = {"itlb_params": m["itlb_params"] + (("user_share", 0),)}
    r0 = run(small, "legacy", seed=0, machine=m0, progress=False)
    assert not r0.samples[:, r0.metrics.index("itlb_miss_per_mfetch_userspace")].any()


# -- steady state and user-space competition -------------------------------------------------------

class _CyclicStream:
    """Fetch t goes to 4 KiB page (t mod n_pages): a stream whose distinct
    pages are known exactly."""

    def __init__(self, n_pages: int):
        self.n, self.t = n_pages, 0

    def draw(self, rng, n):
        t = np.arange(self.t, self.t + n, dtype=np.int64)
        self.t += n
        page = t % self.n
        return page << 12, np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)


def _probe(**params) -> itlb.ItlbProbe:
    k = Kernel(KernelConfig(seed=0, kaslr=False))
    return itlb.ItlbProbe(k, 10, "skylake-sp", itlb.ItlbParams(**params))


@pytest.mark.parametrize("n_pages, window, max_windows, warm", [
    # Skylake-SP STLB: 1536 entries -> cover = 2 x 1536 = 3072 distinct pages.
    # 2500 pages, windows of 1000: distinct after each window 1000, 2000, 2500,
    # 2500 -> window 4 adds 0 < 1 % of 2500 -> stop after 4 windows = 4000.
    (2500, 1000, 32, 4000),
    # 10000 pages, windows of 1500: 1500, 3000, 4500 >= 3072 -> 3 windows = 4500.
    (10000, 1500, 32, 4500),
    # the window cap: 2 windows of 1000 although 2500 pages are not yet covered.
    (2500, 1000, 2, 2000),
])
def test_steady_warmup_runs_until_the_working_set_is_covered(n_pages, window, max_windows, warm):
    probe = _probe(warmup=window, warmup_windows=max_windows, fetches=700)
    keys, arr, owner, got = probe.steady_stream(_CyclicStream(n_pages), None)
    assert got == warm
    assert keys.size == warm + 700


def test_steady_state_leaves_no_first_touch_walks():
    # 2 MiB of BPF text on 4 KiB pages (512 pages) and nothing else: it fits
    # the 1536-entry STLB, so in steady state no fetch walks the page tables.
    # Windows of 16384 fetches (2048 visits, ~4 per page) cover all 512 pages;
    # a single 1024-fetch warm-up (128 visits) touches at most 128 x 2 pages of
    # the 512 and leaves first-touch walks in the counted window.
    k, _ = _kernel_with_text(False)
    base = dict(fetches=20000, vmlinux_share=0.0, user_share=0.0, checkpoints=1)
    steady = itlb.ItlbProbe(k, 1, "skylake-sp", itlb.ItlbParams(warmup=16384, **base))
    fixed = itlb.ItlbProbe(k, 1, "skylake-sp", itlb.ItlbParams(warmup=1024, warmup_windows=1, **base))
    assert steady.measure(0)[1] == 0
    assert fixed.measure(0)[1] > 0
    assert steady.warm_fetches >= 2 * 16384 and fixed.warm_fetches == 1024


def test_user_text_is_4k_and_owned_by_userspace():
    k, addr = _kernel_with_text(True)
    p = itlb.ItlbParams(fetches=8000, warmup=0, user_share=1.0, user_text_mib=1.0)
    a, h, o = itlb.fetch_stream(k, p, np.random.default_rng(0), owners=True)
    assert np.all((a >= itlb.USER_TEXT) & (a < itlb.USER_TEXT + MiB))
    assert not h.any()
    assert np.all(o == itlb.OWNERS.index("userspace"))
    p = itlb.ItlbParams(fetches=80000, warmup=0, user_share=0.3, vmlinux_share=0.0)
    a, h, o = itlb.fetch_stream(k, p, np.random.default_rng(0), owners=True)
    user = a >= itlb.USER_TEXT
    assert 0.27 < user.mean() < 0.33
    # the rest is the 2 MiB BPF object, on its one PMD leaf
    assert np.all(h[~user]) and np.all(o[~user] == itlb.OWNERS.index("bpf"))
