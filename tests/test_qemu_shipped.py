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
    return "6.12" if p.name.startswith("qemu-6.12-") else "6.1"


def test_at_least_the_6_1_recording_is_shipped():
    assert any(p.name.startswith("qemu-6.1-") for p in RECORDINGS)


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
    # each BPF JIT image is one prog_load
    assert (df.op == "prog_load").sum() == truth["bpf_jit_binary_pack_alloc_calls"]
    # a kprobe registration per insn slot taken by the script's probes
    assert (df.op == "register").sum() == truth.get("insn_slots_kprobe_insn_page", 0)
    prov = tomllib.loads((folder / f"{folder.name}.toml").read_text())
    assert prov["workload"]["events"] == len(df)
    assert set(prov["workload"]["users"]) == set(df.user.unique())
    pkgs = prov["source"]["packages"]
    assert any(k.startswith("linux-image-") and len(v["sha256"]) == 64 for k, v in pkgs.items())
    assert prov["measured"]["qemu_wall_s"] > 0


def test_6_1_module_allocations_follow_the_v6_1_layout_rule():
    folder = DATA / "qemu-6.1-generic"
    d = validation.module_allocations(folder)
    assert len(d) == validation.load_truth(folder)["module_load_events"]
    # every init allocation and all but at most 1 % of core allocations match the
    # rule worked out from kernel/module/main.c layout_sections() (see docstring)
    assert d.init_match.all()
    assert d.core_match.mean() >= 0.99


def test_ring_buffer_lost_nothing():
    for folder in RECORDINGS:
        stats = (folder / "guest" / "stats.txt").read_text()
        for key in ("overrun:", "dropped events:"):
            vals = [int(line.split(":")[1]) for line in stats.splitlines() if line.startswith(key)]
            assert vals and all(v == 0 for v in vals), (folder.name, key)


def test_compare_flags_and_explains_by_hand():
    # 104 vs 100: +4 % within 5 %; 106 vs 100: +6 % outside; vmap_areas has a known cause
    d = validation.compare({"vmalloc_calls": 100, "vfree_calls": 100, "vmap_areas": 10},
                           {"vmalloc_calls": 104, "vfree_calls": 106, "vmap_areas": 8}).set_index("counter")
    assert d.loc["vmalloc_calls", "within_5pct"] and d.loc["vmalloc_calls", "diff_pct"] == 4.0
    assert not d.loc["vfree_calls", "within_5pct"] and d.loc["vfree_calls", "explanation"] == "UNEXPLAINED"
    assert d.loc["vmap_areas", "diff_pct"] == -20.0
    assert "before /init" in d.loc["vmap_areas", "explanation"]


@pytest.mark.parametrize("folder", RECORDINGS, ids=lambda p: p.name)
def test_replay_on_the_kernels_design_matches_or_is_explained(folder):
    from execbench import registry

    design = validation.DESIGN_FOR[_series(folder)]
    try:
        registry.get(design)
    except Exception:
        pytest.skip(f"design {design} not registered")
    df = validation.validate(folder, design)
    assert len(df) >= 15
    bad = df[(~df.explained) & (df.explanation == "UNEXPLAINED")]
    assert bad.empty, bad.to_string()
    assert df[~df.explained].explanation.ne("UNEXPLAINED").all()
    # the core of the comparison must agree (after the counted adjustments):
    # allocation calls, permission calls, pokes
    ok = df.set_index("counter")["explained"]
    assert ok["vmalloc_calls"] and ok["cpa_calls"] and ok["text_pokes"] and ok["text_poke_bp"]


def test_6_12_allocations_are_one_page_aligned_area_per_type():
    folder = DATA / "qemu-6.12-generic"
    if not folder.is_dir():
        pytest.skip("6.12 recording not shipped")
    d = validation.module_allocations(folder)
    assert len(d) == validation.load_truth(folder)["module_load_events"]
    # v6.4+ module_memory_alloc(): one execmem_alloc per non-empty mod_mem_type,
    # PAGE_ALIGN(size) each, in enum order (text, data, rodata, ro_after_init, init_*)
    assert d.per_type_match.all()
    assert (d.areas_real == d.areas_rule).all()


def test_adjustments_by_hand():
    # boot-time pack (live at the end, none made while tracing) and a replay that made one:
    # 6.1 alloc_new_pack(): 1 vmalloc of 2 MiB, set_memory_ro + set_memory_x on 512 pages
    truth = {"bpf_prog_pack_new": 0, "vmap_areas_bpf_prog_pack_alloc": 1,
             "vmap_areas_arch_ftrace_update_trampoline": 1,
             "module_alloc_calls_from_arch_ftrace_update_trampoline": 3}
    adj = validation.adjustments(truth, {"bpf_prog_pack_new": 1, "bpf_prog_pack_freed": 1},
                                 kallsyms_pages=10, series="6.1")
    assert adj["vmalloc_calls"][0] == 1
    assert adj["vmalloc_bytes"][0] == 2 * 1024 * 1024 - 10 * 4096
    assert adj["cpa_pages_ro"][0] == 512 and adj["cpa_pages_x"][0] == 512
    assert adj["cpa_pages_req"][0] == 1024 - 10 and adj["cpa_pages_nx"][0] == -10
    assert adj["cpa_calls"][0] == 2 and adj["vfree_calls"][0] == 1
    # vmallocinfo lists the boot pack and the boot-time kprobe-ftrace trampoline
    assert adj["vmap_areas"][0] == -2
    # v6.2+: one set_memory_rox on the pack instead
    adj = validation.adjustments(truth, {"bpf_prog_pack_new": 1}, series="6.12")
    assert adj["cpa_calls_rox"][0] == 1 and adj["cpa_pages_rox"][0] == 512
    assert "cpa_calls_ro" not in adj and "vfree_calls" not in adj


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
