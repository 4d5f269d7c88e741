"""Streamed replay (``execbench run --stream``): the same bytes as a whole
load, the same errors naming the same rows, memory that does not grow.

The expected values here are the whole-trace path's own outputs (the
streamed path must reproduce them byte for byte) and ``ndarray.sum`` (the
sum :func:`execbench.metrics.sampler.summarise` uses); the chunk and block
sizes are made small so that every check crosses many chunk and block
boundaries.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from execbench.cli import main
from execbench.errors import TraceError, UsageError
from execbench.metrics.sampler import summarise
from execbench.metrics.streamstats import Pairwise, StreamStats
from execbench.replay import run
from execbench.results import to_csv_bytes
from execbench.stress import stress_trace
from execbench.trace import TraceStream, load_trace, save_trace, to_csv_bytes as trace_csv
from execbench.workloads import catalog

DESIGNS = ["legacy", "execmem_rox", "module_alloc_type"]


# ---------------------------------------------------------------- the reduction

@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 127, 128, 129, 136, 255, 256, 257, 1000, 4097, 20011])
def test_pairwise_is_ndarray_sum(n):
    """Pushed in uneven blocks, the sum is ndarray.sum's to the last bit (values spanning
    15 orders of magnitude, so any other order of additions rounds differently)."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 3)) * 10.0 ** rng.integers(-5, 10, size=(n, 3))
    p = Pairwise(n, 3)
    i = 0
    while i < n:
        k = int(rng.integers(1, 300))
        p.push(x[i:i + k])
        i += k
    got = p.result()
    for j in range(3):
        assert got[j] == x[:, j].sum()        # strided column, as summarise() sums it
        assert got[j] == (x[:, j] * 1.0).sum()  # contiguous product, as for the means


def test_pairwise_refuses_a_wrong_count():
    p = Pairwise(5, 1)
    p.push(np.ones((3, 1)))
    with pytest.raises(ValueError):
        p.result()
    with pytest.raises(ValueError):
        p.push(np.ones((3, 1)))


@pytest.mark.parametrize("n,still", [(1, False), (2, False), (999, False), (5000, False), (700, True)])
def test_streamstats_is_summarise(monkeypatch, n, still):
    """(final, peak, mean) equal summarise()'s exactly; ``still``: all samples at one time
    (the plain-mean fallback)."""
    monkeypatch.setattr(StreamStats, "BLOCK", 97)
    rng = np.random.default_rng(n)
    samples = rng.standard_normal((n, 4)) * 10.0 ** rng.integers(0, 9, size=(n, 4))
    t = np.full(n, 5.0) if still else np.cumsum(rng.integers(0, 10**6, size=n)).astype(float)
    s = StreamStats(n, 4)
    for row, ti in zip(samples, t):
        s.add(row.tolist(), ti)
    names = ["a", "b", "c", "d"]
    assert s.result(names) == summarise(samples, t, names)


def test_streamstats_memory_does_not_grow():
    """The held samples are one block, the running rows and at most one unfinished
    pairwise leaf (128 rows) per sum, whatever the number of events:
    block 4096 x (5 + 1 time) x 8 B + peak 5 x 8 B + three sums (5, 1, 5 wide), each
    a result row and < 128 pending rows: (5 + 1 + 5) x 129 x 8 B."""
    bound = 4096 * 6 * 8 + 5 * 8 + 11 * 129 * 8
    for n in (1_000, 50_000, 200_000):
        s = StreamStats(n, 5)
        row = [1.0, 2.0, 3.0, 4.0, 5.0]
        most = 0
        for i in range(n):
            s.add(row, float(i))
            if i % 997 == 0:
                most = max(most, s.nbytes())
        assert most <= bound
        s.result(list("abcde"))


# ---------------------------------------------------------------- streamed replay == whole replay

@pytest.fixture(scope="module")
def stress_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "stress.csv.gz"
    save_trace(stress_trace(1500, 7).df, path)
    return path


@pytest.mark.parametrize("design", ["legacy", "module_alloc_type"])
def test_stream_equals_whole_on_a_stress_trace(monkeypatch, stress_file, design):
    """Small chunks (400 rows) and blocks (300 samples): every boundary is crossed."""
    monkeypatch.setattr(StreamStats, "BLOCK", 300)
    whole = run(load_trace(stress_file), design, seed=3)
    streamed = run(TraceStream(stress_file, chunk_rows=400), design, seed=3)
    assert streamed.samples is None and streamed.events == whole.events == 1500
    assert to_csv_bytes(streamed.summary()) == to_csv_bytes(whole.summary())
    assert streamed.counters == whole.counters


@pytest.mark.parametrize("design", DESIGNS)
def test_stream_equals_whole_on_cloud_session_cli(tmp_path, capsys, design):
    """The command both ways on the shipped default workload: the same summary bytes;
    the JSON says it streamed and reports the peak RSS."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["run", "-d", design, "-w", "cloud-session", "--out", str(a)]) == 0
    assert main(["run", "-d", design, "-w", "cloud-session", "--out", str(b), "--stream", "--json"]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_stream_json_reports_peak_rss(tmp_path, capsys):
    assert main(["run", "-d", "legacy", "-w", "cloud-session", "--out", str(tmp_path / "s.csv"),
                 "--stream", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stream"] is True and doc["events"] == 391
    assert 10 < doc["peak_rss_mb"] < 100_000


def test_stream_refuses_other_architectures(tmp_path, capsys):
    # on the command line before the trace's validation pass, and in replay.run itself
    rc = main(["run", "-d", "legacy", "-w", "cloud-session", "--arch", "arm64",
               "--out", str(tmp_path / "s.csv"), "--stream"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "x86-64" in err and "--stream" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(UsageError, match="x86-64"):
        run(TraceStream(catalog.find("cloud-session").path), "legacy", machine={"arch": "arm64"})


def test_stream_refuses_timeline(tmp_path, capsys):
    rc = main(["run", "-d", "legacy", "-w", "cloud-session", "--out", str(tmp_path / "s.csv"),
               "--stream", "--timeline", str(tmp_path / "tl.csv")])
    assert rc != 0
    err = capsys.readouterr().err
    assert "--timeline" in err and "--stream" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()


# ---------------------------------------------------------------- errors across chunk boundaries

CHUNK = 100


@pytest.fixture(scope="module")
def lines():
    """cloud-session's canonical CSV lines (header first), 391 events."""
    df = load_trace(catalog.find("cloud-session").path).df
    return trace_csv(df).decode().splitlines(keepends=True)


def _both(tmp_path, lines, gz=True):
    path = tmp_path / ("t.csv.gz" if gz else "t.csv")
    data = "".join(lines).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(TraceError) as whole:
        load_trace(path)
    with pytest.raises(TraceError) as streamed:
        TraceStream(path, chunk_rows=CHUNK)
    return whole.value, streamed.value


def _cells(line):
    return line.rstrip("\n").split(",")


def _set_cell(lines, row, col, value):
    """A copy of ``lines`` with trace row ``row``'s column ``col`` set to ``value``."""
    lines = list(lines)
    c = _cells(lines[1 + row])
    c[col] = value
    lines[1 + row] = ",".join(c) + "\n"
    return lines


def test_time_backwards_at_a_chunk_boundary(tmp_path, lines):
    """Row 100 is the first of the second chunk; its predecessor is in the first."""
    whole, streamed = _both(tmp_path, _set_cell(lines, CHUNK, 1, "0"))
    assert whole.row == streamed.row == CHUNK
    assert str(whole) == str(streamed) and "time goes backwards" in str(streamed)


def test_seq_wrong_in_a_later_chunk(tmp_path, lines):
    whole, streamed = _both(tmp_path, _set_cell(lines, 2 * CHUNK + 5, 0, "7"))
    assert whole.row == streamed.row == 2 * CHUNK + 5
    assert str(whole) == str(streamed) and f"expected {2 * CHUNK + 5}" in str(streamed)


def test_lifecycle_across_chunks(tmp_path, lines):
    """A second load, in a later chunk, of a module loaded in the first (live state carried over)."""
    rows = [_cells(x) for x in lines[1:]]
    assert rows[0][3:5] == ["module", "load"]
    target = CHUNK + 5
    dup = list(rows[0])
    dup[0], dup[1] = rows[target][0], rows[target][1]     # its own seq and time
    lines = list(lines)
    lines[1 + target] = ",".join(dup) + "\n"
    whole, streamed = _both(tmp_path, lines)
    assert whole.row == streamed.row == target
    assert str(whole) == str(streamed) and "already live" in str(streamed)


def test_short_row_and_blank_line_in_a_later_chunk(tmp_path, lines):
    lines2 = list(lines)
    lines2[1 + 3 * CHUNK + 1] = "3,4,5\n"
    whole, streamed = _both(tmp_path, lines2, gz=False)
    assert whole.row == streamed.row == 3 * CHUNK + 1 and str(whole) == str(streamed)
    lines3 = list(lines)
    lines3.insert(1 + CHUNK + 3, "\n")
    whole, streamed = _both(tmp_path, lines3)
    assert whole.row == streamed.row == CHUNK + 3 and "blank line" in str(streamed)
    assert str(whole) == str(streamed)


def test_trailing_blank_lines_and_crlf_are_accepted(tmp_path, lines):
    path = tmp_path / "t.csv"
    path.write_bytes("".join(x.replace("\n", "\r\n") for x in lines).encode() + b"\r\n\r\n")
    whole = load_trace(path)
    streamed = TraceStream(path, chunk_rows=CHUNK)
    assert len(streamed) == len(whole) == 391
    assert list(streamed.events()) == list(whole.events())


def test_bad_utf8_names_the_same_byte(tmp_path, lines):
    data = "".join(lines).encode()
    pos = len(data) - 40
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbf" + data[:pos] + b"\xff" + data[pos:])
    with pytest.raises(TraceError) as whole:
        load_trace(path)
    with pytest.raises(TraceError) as streamed:
        TraceStream(path, chunk_rows=CHUNK)
    assert str(whole.value) == str(streamed.value) and f"byte {pos}" in str(streamed.value)


def test_truncated_gzip(tmp_path, lines):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress("".join(lines).encode())[:-30])
    with pytest.raises(TraceError) as streamed:
        TraceStream(path, chunk_rows=CHUNK)
    assert "truncated or corrupt gzip" in str(streamed.value) and streamed.value.row is None


# ---------------------------------------------------------------- the fleet-days recipe

def test_fleet_days_one_day_is_fleet_day(tmp_path):
    """One day of the recipe is fleet-day itself, byte for byte (same boot, streams, seeds)."""
    from execbench.workloads.recorders import fleetdays

    out = tmp_path / "fleet-1d.csv.gz"
    n = fleetdays.write(catalog.data_dir(), 1, out)
    shipped = gzip.decompress(Path(catalog.find("fleet-day").path).read_bytes())
    assert n == 103318
    assert gzip.decompress(out.read_bytes()) == shipped
