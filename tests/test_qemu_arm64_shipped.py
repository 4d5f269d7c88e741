"""The shipped arm64 QEMU recordings agree with the shipped arm64 module tables.

Everything here reads committed files only (workloads/data/qemu/qemu-*-arm64/ and
workloads/data/modules/*-arm64.modules.csv.gz).  What is checked, and against what:

* the recorder's layout, section by section, against the addresses the real kernel gave
  every section (/sys/module/<name>/sections, guest/sections.txt);
* the shipped table's rows against the recording's modules.csv (the same layout rules,
  the same package);
* each module's allocation sizes (the size argument of every module_alloc/execmem_alloc
  of a load) and /proc/modules sizes against the table, by the kernel's rounding rules;
* the kernel's own per-module work against the table's counts: one ftrace_init_nop()
  write per call site (two with CALL_OPS), apply_alternatives_module() over
  .altinstructions, PLT entries against the PLT slots reserved for vmlinux targets.
"""

from __future__ import annotations

import functools
import pathlib
import tomllib

import pandas as pd
import pytest

from execbench import validation
from execbench.workloads.recorders.qemu import record, record_arm64, sections

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "workloads" / "data" / "qemu"
ARM = sorted(p for p in DATA.glob("qemu-*-arm64") if p.is_dir())
TABLES = {"6.1": "6.1.0-56-arm64", "6.12": "6.12.117+deb13-arm64", "7.2": "7.2.13+deb14-arm64"}
PAGE = 4096
ids = [p.name for p in ARM]


def pa(n) -> int:
    return -(-int(n) // PAGE) * PAGE


def _series(folder) -> str:
    return validation.series_of(folder)


def _table(folder) -> pd.DataFrame:
    return pd.read_csv(ROOT / "workloads" / "data" / "modules" /
                       f"{TABLES[_series(folder)]}.modules.csv.gz").set_index("module")


@functools.lru_cache(maxsize=4)
def _events(folder) -> pd.DataFrame:
    return record_arm64.read_events((folder / "events.csv.gz").read_bytes())


def _truth(folder) -> dict[str, int]:
    return validation.load_truth(folder)


def _loaded(folder) -> pd.Series:
    ev = _events(folder)
    return ev[ev.event == "module_load"]["type"]


def test_6_1_and_7_2_arm64_recordings_are_shipped():
    assert {"6.1", "7.2"} <= {_series(p) for p in ARM}
    for p in ARM:
        assert record.arch_of(p) == "arm64"
        prov = tomllib.loads((p / f"{p.name}.toml").read_text())
        pkg = next(k for k in prov["source"]["packages"] if k.startswith("linux-image-"))
        assert len(prov["source"]["packages"][pkg]["sha256"]) == 64
        assert prov["source"]["packages"][pkg]["architecture"] == "arm64"


@pytest.mark.parametrize("folder", ARM, ids=ids)
def test_every_section_is_where_the_layout_puts_it(folder):
    lay = record_arm64.read_sections(folder)
    guest = sections.parse_sysfs((folder / "guest" / "sections.txt").read_text())
    # v6.1: core and init are one allocation each, types on page boundaries
    c = sections.compare(lay, guest, one_area=_series(folder) == "6.1")
    assert len(c) == len(_loaded(folder))
    assert c.exact.mean() >= 0.95
    assert c.exact.all(), c[~c.exact].head().to_string()


@pytest.mark.parametrize("folder", ARM, ids=ids)
def test_sections_and_modules_csv_describe_the_same_layout(folder):
    lay = record_arm64.read_sections(folder)
    mods = pd.read_csv(folder / "modules.csv").set_index("module")
    end = (lay["offset"] + lay["size"]).groupby([lay["module"], lay["type"]]).max().unstack(fill_value=0)
    end = end.reindex(index=mods.index, columns=["text", "rodata", "ro_after_init", "data", "init_text",
                                                 "init_rodata", "init_data"], fill_value=0)
    for t in ("text", "rodata", "ro_after_init", "init_text", "init_rodata"):
        assert (end[t].astype(int) == mods[t]).all(), t
    assert (end["data"].astype(int) == mods["data_sections"]).all()
    assert (end["init_data"].astype(int) == mods["init_data_sections"]).all()


@pytest.mark.parametrize("folder", ARM, ids=ids)
def test_shipped_table_rows_are_the_recordings_layout(folder):
    mods = pd.read_csv(folder / "modules.csv").set_index("module")
    table = _table(folder).loc[mods.index]
    num = [c for c in mods.columns if c not in ("depends", "license", "intree")]
    diff = (table[num] != mods[num]).any(axis=1)
    assert not diff.any(), mods[diff].index.tolist()
    assert (table["depends"].fillna("") == mods["depends"].fillna("")).all()
    assert (table["intree"].eq("Y") == mods["intree"]).all()


def _allocs_per_load(folder) -> dict[str, list[int]]:
    """Size argument of every allocation load_module made, per loaded module."""
    ev = _events(folder)
    alloc = "module_alloc" if _series(folder) == "6.1" else "execmem_alloc"
    pending: dict[int, list[int]] = {}
    out: dict[str, list[int]] = {}
    for r in ev.itertuples(index=False):
        if r.event == alloc and r.caller == "load_module":
            pending.setdefault(r.pid, []).append(int(r.size))
        elif r.event == "module_load":
            out[r.type] = pending.pop(r.pid)
    return out


@pytest.mark.parametrize("folder", ARM, ids=ids)
def test_allocation_sizes_match_the_table(folder):
    t = _table(folder)
    real = _allocs_per_load(folder)
    ok = 0
    for name, sizes in real.items():
        r = t.loc[name]
        if _series(folder) == "6.1":
            # kernel/module/main.c layout_sections() (v6.1): every core type ends with
            # strict_align() = PAGE_ALIGN; layout_symtab() appends the kallsyms from there
            # and debug_align()s again: core and init are one module_alloc() each
            want = [pa(r.text) + pa(r.rodata) + pa(r.ro_after_init) + pa(r.data - r.kallsyms) + pa(r.kallsyms),
                    pa(r.init_text) + pa(r.init_rodata) + pa(r.init_data - r.init_kallsyms) + pa(r.init_kallsyms)]
        else:
            # v6.4+: module_memory_alloc() per non-empty mod_mem_type, PAGE_ALIGN(size)
            want = [pa(r[c]) for c in ("text", "data", "rodata", "ro_after_init", "init_text",
                                       "init_data", "init_rodata") if r[c]]
        ok += sorted(sizes) == sorted(want)
    assert ok / len(real) >= 0.95
    assert ok == len(real)


@pytest.mark.parametrize("folder", ARM, ids=ids)
def test_proc_modules_sizes_match_the_table(folder):
    # /proc/modules right after the last insmod: init memory is already accounted as 0
    # (do_init_module()), so the size is the core allocation(s): v6.1 core_layout.size,
    # v6.4+ module_total_size() of the PAGE_ALIGNed core types
    t = _table(folder)
    n = ok = 0
    for line in (folder / "guest" / "modules_loaded.txt").read_text().splitlines():
        name, size = line.split()[:2]
        if name not in t.index:
            continue
        r = t.loc[name]
        if _series(folder) == "6.1":
            want = pa(r.text) + pa(r.rodata) + pa(r.ro_after_init) + pa(r.data - r.kallsyms) + pa(r.kallsyms)
        else:
            want = pa(r.text) + pa(r.rodata) + pa(r.ro_after_init) + pa(r.data)
        n += 1
        ok += int(size) == want
    assert n == len(_loaded(folder)) and ok == n


@pytest.mark.parametrize("folder", ARM, ids=ids)
def test_kernel_work_per_module_matches_the_table_counts(folder):
    t = _table(folder).loc[_loaded(folder)]
    v = _truth(folder)
    # arch/arm64/kernel/ftrace.c ftrace_init_nop(): one aarch64_insn_patch_text_nosync() per
    # call site (the "mov x9, x30"); with DYNAMIC_FTRACE_WITH_CALL_OPS (v6.3+, Debian 6.12
    # and 7.2) ftrace_rec_set_nop_ops() first writes the ops literal: two writes
    per_site = 1 if _series(folder) == "6.1" else 2
    assert v["text_writes_ftrace_init"] == per_site * t["mcount_locs"].sum()
    # arch/arm64/kernel/module.c module_finalize(): apply_alternatives_module() over the
    # whole .altinstructions section of every module that has one (12-byte entries)
    assert v["apply_alternatives_module_calls"] == int((t["alt_sites"] > 0).sum())
    assert v["apply_alternatives_module_bytes"] == 12 * t["alt_sites"].sum()
    # every module landed > 128 MiB from kernel text and within 128 MiB of the others, so
    # an entry is written for a vmlinux target and (almost) never for another module's:
    # module_emit_plt_entry() reuses the previous entry for an equal target, so it writes
    # at most the slots count_plts() reserved
    assert v["module_areas_out_of_branch_range"] == v["exec_areas_module"] + v.get("exec_areas_module_data", 0)
    assert v["plt_emit_null"] == 0
    assert v["plt_entries_init"] <= t["plt_init_kernel"].sum()
    assert v["plt_entries_core"] <= t["plt_core_kernel"].sum()
    assert v["plt_entries_core"] >= 0.99 * t["plt_core_kernel"].sum()
    assert v["plt_entries_init"] >= 0.99 * t["plt_init_kernel"].sum()


@pytest.mark.parametrize("folder", ARM, ids=ids)
def test_trace_rows_of_arm64(folder):
    tr = pd.read_csv(folder / f"{folder.name}.csv.gz")
    v = _truth(folder)
    # kprobe slots: MAX_INSN_SIZE = 2 kprobe_opcode_t (u32) = 8 bytes
    assert set(tr[tr.op == "register"]["size"]) == {8}
    assert set(tr[tr.op == "patch"]["len"]) == {4}
    # every write into live module text is a patch row, plus the held jump labels of
    # coming modules: live module writes + module jump labels + kprobe arming in modules
    patches = (tr.op == "patch").sum()
    assert patches <= v["text_writes"] - v["text_writes_ftrace_init"] - v["text_writes_image"]
    assert (tr.op == "load").sum() == v["module_load_events"]
    assert (tr.user == "ftrace").sum() == 0      # no ftrace trampolines on arm64


def _cli(argv: list[str]) -> int:
    import argparse

    from execbench.commands import record_qemu

    p = argparse.ArgumentParser()
    record_qemu.add_qemu_parser(p.add_subparsers())
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_rebuild_of_an_arm64_recording(capsys):
    assert _cli(["qemu", "--arch", "arm64", "--kernel", "6.1", "--out", str(DATA), "--rebuild"]) == 0
    assert "qemu-6.1-arm64: trace unchanged, truth unchanged" in capsys.readouterr().out


def test_cli_arm64_is_generic_only(capsys):
    assert _cli(["qemu", "--arch", "arm64", "--kernel", "6.1", "--flavour", "cloud"]) == 2
    assert "generic flavour only" in capsys.readouterr().err
