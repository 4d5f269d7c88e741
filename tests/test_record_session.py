"""Session workloads: trampoline sharing, ftrace-based entry kprobes, offset kprobes."""

from __future__ import annotations

import pytest

from execbench.trace import from_frame
from execbench.workloads.recorders import session as rs
from execbench.workloads.recorders.tracebuild import TraceBuilder, merge

P = rs.Prog


def _ops(b: TraceBuilder) -> list[tuple[str, str, str, object]]:
    return [(r["user"], r["op"], r["obj"], r.get("size")) for r in b._rows]


def test_trampoline_shared_by_fentry_and_fexit():
    progs = {"t": [P("a", "fentry", "trampoline", "vfs_read", 100),
                   P("b", "fexit", "trampoline", "vfs_read", 200)]}
    plan = rs.SessionPlan([("t", 0, 1_000, 5_000_000)])
    b = TraceBuilder()
    rs.bpf_session(b, progs, plan)
    # one bpf_trampoline per target: attach for the first program, update for the second;
    # sizes 64 + 80*n (+48 once an fexit is attached):
    # a: 64 + 80 = 144; a+b: 64 + 160 + 48 = 272; after a detaches, b alone: 64 + 80 + 48 = 192
    assert _ops(b) == [
        ("bpf", "prog_load", "t.0:a", 100), ("bpf", "prog_load", "t.0:b", 200),
        ("bpf", "tramp_attach", "tramp:vfs_read", 144), ("bpf", "tramp_update", "tramp:vfs_read", 272),
        ("bpf", "tramp_update", "tramp:vfs_read", 192), ("bpf", "tramp_detach", "tramp:vfs_read", None),
        ("bpf", "prog_unload", "t.0:a", None), ("bpf", "prog_unload", "t.0:b", None)]
    from_frame(b.frame())          # schema + lifecycle valid


def test_entry_kprobes_use_one_ftrace_ops():
    progs = {"k": [P("e", "kprobe", "kprobe", "f", 50), P("r", "kretprobe", "kprobe", "f", 60),
                   P("g", "kprobe", "kprobe", "g", 70)]}
    plan = rs.SessionPlan([("k", 0, 0, 10_000_000)])
    b = TraceBuilder()
    rs.bpf_session(b, progs, plan)
    ops = [o for o in _ops(b) if o[0] == "ftrace"]
    # kprobe+kretprobe on f aggregate into one probe: register ops (f), update (g added);
    # detach: f still has one user -> nothing; f gone -> update; g gone -> unregister.
    assert ops == [("ftrace", "ops_register", "kprobe_ftrace_ops", rs.FTRACE_TRAMP_BYTES),
                   ("ftrace", "ops_update", "kprobe_ftrace_ops", None),
                   ("ftrace", "ops_update", "kprobe_ftrace_ops", None),
                   ("ftrace", "ops_unregister", "kprobe_ftrace_ops", None)]
    assert not any(o[0] == "kprobe" for o in _ops(b))
    from_frame(b.frame())


def test_entry_kprobes_slot_mode():
    progs = {"k": [P("e", "kprobe", "kprobe", "f", 50)]}
    b = TraceBuilder()
    rs.bpf_session(b, progs, rs.SessionPlan([("k", 0, 0, 10_000_000)]), entry_kprobes="slot")
    assert ("kprobe", "register", "kprobe:f", rs.KPROBE_SLOT_BYTES) in _ops(b)
    with pytest.raises(ValueError):
        rs.bpf_session(TraceBuilder(), progs, rs.SessionPlan([]), entry_kprobes="bogus")


def test_probe_session_optimizes_the_measured_share():
    b = TraceBuilder()
    n = rs.probe_session(b, [f"fn{i}" for i in range(25)], seed=1, start_ns=0, stop_ns=10**9)
    assert n == 21                                    # round(25 * 21/25)
    ops = [o[1] for o in _ops(b)]
    assert ops.count("register") == 25 and ops.count("optimize") == 21 and ops.count("unregister") == 25
    from_frame(b.frame())


def test_plan_is_seeded_and_ordered():
    a = rs.plan_session(["x", "y"], 7, 0)
    assert a == rs.plan_session(["x", "y"], 7, 0)
    assert a != rs.plan_session(["x", "y"], 8, 0)
    starts = [r[2] for r in a.runs]
    assert starts == sorted(starts) and len(a.runs) == 4
    # each start gap is 2-8 s and each run 10-60 s
    gaps = [s - p for p, s in zip([0] + starts, starts)]
    assert all(2e9 <= g <= 8e9 for g in gaps)
    assert all(10e9 <= t1 - t0 <= 60e9 for _, _, t0, t1 in a.runs)


def test_merge_interleaves_by_time():
    s1, s2 = TraceBuilder(), TraceBuilder()
    s1.add(0, 0, "bpf", "prog_load", "p", size=64)
    s1.add(30, 0, "bpf", "prog_unload", "p")
    s2.add(10, 1, "kprobe", "register", "k", size=16)
    s2.add(30, 1, "kprobe", "unregister", "k")
    m = merge([s1, s2])
    assert [(r["t_ns"], r["obj"]) for r in m._rows] == [(0, "p"), (10, "k"), (30, "p"), (30, "k")]
    assert [r["seq"] for r in m._rows] == [0, 1, 2, 3]
