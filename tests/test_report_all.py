"""``execbench all`` regenerates a results folder byte-for-byte, and
``report``/``plot --from`` re-render it without replaying."""
from __future__ import annotations

from pathlib import Path

from execbench import registry
from execbench.cli import main
from execbench.workloads import catalog


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_all_is_byte_identical_and_complete(tmp_path, capsys):
    w = catalog.default().name
    args = ["-w", w, "--designs", *registry.names()[:2], "--seeds", "1"]
    # same folder name: the report cites charts as <folder>/charts/<chart>.svg
    ra, rb = tmp_path / "a" / "results", tmp_path / "b" / "results"
    assert main(["all", "--out", str(ra), *args]) == 0
    assert main(["all", "--out", str(rb), *args]) == 0
    fa, fb = files(ra), files(rb)
    assert fa.keys() == fb.keys()
    for name in fa:
        assert fa[name] == fb[name], f"{name} differs between two identical runs"
    for must in ("results.csv", "meta.json", "timeline.csv.gz", "report.txt", "report.md",
                 "report.csv", f"charts/itlb-{w}.svg", f"charts/itlb-{w}.png"):
        assert must in fa, must
    assert not [n for n in fa if Path(n).name.startswith(".tmp")]   # no temp files left
    # a stale chart of a workload no longer in the run is removed
    stale = ra / "charts" / "itlb-gone.svg"
    stale.write_text("x")
    assert main(["all", "--out", str(ra), *args]) == 0
    assert not stale.exists()
    capsys.readouterr()
    # re-rendering from the folder gives the same email body
    assert main(["report", "--from", str(ra)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == fa["report.txt"].decode().splitlines()[0]
    assert main(["plot", "--from", str(ra), "--out-dir", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / f"wx-{w}.svg").read_bytes() == fa[f"charts/wx-{w}.svg"]


def test_recorded_command_leaves_out_options_that_do_not_change_numbers():
    from execbench.commands.headline_opts import _result_args
    argv = ["-w", "x", "-j", "2", "--out", "d", "--jobs=3", "-j4", "--seeds", "5"]
    assert _result_args(argv) == ["-w", "x", "--seeds", "5"]
