"""The floor (execbench/metrics/floor.py): hand-worked bounds, the bound
holds for every design event by event, and ``execbench compare`` shows it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from execbench.cli import main as cli_main
from execbench.metrics.floor import floor_row, floor_samples, floor_summary
from execbench.metrics.sampler import NAMES
from execbench.replay import run
from execbench.units import MiB


def test_floor_row_by_hand():
    # 3 MiB of text + 10000 B of data: ceil(3145728 / 2097152) = 2 leaves;
    # backing PAGE_ALIGN(3145728) + PAGE_ALIGN(10000) = 3145728 + 12288 = 3158016
    row = floor_row(3 * MiB + 10000, 3 * MiB)
    assert row["itlb_entries"] == row["text_pmds_2m"] == 2 and row["text_ptes_4k"] == 0
    assert row["backing_bytes"] == 3158016
    assert row["internal_frag"] == pytest.approx(1 - 3155728 / 3158016)
    assert row["cpa_calls"] == row["tlb_flush_all"] == row["wx_page_ns"] == 0
    assert math.isnan(row["text_pokes"])          # no bound stated for pokes
    # one byte more than a leaf needs a second leaf
    assert floor_row(2 * MiB + 1, 2 * MiB + 1)["itlb_entries"] == 2
    assert floor_row(0, 0)["backing_bytes"] == 0 and floor_row(0, 0)["internal_frag"] == 0


def test_floor_summary_time_weighted(tb):
    # t = 0: module with 5000 B text, 3000 B data -> 1 leaf, backing 8192 + 4096
    # t = 1000: unloaded -> 0; the last sample has no weight, so the mean of
    # backing over [0, 1000) is 12288 and the peak 12288
    tb.module("A", text=5000, data=3000)
    tb.add("module", "unload", "A")
    df = floor_summary(tb.trace(), [0, 1]).set_index(["seed", "metric"])
    assert df.loc[(0, "backing_bytes"), "mean"] == 12288
    assert df.loc[(1, "itlb_entries"), "peak"] == 1
    assert df.loc[(0, "itlb_entries"), "final"] == 0
    assert math.isnan(df.loc[(0, "text_pokes"), "final"])


@pytest.mark.parametrize("design,params", [("legacy", {}), ("execmem", {}), ("execmem_rox", {}),
                                           ("execmem_rox", {"version": (6, 15)})])
def test_floor_is_a_lower_bound(design, params):
    from execbench.workload_ref import resolve
    tr = resolve("boot-cloud")
    fl, _, names = floor_samples(tr)
    r = run(tr, design, seed=0, params=params)
    for m in ("itlb_entries", "backing_bytes", "cpa_calls", "tlb_flush_all", "wx_pages"):
        j, i = names.index(m), NAMES.index(m)
        assert np.all(r.samples[:, i] >= fl[:, j]), m


def test_compare_prints_floor_and_distance(tb, tmp_path, capsys):
    tb.module("A", text=5000, rodata=100, data=3000)
    path = tmp_path / "t.csv"
    tb.frame().to_csv(path, index=False)
    out = tmp_path / "cmp.csv"
    assert cli_main(["compare", "-w", str(path), "--designs", "execmem", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    header = [ln for ln in text.splitlines() if ln.startswith("metric")]
    assert header[0].split() == ["metric", "unit", "execmem", "floor"]
    assert "distance to the floor" in text
    # execmem: 2 text PTEs vs a floor of 1 leaf -> distance 1 in final/peak rows
    dist = text.split("distance to the floor", 1)[1]
    line = [ln for ln in dist.splitlines() if ln.startswith("itlb_entries (peak)")][0]
    assert line.split()[-1] == "1"
    assert "floor" in out.read_text()
