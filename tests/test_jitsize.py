"""The JIT-size recorder's parsing and assignment, and the sizes the BPF tables take from it.

The guest dumps in tests/fixtures/jitsize/ are a small hand-written sample in the format
guest/jitload.c and tracefs write (two passes, two objects): object 1 loads whole,
object 2 fails whole and is retried program by program, one retry fails.  Expected
values are worked out by hand from arch/x86/net/bpf_jit_comp.c bpf_int_jit_compile()
(v6.1): each JITed function asks bpf_jit_binary_pack_alloc() for
roundup(len, 4) + 12 * (exception-table entries).
"""
import csv
import pathlib

import pandas as pd
import pytest

from execbench.workloads.recorders import bpf
from execbench.workloads.recorders.qemu import jitsize as J

FIX = pathlib.Path(__file__).parent / "fixtures" / "jitsize"


def _sample():
    progs, objs, logs = J.parse_jitload((FIX / "jitload.txt").read_text(), "jitload.txt")
    ev = J.parse.parse((FIX / "trace.txt").read_text(), "trace.txt")
    return progs, objs, logs, J.allocs_by_attempt(ev)


def test_parse_jitload_reads_both_passes_and_keeps_the_last_logs():
    progs, objs, logs, _ = _sample()
    # per pass: program lines 2 (object 1) + 2 (object 2 whole) + 1 + 1 (its retries),
    # object lines 1 + 1 + 2
    assert len(progs) == 12 and set(progs["pass"]) == {1, 2}
    assert len(objs) == 8
    assert (2, "1", 1) in logs and (2, "all", -1) in logs
    assert logs[(2, "1", 1)][0].endswith("failed to find kernel BTF type ID of 'nope': -3")


def test_allocs_follow_their_marker_and_ignore_other_processes():
    *_, allocs = _sample()
    # pass 1 has libbpf's lazily probed features (36, 40) after the probe program (16)
    assert allocs[(1, 1, "all")] == [16, 36, 40, 100, 52, 844]
    # pass 2: only bpf_object__probe_loading()'s program, then the object's; systemd's
    # 64-byte program (pid 1) between the markers is not jitload's
    assert allocs[(2, 1, "all")] == [16, 100, 52, 844]
    assert allocs[(2, 2, "0")] == [16, 1284]


def test_assign_splits_requests_by_program_and_checks_them():
    progs, objs, _, allocs = _sample()
    got, probe = J.assign(progs, objs, allocs)
    assert probe == 16
    # ipv4_bind_exit: two functions of 49 and 842 bytes -> roundup to 4: 52 + 844 = 896
    assert got[(1, "ipv4_bind_exit")]["alloc_bytes"] == 896
    assert got[(1, "ipv4_bind_exit")]["alloc_lens"] == "52;844"
    assert got[(1, "ipv4_bind_exit")]["jited_bytes"] == 49 + 842
    assert got[(1, "ipv4_bind_entry")]["alloc_bytes"] == 100   # 100 is already a multiple of 4
    # sw (tp_btf): 1233 bytes -> 1236, + 48 = 4 exception-table entries of 12 bytes
    assert got[(2, "sw")]["alloc_bytes"] == 1284
    assert got[(2, "sw")]["xlated_insns"] == 2000 // 8
    assert (2, "start") not in got


def test_a_request_that_is_not_image_plus_whole_extable_entries_is_refused():
    progs, objs, _, allocs = _sample()
    allocs[(2, 2, "0")] = [16, 1242]     # 1242 - 1236 = 6, not a multiple of 12
    with pytest.raises(J.JitSizeError, match="object 2 program sw: allocation 1242"):
        J.assign(progs, objs, allocs)


def test_a_missing_or_extra_request_is_refused():
    progs, objs, _, allocs = _sample()
    allocs[(2, 1, "all")] = [16, 100, 52]
    with pytest.raises(J.JitSizeError, match="3 JITed functions"):
        J.assign(progs, objs, allocs)


def test_jitload_output_without_done_is_refused():
    text = (FIX / "jitload.txt").read_text().replace("done\n", "")
    with pytest.raises(J.JitSizeError, match="x.txt: jitload did not finish"):
        J.parse_jitload(text, "x.txt")


def test_measure_gives_every_program_a_row_with_reason():
    progs = [bpf.BpfProgram("bindsnoop", 0, 0, "kprobe/inet_bind", "ipv4_bind_entry", 30, 0, 0, "GPL"),
             bpf.BpfProgram("bindsnoop", 0, 0, "kretprobe/inet_bind", "ipv4_bind_exit", 15, 220, 1, "GPL")]
    sw = [bpf.BpfProgram("offcpu", 0, 0, "tp_btf/sched_switch", "sw", 300, 0, 0, "GPL"),
          bpf.BpfProgram("offcpu", 0, 0, "fentry/nope", "start", 40, 0, 0, "GPL")]
    objs = [J.BpfObject(1, "p=1", "bindsnoop", 0, "a" * 64, b"", progs),
            J.BpfObject(2, "p=1", "offcpu", 0, "b" * 64, b"", sw)]
    df = J.measure(objs, (FIX / "jitload.txt").read_text(), (FIX / "trace.txt").read_text())
    rows = {r.program: r for r in df.itertuples()}
    assert rows["ipv4_bind_exit"].elf_insns == 15 + 220
    assert rows["ipv4_bind_exit"].alloc_bytes == 896
    assert rows["start"].status == "failed"
    assert rows["start"].reason == "attach target nope not in 6.1 BTF"
    assert J.failures(df) == {"attach target nope not in 6.1 BTF": 1}


@pytest.mark.parametrize("lines,want", [
    (["libbpf: elf: legacy map definitions in 'maps' section are not supported by libbpf v1.0+"],
     "libbpf 1.x refuses legacy 'maps' section definitions"),
    (["verifier: ; event.sector = rq->__sector;", "verifier: 85: (79) r2 = *(u64 *)(r1 +48)",
      "verifier: R1 invalid mem access 'scalar'", "verifier: processed 43 insns (limit 1000000)"],
     "verifier: R1 invalid mem access 'scalar'"),
    (["verifier: 5: (85) call bpf_get_socket_cookie#46", "verifier: unknown func bpf_get_socket_cookie#46"],
     "helper bpf_get_socket_cookie not available to this program type on 6.1"),
])
def test_failure_reasons(lines, want):
    assert J.reason(lines) == want


def test_summary_by_hand():
    # two loaded programs: 100 B / 20 insns (5.0) and 300 B / 100 insns (3.0), one failed
    df = pd.DataFrame({"status": ["loaded", "loaded", "failed"], "attach_category": ["kprobe", "kprobe", "xdp"],
                       "alloc_bytes": [100, 300, ""], "jited_bytes": [98, 296, ""],
                       "elf_insns": [20, 100, 7], "xlated_insns": [20, 80, ""]})
    s = J.summary(df)
    assert s["alloc_per_elf_insn"]["median"] == 4.0            # (5.0 + 3.0) / 2
    assert s["alloc_per_elf_insn"]["pooled"] == 3.333          # 400 / 120
    assert s["jited_per_xlated_insn"]["pooled"] == 3.94        # 394 / 100
    assert s["alloc_bytes"]["share_below_500"] == 1.0


def _table(tmp_path, rows):
    p = tmp_path / "m.csv"
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["package", "section", "program", "insns", "subprog_insns",
                                          "alloc_bytes", "status"])
        w.writeheader()
        w.writerows(rows)
    return p


def test_jit_bytes_est_takes_the_measurement_else_the_factor(tmp_path):
    m = bpf.measured_jit_sizes(_table(tmp_path, [
        {"package": "t=1", "section": "kprobe/f", "program": "p", "insns": 30, "subprog_insns": 5,
         "alloc_bytes": 168, "status": "loaded"},
        {"package": "t=1", "section": "kprobe/g", "program": "q", "insns": 9, "subprog_insns": 0,
         "alloc_bytes": "", "status": "failed"}]))
    assert bpf.jit_bytes_est("t=1", "kprobe/f", "p", 30, 5, m) == 168
    # not loaded: (9 + 0) insns x JIT_BYTES_PER_INSN
    assert bpf.jit_bytes_est("t=1", "kprobe/g", "q", 9, 0, m) == 9 * bpf.JIT_BYTES_PER_INSN
    # another instruction count is another program
    assert bpf.jit_bytes_est("t=1", "kprobe/f", "p", 31, 5, m) == 36 * bpf.JIT_BYTES_PER_INSN


def test_one_program_measured_twice_differently_is_an_error(tmp_path):
    row = {"package": "t=1", "section": "xdp", "program": "p", "insns": 3, "subprog_insns": 0, "status": "loaded"}
    p = _table(tmp_path, [{**row, "alloc_bytes": 20}, {**row, "alloc_bytes": 24}])
    with pytest.raises(bpf.BpfRecordError, match=r"m.csv: row 3: program p measured 24 bytes, another row 20"):
        bpf.measured_jit_sizes(p)


def test_the_factor_is_the_measured_pooled_ratio():
    # JIT_BYTES_PER_INSN cites the committed measurement: sum(alloc) / sum(ELF insns) rounded
    df = J.read_table(bpf.JIT_MEASUREMENT)
    ld = df[df.status == "loaded"]
    pooled = ld.alloc_bytes.astype(int).sum() / ld.elf_insns.sum()
    assert round(pooled) == bpf.JIT_BYTES_PER_INSN
    assert len(ld) > 0.9 * len(df)


def test_read_table_names_the_bad_row(tmp_path):
    lines = bpf.JIT_MEASUREMENT.read_text().splitlines()
    bad = lines[1].split(",")
    bad[J.COLUMNS.index("status")] = "maybe"
    p = tmp_path / "j.csv"
    p.write_text("\n".join([lines[0], lines[1], ",".join(bad)]) + "\n")
    with pytest.raises(J.JitSizeError, match=r"j.csv: row 3: status 'maybe'"):
        J.read_table(p)
