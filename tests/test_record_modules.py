"""Modules recorder: loader layout of a hand-built .ko, package/dir reading, determinism.

The fixture tests/fixtures/workloads/modules/fixture.S (assembled into the committed
fixture.ko / fixture_b.ko) has these section headers (readelf -S -W fixture.ko):

  [1] .text a16 105   [3] .data WA a64 16   [5] .bss WA nobits a8 100   [6] .exit.text AX a1 7
  [7] .init.text AX a16 25   [9] .rodata A a8 13   [10] .rodata.cst A a32 40
  [11] .altinstructions A 24 (4 relocs)   [13] __mcount_loc A 16 (2 relocs)
  [15] .orc_unwind_ip A 12 (3 relocs)   [17] .return_sites A 8 (2 relocs)
  [19] .init.rodata A a4 10   [20] .data..ro_after_init WA a8 8   [21] __jump_table WA a8 16 (2 relocs)
  [23] .init.data WA a8 24   [24] .data..percpu WA a64 48   [25] .modinfo   [26] __versions A a32 64
  [28] .symtab 9 entries (216 B, a8)   [29] .strtab 45 B
  relocs: .rela.text 1, .rela.data 1, .rela.init.text 1 (+ the ones above)
  symbols: 0 (unnamed), fexit(.exit.text), finit(.init.text), ivar(.init.data),
           pvar(.data..percpu), f1(.text), ext_func(UND), rvar(.rodata), dvar(.data)

Expected values are worked out below from kernel/module/main.c layout_sections() and
kernel/module/kallsyms.c layout_symtab() (v6.1), not taken from the recorder's output.
"""

from __future__ import annotations

import argparse
import io
import lzma
import pathlib
import shutil
import tarfile

import pytest

from execbench.commands import record as record_cmd
from execbench.workloads.recorders import modlayout, modules

FIX = pathlib.Path(__file__).parent / "fixtures" / "workloads" / "modules"


def _layout(**kw) -> modlayout.ModuleLayout:
    return modlayout.layout_module((FIX / "fixture.ko").read_bytes(), "fixture.ko", **kw)


def test_sizes_by_hand_module_unload():
    lay = _layout(module_unload=True)
    # MOD_TEXT (mask 0, core, header order): .text at 0 -> 105; .exit.text is core because
    # CONFIG_MODULE_UNLOAD=y (module_init_layout_section): ALIGN(105,1)=105, +7 = 112.
    assert lay.text == 112
    # MOD_RODATA (mask 1: ALLOC, not WRITE): .rodata 0..13; .rodata.cst ALIGN(13,32)=32,+40=72;
    # .altinstructions +24=96; __mcount_loc +16=112; .orc_unwind_ip +12=124; .return_sites +8=132.
    # .modinfo and __versions lost SHF_ALLOC (rewrite_section_headers) and are not counted.
    assert lay.rodata == 132
    # MOD_RO_AFTER_INIT: .data..ro_after_init 8, __jump_table ALIGN(8,8)=8,+16 = 24
    # (both get SHF_RO_AFTER_INIT in layout_and_allocate()).
    assert lay.ro_after_init == 24
    # MOD_DATA sections: .data 0..16, .bss ALIGN(16,8)=16,+100 = 116 (.data..percpu dropped).
    assert lay.data_sections == 116
    # + core kallsyms: core symbols = #0, fexit, pvar (per-CPU), f1, rvar, dvar = 6
    # (finit/ivar are init, ext_func is UND); names 1+6+5+3+5+5 = 25 bytes.
    # ALIGN(116, 8)=120; +6*24=264; +25=289; +6 type bytes = 295.
    assert lay.ncore_syms == 6
    assert lay.data == 295
    assert lay.init_text == 25            # .init.text only
    assert lay.init_rodata == 10          # .init.rodata only
    # MOD_INIT_DATA: .init.data 24; symtab ALIGN(24,8)=24,+216=240; strtab +45=285;
    # struct mod_kallsyms ALIGN(285,8)=288,+32=320; +9 type bytes = 329.
    assert lay.init_data_sections == 24
    assert lay.init_data == 329
    # v6.1 places the kallsyms after strict_align() (PAGE_ALIGN) of the data sections
    # (kernel/module/main.c layout_sections() mask 4, kernel/module/kallsyms.c
    # layout_symtab()), so they are sized from a page boundary:
    # core: 6*24 = 144 + 25 names + 6 types = 175  (= 295 - ALIGN(116, 8));
    # init: 216 symtab + 45 strtab = 261, ALIGN(261, 8) = 264, +32 = 296, +9 = 305 (= 329 - 24).
    assert (lay.kallsyms, lay.init_kallsyms) == (175, 305)
    assert lay.nsyms == 9
    assert lay.percpu == 48
    assert lay.align == 16                # max(.text 16, .exit.text 1, .init.text 16)


def test_write_work_by_hand():
    lay = _layout()
    # RELA sections whose target is text/rodata/init_text/init_rodata:
    # .rela.text 1 + .rela.init.text 1 + .rela.altinstructions 4 + .rela__mcount_loc 2
    # + .rela.orc_unwind_ip 3 + .rela.return_sites 2 = 13 in 6 sections;
    # .rela.data (data) and .rela__jump_table (ro_after_init) are not text/rodata.
    assert (lay.relocs, lay.reloc_secs) == (13, 6)
    # 24/12 alt_instr (v6.1 struct is 12 bytes) + 8/4 return sites = 4
    assert lay.alt_sites == 4
    assert lay.orc_entries == 3           # 12 / sizeof(int)
    assert lay.mcount_locs == 2           # 16 / sizeof(unsigned long)
    assert lay.module == "fixture"
    assert lay.depends == "dep_a,dep_b"


def test_exit_text_goes_to_init_without_module_unload():
    lay = _layout(module_unload=False)
    # .exit.text leaves core text: 105.  Init pass mask 0 in header order: .exit.text [6]
    # at 0..7, .init.text [7] at ALIGN(7,16)=16, +25 = 41.
    assert lay.text == 105
    assert lay.init_text == 41
    # fexit is no longer a core symbol: 5 symbols, names 25-6 = 19 bytes:
    # 120 + 5*24 = 240, +19 = 259, +5 = 264.
    assert lay.data == 264


def test_alt_instr_size_mismatch_is_an_error():
    # v6.3+ struct alt_instr is 14 bytes; 24 bytes of entries is not a whole number of them.
    with pytest.raises(modlayout.ModuleParseError, match=r"fixture.ko: section .altinstructions size 24"):
        _layout(alt_instr_size=14)
    assert modules.alt_instr_size_for("6.1.0-56-cloud-amd64") == 12
    assert modules.alt_instr_size_for("6.12.117+deb12-amd64") == 14


def test_truncated_ko_names_the_file(tmp_path):
    root = tmp_path / "lib" / "modules" / "6.1.0-test" / "kernel"
    root.mkdir(parents=True)
    (root / "broken.ko").write_bytes((FIX / "fixture.ko").read_bytes()[:300])
    with pytest.raises(modules.RecordError, match="broken.ko"):
        modules.record_modules(tmp_path / "lib" / "modules" / "6.1.0-test")


def _tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """A /lib/modules/<ver> tree with one plain and one xz-compressed module."""
    root = tmp_path / "lib" / "modules" / "6.1.0-test"
    (root / "kernel" / "a").mkdir(parents=True)
    shutil.copy(FIX / "fixture_b.ko", root / "kernel" / "a" / "fixture-b.ko")
    (root / "kernel" / "fixture.ko.xz").write_bytes(lzma.compress((FIX / "fixture.ko").read_bytes()))
    return root


def test_directory_rows_sorted_and_decompressed(tmp_path):
    table = modules.record_modules(_tree(tmp_path))
    assert table.kernel == "6.1.0-test"
    assert [r["module"] for r in table.rows] == ["fixture", "fixture_b"]
    assert [r["relpath"] for r in table.rows] == ["kernel/fixture.ko.xz", "kernel/a/fixture-b.ko"]
    assert table.rows[0]["text"] == 112 and table.rows[1]["text"] == 112
    assert table.rows[0]["source"] == "dir:6.1.0-test"


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, body in members:
        hdr = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
        assert len(hdr) == 60
        out += hdr + body + (b"\n" if len(body) % 2 else b"")
    return bytes(out)


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_deb(path: pathlib.Path) -> pathlib.Path:
    """A minimal linux-image-like .deb (deb(5): debian-binary, control.tar, data.tar)."""
    control = b"Package: linux-image-test\nVersion: 6.1.1-1\nArchitecture: amd64\n"
    data = {
        "./lib/modules/6.1.0-test/kernel/fixture.ko": (FIX / "fixture.ko").read_bytes(),
        "./lib/modules/6.1.0-test/kernel/b/fixture_b.ko": (FIX / "fixture_b.ko").read_bytes(),
        "./boot/config-6.1.0-test": b"CONFIG_MODULE_UNLOAD=y\n# CONFIG_X86_KERNEL_IBT is not set\n",
    }
    path.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.gz", _tar({"./control": control}, "w:gz")),
                          ("data.tar.xz", _tar(data, "w:xz"))]))
    return path


def _run_modules(src: pathlib.Path, out: pathlib.Path) -> int:
    return record_cmd._cmd_modules(argparse.Namespace(source=src, output=out, kernel=None))


def test_deb_rerun_is_byte_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    deb = make_deb(tmp_path / "linux-image-test_6.1.1-1_amd64.deb")
    a = tmp_path / "a" / "t.modules.csv"
    side = a.parent / "t.modules.toml"
    assert _run_modules(deb, a) == 0
    first_csv, first_toml = a.read_bytes(), side.read_bytes()
    assert _run_modules(deb, a) == 0
    assert a.read_bytes() == first_csv
    assert side.read_bytes() == first_toml
    rows = modules.read_table(a)
    assert [r["module"] for r in rows] == ["fixture", "fixture_b"]
    assert rows[0]["source"] == "linux-image-test=6.1.1-1"
    assert rows[0]["data"] == "295"       # same hand-worked value as above, via CSV
    toml = (a.parent / "t.modules.toml").read_text()
    assert "sha256" in toml and "2023-11-14" in toml


def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "not-a.deb"
    bad.write_bytes(b"hello")
    out = tmp_path / "out" / "t.modules.csv"
    assert _run_modules(bad, out) == 2
    assert "not-a.deb" in capsys.readouterr().err
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_read_table_rejects_wrong_header(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("module,text\nfoo,1\n")
    with pytest.raises(modules.RecordError, match="x.csv: row 1: header"):
        modules.read_table(p)
