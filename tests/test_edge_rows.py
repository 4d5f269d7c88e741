"""Rows at the edges of what the schema accepts replay on every design
without an exception (the fuzz harness found the first two)."""
from __future__ import annotations

import pandas as pd
import pytest

from execbench.errors import TraceError
from execbench.fuzz import designs_to_run
from execbench.replay import run
from execbench.trace import COLUMNS, from_frame

Z = dict(text=0, rodata=0, ro_after_init=0, data=0, init_text=0, init_rodata=0, init_data=0,
         align=1, relocs=0, reloc_secs=0, alt_sites=0, orc_entries=0, mcount_locs=0)


def _trace(rows):
    recs = []
    for i, (u, o, obj, kw) in enumerate(rows):
        r = dict.fromkeys(COLUMNS)
        r.update(seq=i, t_ns=i * 1000, cpu=i % 3, user=u, op=o, obj=obj, **kw)
        recs.append(r)
    return from_frame(pd.DataFrame(recs, columns=COLUMNS, dtype=object))


EDGES = {
    # legacy: module_alloc(0) for the core layout; __vmalloc_node_range()
    # WARNs on size 0 and returns NULL -> -ENOMEM (1 failure, 2 skipped);
    # a real .ko always has struct module in its core data, so never happens
    "all sizes 0": [("module", "load", "m", Z), ("module", "init_done", "m", {}),
                    ("module", "unload", "m", {})],
    "data only": [("module", "load", "m", dict(Z, data=100)), ("module", "unload", "m", {})],
    "init only": [("module", "load", "m", dict(Z, init_text=100)), ("module", "init_done", "m", {}),
                  ("module", "unload", "m", {})],
    "relocation sections without relocations": [
        ("module", "load", "m", dict(Z, text=100, reloc_secs=1000)), ("module", "unload", "m", {})],
    "largest alignment": [("module", "load", "m", dict(Z, text=100, align=4096)),
                          ("module", "unload", "m", {})],
    "patch of the last bytes": [("module", "load", "m", dict(Z, text=15)),
                                ("module", "patch", "m", dict(offset=0, len=15)),
                                ("module", "unload", "m", {})],
    "smallest and largest small objects": [
        ("bpf", "prog_load", "p", dict(size=1)), ("bpf", "tramp_attach", "t", dict(size=1)),
        ("bpf", "tramp_update", "t", dict(size=4096)), ("ftrace", "ops_register", "f", dict(size=1)),
        ("ftrace", "ops_update", "f", {}), ("kprobe", "register", "k", dict(size=1)),
        ("kprobe", "optimize", "k", dict(size=4096)), ("bpf", "dispatcher_update", "d", {}),
        ("bpf", "dispatcher_update", "d", {})],
}


@pytest.mark.parametrize("what", list(EDGES))
def test_edge_rows_replay_on_every_design(what):
    tr = _trace(EDGES[what])
    for design, params in designs_to_run():
        r = run(tr, design, params=params, machine={"itlb_cpu": "off", "mem_bytes": 4 << 30})
        # v6.1 lays out one core area: with no core bytes it is module_alloc(0)
        failed = 1 if (what in ("all sizes 0", "init only") and design == "legacy") else 0
        assert r.counters["alloc_failures"] == failed, (design, params)
        assert r.counters["events_skipped"] == 2 * failed, (design, params)


@pytest.mark.parametrize("cells,column", [
    (dict(relocs=5), "relocs"), (dict(reloc_secs=10), "reloc_secs"), (dict(alt_sites=1), "alt_sites"),
    (dict(orc_entries=1, rodata=100), "orc_entries"), (dict(mcount_locs=1, rodata=100), "mcount_locs"),
])
def test_module_rows_no_real_ko_has_are_rejected(cells, column):
    with pytest.raises(TraceError) as e:
        _trace([("module", "load", "m", dict(Z, data=100, **cells))])
    assert e.value.column == column
