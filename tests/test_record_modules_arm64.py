"""arm64 module layout: the loader's PLT growth, count_plts() and the arm64 columns.

The fixture tests/fixtures/workloads/modules_arm64/fixture_arm64.S (assembled into the committed
fixture_arm64.ko with aarch64-linux-gnu-gcc) has these section headers
(readelf -S -W fixture_arm64.ko):

  [1] .text AX a16 52 (10 relocs)   [3] .data WA a8 16   [4] .bss WA a1 0
  [5] .text.unlikely AX a4 12 (3 relocs)   [7] .exit.text AX a4 8 (1 reloc)
  [9] .init.text AX a8 12 (2 relocs)   [11] .plt AX 1   [12] .init.plt A 1
  [13] .text.ftrace_trampoline AX 1   [14] .init.text.ftrace_trampoline AX 1
  [15] .altinstructions A a4 24 (4 relocs)   [17] __patchable_function_entries WA a8 24 (3 relocs)
  [19] .rodata A a8 13   [20] .init.data WA a8 8   [21] .modinfo
  [23] .symtab 38 entries (912 B, a8)   [24] .strtab 59 B (a1)
  symbols: f1 (#35, .text), ext_func (#36, UND), ext_other (#37, UND), fu (.text.unlikely),
  fexit (.exit.text), finit (.init.text), rvar, dvar, ivar, the $x/$d mapping symbols.

Expected values are worked out below from arch/arm64/kernel/module-plts.c
(module_frob_arch_sections(), count_plts(), partition_branch_plt_relas(); v6.1 and v6.12),
kernel/module/main.c layout_sections() and kernel/module/kallsyms.c layout_symtab() (v6.1),
not taken from the recorder's output.
"""

from __future__ import annotations

import argparse
import random
import shutil

import numpy as np
import pytest

from execbench.commands import record as record_cmd
from execbench.workloads.recorders import modlayout, modules

from test_record_modules import FIX as FIX_X86

#: a folder of its own: tests that record the x86-64 fixture folder must not see arm64 modules
FIX = FIX_X86.parent / "modules_arm64"
KO = FIX / "fixture_arm64.ko"


def _layout(**kw) -> modlayout.ModuleLayout:
    return modlayout.layout_module(KO.read_bytes(), "fixture_arm64.ko", **kw)


def test_plt_candidates_by_hand():
    lay = _layout()
    assert lay.arch == "arm64"          # e_machine EM_AARCH64
    # .rela.text (target [1]): 10 entries, 8 branches, 7 of them against symbols outside
    # .text (bl f1 is against .text itself).  N = 7 < 10, so partition_branch_plt_relas()
    # returns 7 and sort() orders them by (type, sym, addend):
    #   (JUMP26 282, ext_func, 0) (CALL26 283, .text.unlikely, 0) (283, ext_func, 0) x2
    #   (283, ext_func, 8) x2 (283, ext_other, 0)
    # count_plts(): 1 + 1 + 1 (second one is duplicate_rel) + 2 (addend != 0: no dedup)
    #   + 1 = 6; all but the .text.unlikely one are undefined: 5.
    # .rela.text.unlikely: 3 entries, ALL branches: the partition loop stops at i = j = 2,
    # so only the first two are sorted ([ext_func, ext_other]) and the last (ext_func) is
    # compared with ext_other only: 3 slots, all undefined (a full de-dup would give 2).
    # .rela.exit.text: 1 (core text under CONFIG_MODULE_UNLOAD=y, undefined).
    # core: 6 + 3 + 1 = 10, undefined 5 + 3 + 1 = 9.
    assert (lay.plt_core, lay.plt_core_ext) == (10, 9)
    # .rela.init.text: bl ext_func, bl f1 (defined in .text, not the target): both branches,
    # so again only the first is sorted and the second (f1, #35) differs from it (#36):
    # 2 slots, 1 undefined.  (b finit resolved in-section: no relocation at all.)
    assert (lay.plt_init, lay.plt_init_ext) == (2, 1)


def test_text_grows_by_the_plt_sections_as_module_frob_arch_sections_sets_them():
    # MOD_TEXT, header order: .text 0..52; .text.unlikely ALIGN(52,4)=52,+12=64;
    # .exit.text 64,+8=72; .plt: sh_addralign L1_CACHE_BYTES=64 -> 128, (10+1)*12=132 -> 260;
    # .text.ftrace_trampoline: align 4 -> 260, NR_FTRACE_PLTS*12.
    assert _layout(nr_ftrace_plts=1).text == 260 + 12     # v6.2+: one ftrace PLT
    assert _layout(nr_ftrace_plts=2).text == 260 + 24     # v6.1: + FTRACE_REGS_PLT_IDX
    # MOD_INIT_TEXT: .init.text 0..12; .init.plt (was "A", now AX) ALIGN(12,64)=64,
    # (2+1)*12=36 -> 100; .init.text.ftrace_trampoline (a7ed7b9d0ebb) 100 + 12.
    assert _layout(nr_ftrace_plts=1).init_text == 112
    assert _layout(nr_ftrace_plts=2).init_text == 124
    assert _layout().align == 64          # .plt / .init.plt


def test_other_types_and_write_work_by_hand():
    lay = _layout()
    # MOD_RODATA: .altinstructions 0..24, .rodata ALIGN(24,8)=24,+13 = 37 (.modinfo dropped).
    assert lay.rodata == 37
    # MOD_DATA sections: .data 16, .bss +0, __patchable_function_entries ALIGN(16,8),+24 = 40.
    assert lay.data_sections == 40
    assert (lay.init_data_sections, lay.ro_after_init, lay.init_rodata) == (8, 0, 0)
    # relocations into text/rodata/init text: .text 10 + .text.unlikely 3 + .exit.text 1
    # + .init.text 2 + .altinstructions 4 = 20 in 5 sections (.rela__patchable_function_entries
    # targets data).
    assert (lay.relocs, lay.reloc_secs) == (20, 5)
    assert lay.alt_sites == 24 // 12      # arm64 struct alt_instr is 12 bytes
    assert lay.mcount_locs == 24 // 8     # __patchable_function_entries: 3 sites
    assert lay.orc_entries == 0


def test_kallsyms_with_and_without_kallsyms_all():
    # CONFIG_KALLSYMS_ALL=y (Debian 6.12 arm64): core symbols = #0 + every named defined
    # symbol of a non-init SHF_ALLOC section: $x .text, fu, dvar, $x .text.unlikely, fexit,
    # $x .exit.text, $d .plt, $d .text.ftrace_trampoline, $d .altinstructions,
    # $d __patchable_function_entries, $d .rodata, rvar, $d .data, f1 = 15; names
    # 1 + (3+3+5+3+6+3+3+3+3+3+3+5+3+3 = 49) = 50 bytes.
    # data = ALIGN(40,8)=40 + 15*24=360 -> 400, +50 = 450, +15 type bytes = 465.
    lay = _layout(kallsyms_all=True)
    assert (lay.ncore_syms, lay.data, lay.kallsyms) == (15, 465, 425)
    # Without it (Debian 6.1 arm64): also SHF_EXECINSTR, judged after the frob, so the .plt
    # and .text.ftrace_trampoline $d symbols count: #0, $x, fu, $x, fexit, $x, $d, $d, f1 = 9;
    # names 1 + 27 = 28.  data = 40 + 9*24 = 256, +28 = 284, +9 = 293.
    lay = _layout(kallsyms_all=False)
    assert (lay.ncore_syms, lay.data, lay.kallsyms) == (9, 293, 253)
    # init: ALIGN(8,8)=8 + 912 symtab = 920, + 59 strtab = 979, ALIGN(979,8)=984,
    # + 32 (struct mod_kallsyms) = 1016, + 38 type bytes = 1054 (the same either way).
    assert (lay.init_data, lay.init_kallsyms) == (1054, 1046)


def _literal_count_plts(rela, shndx, dst):
    """A line-by-line transcription of the kernel's partition + sort + count_plts() loop."""
    jump = (modlayout.R_AARCH64_JUMP26, modlayout.R_AARCH64_CALL26)
    r = [(int(x["r_info"]) & 0xFFFFFFFF, int(x["r_info"]) >> 32, int(x["r_addend"])) for x in rela]

    def needs(e):
        return shndx[e[1]] != dst and e[0] in jump

    i, j = 0, len(r) - 1
    while i < j:
        if needs(r[i]):
            i += 1
        elif needs(r[j]):
            r[i], r[j] = r[j], r[i]
        else:
            j -= 1
    r[:i] = sorted(r[:i])
    ret = ext = 0
    for k, e in enumerate(r):
        if needs(e) and (e[2] != 0 or not (k > 0 and r[k] == r[k - 1])):
            ret += 1
            ext += int(shndx[e[1]] == 0)
    return ret, ext


def test_count_plts_closed_form_equals_the_kernel_loop():
    rng = random.Random(15)
    shndx = np.array([0, 0, 1, 2, 1, 0, 3], dtype=np.int64)
    for _ in range(3000):
        n = rng.randint(0, 9)
        rela = np.zeros(n, dtype=modlayout._RELA_DTYPE)
        for k in range(n):
            t = rng.choice([modlayout.R_AARCH64_CALL26, modlayout.R_AARCH64_JUMP26, 257, 275])
            rela[k] = (4 * k, (rng.randint(0, 6) << 32) | t, rng.choice([0, 0, 0, 4, -4]))
        assert modlayout.count_plts(rela, shndx, 1) == _literal_count_plts(rela, shndx, 1), rela


def test_a_module_without_plt_sections_is_refused():
    data = bytearray(KO.read_bytes())
    i = data.find(b".init.plt\0")
    data[i:i + 9] = b".init.xxx"
    with pytest.raises(modlayout.ModuleParseError, match="fixture_arm64.ko: module PLT section"):
        modlayout.layout_module(bytes(data), "fixture_arm64.ko")


def test_architecture_mismatch_is_an_error():
    with pytest.raises(modlayout.ModuleParseError, match="an arm64 module, but the table is for x86_64"):
        _layout(arch="x86_64")
    with pytest.raises(modlayout.ModuleParseError, match="an x86_64 module"):
        modlayout.layout_module((FIX_X86 / "fixture.ko").read_bytes(), "fixture.ko", arch="arm64")


def _tree(tmp_path, kernel="6.1.0-56-arm64", config="CONFIG_KALLSYMS_ALL=n\n"):
    mods = tmp_path / "lib" / "modules" / kernel
    (mods / "kernel").mkdir(parents=True)
    shutil.copy(KO, mods / "kernel" / "fixture_arm64.ko")
    (mods / f"config-{kernel}").write_text(config)
    return mods


def test_recorder_takes_the_arch_and_rules_from_the_file_version_and_config(tmp_path):
    t = modules.record_modules(_tree(tmp_path))
    assert t.arch == "arm64" and t.columns == modules.TABLE_COLUMNS_ARM64
    (row,) = t.rows
    # 6.1: NR_FTRACE_PLTS = 2, KALLSYMS_ALL off (from the config beside the modules)
    assert (row["text"], row["data"], row["plt_core"], row["plt_init_ext"]) == (284, 293, 10, 1)
    # no module of the tree exports ext_func or ext_other: every undefined target is vmlinux's
    assert (row["plt_core_kernel"], row["plt_init_kernel"]) == (9, 1)
    t = modules.record_modules(_tree(tmp_path / "b", "6.12.117+deb13-arm64", "CONFIG_KALLSYMS_ALL=y\n"))
    (row,) = t.rows
    assert (row["text"], row["data"]) == (272, 465)
    with pytest.raises(modules.RecordError, match="an arm64 module, but the table is for x86_64"):
        modules.record_modules(_tree(tmp_path / "c"), arch="x86_64")


def test_cli_writes_an_arm64_table_that_reads_back(tmp_path):
    out = tmp_path / "t.csv"
    rc = record_cmd._cmd_modules(argparse.Namespace(source=_tree(tmp_path), output=out, kernel=None,
                                                    arch="arm64"))
    assert rc == 0
    assert modules.table_arch(out) == "arm64"
    (row,) = modules.read_table(out, "arm64")
    assert row["plt_core_ext"] == "9"
    with pytest.raises(modules.RecordError, match="header is not the module-table header"):
        modules.read_table(out, "x86_64")
    toml = (tmp_path / "t.toml").read_text()
    assert 'arch = "arm64"' in toml and "--arch arm64" in toml and "module_frob_arch_sections" in toml


def test_branches_to_a_symbol_another_module_exports_are_not_kernel_targets(tmp_path):
    mods = _tree(tmp_path)
    shutil.copy(FIX / "fixture_arm64_b.ko", mods / "kernel" / "fixture_arm64_b.ko")
    rows = {r["module"]: r for r in modules.record_modules(mods).rows}
    row = rows["fixture_arm64"]
    # fixture_arm64_b exports ext_func (__ksymtab_ext_func).  The 9 undefined core slots
    # (test_plt_candidates_by_hand) are 4 + 2 + 1 = 7 for ext_func and 1 + 1 = 2 for
    # ext_other; the one undefined init slot is ext_func.
    assert (row["plt_core_ext"], row["plt_core_kernel"]) == (9, 2)
    assert (row["plt_init_ext"], row["plt_init_kernel"]) == (1, 0)
    assert (rows["fixture_arm64_b"]["plt_core"], rows["fixture_arm64_b"]["plt_core_kernel"]) == (0, 0)
