"""BPF recorder: embedded-object scan, program sizes, subprogram closure, twins.

Fixture: tests/fixtures/workloads/bpf/tool.s assembled with llvm-mc into tool.bpf.o
(committed).  Its programs and calls are listed in tool.s; expected values below are
counted from that source, not from the recorder.
"""

from __future__ import annotations

import pathlib
import struct

import pytest

from execbench.workloads.recorders import bpf

FIX = pathlib.Path(__file__).parent / "fixtures" / "workloads" / "bpf"
OBJ = (FIX / "tool.bpf.o").read_bytes()


def _fake_executable() -> bytes:
    """An 'executable' holding a decoy x86-64 ELF header and the BPF object at offset 300."""
    decoy = bytearray(64)
    decoy[0:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<HH", decoy, 16, 1, 62)          # ET_REL, EM_X86_64: must be skipped
    blob = bytes(decoy) + b"\0" * (300 - 64) + OBJ + b"\xcc" * 77
    return blob


def test_scan_finds_only_the_bpf_object():
    found = list(bpf.find_bpf_objects(_fake_executable()))
    assert [(off, len(img)) for off, img in found] == [(300, len(OBJ))]


def _rows(tmp_path):
    d = tmp_path / "sbin"
    d.mkdir()
    (d / "mytool").write_bytes(_fake_executable())
    (d / "plain").write_bytes(b"no bpf here")
    rows, deb = bpf.record_bpf(d)
    assert deb is None
    return {r["program"]: r for r in rows}


def test_program_sizes_and_subprograms(tmp_path):
    rows = _rows(tmp_path)
    assert sorted(rows) == ["btf_sw", "fe_read", "kp_read", "raw_sw", "tp_open"]
    # kp_read: 4 insns; calls sub_a (3 insns: call, add, exit) which calls sub_b (2 insns)
    # -> subprogram closure {sub_a, sub_b} = 5 insns.
    assert (rows["kp_read"]["insns"], rows["kp_read"]["subprog_insns"], rows["kp_read"]["n_subprogs"]) == (4, 5, 2)
    # btf_sw: ld_imm64 (2 slots) + call = 3 insns; calls sub_b only (2 insns).
    assert (rows["btf_sw"]["insns"], rows["btf_sw"]["subprog_insns"], rows["btf_sw"]["n_subprogs"]) == (3, 2, 1)
    assert (rows["fe_read"]["insns"], rows["fe_read"]["subprog_insns"]) == (2, 0)
    # JIT estimate: (4 + 5) insns * JIT_BYTES_PER_INSN
    assert rows["kp_read"]["jit_bytes_est"] == 9 * bpf.JIT_BYTES_PER_INSN
    assert rows["kp_read"]["license"] == "GPL"
    assert rows["kp_read"]["object_offset"] == 300 and rows["kp_read"]["tool"] == "mytool"


def test_categories_targets_and_twins(tmp_path):
    rows = _rows(tmp_path)
    want = {
        "kp_read": ("kprobe", "vfs_read", "Y"),        # fentry/vfs_read in the same object
        "fe_read": ("trampoline", "vfs_read", "N"),
        "btf_sw": ("tp_btf", "sched_switch", "N"),
        "raw_sw": ("raw_tp", "sched_switch", "Y"),      # tp_btf/sched_switch in the same object
        "tp_open": ("tracepoint", "syscalls/sys_enter_open", "N"),
    }
    got = {p: (r["attach_category"], r["target"], r["fallback_twin"]) for p, r in rows.items()}
    assert got == want


@pytest.mark.parametrize("section,cat", [("kretprobe/x", "kprobe"), ("fexit/x", "trampoline"),
                                         ("lsm/file_open", "trampoline"), ("cgroup_skb/ingress", "cgroup"),
                                         ("usdt", "uprobe"), ("perf_event", "perf_event"), ("xdp", "xdp"),
                                         ("socket", "other")])
def test_attach_category(section, cat):
    assert bpf.attach_category(section) == cat


def test_no_programs_is_an_error(tmp_path):
    (tmp_path / "x").write_bytes(b"nothing")
    with pytest.raises(bpf.BpfRecordError, match="no embedded BPF programs"):
        bpf.record_bpf(tmp_path)


def test_published_bpftool_samples_agree_with_the_measured_jit():
    # Independent cross-check: published bpftool outputs give JIT bytes per instruction
    # AFTER the verifier (jited / (xlated / 8)), 4.49-5.61.  The QEMU measurement's
    # ratio of the same kind, pooled over its loaded programs, must fall in that range.
    import csv

    ratios = [jited / (xlated / 8) for xlated, jited, _ in bpf.JIT_SAMPLES]
    with open(bpf.JIT_MEASUREMENT, newline="") as f:
        loaded = [r for r in csv.DictReader(f) if r["status"] == "loaded"]
    measured = sum(int(r["jited_bytes"]) for r in loaded) / sum(int(r["xlated_insns"]) for r in loaded)
    assert min(ratios) <= measured <= max(ratios)
