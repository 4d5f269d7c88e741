"""Retargeting a workload to arm64 sizes (workloads/archsizes.py) on the shipped tables.

Expected values for ``dummy`` are worked out by hand from ``readelf -S -r`` of Debian's
6.1.0-56-arm64 dummy.ko and arch/arm64/kernel/module-plts.c (v6.1), not read off the table:

* .text 0x3e8 = 1000 B (align 16), .exit.text 0x24 = 36 B (align 4, core text under
  MODULE_UNLOAD=y) -> 1036; .plt: align 64 -> 1088, plus (15 + 1) * 12 = 192 -> 1280;
  .text.ftrace_trampoline: NR_FTRACE_PLTS = 2 in 6.1 -> + 24 = 1304.
  15 = count_plts(): .rela.text has 16 CALL26 against 14 distinct undefined symbols
  (consume_skb and skb_clone_tx_timestamp twice), .rela.exit.text one (rtnl_link_unregister).
* .init.text 0x124 = 292 B; .init.plt: align 64 -> 320, plus (10 + 1) * 12 = 132 -> 452.
  10 = 12 CALL26 in .rela.init.text against 10 distinct symbols (__cond_resched three times).
"""

from __future__ import annotations

import pandas as pd
import pytest

from execbench.errors import ExecbenchError
from execbench.trace import COLUMNS, from_frame, load_trace
from execbench.workloads import archsizes, catalog


def _row(seq, user, op, obj, **cols):
    r = dict.fromkeys(COLUMNS, pd.NA)
    r.update(seq=seq, t_ns=seq * 1000, cpu=0, user=user, op=op, obj=obj, **cols)
    return r


X86_DUMMY = dict(text=723, rodata=1992, ro_after_init=0, data=2113, init_text=202, init_rodata=0,
                 init_data=3191, align=16, relocs=137, reloc_secs=8, alt_sites=10, orc_entries=40,
                 mcount_locs=10, kallsyms=961, init_kallsyms=3183)


def _trace() -> pd.DataFrame:
    rows = [
        _row(0, "module", "load", "dummy", **X86_DUMMY),
        _row(1, "module", "load", "kvm_intel", **X86_DUMMY),
        _row(2, "module", "patch", "dummy", offset=700, len=5),
        _row(3, "module", "patch", "kvm_intel", offset=10, len=5),
        _row(4, "kprobe", "register", "kp1", size=16),
        _row(5, "module", "unload", "kvm_intel"),
        _row(6, "bpf", "prog_load", "p1", size=300),
    ]
    return from_frame(pd.DataFrame(rows)).df


def test_dummy_gets_its_arm64_sizes_and_plt_candidates():
    out, per_mod, cov = archsizes.retarget(_trace(), "arm64", "6.1")
    d = out[(out.obj == "dummy") & (out.op == "load")].iloc[0]
    assert (d.text, d.init_text) == (1304, 452)         # by hand, module docstring
    assert d.orc_entries == 0                           # no ORC unwinder on arm64
    # dummy depends on no module (modinfo depends=): every undefined target is vmlinux's
    assert tuple(per_mod.loc["dummy"]) == (15, 15, 15, 10, 10, 10)
    from_frame(out)                                     # still a valid trace


def test_x86_only_modules_are_dropped_with_their_rows_and_counted():
    out, _, cov = archsizes.retarget(_trace(), "arm64", "6.1")
    assert "kvm_intel" not in set(out.obj)
    assert out.seq.tolist() == list(range(len(out)))    # renumbered
    assert (cov.loads, cov.found, cov.missing, cov.missing_loads) == (2, 1, ("kvm_intel",), 1)
    assert cov.dropped_rows == 3                        # its load, patch and unload
    kept, _, cov = archsizes.retarget(_trace(), "arm64", "6.1", missing="keep")
    k = kept[(kept.obj == "kvm_intel") & (kept.op == "load")].iloc[0]
    assert k.text == 723 and cov.dropped_rows == 0      # the trace's own numbers


def test_patch_keeps_its_relative_place_as_one_arm64_instruction():
    out, _, cov = archsizes.retarget(_trace(), "arm64", "6.1")
    p = out[out.op == "patch"].iloc[0]
    # floor(700 * 1304 / 723) = 1262 (723 * 1262 = 912426 <= 912800), down to a multiple
    # of 4: 1260; len = AARCH64_INSN_SIZE
    assert (p.offset, p.len) == (1260, 4)
    assert cov.patches_moved == 1


def test_kprobe_slot_size_and_untouched_rows():
    out, _, _ = archsizes.retarget(_trace(), "arm64", "6.1")
    assert out[out.op == "register"].iloc[0]["size"] == 8   # 2 x u32 kprobe_opcode_t
    assert out[out.op == "prog_load"].iloc[0]["size"] == 300


def test_table_per_series():
    assert archsizes.table_name("arm64", "6.1") == "6.1.0-56-arm64.modules.csv.gz"
    assert archsizes.table_name("arm64", "6.10") == "6.1.0-56-arm64.modules.csv.gz"   # newest <= 6.10
    assert archsizes.table_name("arm64", "6.12") == "6.12.117+deb13-arm64.modules.csv.gz"
    assert archsizes.table_name("arm64", "6.17") == "6.12.117+deb13-arm64.modules.csv.gz"
    assert archsizes.table_name("arm64", "7.2") == "7.2.13+deb14-arm64.modules.csv.gz"
    assert archsizes.table_name("arm64", "5.15") == "6.1.0-56-arm64.modules.csv.gz"    # oldest


def test_identity_and_errors():
    t = _trace()
    same, per_mod, cov = archsizes.retarget(t, "x86_64", "6.1")
    assert same is t and cov.fraction == 1.0 and per_mod.empty
    same, _, _ = archsizes.retarget(t, "arm64", "6.1", provenance={"workload": {"arch": "arm64"}})
    assert same is t
    with pytest.raises(ExecbenchError, match="unknown architecture 'riscv'"):
        archsizes.retarget(t, "riscv", "6.1")
    with pytest.raises(ExecbenchError, match="x86_64"):
        archsizes.retarget(t, "x86_64", "6.1", provenance={"workload": {"arch": "arm64"}})
    with pytest.raises(ExecbenchError, match="not of the form"):
        archsizes.table_name("arm64", "latest")


@pytest.mark.parametrize("info", catalog.shipped(), ids=lambda i: i.name)
def test_every_shipped_workload_retargets(info):
    t = load_trace(info.path)
    for series in ("6.1", "6.12"):
        out, per_mod, cov = archsizes.retarget(t.df, "arm64", series)
        assert cov.found + cov.missing_loads == cov.loads
        loads = out[(out.user == "module") & (out.op == "load")]
        assert set(loads.obj) == set(per_mod.index)
        assert not set(loads.obj) & set(cov.missing)
    if len(t) <= 20_000:   # re-validating fleet-day's 100k rows takes ~10 s
        out, _, _ = archsizes.retarget_trace(t, "arm64", "6.1")
        assert out.provenance["workload"]["arch"] == "arm64"
