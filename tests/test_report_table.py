"""Terminal tables of ``execbench run`` / ``compare``: they fit the width,
use one number format, and keep counters apart from gauges."""
from __future__ import annotations

from execbench.cli import main
from execbench.report import table
from execbench.report.headline import ALIASES


def test_fmt_is_three_significant_figures_and_exact_counts_whole():
    assert table.fmt(0.096612) == "0.0966"
    assert table.fmt(1.5594) == "1.56"
    assert table.fmt(441.8) == "442"            # 3 significant figures
    assert table.fmt(5.0) == "5"                 # an exact count stays whole
    assert table.fmt(1313499.4) == "1,313,499"   # whole from 100 up, grouped
    assert table.fmt(float("nan")) == "-"


def test_fit_uses_aliases_then_splits_columns():
    cols = ["legacy", "module_alloc_type", "module_alloc_type_pmd", "execmem_rox"]
    rows = [(["cpa_calls", "calls"], [1056.0, 518.0, 398.0, 406.0])]
    wide = table.fit(["metric", "unit"], cols, rows, 200, ALIASES)
    assert "module_alloc_type_pmd" in wide.splitlines()[0]           # full names fit 200
    # full-name widths: 9 + 2 + 5 + 2 + 6 + 2 + 17 + 2 + 21 + 2 + 11 = 79 > 60 -> aliases
    mid = table.fit(["metric", "unit"], cols, rows, 60, ALIASES)
    assert mid.splitlines()[0].startswith("columns: mat = module_alloc_type")
    assert all(len(ln) <= 60 for ln in mid.splitlines())
    # 30 columns cannot hold metric + unit + 4 values: split into blocks of fewer designs
    narrow = table.fit(["metric", "unit"], cols, rows, 30, ALIASES)
    heads = [ln for ln in narrow.splitlines() if ln.startswith("metric")]
    assert len(heads) >= 2
    assert sum(ln.count("cpa_calls") for ln in narrow.splitlines()) == len(heads)


def test_run_prints_counters_by_total_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["run", "-d", "legacy", "--out", str(tmp_path / "r.csv")]) == 0
    out = capsys.readouterr().out
    counters = out.split("counters (totals over the trace):")[1].split("gauges")[0]
    gauges = out.split("gauges (")[1]
    head = [ln for ln in counters.splitlines() if ln.startswith("metric")][0]
    assert head.split() == ["metric", "unit", "total"]         # no mean of a counter
    assert any(ln.startswith("cpa_calls ") for ln in counters.splitlines())
    assert not any(ln.startswith("cpa_calls ") for ln in gauges.splitlines())
    assert [ln for ln in gauges.splitlines() if ln.startswith("metric")][0].split() == \
        ["metric", "unit", "final", "peak", "mean"]
    assert all(len(ln) <= 80 for ln in out.splitlines()[1:])   # line 1: the run's params


def test_compare_fits_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["compare", "--out", str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    for ln in out.splitlines():
        if not ln.startswith("replayed"):          # the closing line names the csv path
            assert len(ln) <= 100, ln
    assert "counters (totals over the trace):" in out and "gauges (" in out
    assert "rox = execmem_rox" in out                            # the alias legend
