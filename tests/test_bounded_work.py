"""Bounded work (issue 12 item 3): the most expensive module row the trace
schema accepts replays on every design in under a second.

The row: every loader-work column (relocs, reloc_secs, alt_sites,
orc_entries, mcount_locs) at the largest value execbench/trace.py accepts
-- found by asking the loader itself (bisection), so the test follows the
schema's limits as they change -- and the section sizes as large as the
schema allows but capped so that the whole module fits the 1008 MiB module
range on every design (a bigger module is an -ENOMEM, not work).
"""
from __future__ import annotations

import time

import pytest

from execbench import registry
from execbench.errors import TraceError
from execbench.replay import run
from execbench.trace import MODULE_SIZE_COLUMNS, MODULE_WORK_COLUMNS

from conftest import TraceBuilder

#: per size column, at most this much: 7 x 48 MiB = 336 MiB fits the module
#: range on every design, and text + init text (96 MiB) fit the 2 MiB blocks
#: the simulated machine keeps for huge mappings (execbench/kernel/physmem.py)
SIZE_CAP = 48 << 20


def _row(**over) -> dict:
    base = dict(text=4096, rodata=4096, ro_after_init=0, data=4096, init_text=0,
                init_rodata=0, init_data=0, align=16, relocs=1, reloc_secs=1, alt_sites=1,
                orc_entries=1, mcount_locs=1)
    base.update(over)
    return base


def _first_rejected(col: str, values: list[int]) -> int | None:
    """Index of the first of ``values`` (ascending) the loader rejects for
    ``col``, one module load per value in one trace; None if it takes all."""
    tb = TraceBuilder()
    for i, v in enumerate(values):
        tb.module(f"m{i}", **_row(**{col: v}))
    try:
        tb.trace()
    except TraceError as e:
        return e.row
    return None


def _accepts(**row) -> bool:
    tb = TraceBuilder()
    tb.module("m", **row)
    try:
        tb.trace()
    except TraceError:
        return False
    return True


def _schema_max(col: str) -> int:
    """The largest value of ``col`` the trace loader accepts (others small):
    powers of two first, then 64 steps at a time inside the bracket."""
    bad = _first_rejected(col, [1 << e for e in range(63)])
    if bad is None:
        return (1 << 63) - 1
    if bad == 0:
        return 0
    lo, hi = 1 << (bad - 1), 1 << bad          # lo accepted, hi rejected
    while hi - lo > 1:
        step = max(1, (hi - lo) // 64)
        vals = list(range(lo + step, hi, step))
        i = _first_rejected(col, vals)
        if i is None:
            lo = vals[-1]
        else:
            hi = vals[i]
            lo = vals[i - 1] if i else lo
    return lo


@pytest.fixture(scope="module")
def worst_trace():
    row = _row(**{c: _schema_max(c) for c in MODULE_WORK_COLUMNS})
    row.update({c: min(_schema_max(c), SIZE_CAP) for c in MODULE_SIZE_COLUMNS})
    tb = TraceBuilder()
    tb.module("worst", **row)
    tb.add("module", "init_done", "worst")
    tb.add("module", "unload", "worst")
    return tb.trace(), row


def test_the_row_is_the_schema_maximum(worst_trace):
    _, row = worst_trace
    # one more on any work column is rejected by the loader
    for c in MODULE_WORK_COLUMNS:
        assert not _accepts(**_row(**{c: row[c] + 1})), c


@pytest.mark.parametrize("design", registry.names())
def test_most_expensive_row_replays_in_under_a_second(worst_trace, design):
    trace, _ = worst_trace
    run(trace, design)                   # compile / warm caches once
    t0 = time.perf_counter()
    r = run(trace, design)
    dt = time.perf_counter() - t0
    assert dt < 1.0, f"{design}: {dt:.2f} s"
    assert r.counters["vmalloc_calls"] > 0


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def _big_machine_trace():
    """boot-cloud on a 16 GiB machine: ~80 MB of page arrays per replay."""
    from execbench.workload_ref import resolve

    return resolve("boot-cloud"), {"mem_bytes": 16 << 30, "itlb_cpu": "off"}


def test_many_replays_in_one_process_do_not_grow_its_memory():
    """A sweep or fuzz worker replays run after run in one process.  Each
    finished replay leaves its kernel as cyclic garbage holding the 16 GiB
    machine's page arrays (~80 MB); before replay.run collected it, a fuzz
    worker grew ~800 MB per case until the OOM killer stopped it.  Eight
    replays may not leave more than two replays' worth behind."""
    tr, machine = _big_machine_trace()
    run(tr, "legacy", machine=machine, progress=False)
    base = _rss_mb()
    for _ in range(8):
        run(tr, "legacy", machine=machine, progress=False)
    assert _rss_mb() - base < 160, f"grew {_rss_mb() - base:.0f} MB over 8 replays"


def test_a_finished_replay_frees_its_machine_without_the_cyclic_collector():
    """replay.run breaks a returned run's reference cycles itself (a full
    gc.collect() per run cost ~0.2 s, most of a fuzz case), so with the
    collector off, four replays of a 16 GiB machine (~80 MB of page arrays
    each) leave less than one machine behind."""
    import gc

    tr, machine = _big_machine_trace()
    run(tr, "execmem_rox", machine=machine, progress=False)
    gc.collect()
    gc.disable()
    try:
        base = _rss_mb()
        for _ in range(4):
            run(tr, "execmem_rox", machine=machine, progress=False)
        grew = _rss_mb() - base
    finally:
        gc.enable()
    assert grew < 60, f"grew {grew:.0f} MB over 4 replays with the collector off"
