"""One option vocabulary across commands: ``--param [DESIGN:]NAME=VALUE``,
repeatable ``-d``, one ``--seeds`` default, the same exit status and a
suggestion for an unknown design or workload, a quiet closed pipe."""
from __future__ import annotations

import subprocess
import sys

import pytest

from execbench.cli import build_parser, main
from execbench.commands.common import DEFAULT_SEEDS, parse_param_items

FAST = ["--itlb-cpu", "off"]


def test_param_design_prefix_works_in_run(capsys):
    # the prefixed form used to be read as a parameter called "legacy:bpf_prog_pack"
    assert main(["run", "-d", "legacy", "-w", "boot-cloud", "--param", "legacy:bpf_prog_pack=false",
                 "--json", *FAST]) == 0
    assert '"bpf_prog_pack": false' in capsys.readouterr().out


def test_param_for_a_design_not_run_is_a_usage_error(capsys):
    assert main(["run", "-d", "legacy", "--param", "jitalloc:text_poke=false"]) == 2
    err = capsys.readouterr().err
    assert "jitalloc" in err and "not run here" in err and len(err.strip().splitlines()) == 1


def test_bare_param_goes_to_every_design_that_has_it():
    # legacy and jitalloc both have bpf_prog_pack; execmem has no parameters
    got = parse_param_items(["bpf_prog_pack=false"], ["legacy", "jitalloc", "execmem"])
    assert got == {"legacy": {"bpf_prog_pack": False}, "jitalloc": {"bpf_prog_pack": False}}


def test_bare_param_no_design_has_is_an_error(capsys):
    assert main(["compare", "-d", "execmem", "--param", "bpf_prog_pack=false"]) == 2
    assert "no design run here has a parameter 'bpf_prog_pack'" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["compare", "report", "plot", "all", "interface"])
def test_design_is_repeatable_and_merges_with_designs(cmd):
    args = build_parser().parse_args([cmd, "-d", "legacy", "--design", "execmem",
                                      "--designs", "jitalloc", "legacy"])
    from execbench.commands.common import designs_from
    assert designs_from(args) == ["legacy", "execmem", "jitalloc"]


@pytest.mark.parametrize("cmd", ["compare", "report", "plot", "all"])
def test_seeds_default_is_the_same_everywhere(cmd):
    assert build_parser().parse_args([cmd]).seeds == DEFAULT_SEEDS == 3


@pytest.mark.parametrize("argv,kind,suggestion", [
    (["run", "-d", "legcy"], "design", "'legacy'"),
    (["compare", "-d", "execmem_roxx"], "design", "'execmem_rox'"),
    (["run", "-d", "legacy", "-w", "fleetday"], "workload", "'fleet-day'"),
    (["compare", "-w", "boot-clod"], "workload", "'boot-cloud'"),
])
def test_unknown_names_exit_2_with_a_suggestion(capsys, argv, kind, suggestion):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"execbench: error: unknown {kind}")
    assert f"did you mean {suggestion}" in err and "\n" not in err


def test_closed_pipe_is_quiet():
    # `execbench list --json | head -c 10`: the reader is gone before the
    # writer's first write (we close our end before the interpreter is up),
    # so every write meets EPIPE -- deterministically, unlike a real `head`
    p = subprocess.Popen([sys.executable, "-m", "execbench.cli", "list", "--metrics", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert p.returncode == 141
