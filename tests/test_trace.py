"""Trace validation: every kind of bad input is rejected with file, row and
reason, exits non-zero from the CLI and leaves nothing in results/."""
from __future__ import annotations

import gzip

import pandas as pd
import pytest

from execbench.cli import main
from execbench.errors import TraceError
from execbench.trace import load_trace, save_trace, to_csv_bytes


def good(tb):
    tb.module("m", text=100, rodata=10, data=10, init_text=5)
    tb.add("module", "init_done", "m")
    tb.add("bpf", "prog_load", "p", size=300)
    tb.add("module", "patch", "m", offset=10, len=5)
    tb.add("bpf", "prog_unload", "p")
    tb.add("module", "unload", "m")
    return tb.frame()


def write(tmp_path, df_or_text, name="t.csv"):
    p = tmp_path / name
    if isinstance(df_or_text, pd.DataFrame):
        # raw pandas output on purpose: to_csv_bytes() would re-impose the schema
        p.write_text(df_or_text.to_csv(index=False))
    else:
        p.write_text(df_or_text)
    return p


def test_good_trace_round_trips(tb, tmp_path):
    df = good(tb)
    p = tmp_path / "t.csv.gz"
    save_trace(df, p)
    t = load_trace(p)
    assert len(t) == 6 and t.name == "t"
    ev = list(t.events())
    assert ev[0].text == 100 and ev[0].size is None and ev[2].size == 300
    # gzip written with mtime 0: saving twice gives the same bytes
    b1 = p.read_bytes()
    save_trace(df, p)
    assert p.read_bytes() == b1


def _mutate(df, row, **kw):
    df = df.astype(object)
    for k, v in kw.items():
        df.at[row, k] = v
    return df


BAD = [
    ("unknown op", lambda df: _mutate(df, 2, op="prog_lod"), 2, "op", "unknown op"),
    ("unknown user", lambda df: _mutate(df, 1, user="kmod"), 1, "user", "unknown user"),
    ("missing size", lambda df: _mutate(df, 2, size=None), 2, "size",
     "empty, but bpf/prog_load needs it"),
    ("negative size", lambda df: _mutate(df, 0, rodata=-5), 0, "rodata", "-5 is outside 0..268435456"),
    ("absurd size", lambda df: _mutate(df, 2, size=2 * 1024**3), 2, "size",
     "2147483648 is outside 1..128000000"),
    ("unused column set", lambda df: _mutate(df, 1, size=10), 1, "size", "not used by module/init_done"),
    ("not an integer", lambda df: _mutate(df, 0, text="12k"), 0, "text", "not an integer"),
    ("time backwards", lambda df: _mutate(df, 3, t_ns=0), 3, "t_ns", "time goes backwards"),
    ("bad seq", lambda df: _mutate(df, 4, seq=7), 4, "seq", "seq is 7"),
    ("use of unknown object", lambda df: _mutate(df, 4, obj="q"), 4, "obj", "not live"),
    ("double free", lambda df: _mutate(df, 1, op="unload"), 3, "obj", "not live"),
    ("patch outside text", lambda df: _mutate(df, 3, offset=98), 3, "offset", "outside"),
]


@pytest.mark.parametrize("what,mutate,row,column,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_rows_are_rejected_with_row_and_reason(tb, tmp_path, what, mutate, row, column, reason):
    p = write(tmp_path, mutate(good(tb)))
    with pytest.raises(TraceError) as e:
        load_trace(p)
    assert e.value.row == row, str(e.value)
    assert e.value.column == column, str(e.value)
    assert reason in e.value.reason
    assert str(p) in str(e.value) and f"column '{column}'" in str(e.value)


def test_double_load(tb, tmp_path):
    tb.module("m", text=1)
    tb.module("m", text=1)
    with pytest.raises(TraceError, match="already live"):
        load_trace(write(tmp_path, tb.frame()))


def test_wrong_columns(tb, tmp_path):
    df = good(tb).drop(columns=["mcount_locs"])
    with pytest.raises(TraceError, match="wrong columns"):
        load_trace(write(tmp_path, df))


def test_truncated_gzip(tb, tmp_path):
    data = gzip.compress(to_csv_bytes(good(tb)))
    p = tmp_path / "t.csv.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="truncated or corrupt gzip"):
        load_trace(p)


def test_truncated_csv_row(tb, tmp_path):
    text = to_csv_bytes(good(tb)).decode()
    p = write(tmp_path, text[: text.rindex(",module,") + 8])   # last row cut mid-way
    with pytest.raises(TraceError):
        load_trace(p)


def test_empty_file(tmp_path):
    with pytest.raises(TraceError, match="empty"):
        load_trace(write(tmp_path, ""))


def test_cli_rejects_bad_trace_and_writes_nothing(tb, tmp_path, capsys):
    bad = write(tmp_path, _mutate(good(tb), 2, op="prog_lod"))
    out = tmp_path / "results" / "x.csv"
    rc = main(["run", "--design", "legacy", "--workload", str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0
    assert f"{bad}: row 2 (line 4), column 'op': unknown op 'prog_lod'" in err
    assert not (tmp_path / "results").exists()
    rc = main(["compare", "--workload", str(bad), "--out", str(out)])
    assert rc != 0 and not (tmp_path / "results").exists()
