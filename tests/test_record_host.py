"""Host recorder on a copied /proc + /sys tree (tests/fixtures/workloads/host)."""

from __future__ import annotations

import argparse
import pathlib

import pytest

from execbench.commands import record as record_cmd
from execbench.trace import load_trace
from execbench.workloads.recorders import host, modules

FIX = pathlib.Path(__file__).parent / "fixtures" / "workloads"
ROOT = FIX / "host"


def _table() -> dict[str, dict[str, str]]:
    t = modules.record_modules(FIX / "modules", kernel="6.1.0-test")
    return {r["module"]: {k: str(v) for k, v in r.items()} for r in t.rows}


def test_snapshot_reads_every_source():
    snap = host.snapshot(ROOT, bpftool_json=(ROOT / "bpftool.json").read_text())
    assert [m["name"] for m in snap.modules] == ["fixture_b", "ghost", "fixture", "loading_mod"]
    assert snap.modules[0]["users"] == [] and snap.modules[2]["users"] == ["fixture_b"]
    assert snap.section_counts == {"fixture_b": 1, "fixture": 3}
    assert "/sys/module/ghost/sections" in snap.missing
    assert snap.ftrace_sites == 4
    assert snap.ftrace_trampolines == ["0xffffffffc0a4d000", "0xffffffffc0a52000"]
    assert [p["id"] for p in snap.bpf_progs] == [3, 7, 12]
    assert [k["flags"] for k in snap.kprobes][:3] == [["FTRACE"], ["FTRACE"], ["OPTIMIZED"]]


def test_trace_rebuilds_the_state():
    snap = host.snapshot(ROOT, bpftool_json=(ROOT / "bpftool.json").read_text())
    b, report = host.host_trace(snap, _table())
    ev = [(r["user"], r["op"], r["obj"], r.get("size")) for r in b._rows]
    # modules in load order (reverse of /proc/modules); ghost and loading_mod have no sizes;
    # only Live modules get init_done.  BPF: jited programs with their bytes_jited.
    # ftrace: one ops per distinct trampoline.  kprobes: [FTRACE] ones take no slot,
    # k+r on tcp_recvmsg+0x9 aggregate into one probe, [OPTIMIZED] adds an optprobe slot.
    assert [e[:3] for e in ev] == [
        ("module", "load", "fixture"), ("module", "init_done", "fixture"),
        ("module", "load", "fixture_b"), ("module", "init_done", "fixture_b"),
        ("bpf", "prog_load", "prog3:"), ("bpf", "prog_load", "prog12:tcp_v4_connect"),
        ("ftrace", "ops_register", "tramp@0xffffffffc0a4d000"),
        ("ftrace", "ops_register", "tramp@0xffffffffc0a52000"),
        ("kprobe", "register", "kprobe:tcp_sendmsg+0x5"), ("kprobe", "optimize", "kprobe:tcp_sendmsg+0x5"),
        ("kprobe", "register", "kprobe:tcp_recvmsg+0x9")]
    assert ev[4][3] == 325 and ev[5][3] == 359
    assert report["modules_without_sizes"] == ["loading_mod", "ghost"]
    assert report["bpf_not_jited"] == 1


def test_command_reports_missing_sources_and_writes_trace(tmp_path, capsys):
    table = tmp_path / "t.modules.csv"
    t = modules.record_modules(FIX / "modules", kernel="6.1.0-test")
    table.write_text(modules.table_csv_text(t.rows))
    out = tmp_path / "host.csv.gz"
    args = argparse.Namespace(root=ROOT, table=table, bpftool_json=None, no_bpftool=True, name="host",
                              output=out)
    assert record_cmd._cmd_host(args) == 0
    err = capsys.readouterr().err
    assert "2 modules have no sizes" in err
    assert len(load_trace(out)) == 9          # no bpftool: 11 events minus the 2 BPF loads
    assert "missing" in (tmp_path / "host.toml").read_text()


def test_command_with_nothing_readable_exits_nonzero(tmp_path, capsys):
    out = tmp_path / "host.csv.gz"
    args = argparse.Namespace(root=tmp_path, table=None, bpftool_json=None, no_bpftool=True, name="host",
                              output=out)
    assert record_cmd._cmd_host(args) == 1
    err = capsys.readouterr().err
    assert "could not read /proc/modules" in err and "no trace written" in err
    assert not out.exists()


def test_bad_proc_modules_line_names_the_line():
    with pytest.raises(ValueError, match="line 2"):
        host.parse_proc_modules("a 1 0 - Live 0x0\ngarbage\n")
