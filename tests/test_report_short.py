"""The short email report (``execbench report``): at most 100 lines of at
most 72 ASCII columns, a conclusion per headline question, one headline
table of geometric-mean ratios with seed spread and min-max, no ``inf``,
and a clear answer when there is no results/ folder."""
from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

from execbench import registry
from execbench.cli import main
from execbench.report import attribution, conclusions, csvout, data, short, summary
from execbench.report.headline import Row, alias, fmt_sig, present_rows
from execbench.workload_ref import resolve
from execbench.workloads import catalog

ROOT = Path(__file__).resolve().parents[1]
CPA = Row("cpa_calls", "final", "set_memory_*", "calls")


def hand(rows, params=None):
    """A Headline from (workload, design, seed, metric, value) rows; value
    used as final = peak = mean; every workload has 1 event."""
    import pandas as pd
    df = pd.DataFrame([{"workload": w, "design": d, "seed": s, "metric": m, "final": v,
                        "peak": v, "mean": v} for w, d, s, m, v in rows])
    ws = list(dict.fromkeys(r[0] for r in rows))
    ds = list(dict.fromkeys(r[1] for r in rows))
    seeds = sorted({r[2] for r in rows})
    params = params or {}
    return data.Headline(df=df, designs=[data.DesignMeta(d, d, "6.1", "", params.get(d, {}))
                                         for d in ds],
                         workloads=[data.WorkloadMeta(w, 1, "", "") for w in ws], seeds=seeds,
                         machine={}, costs={})


def check_pasteable(text: str) -> list[str]:
    lines = text.splitlines()
    assert len(lines) <= 100, f"{len(lines)} lines"
    for i, line in enumerate(lines, 1):
        assert len(line) <= 72, f"line {i} is {len(line)} columns: {line!r}"
        assert line == line.rstrip(), f"line {i} has trailing spaces"
    assert text.isascii() and "\t" not in text
    assert not re.search(r"\binf\b", text, re.I), "an 'inf' in the report"
    return lines


# -- the aggregation, worked by hand ---------------------------------------------

def test_geomean_of_ratios_not_pooled_and_seed_spread():
    # w1: legacy 10, 10 over seeds 0, 1; x 4, 6 -> r_w1 = 5 / 10 = 0.5
    # w2: legacy 20, 20;                x 40, 40 -> r_w2 = 40 / 20 = 2
    # geomean = sqrt(0.5 * 2) = 1.0 (a pooled sum would give 90 / 60 = 1.5);
    # range 0.5 - 2.
    # per seed: s0 sqrt(0.4 * 2) = 0.894427, s1 sqrt(0.6 * 2) = 1.095445;
    # sample sd = |1.095445 - 0.894427| / sqrt(2) = 0.142141; mean 0.994936
    # -> 14.29 % (printed "+-14%")
    h = hand([("w1", "legacy", 0, "cpa_calls", 10), ("w1", "legacy", 1, "cpa_calls", 10),
              ("w1", "x", 0, "cpa_calls", 4), ("w1", "x", 1, "cpa_calls", 6),
              ("w2", "legacy", 0, "cpa_calls", 20), ("w2", "legacy", 1, "cpa_calls", 20),
              ("w2", "x", 0, "cpa_calls", 40), ("w2", "x", 1, "cpa_calls", 40)])
    c = summary.cells(h, CPA, "legacy")["x"]
    assert c.geomean == pytest.approx(1.0)
    assert (c.lo, c.hi) == (pytest.approx(0.5), pytest.approx(2.0))
    assert c.sd_pct == pytest.approx(14.286, abs=1e-3)
    assert c.n_seeds == 2 and c.n_workloads == 2
    assert short.fmt_cell(c) == ("1.00+-14%", "0.50-2.0")
    base = summary.cells(h, CPA, "legacy")["legacy"]
    assert base.geomean == 1.0 and math.isnan(base.sd_pct) is False and base.sd_pct == 0


def test_zero_baseline_gives_no_inf():
    # w1: legacy 0, x 7 -> no ratio (left out, marked ^); w2: legacy 4, x 2 -> 0.5;
    # w3: legacy 0, x 0 -> the same (1). geomean over w2, w3 = sqrt(0.5 * 1) = 0.7071
    h = hand([("w1", "legacy", 0, "cpa_calls", 0), ("w1", "x", 0, "cpa_calls", 7),
              ("w2", "legacy", 0, "cpa_calls", 4), ("w2", "x", 0, "cpa_calls", 2),
              ("w3", "legacy", 0, "cpa_calls", 0), ("w3", "x", 0, "cpa_calls", 0)])
    c = summary.cells(h, CPA, "legacy")["x"]
    assert c.undefined == ["w1"] and c.n_workloads == 2
    assert c.geomean == pytest.approx(math.sqrt(0.5))
    assert short.fmt_cell(c) == ("0.707^", "0.50-1.0")
    check_pasteable(short.render(h))


def test_baseline_zero_everywhere_compares_values():
    # legacy 0 on both workloads, x 3 and 5: mean per workload 4 -> "0 vs" that
    h = hand([("w1", "legacy", 0, "wx_page_ns", 0), ("w1", "x", 0, "wx_page_ns", 3e6),
              ("w2", "legacy", 0, "wx_page_ns", 0), ("w2", "x", 0, "wx_page_ns", 5e6)])
    text = short.render(h)
    check_pasteable(text)
    para = dict(conclusions.paragraphs(h, "legacy"))["W+X exposure"]
    assert "legacy is 0 on every workload" in para and "x 4.00 page*ms" in para   # 3 significant figures
    flat = " ".join(text.split())
    assert "x 4.00" in flat and "0 vs those" in flat       # values, not a ratio (never inf)
    # the table has no W+X column: no ratio exists (the conclusion gives the values)
    assert "W+X" not in text.split("Headline numbers:")[1].split("Assumptions:")[0]


def test_a_zero_design_is_not_averaged_as_a_ratio():
    # w1: legacy 8, x 0 -> ratio 0 (counted in zeros, shown in the range);
    # w2: legacy 8, x 2 -> 0.25; geomean over the nonzero ratios = 0.25
    h = hand([("w1", "legacy", 0, "cpa_calls", 8), ("w1", "x", 0, "cpa_calls", 0),
              ("w2", "legacy", 0, "cpa_calls", 8), ("w2", "x", 0, "cpa_calls", 2)])
    c = summary.cells(h, CPA, "legacy")["x"]
    assert c.zeros == 1 and c.geomean == pytest.approx(0.25) and c.lo == 0
    assert short.fmt_cell(c) == ("0.250*", "0-0.25")


def test_a_design_zero_everywhere_prints_zero_even_where_legacy_is_zero():
    # the floor: 0 on w1 and w2 (legacy 8 and 3: ratios 0, 0) and on w3 where
    # legacy is 0 too (0/0 = 1x).  The geomean over the nonzero ratios is
    # that lone 1.0, but the design is 0 on every workload: the cell is "0".
    h = hand([("w1", "legacy", 0, "cpa_calls", 8), ("w1", "x", 0, "cpa_calls", 0),
              ("w2", "legacy", 0, "cpa_calls", 3), ("w2", "x", 0, "cpa_calls", 0),
              ("w3", "legacy", 0, "cpa_calls", 0), ("w3", "x", 0, "cpa_calls", 0)])
    c = summary.cells(h, CPA, "legacy")["x"]
    assert c.zeros == 2 and c.both_zero == 1 and c.n_workloads == 3
    assert c.all_zero and short.fmt_cell(c) == ("0", "")


def test_conclusion_names_best_design_and_workload_dependence():
    # cpa_calls: a = 5/10 on w1 and 10/10 on w2 -> geomean sqrt(0.5) = 0.707;
    # b = 8/10 and 4/10 -> sqrt(0.32) = 0.566 -> b is best; a is lower on w1
    h = hand([("w1", "legacy", 0, "cpa_calls", 10), ("w2", "legacy", 0, "cpa_calls", 10),
              ("w1", "a", 0, "cpa_calls", 5), ("w2", "a", 0, "cpa_calls", 10),
              ("w1", "b", 0, "cpa_calls", 8), ("w2", "b", 0, "cpa_calls", 4)])
    para = dict(conclusions.paragraphs(h, "legacy"))["permission flips"]
    assert "b is lowest at 0.566x legacy" in para
    assert "(0.40-0.80x)" in para          # over every workload of the run (the header says 2)
    assert "a is lower on w1" in para


def test_loader_strategies_that_differ_are_flagged():
    h = hand([("w", "legacy", 0, "cpa_calls", 1), ("w", "x", 0, "cpa_calls", 1),
              ("w", "y", 0, "cpa_calls", 1)],
             params={"legacy": {"loader": "staged"}, "x": {"loader": "inplace"},
                     "y": {"loader": "staged"}})
    text = short.render(h)
    flat = " ".join(text.split())
    # the legend names each design's loader, then what each strategy means
    assert "legacy (6.1, staged); x (6.1, inplace); y (6.1, staged)" in flat
    assert "inplace = each write by text_poke" in flat
    assert "staged = built in a writable copy, one write per area" in flat
    assert "inplace vs staged is not like for like" in flat
    # the table row itself is marked: "x~" (x loads inplace, legacy staged); y is not
    table = text.split("Headline numbers:")[1].split("Assumptions:")[0]
    assert any(ln.startswith("x~ ") for ln in table.splitlines())
    assert not any(ln.startswith("y~") for ln in table.splitlines())
    assert "~: loads unlike legacy" in flat


def test_rw_and_temp_rw_write_alike():
    # temp_rw (v6.15+: plain stores into temporarily RW text) writes module text
    # as rw does: no ~ mark; staged and inplace are marked against rw
    h = hand([("w", d, 0, "cpa_calls", 1) for d in ("legacy", "r", "s", "i")],
             params={"legacy": {"loader": "rw"}, "r": {"loader": "temp_rw"},
                     "s": {"loader": "staged"}, "i": {"loader": "inplace"}})
    assert short.loader_differs(h, "legacy") == {"s", "i"}


def test_headline_rows_missing_from_the_results_are_skipped():
    h = hand([("w", "legacy", 0, "cpa_calls", 1), ("w", "x", 0, "cpa_calls", 1)])
    assert [r.metric for r in present_rows(h)] == ["cpa_calls"]
    text = short.render(h)
    assert "iTLB" not in text.split("Headline numbers:")[1].split("Assumptions:")[0]


# -- on real replays ------------------------------------------------------------------

@pytest.fixture(scope="module")
def headline():
    """Every registered design on the two smallest shipped workloads, 2 seeds."""
    small = sorted(catalog.shipped(), key=lambda w: w.events)[:2]
    h, _ = data.collect([resolve(w.name) for w in small], registry.names(), [0, 1],
                        command="execbench report", progress=False)
    return h


def parse_headline(text: str) -> dict[tuple[str, str], str]:
    """(design alias, label) -> the geomean cell, from the two-line tables."""
    sec = text.split("Headline numbers:")[1].split("Assumptions:")[0]
    lines = sec.splitlines()
    out = {}
    for i, line in enumerate(lines):
        if not re.fullmatch(r"-+( +-+)+", line):
            continue
        spans = [m.span() for m in re.finditer(r"-+", line)]
        h1 = lines[i - 2]
        labels = []
        for a, b in spans:
            seg = h1[:b].rstrip()
            labels.append(seg[seg.rfind("  ") + 2:].strip())
        for row in lines[i + 1:]:
            if not row.strip():
                break
            if row.startswith(" "):
                continue          # the (min-max) line under a design
            cells = [row[a:b].strip() for a, b in spans]
            for lab, cell in zip(labels[1:], cells[1:]):
                out[(cells[0].rstrip("~"), lab)] = cell
    return out


def test_short_report_is_pasteable_and_complete(headline):
    text = short.render(headline, csv_ref="results/report.csv")
    check_pasteable(text)
    assert f"execbench {headline.version}" in text and headline.commit in text
    assert "execbench report" in text and "execbench plot" in text
    flat = " ".join(text.split())          # sentences are wrapped at 72 columns
    assert f"n={len(headline.seeds)} seeds" in flat
    for q in ("iTLB footprint", "memory and fragmentation", "permission flips",
              "text pokes", "W+X exposure", "interface size"):
        assert f"- {q}" in text, q
    assert "skylake-sp" in flat                # the CPU preset is stated


def test_short_table_parses_back_to_the_csv(headline):
    """Each cell is the geometric mean over the workloads of the csv's
    per-workload vs_baseline (recomputed here with numpy)."""
    text = short.render(headline)
    cells = parse_headline(text)
    csv = csvout.frame(headline)
    base = registry.BASELINE
    flat = " ".join(text.split())
    left = re.search(r"Not tabled here for space: (.*?) \(see --full\)", flat)
    dropped = set(left.group(1).split(", ")) if left else set()
    checked = 0
    for r in short.ratio_rows(headline, present_rows(headline), base):
        if r.label in dropped:          # named as left out: --full has it
            continue
        for d in headline.design_names:
            if d == base:
                continue
            shown = cells.get((alias(d), r.label))
            assert shown is not None, (d, r.label)
            sel = csv[(csv.design == d) & (csv.metric == r.metric) & (csv.stat == r.stat)]
            rat = sel.vs_baseline.to_numpy(dtype=float)
            rat = rat[np.isfinite(rat)]
            num = shown.split("+-")[0].rstrip("*^")
            if num in ("0", "n/a"):
                assert num == "n/a" and len(rat) == 0 or num == "0" and (rat == 0).all()
            else:
                pos = rat[rat > 0]
                exp = float(np.exp(np.log(pos).mean()))
                assert num == fmt_sig(exp), (d, r.key, shown, exp)
            checked += 1
    assert checked >= 5 * (len(headline.design_names) - 1)


def test_committed_results_give_a_short_report():
    if not (ROOT / "results" / "results.csv").exists():
        pytest.skip("no committed results/")
    h = data.load(ROOT / "results")
    text = short.render(h, csv_ref="results/report.csv")
    check_pasteable(text)
    # the seed spread is shown: the shipped run has 3 seeds and seed-dependent
    # metrics (KASLR offset and frame placement move direct-map splits)
    assert f"n={len(h.seeds)} seeds" in " ".join(text.split()) and "+-" in text


# -- the command ----------------------------------------------------------------------

def test_report_without_results_says_what_to_run(tmp_path, monkeypatch, capsys):
    import execbench.commands.report_cmd as rc
    monkeypatch.setattr(rc, "RESULTS_DIR", tmp_path / "results")
    t0 = time.perf_counter()
    assert main(["report"]) == 1
    assert time.perf_counter() - t0 < 1.0
    err = capsys.readouterr().err
    assert "execbench all" in err and "--replay" in err and "results.csv" in err
    assert main(["plot"]) == 1
    assert "execbench all" in capsys.readouterr().err


def test_what_drives_pokes_and_wx_is_computed():
    # two workloads; pooled = sum over workloads of the mean over seeds
    mat = "module_alloc_type"
    rows = []
    for w in ("w1", "w2"):
        rows += [(w, "legacy", 0, "text_pokes", 10), (w, "legacy", 0, "text_pokes_bpf", 10),
                 (w, mat, 0, "text_pokes", 100), (w, mat, 0, "text_pokes_orc_sort", 92),
                 (w, mat, 0, "text_pokes_reloc", 8),
                 (w, "legacy", 0, "wx_page_ns", 0), (w, mat, 0, "wx_page_ns", 1000),
                 (w, mat, 0, "text_poke_wx_page_ns", 990),
                 (w, mat, 0, "wx_page_ns_data_until_nx", 900),
                 (w, mat, 0, "wx_page_ns_alloc_window", 100),
                 (w, "legacy", 0, "faults_as_posted", 0), (w, mat, 0, "faults_as_posted", 1)]
    h = hand(rows)
    h.costs = {"text_poke": 1500.0}
    # legacy: bpf 20 of 20; mat: orc_sort 184 of 200 = 92%
    assert attribution.poke_sources(h) == \
        "Largest text_poke source (pooled): legacy bpf 100%; mat orc_sort 92%."
    # mat: 1980 of 2000 page*ns inside text_poke = 99%; data_until_nx 1800 = 90%
    assert attribution.wx_sensitivity(h) == (
        "Of it: mat 99% inside text_poke, 90% data_until_nx; the part inside text_poke "
        "scales with its assumed cost (1,500 ns).")
    assert attribution.faults_as_posted(h).startswith(
        "faults_as_posted (RO-text stores as posted): mat 2 (+ mat's")
    # and they are in the report, beside their question
    para = dict(conclusions.paragraphs(h, "legacy"))
    assert "orc_sort 92%" in para["text pokes"]
    assert "99% inside text_poke" in para["W+X exposure"]


def test_attribution_is_silent_on_older_results():
    h = hand([("w", "legacy", 0, "text_pokes", 1), ("w", "x", 0, "text_pokes", 2)])
    assert attribution.poke_sources(h) == attribution.wx_sensitivity(h) == ""
    assert attribution.faults_as_posted(h) == ""


def test_synthetic_columns_are_named_per_column():
    # three workloads: two with synthetic timing (one also estimated BPF
    # sizes), one recorded (synthetic_columns = []: every value measured)
    h = hand([(w, "legacy", 0, "cpa_calls", 1) for w in ("boot-a", "sess-b", "qemu-c")])
    h.workloads = [
        data.WorkloadMeta("boot-a", 1, "", "timing", synthetic_columns=["t_ns", "cpu"]),
        data.WorkloadMeta("sess-b", 1, "", "timing, sizes",
                          synthetic_columns=["t_ns", "cpu", "bpf:size (JIT estimates)"]),
        data.WorkloadMeta("qemu-c", 1, "", "the schedule is chosen", synthetic_columns=[]),
    ]
    flat = " ".join(" ".join(short.synthetic_lines(h)).split())
    # t_ns and cpu share their workloads (all but qemu-c); the parenthetical
    # detail stays in the TOML
    assert "t_ns, cpu: all but qemu-c" in flat
    assert "bpf:size: sess-b" in flat and "JIT estimates" not in flat
    assert "none in qemu-c (what is loaded, and when, is chosen; every value measured)" in flat


def test_full_csv_holds_every_headline_row():
    """report.csv (--full) is what the notebook checks the headline against:
    each headline (metric, stat) must be in it, the DirectMap rows included
    (gauges, but printed at the end of the trace as /proc/meminfo shows them)."""
    from execbench.report.headline import all_rows, headline_rows
    full = {(r.metric, r.stat) for r in all_rows()}
    missing = [(r.metric, r.stat) for r in headline_rows() if (r.metric, r.stat) not in full]
    assert missing == []
    assert ("DirectMap1G", "final") in full and ("DirectMap1G", "mean") in full
