"""The shipped QEMU recordings: consistent, reproducible from their events, valid traces."""

from __future__ import annotations

import gzip
import pathlib
import tomllib

import pytest

from execbench import validation
from execbench.trace import load_trace, to_csv_bytes
from execbench.workloads.recorders.qemu import record

DATA = pathlib.Path(__file__).resolve().parents[1] / "workloads" / "data" / "qemu"
RECORDINGS = sorted(p for p in DATA.glob("qemu-*") if p.is_dir())


def _series(p: pathlib.Path) -> str:
    return validation.series_of(p)


def test_6_1_6_12_and_7_2_recordings_are_shipped():
    for series in ("6.1", "6.12", "7.2"):
        assert any(_series(p) == series for p in RECORDINGS), series


@pytest.mark.parametrize("folder", RECORDINGS, ids=lambda p: p.name)
def test_trace_and_truth_rebuild_byte_identically(folder):
    tr, tt, _ = record.rebuild(folder, _series(folder))
    shipped = gzip.decompress((folder / f"{folder.name}.csv.gz").read_bytes())
    assert to_csv_bytes(tr) == shipped
    assert tt.to_csv(index=False, lineterminator="\n").encode() == (folder / "truth.csv").read_bytes()


@pytest.mark.parametrize("folder", RECORDINGS, ids=lambda p: p.name)
def test_trace_is_valid_and_agrees_with_tracepoints(folder):
    t = load_trace(folder / f"{folder.name}.csv.gz")
    df = t.df
    truth = validation.load_truth(folder)
    # every module:module_load became a load row, every module:module_free an unload
    assert (df.op == "load").sum() == truth["module_load_events"]
    assert (df.op == "unload").sum() == truth["module_free_events"]
    # each BPF JIT image is one prog_load (a pack chunk; arm64 6.1: its own vmalloc area)
    assert (df.op == "prog_load").sum() == (truth["bpf_jit_binary_pack_alloc_calls"]
                                            + truth.get("bpf_jit_binary_alloc_calls", 0))
    # a kprobe registration per insn slot taken by the script's probes
    assert (df.op == "register").sum() == truth.get("insn_slots_kprobe_insn_page", 0)
    prov = tomllib.loads((folder / f"{folder.name}.toml").read_text())
    assert prov["workload"]["events"] == len(df)
    assert set(prov["workload"]["users"]) == set(df.user.unique())
    pkgs = prov["source"]["packages"]
    assert any(k.startswith("linux-image-") and len(v["sha256"]) == 64 for k, v in pkgs.items())
    assert prov["measured"]["qemu_wall_s"] > 0


def test_ring_buffer_lost_nothing():
    for folder in RECORDINGS:
        stats = (folder / "guest" / "stats.txt").read_text()
        for key in ("overrun:", "dropped events:"):
            vals = [int(line.split(":")[1]) for line in stats.splitlines() if line.startswith(key)]
            assert vals and all(v == 0 for v in vals), (folder.name, key)


def _cli(argv: list[str]) -> int:
    import argparse

    from execbench.commands import record_qemu

    p = argparse.ArgumentParser()
    record_qemu.add_qemu_parser(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_rebuild_checks_a_shipped_recording(capsys):
    assert _cli(["qemu", "--kernel", "6.1", "--out", str(DATA), "--rebuild"]) == 0
    assert "trace unchanged, truth unchanged" in capsys.readouterr().out


def test_cli_rebuild_of_a_missing_recording_fails(tmp_path, capsys):
    assert _cli(["qemu", "--kernel", "6.12", "--out", str(tmp_path), "--rebuild"]) == 1
    assert "no such recording" in capsys.readouterr().err
