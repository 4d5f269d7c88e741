"""docs/metrics.md is generated from the metric catalogue and kept in sync."""
from __future__ import annotations

from pathlib import Path

from execbench.metrics.catalog import METRICS
from execbench.metrics.doc import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def test_metrics_doc_is_in_sync_with_the_catalogue():
    assert DOC.read_text() == render(), (
        "docs/metrics.md is stale: python -m execbench.metrics.doc > docs/metrics.md")


def test_every_metric_has_a_row_with_its_kind_and_floor():
    rows = {ln.split("|")[1].strip().strip("`"): [c.strip() for c in ln.split("|")[1:-1]]
            for ln in render().splitlines() if ln.startswith("| `")}
    assert set(rows) == {m.name for m in METRICS}
    # floor.py: permission bounds are 0 (text born ROX never flips), the iTLB
    # bound is ceil(T / 2 MiB), text pokes have no stated bound
    assert rows["cpa_calls"][1] == "counter" and rows["cpa_calls"][3] == "final"
    assert rows["cpa_calls"][5] == "0" and rows["wx_page_ns"][5] == "0"
    assert rows["itlb_entries"][1] == "gauge" and rows["itlb_entries"][3] == "peak, mean"
    assert rows["itlb_entries"][5] == "ceil(T / 2 MiB)"
    assert rows["text_pokes"][5] == "-"
    assert rows["largest_free_extent"][4] == "higher"
