"""Reports: the email body pastes into an LKML reply (<= 72 columns, ASCII,
no tabs), its tables parse back to the numbers of the csv format, and the
ratio/floor rules are the documented ones."""
from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from execbench import registry
from execbench.cli import main
from execbench.report import csvout, data, email, markdown
from execbench.report.headline import (Row, Table, fmt_ratio, fmt_value, headline_rows,
                                       ratio)
from execbench.workload_ref import resolve
from execbench.workloads import catalog


@pytest.fixture(scope="module")
def headline():
    """Every registered design on the two smallest shipped workloads, 2 seeds."""
    small = sorted(catalog.shipped(), key=lambda w: w.events)[:2]
    h, _ = data.collect([resolve(w.name) for w in small], registry.names(), [0, 1],
                        command="execbench report", progress=False)
    return h


# -- formatting rules, worked by hand ---------------------------------------------

def test_ratio_rules():
    assert ratio(1, 4) == 0.25                 # plain quotient
    assert ratio(0, 0) == 1.0                  # both designs do none of it: "same"
    assert math.isinf(ratio(5, 0))             # baseline does none, design does some
    assert fmt_ratio(0.25) == "0.25x"
    assert fmt_ratio(0.0034) == "0.0034x"      # < 0.1: two significant digits
    assert fmt_ratio(12.345) == "12.3x"
    assert fmt_ratio(1234.0) == "1,234x"
    assert fmt_ratio(math.inf) == "n/a"        # baseline 0: no ratio, never "inf"
    assert fmt_ratio(None) == "-"


def test_value_format():
    assert fmt_value(1056.0) == "1,056"
    assert fmt_value(0.09659) == "0.09659"
    assert fmt_value(441.824) == "441.8"
    assert fmt_value(8323072 / 1024) == "8,128"    # 8323072 B = 2032 pages = 8128 KiB


def test_floor_proxy_is_the_design_free_ideal(headline):
    """Without a registered ``floor`` design, the iTLB floor is
    itlb_entries_ideal = ceil(live text / 2 MiB) (docs/metrics.md)."""
    w = headline.workload_names[0]
    t = Table(headline, w)
    row = Row("itlb_entries", "peak", "", "")
    if t.has_floor_design:
        assert t.floor(row) == t.value("floor", row)
    else:
        ideal = t.value(t.baseline, Row("itlb_entries_ideal", "peak", "", ""))
        assert t.floor(row) == ideal
        # vs_floor = value / ideal, e.g. legacy's peak entries over the ideal
        assert t.vs_floor(t.baseline, row) == pytest.approx(t.value(t.baseline, row) / ideal)


def test_baseline_ratio_is_one(headline):
    t = Table(headline, headline.workload_names[0])
    assert t.baseline == registry.BASELINE
    for r in t.rows:
        assert t.vs_baseline(t.baseline, r) == 1.0


# -- the email format --------------------------------------------------------------

def test_email_full_is_pasteable(headline):
    text = email.render(headline, ["results/charts/itlb-x.svg"], "results/report.csv", full=True)
    for i, line in enumerate(text.splitlines(), 1):
        assert len(line) <= 72, f"line {i} is {len(line)} columns: {line!r}"
        assert line == line.rstrip(), f"line {i} has trailing spaces"
    assert "\t" not in text
    assert text.isascii()
    assert f"execbench {headline.version}" in text and headline.commit in text
    assert "Reproduce: execbench report" in text
    assert "[1] results/charts/itlb-x.svg" in text and "[2] results/report.csv" in text
    for d in headline.designs:
        assert d.name in text
    for w in headline.workloads:
        assert f"Workload {w.name} (" in text


def parse_tables(section: str) -> list[list[dict[str, str]]]:
    """Tables of one workload section: split on the dashed rule, cut every
    row at the rule's column spans; returns rows as {h1|h2: cell}."""
    lines = section.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not re.fullmatch(r"-+( +-+)+", line):
            continue
        spans = [m.span() for m in re.finditer(r"-+", line)]
        h2 = lines[i - 1]
        h1 = lines[i - 2] if i >= 2 and lines[i - 2].strip() and not lines[i - 2].startswith(
            ("=", "-")) else ""

        def cut(s):
            return [s[a:b].strip() if a < len(s) else "" for a, b in spans]

        # header1 labels are right-aligned over the value column but may be
        # wider than it: take the text ending at the column's right edge
        heads = []
        for a, b in spans:
            seg = h1[:b].rstrip()
            heads.append(seg[seg.rfind("  ") + 2:].strip() if len(seg) > a or seg[a:b].strip() else "")
        units = cut(h2)
        body = []
        for row in lines[i + 1:]:
            if not row.strip():
                break
            cells = cut(row)
            body.append({"design": cells[0], "cols": list(zip(heads, units, cells))})
        out.append(body)
    return out


def _close(shown: str, exact: float) -> bool:
    """``shown`` is ``exact`` rounded the way fmt_value/fmt_ratio round."""
    s = shown.rstrip("x").replace(",", "")
    if s == "-":
        return math.isnan(exact)
    if s == "n/a":                 # baseline 0, design not: no ratio (never "inf")
        return math.isinf(exact)
    v = float(s)
    digits = len(s.split(".")[1]) if "." in s and "e" not in s else 0
    return abs(v - exact) <= 0.5 * 10 ** -digits + 1e-9 * abs(exact) or \
        abs(v - exact) <= 5e-3 * abs(exact)


def unit_scale(unit: str) -> float:
    """What the printed unit means in the csv's base units (bytes, ns):
    KiB = 1024 bytes, ms = 10^6 ns -- independent of the code's scale."""
    if unit.endswith("KiB"):
        return 1024.0
    if unit.endswith("ms"):
        return 1e6
    return 1.0


def test_email_tables_parse_back_to_csv(headline):
    text = email.render_full(headline)
    csv = csvout.frame(headline)
    rows = {(r.label, r.unit): r for r in headline_rows()}
    checked = 0
    for w in headline.workload_names:
        start = text.index(f"Workload {w} (")
        end = text.find("\nWorkload ", start + 1)
        section = text[start:end if end > 0 else None]
        section = section[:section.find("Distance to the floor")] if "Distance" in section else section
        for table in parse_tables(section):
            for rec in table:
                design = rec["design"]
                if design not in headline.design_names:
                    continue   # a proxy "floor (ideal)" row (no floor design in the run)
                cols = rec["cols"][1:]
                for (label, unit, cell), (_, rhead, rcell) in zip(cols[0::2], cols[1::2]):
                    r = rows[(label, unit)]
                    exp = csv[(csv.workload == w) & (csv.design == design) &
                              (csv.metric == r.metric) & (csv.stat == r.stat)].iloc[0]
                    assert _close(cell, exp.value / unit_scale(unit)), (w, design, r.key, cell, exp.value)
                    assert rhead == f"x {registry.BASELINE}"
                    assert _close(rcell, exp.vs_baseline), (w, design, r.key, rcell, exp.vs_baseline)
                    checked += 1
    # every headline row of every design of every workload was found
    assert checked == len(headline.workloads) * len(headline.designs) * len(headline_rows())


def test_csv_is_the_mean_over_seeds(headline):
    """csv value = mean over seeds of the tidy sweep's statistic."""
    csv = csvout.frame(headline)
    df = headline.df
    w, d = headline.workload_names[0], registry.BASELINE
    sel = df[(df.workload == w) & (df.design == d) & (df.metric == "cpa_calls")]
    assert len(sel) == 2                               # seeds 0 and 1
    exp = sel["final"].mean()
    got = csv[(csv.workload == w) & (csv.design == d) & (csv.metric == "cpa_calls")].value.iloc[0]
    assert got == exp
    assert list(csv.columns) == csvout.COLUMNS
    assert set(csv.seeds) == {2}


def test_markdown_tables_are_well_formed(headline):
    text = markdown.render(headline)
    assert text.isascii()
    blocks = [b for b in text.split("\n\n") if b.startswith("| ")]
    assert len(blocks) >= 2 + len(headline.workloads)
    for b in blocks:
        counts = {ln.count(" | ") for ln in b.splitlines()}
        assert len(counts) == 1, b


def test_headline_roundtrip(headline, tmp_path):
    headline.save(tmp_path)
    back = data.load(tmp_path)
    assert email.render(back) == email.render(headline)
    assert email.render_full(back) == email.render_full(headline)
    pd.testing.assert_frame_equal(back.df, headline.df, check_dtype=False)


# -- the command ---------------------------------------------------------------------

def test_report_from_missing_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["report", "--from", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "results.csv" in err and "missing" in err


def test_report_from_bad_meta_names_the_file(tmp_path, capsys, headline):
    headline.save(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    assert main(["report", "--from", str(tmp_path)]) == 1
    assert "meta.json" in capsys.readouterr().err


def test_report_command_formats(tmp_path, capsys):
    w = catalog.default().name
    out = tmp_path / "r.csv"
    assert main(["report", "-w", w, "--designs", registry.BASELINE, "--seeds", "1",
                 "--format", "csv", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(df.workload) == {w} and set(df.design) == {registry.BASELINE, "floor"}
    assert main(["report", "-w", w, "--designs", registry.BASELINE, "--seeds", "1"]) == 0
    text = capsys.readouterr().out
    assert max(map(len, text.splitlines())) <= 72


def test_report_from_dir_selects_workloads(headline, tmp_path, capsys):
    headline.save(tmp_path)
    one = headline.workload_names[-1]
    assert main(["report", "--from", str(tmp_path), "-w", one, "--full"]) == 0
    text = capsys.readouterr().out
    assert f"Workload {one} (" in text
    for other in headline.workload_names[:-1]:
        assert f"Workload {other} (" not in text
    assert main(["report", "--from", str(tmp_path), "-w", "no-such-workload"]) == 1
    assert "no-such-workload" in capsys.readouterr().err


def hand_headline(rows: list[tuple[str, str, str, float]]) -> data.Headline:
    """A Headline from (workload, design, metric, value) rows, one seed,
    value used as final = peak = mean."""
    df = pd.DataFrame([{"workload": w, "design": d, "seed": 0, "metric": m, "final": v,
                        "peak": v, "mean": v} for w, d, m, v in rows])
    ws = list(dict.fromkeys(r[0] for r in rows))
    ds = list(dict.fromkeys(r[1] for r in rows))
    return data.Headline(df=df, designs=[data.DesignMeta(d, d, "6.1", "", {}) for d in ds],
                         workloads=[data.WorkloadMeta(w, 1, "", "") for w in ws], seeds=[0],
                         machine={}, costs={})


def test_a_registered_floor_design_is_the_floor():
    # with a "floor" design in the run, its value is the floor: 900 / 3 = 300x
    h = hand_headline([("w", "legacy", "itlb_entries", 900), ("w", "floor", "itlb_entries", 3),
                       ("w", "legacy", "itlb_entries_ideal", 2)])
    t = Table(h, "w")
    r = Row("itlb_entries", "mean", "", "")
    assert t.floor(r) == 3 and t.vs_floor("legacy", r) == 300
    assert t.floor_label() is None      # no extra row: the floor is a design row
