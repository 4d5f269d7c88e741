"""The CLI end to end: list, run, compare; byte-identical results for the
same inputs and seed."""
from __future__ import annotations

import json

from execbench.cli import main


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "legacy" in [d["name"] for d in out["designs"]]
    assert any(w["default"] for w in out["workloads"])


def test_list_metrics_names_every_design_md_metric(capsys):
    assert main(["list", "--metrics", "--json"]) == 0
    names = {m["metric"] for m in json.loads(capsys.readouterr().out)}
    # the metrics of docs/metrics.md, all but the dynamic itlb_miss_per_mfetch
    for m in ["text_ptes_4k", "text_pmds_2m", "itlb_entries", "itlb_entries_ideal",
              "requested_bytes", "backing_bytes", "internal_frag", "free_in_partial_2m",
              "largest_free_extent", "vmap_areas", "cpa_calls", "cpa_calls_effective",
              "cpa_pages", "tlb_shootdowns", "tlb_flush_all",
              "direct_map_level2_splits", "direct_map_level3_splits", "text_pokes", "text_poke_bytes",
              "wx_page_ns", "wx_pages_peak_instant", "api_calls", "api_entry_points"]:
        assert m in names


def test_compare_is_byte_identical_for_the_same_seed(tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["compare", "--designs", "legacy", "--seeds", "2", "--out", str(a)]) == 0
    table = capsys.readouterr().out
    assert "legacy" in table and "itlb_entries (mean)" in table and "cpa_calls" in table
    assert main(["compare", "--designs", "legacy", "--seeds", "2", "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    header = a.read_text().splitlines()[0]
    assert header == "workload,design,seed,metric,final,peak,mean"


def test_run_writes_summary_and_timeline(tmp_path, capsys):
    out, tl = tmp_path / "s.csv", tmp_path / "t.csv"
    assert main(["run", "-d", "legacy", "--seed", "3", "--out", str(out), "--timeline", str(tl),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["seed"] == 3 and res["events"] > 0
    assert len(tl.read_text().splitlines()) == res["events"] + 1


def test_unknown_design_and_param_are_clear_errors(capsys):
    assert main(["run", "-d", "nosuch"]) != 0
    assert "unknown design 'nosuch'" in capsys.readouterr().err
    assert main(["run", "-d", "legacy", "--param", "bogus=1"]) != 0
    assert "bpf_prog_pack" in capsys.readouterr().err
