"""The fuzz harness (execbench/fuzz.py) in the default suite: mutated
traces never crash loading or replay, every rejection is one short line.

The hypothesis test draws case numbers (each a mutated cut of a shipped
trace, see execbench.fuzz) with a fixed derandomised seed so that it runs
the same 500 cases in ~30 s every time; ``python -m execbench.fuzz --n
10000`` runs the long version (README, "Fuzzing")."""
from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings, strategies as st

from execbench import fuzz
from execbench.errors import TRACE_ERROR_MAX

SMALL = {"mem_bytes": 4 << 30, "placement": "contiguous", "kaslr": True, "itlb_cpu": "off"}


@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**31 - 1))
def test_mutated_traces_never_crash(seed, case):
    r = fuzz.run_case(seed, case, machine=SMALL)
    assert r.outcome in ("rejected cleanly", "replayed fine"), \
        (r.outcome, r.error, r.message, r.mutations, r.detail)
    if r.outcome == "rejected cleanly":
        assert r.msg_lines == 1 and 0 < r.msg_len <= TRACE_ERROR_MAX, r.message
    else:
        assert r.replays == len(fuzz.designs_to_run())


def test_cases_are_a_function_of_seed_and_number():
    assert fuzz.build_case(7, 123) == fuzz.build_case(7, 123)
    assert fuzz.build_case(7, 123)[0] != fuzz.build_case(7, 124)[0]


def test_the_harness_counts_outcomes_and_catches_hangs(monkeypatch, capsys):
    """Through its command line, with case 2 made to hang and case 3 to
    crash (the workers are forked, so they see the patched run_case)."""
    real = fuzz.run_case

    def patched(seed, case, workdir=None, machine=None):
        if case == 2:
            time.sleep(60)
        if case == 3:
            return fuzz.Result(case, "crashed in replay", ["test"], "boom", error="ValueError")
        return real(seed, case, workdir, SMALL)

    monkeypatch.setattr(fuzz, "run_case", patched)
    rc = fuzz.main(["--n", "6", "--jobs", "2", "--timeout", "3"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "| hung | 1 |" in out and "| crashed in replay | 1 |" in out
    assert "#2 hung: over 3 s" in out and "#3 crashed in replay: ValueError" in out
