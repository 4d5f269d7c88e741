"""Boot workloads: listing parsing, set selection with dependency closure, load order."""

from __future__ import annotations

import pytest

from execbench.trace import load_trace
from execbench.workloads.recorders import boot


def _row(name: str, depends: str = "", text: int = 1000) -> dict[str, str]:
    return {"module": name, "depends": depends, "text": str(text), "rodata": "10", "ro_after_init": "0",
            "data": "20", "init_text": "5", "init_rodata": "0", "init_data": "30", "align": "16",
            "relocs": "3", "reloc_secs": "1", "alt_sites": "0", "orc_entries": "2", "mcount_locs": "1",
            "kallsyms": "12", "init_kallsyms": "25"}


TABLE = {n: _row(n, d) for n, d in [("a", ""), ("b", "a"), ("c", "b"), ("d", "a"), ("e", "")]}


def test_read_listing_lsmod(tmp_path):
    p = tmp_path / "l.lsmod"
    p.write_text("# comment\nModule                  Size  Used by\nnf-nat 16384 1\nxfs 1 0\nnf_nat 2 0\n")
    # header skipped, '-' normalised to '_', duplicates dropped, file order kept
    assert boot.read_listing(p) == ["nf_nat", "xfs"]


def test_read_listing_with_pasted_command_line(tmp_path):
    p = tmp_path / "l"
    p.write_text("lsmod\nModule                  Size  Used by\nsnd_seq 1 0\n")
    assert boot.read_listing(p) == ["snd_seq"]


def test_read_listing_bad_name(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("ok_mod\nbad/name 1 2\n")
    with pytest.raises(boot.ListingError, match=r"l.txt: line 2: 'bad/name'"):
        boot.read_listing(p)


def test_choose_boot_set_order_by_hand():
    # lsmod lists newest first: c was loaded last, x is unknown to this kernel.
    bs = boot.choose_boot_set(TABLE, ["c", "b", "x"], providers=["d"])
    # reversed listing = [x, b, c]; x dropped; b needs a first -> a, b; c -> (a, b done) c;
    # then provider d (needs a, already loaded) -> d.
    assert bs.order == ["a", "b", "c", "d"]
    assert bs.not_in_table == ["x"]
    assert bs.added_by_depends == ["a"]
    assert bs.providers == ["d"]


def test_missing_dependency_and_provider_are_errors():
    t = dict(TABLE, f=_row("f", "zz"))
    with pytest.raises(boot.ListingError, match="'f' depends on 'zz'"):
        boot.choose_boot_set(t, ["f"])
    with pytest.raises(boot.ListingError, match="provider driver 'nope'"):
        boot.choose_boot_set(TABLE, ["a"], providers=["nope"])


def test_cycle_is_an_error():
    t = {"p": _row("p", "q"), "q": _row("q", "p")}
    with pytest.raises(boot.ListingError, match="cycle"):
        boot.choose_boot_set(t, ["p"])


def test_boot_trace_events_and_timing(tmp_path):
    b = boot.boot_trace(TABLE, ["a", "b"], spacing_ns=10, init_ns=3, ncpus=2)
    path = tmp_path / "w.csv.gz"
    b.save(path)
    tr = load_trace(path)          # the engine's validator accepts it
    df = tr.df
    # module i loads at i*spacing on cpu i%2; init_done init_ns later on the same cpu
    assert df["t_ns"].tolist() == [0, 3, 10, 13]
    assert df["cpu"].tolist() == [0, 0, 1, 1]
    assert df["op"].tolist() == ["load", "init_done", "load", "init_done"]
    assert int(df["text"].iloc[0]) == 1000 and df["text"].isna().iloc[1]


def test_boot_trace_rejects_overlapping_timing():
    with pytest.raises(ValueError, match="init_ns"):
        boot.boot_trace(TABLE, ["a"], spacing_ns=5, init_ns=5)
