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


# -- kallsyms / init_kallsyms (the bytes layout_symtab() appends to data / init_data) ------

def test_kallsyms_columns_load_and_reach_the_event(tb, tmp_path):
    tb.add("module", "load", "m", text=100, rodata=0, ro_after_init=0, data=300, init_text=0,
           init_rodata=0, init_data=400, align=16, relocs=0, reloc_secs=0, alt_sites=0,
           orc_entries=0, mcount_locs=0, kallsyms=250, init_kallsyms=380)
    ev = next(load_trace(write(tmp_path, tb.frame())).events())
    assert (ev.kallsyms, ev.init_kallsyms) == (250, 380)


def test_trace_without_kallsyms_columns_still_loads(tb, tmp_path):
    # a trace written before the two columns existed: the old header, no kallsyms
    df = good(tb).drop(columns=["kallsyms", "init_kallsyms"])
    ev = next(load_trace(write(tmp_path, df)).events())
    assert ev.text == 100 and ev.kallsyms is None and ev.init_kallsyms is None


KALLSYMS_BAD = [
    ("kallsyms larger than data", dict(kallsyms=11, init_kallsyms=0), "kallsyms 11 is larger than data 10"),
    ("init_kallsyms larger than init_data", dict(kallsyms=0, init_kallsyms=1),
     "init_kallsyms 1 is larger than init_data 0"),
    ("only one of the two", dict(kallsyms=5), "both or neither"),
]


@pytest.mark.parametrize("what,cols,reason", KALLSYMS_BAD, ids=[b[0] for b in KALLSYMS_BAD])
def test_bad_kallsyms_rejected(tb, tmp_path, what, cols, reason):
    p = write(tmp_path, _mutate(good(tb), 0, **cols))
    with pytest.raises(TraceError) as e:
        load_trace(p)
    assert e.value.row == 0 and reason in e.value.reason


def test_kallsyms_on_another_op_rejected(tb, tmp_path):
    p = write(tmp_path, _mutate(good(tb), 2, kallsyms=1, init_kallsyms=1))
    with pytest.raises(TraceError, match="kallsyms.*not used by bpf/prog_load"):
        load_trace(p)
# -- hostile input (issue: "Bad input never crashes") ------------------------------------

from pathlib import Path  # noqa: E402

from execbench.errors import TRACE_ERROR_MAX  # noqa: E402
from execbench.trace import COLUMNS, RANGES  # noqa: E402


def _one_row(**cells) -> str:
    """A one-event trace (a BPF prog_load) as CSV text, with cells replaced."""
    row = dict.fromkeys(COLUMNS, "")
    row.update(seq="0", t_ns="0", cpu="0", user="bpf", op="prog_load", obj="p", size="100")
    row.update(cells)
    return ",".join(COLUMNS) + "\n" + ",".join(row[c] for c in COLUMNS) + "\n"


def _rejects(tmp_path, data, name="t.csv") -> TraceError:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    with pytest.raises(TraceError) as e:
        load_trace(p)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) <= TRACE_ERROR_MAX, msg
    return e.value


HOSTILE_CELLS = [
    ("int64 max + 1", "size", "9223372036854775808", "9223372036854775808 is outside 1..128000000"),
    ("u64 -1 sentinel", "t_ns", "18446744073709551615", "18446744073709551615 is outside 0..10"),
    ("4,301 digits", "size", "9" * 4301, "a 4,301-digit number is outside"),
    ("fullwidth digits", "size", "\uff11\uff12", "is not an integer (ASCII digits)"),
    ("arabic-indic digit", "cpu", "\u0663", "is not an integer (ASCII digits)"),
    ("plus sign", "size", "+5", "is not an integer"),
    ("exponent", "size", "1e3", "is not an integer"),
    ("NUL in obj", "obj", "p\x00q", "contains '\\x00'"),
    ("quote in obj", "obj", 'p"q', "contains '\"'"),
    ("escape in obj", "obj", "p\x1b[31m", "contains '\\x1b'"),
    ("space in obj", "obj", "p q", "contains ' '"),
    ("long obj", "obj", "x" * 129, "129 characters (at most 128)"),
    ("NUL in a number", "size", "1\x002", "is not an integer"),
    ("cpu past NR_CPUS", "cpu", "8192", "8192 is outside 0..8191"),
]


@pytest.mark.parametrize("what,col,value,says", HOSTILE_CELLS, ids=[h[0] for h in HOSTILE_CELLS])
def test_hostile_cells_are_one_line_rejections(tmp_path, what, col, value, says):
    e = _rejects(tmp_path, _one_row(**{col: value}))
    assert e.row == 0 and e.column == col and says in e.reason, str(e)


def test_a_huge_cell_is_not_echoed(tmp_path):
    e = _rejects(tmp_path, _one_row(obj="x" * 1_000_000))
    assert "field larger than field limit" in e.reason
    e = _rejects(tmp_path, _one_row(obj="x" * 100_000))
    assert "100,000 characters" in e.reason


def test_a_long_path_is_shortened_not_the_line(tmp_path):
    d = tmp_path / ("d" * 100) / ("e" * 100)
    d.mkdir(parents=True)
    e = _rejects(d, _one_row(size="huge"))
    assert str(e).startswith("...") and "t.csv: row 0 (line 2), column 'size'" in str(e)


@pytest.mark.parametrize("frame", ["truncated", "flipped", "trailing", "two members", "empty"])
def test_gzip_framing_errors(tmp_path, frame):
    g = gzip.compress(_one_row().encode(), mtime=0)
    data = {"truncated": g[:len(g) // 2], "flipped": g[:20] + bytes([g[20] ^ 0x40]) + g[21:],
            "trailing": g + b"garbage!", "two members": g + g, "empty": gzip.compress(b"")}[frame]
    _rejects(tmp_path, data, "t.csv.gz")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1"])
def test_other_encodings_are_rejected(tmp_path, encoding):
    text = _one_row(obj="p\u00e9") if encoding == "latin-1" else _one_row()
    e = _rejects(tmp_path, text.encode(encoding))
    assert "not UTF-8" in e.reason or "wrong columns" in e.reason


def test_bom_and_crlf_are_accepted(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(("\ufeff" + _one_row()).replace("\n", "\r\n").encode())
    assert len(load_trace(p)) == 1


@pytest.mark.parametrize("text,says", [
    (",".join(COLUMNS) + "\n0,0,0,bpf,prog_load,p\n", f"6 fields, expected {len(COLUMNS)}"),
    (_one_row().rstrip("\n") + ",extra\n", f"{len(COLUMNS) + 1} fields, expected {len(COLUMNS)}"),
    (_one_row() + "\n" + _one_row().splitlines()[1] + "\n", "blank line"),
    (_one_row(obj='"p'), "malformed CSV"),
    (_one_row().replace("seq,", "seq,seq,", 1), "wrong columns"),
    (_one_row().replace("t_ns", "T_NS", 1), "missing 't_ns'"),
    (_one_row().splitlines()[1] + "\n", "wrong columns"),
    (",".join(COLUMNS) + "\n", "no events"),
])
def test_rows_and_columns_that_do_not_fit(tmp_path, text, says):
    assert says in str(_rejects(tmp_path, text))


def test_every_column_has_a_documented_range():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "trace-schema.md").read_text()
    table = doc[doc.index("## Ranges"):]
    assert set(RANGES) == set(COLUMNS) - {"user", "op", "obj"}
    for col, r in RANGES.items():
        row = next(ln for ln in table.splitlines() if f"`{col}`" in ln)
        assert r.source, col
        # the upper bound appears in the row, written one of the ways the doc writes numbers
        forms = {str(r.hi), f"{r.hi:,}", f"2^{r.hi.bit_length() - 1}" if r.hi & (r.hi - 1) == 0 else "",
                 f"2^{(r.hi + 1).bit_length() - 1}-1", "256 MiB", "10^17"}
        assert any(f and f in row for f in forms), (col, row)


def test_ranges_hold_the_largest_real_values():
    """Every shipped trace loads: the ranges were taken from real maxima
    with headroom, and the real data must stay inside them."""
    from execbench.workloads import catalog
    for w in catalog.shipped():
        assert len(load_trace(w.path)) == w.events
