"""execbench/kernel/locks.py: per-CPU shadow timeline, mutex waiting and
page-write races, checked by hand on tiny scenarios.

Costs are set so the arithmetic is easy: only ``cpa_call`` (1000 ns) and
``text_poke`` (500 ns) cost anything, everything else is 0.
"""
from __future__ import annotations

import pytest

from execbench.kernel import Costs, Kernel, KernelConfig
from execbench.replay import run

EASY = Costs(vmalloc_call=0, vmalloc_page=0, vfree_call=0, vfree_page=0, cpa_call=1000,
             cpa_page=0, split_large_page=0, flush_tlb_all=0, flush_ipi_per_page=0,
             text_poke=500, text_poke_sync=0, memcpy_byte=0)


def _event(k: Kernel, t: float, cpu: int) -> None:
    k.advance_to(t)
    k.cpu = cpu


def test_busy_cpu_delays_its_next_event():
    k = Kernel(KernelConfig(seed=0))
    _event(k, 0, 0)
    k.tick(100)                 # the event on CPU 0 runs 0..100
    _event(k, 50, 0)            # stamped 50, but CPU 0 is busy until 100
    assert k.locks.local() == 100
    _event(k, 60, 1)            # CPU 1 is idle: starts at its stamp
    assert k.locks.local() == 60


def test_waiting_for_a_mutex_held_by_another_cpu():
    k = Kernel(KernelConfig(seed=0))
    _event(k, 0, 0)
    with k.lock("jit_alloc_lock"):
        k.tick(100)             # CPU 0 holds the lock over [0, 100)
    _event(k, 30, 1)
    with k.lock("jit_alloc_lock"):     # CPU 1 asks at 30, gets it at 100
        pass
    assert k.locks.wait_total == 70
    assert k.locks.counters()["lock_wait_ns_jit_alloc_lock"] == 70
    assert k.locks.local() == 100       # CPU 1's clock moved by its wait
    # the global clock, which W^X and cpu_ns integrate over, did not move
    assert k.now == 100
    _event(k, 200, 0)           # after the hold ended: no wait
    with k.lock("jit_alloc_lock"):
        pass
    assert k.locks.wait_total == 70


def test_same_cpu_and_nested_holds_never_wait():
    k = Kernel(KernelConfig(seed=0))
    _event(k, 0, 0)
    with k.lock("text_mutex"):
        with k.lock("text_mutex"):      # text_poke_bp under a caller's text_mutex
            k.tick(10)
    _event(k, 5, 0)                     # same CPU: serialised by the CPU, not the lock
    with k.lock("text_mutex"):
        pass
    assert k.locks.wait_total == 0


def test_overlapping_writes_to_one_page_from_two_cpus_race():
    k = Kernel(KernelConfig(seed=0, costs=EASY))
    a = k.vmalloc(4096)         # free with EASY costs: CPU 0 is still idle at t=0
    _event(k, 0, 0)
    with k.page_update(a, 64):
        k.tick(100)             # CPU 0 updates page a over [0, 100)
    _event(k, 50, 1)
    with k.page_update(a + 2048, 64):
        k.tick(10)              # CPU 1, same page, [50, 60): overlaps
    assert k.locks.races == 1
    _event(k, 150, 1)
    with k.page_update(a + 1024, 64):
        k.tick(10)              # [150, 160): after both
    assert k.locks.races == 1
    _event(k, 155, 0)
    b = a + 4096 * 8            # another page (not even mapped: only addresses matter)
    with k.page_update(b, 64):
        k.tick(10)
    assert k.locks.races == 1


def _two_trampolines(tb, t_b: int):
    # two 200-byte BPF trampolines: same 256-byte jitalloc class, same slab page
    tb.add("bpf", "tramp_attach", "a", cpu=0, size=200)
    tb.add("bpf", "tramp_attach", "b", cpu=1, size=200)
    tb.rows[0]["t_ns"], tb.rows[1]["t_ns"] = 0, t_b
    return tb.trace()


def test_jitalloc_fallback_without_lock_races(tb):
    # mm/jitalloc.c + the fallback sketch (ZHF21CSxyjQy9C7F), EASY costs:
    # a (CPU 0, t=0): jit_alloc under jit_alloc_lock [0, 1000): new slab,
    #   set_memory_rox = 1 CPA = 1000 ns; jit_update = nx + rw + memcpy + rox
    #   = 3 CPA = window [1000, 4000) on the slab page.
    # b (CPU 1, t=2000): jit_alloc at 2000 (lock free since 1000), same slab,
    #   no CPA; its window [2000, 5000) overlaps a's [1000, 4000) -> 1 race.
    r = run(_two_trampolines(tb, 2000), "jitalloc", costs=EASY,
            params={"text_poke": False, "fallback_lock": False})
    assert r.counters["page_write_races"] == 1
    assert r.counters["lock_wait_ns"] == 0
    assert r.final["page_write_races"] == 1


def test_jitalloc_fallback_lock_turns_the_race_into_waiting(tb):
    # As above but the update holds jit_alloc_lock over [1000, 4000):
    # b asks for the lock at 2000 in jit_alloc -> waits 2000 ns, allocates at
    # 4000, updates over [4000, 7000): no overlap with [1000, 4000).
    r = run(_two_trampolines(tb, 2000), "jitalloc", costs=EASY,
            params={"text_poke": False, "fallback_lock": True})
    assert r.counters["page_write_races"] == 0
    assert r.counters["lock_wait_ns"] == 2000
    assert r.counters["lock_wait_ns_jit_alloc_lock"] == 2000
    assert r.final["lock_wait_ns"] == 2000


def test_jitalloc_text_poke_waits_on_text_mutex(tb):
    # text_poke=True: a: jit_alloc lock [0, 1000) (slab rox), then
    # text_poke_copy of 200 bytes = 1 __text_poke = 500 ns under text_mutex
    # over [1000, 1500).  b (CPU 1, t=1200): jit_alloc lock free at 1200;
    # text_mutex held until 1500 -> waits 300 ns; pokes [1500, 2000): no race.
    r = run(_two_trampolines(tb, 1200), "jitalloc", costs=EASY)
    assert r.counters["lock_wait_ns_text_mutex"] == 300
    assert r.counters["lock_wait_ns"] == 300
    assert r.counters["page_write_races"] == 0


@pytest.mark.parametrize("design", ["legacy", "jitalloc"])
def test_single_cpu_trace_never_waits(tb, design):
    for i in range(40):
        tb.add("bpf", "prog_load", f"p{i}", size=300)
    for i in range(40):
        tb.add("bpf", "prog_unload", f"p{i}")
    for row in tb.rows:
        row["t_ns"] = 0           # all at once, but on one CPU: serialised
    r = run(tb.trace(), design)
    assert r.counters["lock_wait_ns"] == 0 and r.counters["page_write_races"] == 0


def test_hold_running_into_another_cpus_later_hold_is_charged_the_overlap():
    k = Kernel(KernelConfig(seed=0))
    _event(k, 0, 0)
    with k.lock("text_mutex"):
        k.tick(10)              # CPU 0 holds [0, 10)
    k.tick(40)
    with k.lock("text_mutex"):
        k.tick(10)              # and [50, 60)
    _event(k, 20, 1)            # CPU 1 takes it in the gap at 20 ...
    with k.lock("text_mutex"):
        k.tick(40)              # ... and would hold it over [20, 60): 10 ns with CPU 0's [50, 60)
    assert k.locks.wait_total == 10
    assert k.locks.local() == 70            # 20 + 40 of work + 10 of waiting
    assert k.locks.holds["text_mutex"][-1] == (20, 70, 1)


class _PerPageRaces:
    """The per-page page-write record as first written (one list of
    (cpu, start, end, locks) per page, never pruned): the reference the
    interval-based LockModel must agree with."""

    def __init__(self):
        self.pages: dict[int, list] = {}
        self.races = 0

    def write(self, cpu, p0, p1, start, end, held):
        for p in range(p0, p1 + 1):
            ws = self.pages.setdefault(p, [])
            if any(c != cpu and s < end and start < e and not (held & locks) for c, s, e, locks in ws):
                self.races += 1
            ws.append((cpu, start, end, held))

    def forget(self, p0, n):
        for p in range(p0, p0 + n):
            self.pages.pop(p, None)


def test_interval_page_writes_count_the_same_races_as_per_page_records():
    """Random events on 3 CPUs: writes over 1..40 pages, some under a lock,
    some pages unmapped in between; races must match the per-page record
    exactly (the interval form exists so a 256 MiB write is not 65,536
    Python iterations)."""
    import random
    from execbench.units import PAGE_SIZE
    from execbench.kernel.layout import MODULES_VADDR
    total = 0
    for seed in range(30):
        rnd = random.Random(seed)
        k = Kernel(KernelConfig(seed=0))
        ref = _PerPageRaces()
        t = 0.0
        for _ in range(60):
            t += rnd.choice([0, 0, 10, 50, 300])
            _event(k, t, rnd.randrange(3))
            for _ in range(rnd.randrange(1, 4)):
                if rnd.random() < 0.1:
                    p0, n = rnd.randrange(64), rnd.randrange(1, 20)
                    k.locks.forget_pages(MODULES_VADDR + p0 * PAGE_SIZE, n)
                    ref.forget(((MODULES_VADDR >> 12) + p0), n)
                    continue
                p0, n = rnd.randrange(64), rnd.randrange(1, 40)
                addr = MODULES_VADDR + p0 * PAGE_SIZE + rnd.randrange(PAGE_SIZE)
                nbytes = (n - 1) * PAGE_SIZE + 1
                lock = rnd.choice([None, "text_mutex"])
                start = k.locks.local()
                if lock:
                    k.locks.acquire(lock)
                held = frozenset(nm for nm, o in k.locks.open.items() if o[0] == k.cpu)
                k.tick(rnd.choice([1, 20, 100]))
                end = k.locks.local()
                k.locks.record_write(addr, nbytes, start, end)
                ref.write(k.cpu, addr >> 12, (addr + nbytes - 1) >> 12, start, end, held)
                if lock:
                    k.locks.release(lock)
            assert k.locks.races == ref.races, seed
        total += ref.races
    assert total > 100          # the scenarios do race (and some under a common lock do not)
