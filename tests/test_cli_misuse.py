"""The CLI misused on purpose: every case is one ``execbench: error: ...``
line and a non-zero exit (or is accepted where it is legitimate), checked
before any replay, and leaves results/ as it was.  Ctrl-C stops a sweep,
worker processes included, within 2 seconds."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from execbench import replay
from execbench.cli import main
from execbench.commands import compare_cmd, run_cmd
from execbench.errors import OutputError
from execbench.results import write_files


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("execbench: error: "), err
    return lines[0]


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()} if d.exists() else {}


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A results/ folder with a file in it, where run and compare write by default."""
    d = tmp_path / "results"
    d.mkdir()
    (d / "compare.csv").write_text("an earlier run\n")
    for mod in (compare_cmd, run_cmd):
        monkeypatch.setattr(mod, "RESULTS_DIR", d)
    return d


@pytest.fixture
def no_replay(monkeypatch):
    """Fail the test if any replay starts: the checks must come first."""
    def boom(*a, **k):
        raise AssertionError("a replay started before the command line was checked")
    for mod in (replay, run_cmd):
        monkeypatch.setattr(mod, "run", boom)
    import execbench.sweep as sweep_mod
    monkeypatch.setattr(sweep_mod, "run", boom)


# (argv, what the one line must say); each must exit non-zero before replaying
MISUSE = [
    (["compare", "-w", "boot-cloud", "--cost", "cpa_call=-1e12"], "--cost cpa_call: -1e12"),
    (["compare", "-w", "boot-cloud", "--cost", "cpa_call=nan"], "--cost cpa_call: nan"),
    (["compare", "-w", "boot-cloud", "--cost", "cpa_call=inf"], "--cost cpa_call: inf"),
    (["compare", "-w", "boot-cloud", "--cost", "cpa_call=fast"], "'fast' is not a number"),
    (["compare", "--seeds", "0"], "argument --seeds: 0 is outside 1..1000"),
    (["run", "-d", "legacy", "--mem-gib", "1000000000"], "argument --mem-gib: 1000000000 is outside 2..256"),
    (["run", "-d", "legacy", "--seed", str(2**64)], f"argument --seed: {2**64} is outside 0..4294967295"),
    (["run", "-d", "legacy", "--seed", "-1"], "argument --seed: -1 is outside"),
    (["compare", "--jobs", "-1"], "argument --jobs/-j: -1 is outside 0..256"),
    (["run", "-d", "module_alloc_type_pmd", "--param", "text_alignment=abc"],
     "--param text_alignment: 'abc' is not an integer"),
    (["compare", "--param", "legacy:bpf_prog_pack=maybe"], "--param bpf_prog_pack: 'maybe' is not a boolean"),
    (["run", "-d", "execmem_rox", "--param", "version=9.9"], "version must be one of"),
    (["run", "-d", "legacy", "--itlb", "fetches=nan"], "--itlb: fetches: 'nan' is not an integer"),
    (["run", "-d", "legacy", "--itlb", "module_zipf=inf"], "--itlb: module_zipf: inf must be a finite"),
    (["run", "-d", "legacy", "--itlb-cpu", "pentium"], "--itlb-cpu"),
    (["run", "-d", "nosuch"], "unknown design 'nosuch'"),
    (["compare", "-w", "nosuch"], "unknown workload 'nosuch'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv,says", MISUSE, ids=[" ".join(a)[:60] for a, _ in MISUSE])
def test_misuse_is_one_line_before_any_replay(argv, says, results, no_replay, capsys):
    before = _snapshot(results)
    rc = main(argv)
    line = _one_line(capsys.readouterr().err)
    assert rc != 0
    assert says in line, line
    assert _snapshot(results) == before


def test_results_folder_that_cannot_be_written_fails_before_the_replay(tmp_path, monkeypatch,
                                                                       no_replay, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where results/ should be a folder\n")
    for mod in (compare_cmd, run_cmd):
        monkeypatch.setattr(mod, "RESULTS_DIR", blocker / "results")
    assert main(["compare", "-w", "boot-cloud"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"{blocker}/results/compare.csv: cannot write the comparison" in line
    assert main(["run", "-d", "legacy", "-w", "boot-cloud"]) == 1
    assert "cannot write the summary" in _one_line(capsys.readouterr().err)
    assert blocker.read_text() == "a file where results/ should be a folder\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder(results, no_replay, capsys):
    before = _snapshot(results)
    results.chmod(0o555)
    try:
        assert main(["compare", "-w", "boot-cloud"]) == 1
        assert "Permission denied" in _one_line(capsys.readouterr().err)
    finally:
        results.chmod(0o755)
    assert _snapshot(results) == before


def test_timeline_under_proc_fails_before_anything_is_written(tmp_path, no_replay, capsys):
    out = tmp_path / "summary.csv"
    rc = main(["run", "-d", "legacy", "-w", "boot-cloud", "--out", str(out),
               "--timeline", "/proc/execbench/timeline.csv"])
    line = _one_line(capsys.readouterr().err)
    assert rc == 1 and "/proc/execbench/timeline.csv: cannot write the timeline" in line
    assert not out.exists()


def test_a_folder_given_as_an_output_file(tmp_path, no_replay, capsys):
    assert main(["run", "-d", "legacy", "-w", "boot-cloud", "--out", str(tmp_path)]) == 1
    assert "is a folder" in _one_line(capsys.readouterr().err)


def test_legitimate_edge_values_are_accepted(tmp_path, capsys):
    """The ends of every range work: seed 2^32-1, cost 0, 2 GiB of memory
    (a machine that small runs out of frames: loads fail with -ENOMEM and
    the run still completes)."""
    out = tmp_path / "s.csv"
    assert main(["run", "-d", "legacy", "-w", "boot-cloud", "--seed", str(2**32 - 1),
                 "--cost", "cpa_call=0", "--cost", "memcpy_byte=1e12", "--mem-gib", "2",
                 "--itlb-cpu", "off", "--out", str(out), "--json"]) == 0
    assert out.exists()
    assert main(["compare", "-w", "boot-cloud", "--designs", "legacy", "--seeds", "1", "--jobs", "0",
                 "--itlb-cpu", "off", "--out", str(tmp_path / "c.csv")]) == 0


def test_write_files_writes_all_or_nothing(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("old\n")
    blocker = tmp_path / "b"
    blocker.write_text("not a folder\n")
    with pytest.raises(OutputError, match=r"b/c.csv: cannot write"):
        write_files({a: b"new\n", blocker / "c.csv": b"x\n"})
    assert a.read_text() == "old\n"                       # not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b"]   # no temp files left
    write_files({a: b"new\n", tmp_path / "d" / "e.csv": b"x\n"})
    assert a.read_text() == "new\n" and (tmp_path / "d" / "e.csv").read_bytes() == b"x\n"


# -- Ctrl-C -----------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("jobs", ["2"])
def test_ctrl_c_stops_a_sweep_within_two_seconds(tmp_path, jobs):
    """SIGINT to a running ``execbench compare -w fleet-day`` (103,318
    events per replay, minutes of work): exit 130 within 2 s, one line on
    stderr, no worker left, results/ and --out untouched."""
    res = tmp_path / "results"
    res.mkdir()
    (res / "compare.csv").write_text("an earlier run\n")
    before = _snapshot(res)
    out = tmp_path / "c.csv"
    env = dict(os.environ, EXECBENCH_RESULTS=str(res))
    p = subprocess.Popen([sys.executable, "-m", "execbench.cli", "compare", "-w", "fleet-day",
                          "--jobs", jobs, "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        t0 = time.monotonic()
        if jobs != "1":
            while not _children(p.pid) and time.monotonic() - t0 < 60:
                time.sleep(0.05)
            workers = _children(p.pid)
            assert workers, "no worker processes appeared"
            time.sleep(1.0)                       # the workers are replaying now
        else:
            workers = []
            time.sleep(4.0)                       # imports and loading done, replaying
        assert p.poll() is None, p.stderr.read().decode()
        t1 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        took = time.monotonic() - t1
    finally:
        if p.poll() is None:
            p.kill()
    assert took < 2.0, took
    assert p.returncode == 130
    assert err.decode().splitlines() == ["execbench: interrupted"]
    time.sleep(0.1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]
    assert _snapshot(res) == before and not out.exists()


def test_a_corrupt_results_folder_is_one_line(tmp_path, capsys):
    d = tmp_path / "res"
    d.mkdir()
    (d / "meta.json").write_text("{}")
    (d / "results.csv").write_text("workload,design,seed,metric,final,peak,mean\n"
                                   "w,legacy,0,cpa_calls,1,1,1\nw,legacy,0,cpa_pages,lots,1,1\n")
    assert main(["report", "--from", str(d)]) == 1
    assert "results.csv: row 1 (line 3): column 'final': 'lots' is not a number" in \
        _one_line(capsys.readouterr().err)
    (d / "results.csv").write_text("workload,design,seed,metric,final,peak,mean\nw,legacy,0.5,x,1,1,1\n")
    assert main(["report", "--from", str(d)]) == 1
    assert "column 'seed': '0.5' is not an integer" in _one_line(capsys.readouterr().err)
    (d / "results.csv").write_text("workload,design,seed,metric,final,peak,mean\nw,legacy,0,x,1,1,1\n")
    (d / "meta.json").write_text("{not json")
    assert main(["report", "--from", str(d)]) == 1
    assert "meta.json: bad JSON" in _one_line(capsys.readouterr().err)
