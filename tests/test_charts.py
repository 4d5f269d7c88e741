"""Charts: the timeline reduction keeps peaks, every chart is written as
PNG and SVG, and SVGs are byte-identical across runs (no date, fixed
hash salt)."""
from __future__ import annotations

import numpy as np
import pytest

from execbench import charts, registry
from execbench.kernel import KernelConfig
from execbench.metrics.sampler import NAMES
from execbench.replay import RunResult
from execbench.report import data
from execbench.workload_ref import resolve
from execbench.workloads import catalog


def fake_result(values: list[float]) -> RunResult:
    n = len(values)
    s = np.zeros((n, len(NAMES)))
    s[:, NAMES.index("itlb_entries")] = values
    return RunResult(design="d", workload="w", seed=0, params={}, config=KernelConfig(),
                     samples=s, t_ns=np.arange(n, dtype=float), counters={}, entry_points={},
                     wall_s=0.0)


def test_reduce_timeline_keeps_bucket_maxima():
    # 10 events into 3 points: edges = round(linspace(0, 10, 4)) = [0, 3, 7, 10]
    # buckets [0..2], [3..6], [7..9]; x = last event of the bucket = 2, 6, 9
    vals = [1, 9, 2, 3, 4, 8, 5, 0, 0, 7]
    df = charts.reduce_timeline(fake_result(vals), points=3)
    assert df.event.tolist() == [2, 6, 9]
    assert df.itlb_entries.tolist() == [9, 8, 7]   # max(1,9,2), max(3,4,8,5), max(0,0,7)
    assert df.t_ns.tolist() == [2.0, 6.0, 9.0]     # fake clock t_ns[i] = i, at the bucket's last event
    assert set(df.workload) == {"w"} and set(df.design) == {"d"}


def test_reduce_timeline_short_trace_is_unchanged():
    df = charts.reduce_timeline(fake_result([3, 1, 2]), points=400)
    assert df.event.tolist() == [0, 1, 2]
    assert df.itlb_entries.tolist() == [3, 1, 2]


@pytest.fixture(scope="module")
def run_small():
    w = catalog.default().name
    h, results = data.collect([resolve(w)], registry.names()[:2], [0], progress=False)
    return h, results


def test_plot_all_writes_png_and_svg_deterministically(run_small, tmp_path):
    h, results = run_small
    tl = charts.timelines(results)
    a = charts.plot_all(h, tl, tmp_path / "a")
    b = charts.plot_all(h, tl, tmp_path / "b")
    w = h.workload_names[0]
    names = sorted(p.name for p in a)
    assert names == sorted(f"{k}-{w}.{f}" for k in charts.KINDS for f in charts.FORMATS)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    for p in a:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else b"<?xml" in head
        if p.suffix == ".svg":
            text = p.read_text()
            assert "<dc:date>" not in text
            # titles stand alone: workload and "lower is better" are in the image
            assert w in text or "lower is better" in text


def test_chart_refs_are_relative_svgs(tmp_path):
    p = tmp_path / "results" / "charts" / "itlb-x.svg"
    q = tmp_path / "results" / "charts" / "itlb-x.png"
    assert charts.chart_refs([p, q], tmp_path) == ["results/charts/itlb-x.svg"]


def test_time_axis_unit_fits_the_span():
    import pandas as pd
    # span 3 h = 1.08e13 ns >= 2 h -> hours: 1.08e13 / 3.6e12 = 3.0
    sub = pd.DataFrame({"design": "d", "event": [0, 1], "t_ns": [0.0, 1.08e13]})
    xs, label = charts._time_axis(sub, "w")
    assert "hours" in label and xs(sub).tolist() == [0.0, 3.0]
    # span 3 min = 1.8e11 ns: < 2 h, >= 2 min -> minutes: 1.8e11 / 6e10 = 3.0
    sub = pd.DataFrame({"design": "d", "event": [0, 1], "t_ns": [0.0, 1.8e11]})
    xs, label = charts._time_axis(sub, "w")
    assert "minutes" in label and xs(sub).tolist() == [0.0, 3.0]
    # span 90 s = 9e10 ns < 2 min -> seconds
    sub = pd.DataFrame({"design": "d", "event": [0, 1], "t_ns": [0.0, 9e10]})
    assert "seconds" in charts._time_axis(sub, "w")[1]
    # a timeline written before t_ns was stored: event number
    old = pd.DataFrame({"design": "d", "event": [0, 7]})
    xs, label = charts._time_axis(old, "w")
    assert "event number" in label and xs(old).tolist() == [0, 7]


def test_line_charts_are_small_multiples(run_small, tmp_path):
    """One panel per design (no overlapping lines): the SVG has one axes
    group per design of the run."""
    h, results = run_small
    paths = charts.plot_workload(h, charts.timelines(results), h.workload_names[0], tmp_path)
    svg = next(p for p in paths if p.name.startswith("itlb-") and p.suffix == ".svg").read_text()
    designs = [d for d in h.design_names if d != "floor"]
    assert svg.count('id="axes_') == len(designs)


def test_an_arm64_chart_names_the_architecture_in_its_title(run_small, tmp_path):
    # the same numbers shown as an arm64 run: every title starts with [arm64], and the
    # flush/poke panels say what the counters are there (broadcast TLBIs, fixmap writes);
    # x86-64 titles carry no architecture tag (their charts are unchanged)
    import dataclasses
    h, results = run_small
    tl = charts.timelines(results)
    arm = dataclasses.replace(h, machine={**h.machine, "arch": "arm64"})
    w = h.workload_names[0]
    a = {p.name: p.read_text() for p in charts.plot_all(arm, tl, tmp_path / "a") if p.suffix == ".svg"}
    x = {p.name: p.read_text() for p in charts.plot_all(h, tl, tmp_path / "x") if p.suffix == ".svg"}
    for kind in charts.KINDS:
        assert "[arm64]" in a[f"{kind}-{w}.svg"] and "[arm64]" not in x[f"{kind}-{w}.svg"]
    assert "broadcast TLBI" in a[f"permissions-{w}.svg"] and "fixmap" in a[f"permissions-{w}.svg"]
    assert "IPIs" in x[f"permissions-{w}.svg"] and "fixmap" not in x[f"permissions-{w}.svg"]
