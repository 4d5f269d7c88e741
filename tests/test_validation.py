"""Validation against the shipped QEMU recordings can fail, and says why.

Each recording is replayed once (module-scoped cache) on the design that models
its kernel; the tests check what is compared, that the module layout the replay
allocates is the real kernel's, and that a wrong model count, an unlisted truth
row or a misnamed counter makes the validation fail.
"""
from __future__ import annotations

import pathlib
import shutil

import pytest

from execbench import validation as V

DATA = pathlib.Path(__file__).resolve().parents[1] / "workloads" / "data" / "qemu"
#: x86-64 recordings (the arm64 ones replay on the arm64 machine, not on these designs)
RECORDINGS = sorted(p for p in DATA.glob("qemu-*") if p.is_dir() and not p.name.endswith("-arm64"))
_CACHE: dict[str, V.Validation] = {}

#: rows that fail today, each for a model simplification owned elsewhere:
#: * direct_map_splits_*: frame placement of the simulated machine (and the
#:   2 GiB guest's direct map, which the model starts with a 1 GiB leaf).
#: A row may leave this list (fixed) but no other row may fail.
OPEN = {
    "6.1": set(),
    "6.12": set(),
    "7.2": {"direct_map_splits_2m", "direct_map_splits_1g"},
}


def _v(folder: pathlib.Path) -> V.Validation:
    if folder.name not in _CACHE:
        _CACHE[folder.name] = V.validate(folder)
    return _CACHE[folder.name]


@pytest.mark.parametrize("folder", RECORDINGS, ids=lambda p: p.name)
def test_every_truth_row_is_compared_or_listed_with_a_reason(folder):
    v = _v(folder)
    assert not v.rows.cause.str.startswith("UNCLASSIFIED").any(), v.rows[~v.rows.passes].to_string()
    listed = set(v.not_compared.metric)
    compared = {t.lstrip("-") for p in V.PAIRS if p.name in set(v.rows.pair) for t in p.truth}
    assert set(v.truth) <= listed | compared
    assert v.not_compared.reason.str.len().gt(20).all()


@pytest.mark.parametrize("folder", RECORDINGS, ids=lambda p: p.name)
def test_replay_matches_the_real_kernel_except_open_rows(folder):
    v = _v(folder)
    failed = set(v.failed.pair)
    assert failed <= OPEN[V.series_of(folder)], v.failed.to_string()
    ok = v.rows.set_index("pair").passes
    # the heart of it: allocations, permission changes, pokes, areas
    for pair in ("vmalloc_calls", "vmalloc_bytes", "vfree_calls", "cpa_calls", "cpa_pages",
                 "cpa_pages_nx", "text_pokes", "text_poke_sites", "vmap_areas", "insn_pages_new"):
        assert ok[pair], pair


@pytest.mark.parametrize("folder", RECORDINGS, ids=lambda p: p.name)
def test_module_sizes_the_replay_allocates_are_the_real_kernels(folder):
    # every allocation of every module load, page-aligned, in order: v6.1 core + init
    # (kallsyms on their own pages), v6.4+ one per non-empty mod_mem_type
    m = _v(folder).modules
    assert len(m) == _v(folder).truth["module_load_events"]
    assert m.exact.mean() >= 0.95
    assert m.exact.all(), m[~m.exact].head().to_string()


def test_without_the_kallsyms_columns_the_6_1_layout_is_a_page_short(tmp_path):
    # the same recording with the trace's kallsyms columns dropped (a trace written
    # before they existed): legacy pages data+kallsyms as one and misses the page
    # layout_symtab() starts after strict_align() -- nearly every module is then short
    src = DATA / "qemu-6.1-cloud"
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    from execbench.trace import load_trace, save_trace
    df = load_trace(dst / f"{dst.name}.csv.gz").df
    df["kallsyms"] = df["init_kallsyms"] = None
    save_trace(df, dst / f"{dst.name}.csv.gz")
    v = V.validate(dst)
    assert v.modules.exact.mean() < 0.2
    assert not v.rows.set_index("pair").passes["cpa_pages_nx"]


def test_a_corrupted_model_count_fails():
    v = _v(DATA / "qemu-6.12-generic")
    ok, _ = V.compare(v.truth, v.model, V.boot_standins(v.truth, v.model, "6.12"))
    assert ok.set_index("pair").passes["cpa_calls_nx"]
    bad = dict(v.model, cpa_calls_nx=round(v.model["cpa_calls_nx"] * 1.06))
    rows, _ = V.compare(v.truth, bad, V.boot_standins(v.truth, bad, "6.12"))
    r = rows.set_index("pair").loc["cpa_calls_nx"]
    assert not r.passes and r.residual_pct == pytest.approx(6.0, abs=0.2)


def test_the_expected_difference_does_not_follow_the_truth():
    # the boot-pack allowance comes from the replay's counters and the kernel's
    # per-pack cost, so a truth value moved by 10 % is caught
    v = _v(DATA / "qemu-6.1-cloud")
    truth = dict(v.truth, vmalloc_bytes_page_aligned=int(v.truth["vmalloc_bytes_page_aligned"] * 1.1))
    rows, _ = V.compare(truth, v.model, V.boot_standins(truth, v.model, "6.1"))
    assert not rows.set_index("pair").passes["vmalloc_bytes"]


def test_an_unlisted_truth_row_and_a_misnamed_counter_fail():
    truth = {"vmalloc_calls": 10, "brand_new_probe_calls": 3}
    rows, skipped = V.compare(truth, {"vmalloc_calls": 10},
                              pairs=(V.Pair("vmalloc_calls", ("vmalloc_calls",), ("vmalloc_calls",), ""),))
    r = rows.set_index("pair")
    assert r.passes["vmalloc_calls"]
    assert not r.passes["brand_new_probe_calls"] and r.cause["brand_new_probe_calls"].startswith("UNCLASSIFIED")
    # the old insn_pages_new defect: a pair naming a counter the replay does not have
    rows, _ = V.compare({"insn_pages_new": 2}, {"kprobe_insn_pages_new": 1, "kprobe_optinsn_pages_new": 1},
                        pairs=(V.Pair("insn_pages_new", ("insn_pages_new",), ("insn_pages_new",), ""),))
    assert not rows.passes.iloc[0] and rows.replay.iloc[0] == 0


def test_boot_standins_by_hand():
    # One boot pack in vmallocinfo that no traced allocation made; the replay made one
    # pack and freed it.  6.1 alloc_new_pack() (kernel/bpf/core.c): module_alloc(2 MiB),
    # set_memory_ro + set_memory_x on 512 pages each; bpf_prog_pack_free() of the empty
    # pack: module_memfree -> vfree with VM_FLUSH_RESET_PERMS -> 512 x
    # set_direct_map_invalid_noflush; nothing live at the end.
    truth = {"vmap_areas_untraced_bpf_prog_pack_alloc": 1}
    e = V.boot_standins(truth, {"bpf_prog_pack_new": 1, "bpf_prog_pack_freed": 1}, "6.1")
    assert e["vmalloc_calls"][0] == 1 and e["vmalloc_bytes"][0] == 2 * 1024 * 1024
    assert e["cpa_calls"][0] == 2 and e["cpa_pages"][0] == 1024
    assert e["cpa_pages_ro"][0] == e["cpa_pages_x"][0] == 512
    assert e["vfree_calls"][0] == 1 and e["set_direct_map_invalid_noflush"][0] == 512
    assert e["module_memfree_calls"][0] == 1 and "vmap_areas" not in e
    # no boot pack in the truth -> nothing expected, whatever the replay did
    assert V.boot_standins({}, {"bpf_prog_pack_new": 3}, "6.1") == {}
    # 7.2: one boot ROX-cache block and one boot pack; the replay made 5 blocks (none
    # given back) and one pack it kept.  Block: execmem_cache_populate_alloc()
    # (mm/execmem.c): 2 MiB vmalloc + set_memory_rox(512); pack (v6.2+): set_memory_rox(512).
    truth = {"vmap_areas_untraced_bpf_prog_pack_alloc": 1, "vmap_areas_untraced_execmem_cache_block": 1}
    e = V.boot_standins(truth, {"bpf_prog_pack_new": 1, "execmem_cache_blocks_new": 5}, "7.2")
    assert e["vmalloc_calls"][0] == 2 and e["cpa_calls_rox"][0] == 2 and e["cpa_pages_rox"][0] == 1024
    assert e["execmem_cache_blocks"][0] == 1 and e["execmem_alloc_calls"][0] == 1
    # both stand-ins live at the end: two areas of 2 MiB + a guard page
    assert e["vmap_areas"][0] == 2 and e["vmap_area_bytes"][0] == 2 * (2 * 1024 * 1024 + 4096)
    assert "cpa_calls_ro" not in e and "vfree_calls" not in e


def test_cli_writes_the_report_and_exits_non_zero_on_a_failed_row(tmp_path, capsys):
    data = tmp_path / "qemu"
    shutil.copytree(DATA / "qemu-6.1-cloud", data / "qemu-6.1-cloud")
    out = tmp_path / "validation.md"
    rc = V.main(["--data", str(data), "-o", str(out)])
    text = out.read_text()
    assert "## qemu-6.1-cloud on `legacy`" in text and "Not compared:" in text
    failed = not _v(DATA / "qemu-6.1-cloud").passes
    assert rc == (1 if failed else 0)
    if failed:
        assert "outside 5 %" in capsys.readouterr().err
