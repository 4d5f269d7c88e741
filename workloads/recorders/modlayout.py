"""Lay out one kernel module (.ko) the way the kernel's module loader does.

Why: every design under test receives a module load as the seven per-type sizes of
``enum mod_mem_type`` plus the loader's write work.  Those numbers must come from the
loader's own rules applied to real ``.ko`` files, not from ``size(1)`` or section
totals, because alignment padding, the sections the loader drops and the kallsyms it
appends change the answer by tens of percent (docs/data-sources.md §1.2).

Kernel rules followed (Linux v6.1, the version of the shipped Debian package, with the
per-type grouping that v6.4 made explicit as ``enum mod_mem_type``):

* ``kernel/module/main.c`` ``layout_and_allocate()`` / ``rewrite_section_headers()``
  (v6.1): SHF_ALLOC is cleared on ``.modinfo``, ``__versions`` and ``.data..percpu``
  (per-CPU data is allocated by ``percpu_modalloc`` instead; its size is kept in the
  ``percpu`` column).  ``.data..ro_after_init`` and ``__jump_table`` get
  ``SHF_RO_AFTER_INIT`` (0x00200000, ``include/uapi/linux/elf.h``) via ``find_sec()``
  (first SHF_ALLOC section of that name).
* ``kernel/module/main.c`` ``layout_sections()`` (v6.1; ``__layout_sections()`` in v6.4+):
  five masks, each pass over the section headers in order, core pass then init pass;
  ``ARCH_SHF_SMALL`` is 0 on x86 so mask 4 never catches a section.  A section is init
  when ``module_init_layout_section()`` holds: name starts with ``.init`` (``.exit*``
  only when !CONFIG_MODULE_UNLOAD; Debian has MODULE_UNLOAD=y, see the ``module_unload``
  parameter).  ``module_get_offset()``: ``off = ALIGN(size, sh_addralign ?: 1);
  size = off + sh_size`` (``arch_mod_section_prepend`` is 0 on x86).
  v6.4 maps an init section of mask 2 to MOD_INVALID (warn, skip); v6.1 puts it in the
  writable part of the init layout.  We count it in ``init_data`` (v6.1 behaviour) and
  report it in ``init_ro_after_init_secs`` so a reader can see it happened.
* ``kernel/module/kallsyms.c`` ``layout_symtab()`` (v6.1, CONFIG_KALLSYMS_ALL=y):
  init data gets the whole ``.symtab`` (aligned), ``.strtab``, then ``struct
  mod_kallsyms`` (32 bytes, 8-aligned: symtab ptr, num_symtab + pad, strtab ptr, typetab
  ptr) and ``nsrc`` type bytes; core data gets the core symbols (24 B each, aligned to
  the symtab's sh_addralign), their names and one type byte each.  A symbol is core when
  ``is_core_symbol()`` holds (defined, named, in an SHF_ALLOC non-init section or in
  per-CPU data), or always for livepatch modules (``is_livepatch_module``, modinfo
  ``livepatch=Y``); symbol 0 is always kept.

Simplifications (and why they do not change the numbers we ship):

* Each type is laid out from offset 0.  In v6.1 text, rodata, ro_after_init and data sit
  in one ``core_layout`` with page-aligned boundaries (``strict_align`` = PAGE_ALIGN under
  STRICT_MODULE_RWX), so each type still starts on a page boundary and the in-type
  offsets are identical as long as no section asks for more than 4 KiB alignment.
* v6.1 appends the core kallsyms after the *page-aligned* end of core data (and the init
  kallsyms after the page-aligned end of init data): ``layout_sections()`` ends each pass
  with ``strict_align()`` (mask 4, "whole core"/"whole init") before ``layout_symtab()``
  runs, and ``layout_symtab()`` page-aligns again at its end.  v6.4+ appends them to
  MOD_DATA / MOD_INIT_DATA with no page alignment in between.  The table's ``data``/
  ``init_data`` are the v6.4 per-type sums (kallsyms included); ``kallsyms``/
  ``init_kallsyms`` are the bytes ``layout_symtab()`` appends when it starts on a page
  boundary, as it does in v6.1, so a v6.1 (``legacy``) model allocates
  ``PAGE_ALIGN(data - kallsyms) + PAGE_ALIGN(kallsyms)`` exactly.  ``data - kallsyms`` is
  ``ALIGN(data_sections, symtab sh_addralign)``, which pages like ``data_sections``
  (checked at parse time).  ``data_sections``/``init_data_sections`` are kept too.
* ``.exit*`` sections follow CONFIG_MODULE_UNLOAD (Debian: y → core text).

Loader write work, counted from the file (the schema's definitions):

* ``relocs``/``reloc_secs``: entries of SHT_RELA sections (x86-64 modules use RELA only;
  ``apply_relocations()`` skips sections whose target is not SHF_ALLOC) whose target
  section lands in MOD_TEXT, MOD_RODATA, MOD_INIT_TEXT or MOD_INIT_RODATA.
* ``alt_sites``: ``.altinstructions`` / ALT_INSTR_SIZE + ``.parainstructions`` /
  PARA_SITE_SIZE + ``.retpoline_sites``, ``.return_sites``, ``.call_sites``,
  ``.ibt_endbr_seal`` / 4 (``arch/x86/kernel/module.c`` ``module_finalize()``).
* ``orc_entries``: ``.orc_unwind_ip`` / 4 (``unwind_module_init``, one ``int`` per entry).
* ``mcount_locs``: ftrace call sites, one ``unsigned long`` (8 bytes) each in the section
  ``find_module_sections()`` reads as ``FTRACE_CALLSITE_SECTION`` (include/linux/ftrace.h):
  ``__mcount_loc`` on x86-64, ``__patchable_function_entries`` on arm64 (built with
  ``-fpatchable-function-entry``; scripts/module.lds.S merges them into one section).

arm64 (``EM_AARCH64``; the architecture is read from ``e_machine``):

* ``module_frob_arch_sections()`` (arch/arm64/kernel/module-plts.c, v6.1, v6.12, 7.2) runs in
  ``layout_and_allocate()`` before ``layout_sections()`` and resizes the one-byte
  placeholders of arch/arm64/include/asm/module.lds.h: ``.plt`` and ``.init.plt`` become
  ``SHT_NOBITS``, ``SHF_EXECINSTR | SHF_ALLOC``, ``sh_addralign = L1_CACHE_BYTES`` (64,
  arch/arm64/include/asm/cache.h), ``sh_size = (count + 1) * sizeof(struct plt_entry)``
  (12 bytes: adrp, add, br); ``.text.ftrace_trampoline`` (and, where the module has it,
  ``.init.text.ftrace_trampoline``, added with a7ed7b9d0ebb "arm64: ftrace: fix unreachable
  PLT for ftrace_caller in init_module with CONFIG_DYNAMIC_FTRACE", v6.17, in Debian's
  6.12.117) become ``NR_FTRACE_PLTS * 12`` bytes aligned to 4.  ``NR_FTRACE_PLTS`` is 2 in
  v6.1 (``FTRACE_PLT_IDX`` + ``FTRACE_REGS_PLT_IDX``, arch/arm64/include/asm/ftrace.h) and 1
  from v6.2 (26299b3f6ba2 "ftrace: arm64: move from REGS to ARGS").
* ``count`` is ``count_plts()`` summed over the SHT_RELA sections whose target is
  ``SHF_EXECINSTR``, core or init by the target's name (``module_init_layout_section()``):
  one slot per ``R_AARCH64_JUMP26``/``R_AARCH64_CALL26`` whose symbol is not defined in the
  target section, except that a relocation with addend 0 equal in (type, symbol, addend) to
  the one before it is not counted.  "The one before" is after
  ``partition_branch_plt_relas()`` + ``sort()`` of the partitioned prefix; see
  :func:`count_plts` for what that makes of the kernel's loop.  The relocations counted are
  the branches that *could* need a PLT entry (``plt_core``/``plt_init``); how many of them
  target undefined symbols (the kernel or other modules) is ``plt_core_ext``/``plt_init_ext``
  -- the others target this module's own other sections.
* Not modelled: erratum 843419 veneers (``count_plts()`` counts ``ADR_PREL_PG_HI21`` only
  when the CPU has ``ARM64_WORKAROUND_843419``, i.e. Cortex-A53 r0p0-r0p4; QEMU's ``max``
  CPU and Neoverse cores do not), and the section alignment it raises.
* ``alt_sites``: ``.altinstructions`` / 12 (arch/arm64/include/asm/alternative.h ``struct
  alt_instr``: two s32, a u16, two u8 -- 12 bytes in v6.1, v6.12 and 7.2;
  ``module_finalize()`` -> ``apply_alternatives_module()``).  The x86-only sections do not
  exist on arm64; ``orc_entries`` is 0 (no ORC unwinder).
* CONFIG_KALLSYMS_ALL is not set in Debian's 6.1 arm64 config (it is in 6.12 and 7.2):
  ``is_core_symbol()`` then keeps only symbols of ``SHF_EXECINSTR`` sections and no per-CPU
  symbols (``kallsyms_all=False``).
"""

from __future__ import annotations

import dataclasses
import io
from typing import BinaryIO

import numpy as np
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

# include/uapi/linux/elf.h
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_RO_AFTER_INIT = 0x00200000
# arch/x86/include/asm/module.h does not define ARCH_SHF_SMALL -> include/linux/moduleloader.h: 0
ARCH_SHF_SMALL = 0

# arch/x86/include/asm/alternative.h (v6.1): struct alt_instr {s32 instr_offset;
# s32 repl_offset; u16 cpuid; u8 instrlen; u8 replacementlen;} __packed = 12 bytes.
# (v6.3+ widened cpuid to u32 ft_flags -> 14 bytes; pass alt_instr_size=14 for those.)
ALT_INSTR_SIZE_V61 = 12
# arch/x86/include/asm/paravirt_types.h (v6.1): struct paravirt_patch_site {u8 *instr;
# u8 type; u8 len;} -> 8 + 1 + 1, padded to the pointer's 8-byte alignment = 16 bytes.
PARA_SITE_SIZE_V61 = 16
# .retpoline_sites/.return_sites/.call_sites/.ibt_endbr_seal: arrays of s32 (4 bytes).
S32_SITE = 4
# arch/x86/kernel/unwind_orc.c: .orc_unwind_ip is an array of int (4 bytes).
ORC_IP_SIZE = 4
# kernel/trace/ftrace.c: __mcount_loc is an array of unsigned long (8 bytes on x86-64).
MCOUNT_LOC_SIZE = 8
# sizeof(Elf64_Sym), include/uapi/linux/elf.h
ELF64_SYM_SIZE = 24
# include/linux/module.h (v6.1): struct mod_kallsyms, 4 pointer-sized words
MOD_KALLSYMS_SIZE = 32
MOD_KALLSYMS_ALIGN = 8
SHN_UNDEF = 0

#: e_machine -> architecture name used throughout execbench
ARCH_OF_MACHINE = {"EM_X86_64": "x86_64", "EM_AARCH64": "arm64"}
# include/uapi/linux/elf.h / the AArch64 ELF ABI
R_AARCH64_JUMP26 = 282
R_AARCH64_CALL26 = 283
#: arch/arm64/include/asm/module.h struct plt_entry {__le32 adrp, add, br;}
PLT_ENTRY_SIZE = 12
#: arch/arm64/include/asm/cache.h: L1_CACHE_SHIFT 6
ARM64_L1_CACHE_BYTES = 64
#: __alignof__(struct plt_entry)
PLT_ENTRY_ALIGN = 4
#: arch/arm64/include/asm/alternative.h struct alt_instr (v6.1, v6.12, 7.2)
ARM64_ALT_INSTR_SIZE = 12
#: columns only an arm64 layout has (module tables of other architectures leave them out);
#: the ``*_kernel`` ones need every module of the build (:func:`kernel_targets`)
ARM64_COLUMNS = ("plt_core", "plt_core_ext", "plt_core_kernel", "plt_init", "plt_init_ext",
                 "plt_init_kernel")
#: a symbol ``__ksymtab_<name>`` marks ``<name>`` as exported (include/linux/export.h,
#: 6.1-7.2; modpost's *.mod.c in v6.5+)
KSYMTAB_PREFIX = "__ksymtab_"

#: enum mod_mem_type names (v6.4 include/linux/module.h), schema column order.
MEM_TYPES = ("text", "rodata", "ro_after_init", "data", "init_text", "init_rodata", "init_data")

_MASKS = (
    (SHF_EXECINSTR | SHF_ALLOC, ARCH_SHF_SMALL),
    (SHF_ALLOC, SHF_WRITE | ARCH_SHF_SMALL),
    (SHF_RO_AFTER_INIT | SHF_ALLOC, ARCH_SHF_SMALL),
    (SHF_WRITE | SHF_ALLOC, ARCH_SHF_SMALL),
    (ARCH_SHF_SMALL | SHF_ALLOC, 0),
)
_CORE_TYPES = ("text", "rodata", "ro_after_init", "data", "data")
# v6.1 keeps init mask-2 sections in the writable init part (see module docstring).
_INIT_TYPES = ("init_text", "init_rodata", "init_data", "init_data", "init_data")
_WRITE_WORK_TYPES = frozenset({"text", "rodata", "init_text", "init_rodata"})
_DROPPED = (".modinfo", "__versions", ".data..percpu")
#: v6.1 ``layout_and_allocate()``: these get SHF_RO_AFTER_INIT (first SHF_ALLOC section of
#: each name, ``find_sec()``)
RO_AFTER_INIT_SECS_V61 = (".data..ro_after_init", "__jump_table")
#: Since Linux kernel commit 60b57b9cb002 ("module: Make .static_call_sites read-only after
#: init") (in v6.16), kernel/module/strict_rwx.c ``module_mark_ro_after_init()`` (added by
#: f7984942630b in the same series, 20250306131430.7016-1-petr.pavlu@suse.com) marks every
#: section of these names, ``.static_call_sites`` under CONFIG_HAVE_STATIC_CALL_INLINE (x86-64).
RO_AFTER_INIT_SECS_V616 = (".data..ro_after_init", "__jump_table", ".static_call_sites")


class ModuleParseError(ValueError):
    """A .ko that is not a relocatable 64-bit ELF module of a known architecture, with the file named."""


@dataclasses.dataclass(frozen=True)
class ModuleLayout:
    """Per-type sizes and loader write work of one module, as the loader computes them."""

    module: str
    text: int
    rodata: int
    ro_after_init: int
    data: int
    init_text: int
    init_rodata: int
    init_data: int
    data_sections: int
    init_data_sections: int
    kallsyms: int
    init_kallsyms: int
    align: int
    relocs: int
    reloc_secs: int
    alt_sites: int
    orc_entries: int
    mcount_locs: int
    percpu: int
    nsyms: int
    ncore_syms: int
    init_ro_after_init_secs: int
    depends: str
    license: str
    intree: bool
    arch: str = "x86_64"
    plt_core: int = 0
    plt_core_ext: int = 0
    plt_init: int = 0
    plt_init_ext: int = 0
    #: names of the undefined symbols behind the counted core/init PLT slots (one per slot)
    plt_core_targets: tuple[str, ...] = ()
    plt_init_targets: tuple[str, ...] = ()
    #: symbols this module exports (``__ksymtab_<name>``)
    exports: tuple[str, ...] = ()

    def record(self, module_exports: frozenset[str] | None = None) -> dict[str, object]:
        """The layout as a table row: arm64-only columns only for arm64 (no ``arch`` key).

        ``module_exports`` (every symbol the build's modules export) fills
        ``plt_*_kernel``: slots whose target no module exports, i.e. a vmlinux symbol."""
        d = dataclasses.asdict(self)
        for k in ("arch", "plt_core_targets", "plt_init_targets", "exports"):
            d.pop(k)
        if self.arch != "arm64":
            return {k: v for k, v in d.items() if k not in ARM64_COLUMNS}
        if module_exports is None:
            raise ValueError(f"{self.module}: plt_*_kernel need the exports of every module")
        d["plt_core_kernel"] = sum(1 for n in self.plt_core_targets if n not in module_exports)
        d["plt_init_kernel"] = sum(1 for n in self.plt_init_targets if n not in module_exports)
        return d


def _align(x: int, a: int) -> int:
    a = a or 1
    return (x + a - 1) // a * a


def _modinfo(elf: ELFFile) -> dict[str, str]:
    sec = elf.get_section_by_name(".modinfo")
    if sec is None:
        return {}
    out: dict[str, str] = {}
    for item in sec.data().split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            out.setdefault(k.decode("utf-8", "replace"), v.decode("utf-8", "replace"))
    return out


_SYM_DTYPE = np.dtype([("st_name", "<u4"), ("st_info", "u1"), ("st_other", "u1"),
                       ("st_shndx", "<u2"), ("st_value", "<u8"), ("st_size", "<u8")])


def _core_symbols(symsec, strsec, flags, placed, pcpu_idx, livepatch, source, kallsyms_all=True):
    """Count the symbols ``layout_symtab()`` keeps in core and the bytes of their names.

    kernel/module/kallsyms.c (v6.1) ``is_core_symbol()``: reject SHN_UNDEF, st_shndx >= shnum
    (this also rejects SHN_ABS/SHN_COMMON) and unnamed symbols; with CONFIG_KALLSYMS_ALL keep
    per-CPU symbols; else keep symbols whose section is SHF_ALLOC (and, without
    CONFIG_KALLSYMS_ALL, SHF_EXECINSTR) and not laid out as init.  ``flags`` are the section
    flags after ``module_frob_arch_sections()``.
    Vectorised with numpy because big modules have tens of thousands of symbols.
    """
    raw = np.frombuffer(symsec.data(), dtype=_SYM_DTYPE)
    strtab = np.frombuffer(strsec.data(), dtype=np.uint8)
    if raw.size == 0:
        return 0, 0
    shnum = len(flags)
    core_sec = np.zeros(shnum, dtype=bool)
    need = SHF_ALLOC if kallsyms_all else SHF_ALLOC | SHF_EXECINSTR
    for i, f in enumerate(flags):
        core_sec[i] = (f & need) == need and not placed.get(i, "").startswith("init")
    shndx = raw["st_shndx"].astype(np.int64)
    valid = (shndx != SHN_UNDEF) & (shndx < shnum) & (raw["st_name"] != 0)
    keep = np.zeros(raw.size, dtype=bool)
    idx_ok = np.where(valid, shndx, 0)
    pcpu = (shndx[valid] == pcpu_idx) & (pcpu_idx != 0) & kallsyms_all
    keep[valid] = pcpu | core_sec[idx_ok[valid]]
    keep[0] = True
    if livepatch:
        keep[:] = True
    nul = np.flatnonzero(strtab == 0)
    starts = raw["st_name"][keep].astype(np.int64)
    if starts.size and (nul.size == 0 or starts.max() > nul[-1]):
        raise ModuleParseError(f"{source}: symbol name offset outside .strtab")
    ends = nul[np.searchsorted(nul, starts)]
    return int(keep.sum()), int((ends - starts).sum() + starts.size)


def machine_arch(data: bytes | BinaryIO, source: str) -> str:
    """Architecture of a .ko from its ELF header (``e_machine``), e.g. ``"arm64"``."""
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        machine = ELFFile(stream)["e_machine"]
    except ELFError as exc:
        raise ModuleParseError(f"{source}: bad ELF: {exc}") from exc
    if machine not in ARCH_OF_MACHINE:
        raise ModuleParseError(f"{source}: e_machine {machine} is not one of {sorted(ARCH_OF_MACHINE)}")
    return ARCH_OF_MACHINE[machine]


def nr_ftrace_plts_for(version: tuple[int, int]) -> int:
    """arm64 ``NR_FTRACE_PLTS``: 2 before v6.2 (``FTRACE_REGS_PLT_IDX``), 1 from v6.2
    (26299b3f6ba2 "ftrace: arm64: move from REGS to ARGS")."""
    return 2 if version < (6, 2) else 1


def layout_module(
    data: bytes | BinaryIO,
    source: str,
    *,
    module_unload: bool = True,
    alt_instr_size: int = ALT_INSTR_SIZE_V61,
    para_site_size: int = PARA_SITE_SIZE_V61,
    fallback_name: str | None = None,
    ro_after_init_secs: tuple[str, ...] = RO_AFTER_INIT_SECS_V61,
    arch: str | None = None,
    kallsyms_all: bool = True,
    nr_ftrace_plts: int = 1,
    _sections_out: list | None = None,
) -> ModuleLayout:
    """Parse one decompressed .ko and lay it out as the v6.1 loader does.

    ``source`` names the file in errors.  ``arch`` (``"x86_64"`` or ``"arm64"``) must match
    the file's ``e_machine`` when given; ``None`` takes it from the file.  On arm64 the
    ``alt_instr_size``/``para_site_size`` arguments do not apply (see the module docstring)
    and ``nr_ftrace_plts`` sizes the ftrace PLT sections (:func:`nr_ftrace_plts_for`).
    Raises ModuleParseError on anything that is not a 64-bit little-endian relocatable ELF
    with a symbol table.
    """
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        elf = ELFFile(stream)
        if elf.elfclass != 64 or not elf.little_endian or elf["e_type"] != "ET_REL":
            raise ModuleParseError(f"{source}: not a 64-bit little-endian relocatable ELF")
        found = ARCH_OF_MACHINE.get(elf["e_machine"])
        if found is None:
            raise ModuleParseError(f"{source}: e_machine {elf['e_machine']} is not one of "
                                   f"{sorted(ARCH_OF_MACHINE)}")
        if arch is not None and arch != found:
            raise ModuleParseError(f"{source}: an {found} module, but the table is for {arch}")
        shdrs = [elf.get_section(i) for i in range(elf.num_sections())]
        return _layout(elf, shdrs, source, module_unload, alt_instr_size, para_site_size,
                       fallback_name, ro_after_init_secs, arch=found, kallsyms_all=kallsyms_all,
                       nr_ftrace_plts=nr_ftrace_plts, sections_out=_sections_out)
    except ELFError as exc:
        raise ModuleParseError(f"{source}: bad ELF: {exc}") from exc


_RELA_DTYPE = np.dtype([("r_offset", "<u8"), ("r_info", "<u8"), ("r_addend", "<i8")])


def count_plts(rela: np.ndarray, sym_shndx: np.ndarray, dstidx: int,
               ext_syms: list[int] | None = None) -> tuple[int, int]:
    """``count_plts()`` of one SHT_RELA section (arch/arm64/kernel/module-plts.c, v6.1-7.2):
    (PLT slots reserved, of which for undefined symbols).

    The kernel first calls ``partition_branch_plt_relas()`` (two indices ``i`` from the
    front, ``j`` from the back, swapping, ``while (i < j)``), sorts the returned prefix
    ``rela[0..nents)`` by (type, symbol index, signed addend) (``cmp_rela``), then walks
    *all* entries: a JUMP26/CALL26 whose symbol is not in the target section counts unless
    its addend is 0 and ``duplicate_rel()`` finds it equal to the entry just before it.

    What that loop makes of the array (worked out from the loop; tests/test_record_modules.py
    checks it against a literal transcription): the partition always ends with the N
    branch relocations in positions ``0..N-1``, and ``nents`` is N -- except when *every*
    entry of the section is such a branch (then no swap happens and the loop stops at
    ``i == j == N - 1``): ``nents`` is N - 1 and the last entry stays unsorted after the
    sorted others, compared only with their largest key.  So the count is, over the sorted
    entries, one per distinct key with addend 0 plus one per entry with a non-zero addend;
    plus, in that edge case, one for the last entry unless its addend is 0 and its key equals
    the largest key of the others.  ``ext_syms`` receives the symbol index of every counted
    slot whose symbol is undefined.
    """
    if rela.size == 0:
        return 0, 0
    typ = (rela["r_info"] & 0xFFFFFFFF).astype(np.int64)
    sym = (rela["r_info"] >> np.uint64(32)).astype(np.int64)
    if sym.max() >= sym_shndx.size:
        raise ValueError(f"relocation symbol index {int(sym.max())} outside the symbol table")
    shndx = sym_shndx[sym]
    need = ((typ == R_AARCH64_JUMP26) | (typ == R_AARCH64_CALL26)) & (shndx != dstidx)
    n_need = int(need.sum())
    if n_need == 0:
        return 0, 0
    last = None
    if n_need == rela.size:
        last = (typ[-1], sym[-1], int(rela["r_addend"][-1]), shndx[-1] == SHN_UNDEF)
        need = need.copy()
        need[-1] = False
        if n_need == 1:
            if last[3] and ext_syms is not None:
                ext_syms.append(int(last[1]))
            return 1, int(last[3])
    t, y, a = typ[need], sym[need], rela["r_addend"][need].astype(np.int64)
    und = shndx[need] == SHN_UNDEF
    order = np.lexsort((a, y, t))
    t, y, a, und = t[order], y[order], a[order], und[order]
    dup = np.zeros(t.size, dtype=bool)
    dup[1:] = (t[1:] == t[:-1]) & (y[1:] == y[:-1]) & (a[1:] == a[:-1])
    counted = (a != 0) | ~dup
    total, ext = int(counted.sum()), int((counted & und).sum())
    if ext_syms is not None:
        ext_syms.extend(int(v) for v in y[counted & und])
    if last is not None:
        lt, ly, la, lund = last
        if la != 0 or (lt, ly, la) != (t[-1], y[-1], a[-1]):
            total += 1
            ext += int(lund)
            if lund and ext_syms is not None:
                ext_syms.append(int(ly))
    return total, ext


def _exports(symsec, strsec) -> tuple[str, ...]:
    """Names this module exports: its ``__ksymtab_<name>`` symbols."""
    raw = np.frombuffer(symsec.data(), dtype=_SYM_DTYPE)
    strtab = strsec.data()
    pre = KSYMTAB_PREFIX.encode()
    out = []
    for off in raw["st_name"][raw["st_name"] != 0]:
        off = int(off)
        if strtab.startswith(pre, off):
            out.append(strtab[off + len(pre):strtab.index(b"\0", off)].decode("utf-8", "replace"))
    return tuple(sorted(set(out) - {"strings", "gpl"}))


def module_exports(layouts) -> frozenset[str]:
    """Every symbol a set of modules exports (for ``ModuleLayout.record``)."""
    return frozenset(n for lay in layouts for n in lay.exports)


def _frob_arm64(shdrs, names, flags, sizes, aligns, source, is_init, nr_ftrace_plts):
    """arm64 ``module_frob_arch_sections()``: resize the PLT sections; return the counts."""
    idx = {n: i for i, n in enumerate(names)}  # the kernel's loop keeps the last of a name
    if ".plt" not in idx or ".init.plt" not in idx:
        raise ModuleParseError(f"{source}: module PLT section(s) missing (the arm64 loader "
                               "refuses the module)")
    symidx = next((i for i, s in enumerate(shdrs) if s["sh_type"] == "SHT_SYMTAB"), None)
    if symidx is None:
        raise ModuleParseError(f"{source}: module symtab section missing")
    syms = np.frombuffer(shdrs[symidx].data(), dtype=_SYM_DTYPE)
    sym_shndx = syms["st_shndx"].astype(np.int64)
    strtab = shdrs[int(shdrs[symidx]["sh_link"])].data()
    core = [0, 0, []]
    init = [0, 0, []]
    for i, s in enumerate(shdrs):
        if s["sh_type"] != "SHT_RELA":
            continue
        dst = int(s["sh_info"])
        if dst >= len(shdrs) or not flags[dst] & SHF_EXECINSTR:
            continue
        rela = np.frombuffer(s.data(), dtype=_RELA_DTYPE)
        acc = init if is_init(names[dst]) else core
        try:
            n, ext = count_plts(rela, sym_shndx, dst, acc[2])
        except ValueError as exc:
            raise ModuleParseError(f"{source}: section {names[i]}: {exc}") from exc
        acc[0] += n
        acc[1] += ext
    for name, count in ((".plt", core[0]), (".init.plt", init[0])):
        i = idx[name]
        flags[i] = SHF_EXECINSTR | SHF_ALLOC
        aligns[i] = ARM64_L1_CACHE_BYTES
        sizes[i] = (count + 1) * PLT_ENTRY_SIZE
    for name in (".text.ftrace_trampoline", ".init.text.ftrace_trampoline"):
        if name in idx:
            i = idx[name]
            flags[i] = SHF_EXECINSTR | SHF_ALLOC
            aligns[i] = PLT_ENTRY_ALIGN
            sizes[i] = nr_ftrace_plts * PLT_ENTRY_SIZE

    def name(k: int) -> str:
        off = int(syms["st_name"][k])
        return strtab[off:strtab.index(b"\0", off)].decode("utf-8", "replace")

    return ((core[0], core[1], tuple(name(k) for k in core[2])),
            (init[0], init[1], tuple(name(k) for k in init[2])))


def section_layout(data: bytes | BinaryIO, source: str, **opts) -> list[tuple[str, str, int, int]]:
    """(section, mod_mem_type, offset in that type, size) of every section the loader lays
    out, in layout order -- the same rules as :func:`layout_module` (same keyword
    arguments).  Why: ``/sys/module/<name>/sections/<section>`` shows where the kernel put
    each section, so a recording can check the layout byte by byte."""
    out: list[tuple[str, str, int, int]] = []
    layout_module(data, source, _sections_out=out, **opts)
    return out


def _layout(elf, shdrs, source, module_unload, alt_instr_size, para_site_size, fallback_name,
            ro_after_init_secs=RO_AFTER_INIT_SECS_V61, arch="x86_64", kallsyms_all=True,
            nr_ftrace_plts=1, sections_out=None):
    names = [s.name for s in shdrs]
    flags = [int(s["sh_flags"]) for s in shdrs]
    sizes_sh = [int(s["sh_size"]) for s in shdrs]
    aligns = [int(s["sh_addralign"]) for s in shdrs]
    info = _modinfo(elf)
    module = info.get("name") or fallback_name
    if not module:
        raise ModuleParseError(f"{source}: no .modinfo name= and no file name to fall back on")
    module = module.replace("-", "_")

    percpu = 0
    pcpu_idx = 0  # info->index.pcpu: 0 when the module has no per-CPU section
    for drop in _DROPPED:
        # find_sec(): first section with that name that has SHF_ALLOC.
        for i, n in enumerate(names):
            if n == drop and flags[i] & SHF_ALLOC:
                flags[i] &= ~SHF_ALLOC
                if drop == ".data..percpu":
                    percpu = int(shdrs[i]["sh_size"])
                    pcpu_idx = i
                break
    every = ro_after_init_secs != RO_AFTER_INIT_SECS_V61   # module_mark_ro_after_init() (v6.16)
    for special in ro_after_init_secs:
        for i, n in enumerate(names):
            if n == special and (every or flags[i] & SHF_ALLOC):
                flags[i] |= SHF_RO_AFTER_INIT
                if not every:
                    break

    for i, f in enumerate(flags):
        if f & SHF_ALLOC and (f & (SHF_WRITE | SHF_EXECINSTR)) == (SHF_WRITE | SHF_EXECINSTR):
            # module_enforce_rwx_sections(): the kernel refuses such a module.
            raise ModuleParseError(f"{source}: section {names[i]} is WRITE|EXEC; the loader rejects it")

    def is_init(name: str) -> bool:
        if not module_unload and name.startswith(".exit"):
            return True
        return name.startswith(".init")

    plt_core = plt_init = (0, 0, ())
    exports: tuple[str, ...] = ()
    if arch == "arm64":
        # layout_and_allocate(): module_frob_arch_sections() comes before layout_sections()
        plt_core, plt_init = _frob_arm64(shdrs, names, flags, sizes_sh, aligns, source, is_init,
                                         nr_ftrace_plts)

    sizes = dict.fromkeys(MEM_TYPES, 0)
    placed: dict[int, str] = {}
    init_rai = 0
    for init_pass, types in ((False, _CORE_TYPES), (True, _INIT_TYPES)):
        for m, (need, excl) in enumerate(_MASKS):
            for i, s in enumerate(shdrs):
                f = flags[i]
                if (f & need) != need or (f & excl) or i in placed or is_init(names[i]) != init_pass:
                    continue
                t = types[m]
                off = _align(sizes[t], aligns[i])
                sizes[t] = off + sizes_sh[i]
                placed[i] = t
                if sections_out is not None:
                    sections_out.append((names[i], t, off, sizes_sh[i]))
                if init_pass and m == 2:
                    init_rai += 1
    data_sections = sizes["data"]
    init_data_sections = sizes["init_data"]

    # Largest sh_addralign among the sections laid into MOD_TEXT / MOD_INIT_TEXT.
    text_align = max((aligns[i] or 1 for i, t in placed.items()
                      if t in ("text", "init_text")), default=0)

    # layout_symtab()
    symidx = next((i for i, s in enumerate(shdrs) if s["sh_type"] == "SHT_SYMTAB"), None)
    if symidx is None:
        raise ModuleParseError(f"{source}: no symbol table (the loader refuses modules without one)")
    symsec = shdrs[symidx]
    strsec = shdrs[int(symsec["sh_link"])]
    nsrc = int(symsec["sh_size"]) // ELF64_SYM_SIZE
    livepatch = info.get("livepatch", "") == "Y"
    shnum = len(shdrs)
    ndst, strtab_size = _core_symbols(symsec, strsec, flags, placed, pcpu_idx, livepatch, source,
                                      kallsyms_all)
    sym_align, str_align = int(symsec["sh_addralign"]), int(strsec["sh_addralign"])

    def core_kallsyms(start: int) -> int:
        # symoffs = ALIGN(size, symtab align); + ndst Elf_Sym; + their names; + ndst type bytes
        return _align(start, sym_align) + ndst * ELF64_SYM_SIZE + strtab_size + ndst

    def init_kallsyms(start: int) -> int:
        # whole .symtab, whole .strtab, struct mod_kallsyms (8-aligned), nsrc type bytes
        end = _align(start, sym_align) + int(symsec["sh_size"])
        end = _align(end, str_align) + int(strsec["sh_size"])
        return _align(end, MOD_KALLSYMS_ALIGN) + MOD_KALLSYMS_SIZE + nsrc

    # v6.4+: appended right after the data sections (the per-type sums of the table)
    sizes["data"] = core_kallsyms(sizes["data"])
    sizes["init_data"] = init_kallsyms(sizes["init_data"])
    # v6.1: appended after strict_align() (PAGE_ALIGN under STRICT_MODULE_RWX): from a page
    # boundary, i.e. from offset 0 of a page
    kallsyms, init_kallsyms_ = core_kallsyms(0), init_kallsyms(0)
    for total, k, secs, what in ((sizes["data"], kallsyms, data_sections, "data"),
                                 (sizes["init_data"], init_kallsyms_, init_data_sections, "init_data")):
        if -(-(total - k) // 4096) != -(-secs // 4096):
            raise ModuleParseError(f"{source}: {what} minus its kallsyms ({total - k}) does not page "
                                   f"like its sections ({secs}); symtab/strtab alignment > page?")

    relocs = reloc_secs = 0
    for s in shdrs:
        if s["sh_type"] != "SHT_RELA":
            continue
        tgt = int(s["sh_info"])
        if tgt >= shnum or not flags[tgt] & SHF_ALLOC:
            continue
        if placed.get(tgt) in _WRITE_WORK_TYPES:
            reloc_secs += 1
            relocs += int(s["sh_size"]) // (int(s["sh_entsize"]) or 24)

    def count(name: str, entsize: int) -> int:
        for i, n in enumerate(names):
            if n == name and flags[i] & SHF_ALLOC:
                size = int(shdrs[i]["sh_size"])
                if size % entsize:
                    raise ModuleParseError(
                        f"{source}: section {name} size {size} is not a multiple of its "
                        f"entry size {entsize}")
                return size // entsize
        return 0

    if arch == "arm64":
        # arch/arm64/kernel/module.c module_finalize(): only .altinstructions
        alt_sites = count(".altinstructions", ARM64_ALT_INSTR_SIZE)
        ftrace_sites = count("__patchable_function_entries", MCOUNT_LOC_SIZE)
    else:
        alt_sites = (count(".altinstructions", alt_instr_size) + count(".parainstructions", para_site_size)
                     + count(".retpoline_sites", S32_SITE) + count(".return_sites", S32_SITE)
                     + count(".call_sites", S32_SITE) + count(".ibt_endbr_seal", S32_SITE))
        ftrace_sites = count("__mcount_loc", MCOUNT_LOC_SIZE)

    return ModuleLayout(
        module=module,
        **sizes,
        data_sections=data_sections,
        init_data_sections=init_data_sections,
        kallsyms=kallsyms,
        init_kallsyms=init_kallsyms_,
        align=text_align,
        relocs=relocs,
        reloc_secs=reloc_secs,
        alt_sites=alt_sites,
        orc_entries=count(".orc_unwind_ip", ORC_IP_SIZE),
        mcount_locs=ftrace_sites,
        percpu=percpu,
        nsyms=nsrc,
        ncore_syms=ndst,
        init_ro_after_init_secs=init_rai,
        depends=info.get("depends", ""),
        license=info.get("license", ""),
        intree=info.get("intree", "") == "Y",
        arch=arch,
        plt_core=plt_core[0],
        plt_core_ext=plt_core[1],
        plt_init=plt_init[0],
        plt_init_ext=plt_init[1],
        plt_core_targets=plt_core[2],
        plt_init_targets=plt_init[2],
        exports=_exports(symsec, strsec) if arch == "arm64" else (),
    )
