"""BPF recorder: the BPF programs embedded in libbpf-tools executables, one row per program.

Why: the BPF workloads must load real programs of real sizes.  libbpf-tools ships each
tool's BPF object as an ELF image embedded in the executable (libbpf skeleton,
``<tool>_bpf__elf_bytes``); docs/data-sources.md §3 found them by scanning for ELF headers
with ``e_machine == EM_BPF`` (247).  We do the same, then count per program (one FUNC
symbol in an executable section other than ``.text``, libbpf ``bpf_object__init_prog``):

* ``insns``: ``st_size / 8`` (``struct bpf_insn`` is 8 bytes; a 16-byte ``ld_imm64``
  counts as two, as in the kernel's ``prog->len``);
* ``subprog_insns``: the ``.text`` functions the program calls, transitively
  (BPF-to-BPF calls: ``BPF_JMP|BPF_CALL`` with ``src_reg == BPF_PSEUDO_CALL``; libbpf's
  ``bpf_object__reloc_code`` appends each called subprogram once to the program);
* ``attach_category`` from the section name (libbpf ``section_defs``), ``target`` the
  part after the first '/', and ``fallback_twin`` (docs/data-sources.md §3.4): a kprobe whose
  object also has an fentry/fexit on the same function, or a raw_tp/tracepoint whose
  object also has a tp_btf on the same event — on a BTF kernel the tool loads the other.

JIT bytes (``jit_bytes_est``): the ``bpf_jit_binary_pack_alloc()`` request measured
for the program on Debian's 6.1 kernel (:data:`JIT_MEASUREMENT`, written by
recorders/qemu/jitsize.py) when the measurement has it, else
``(insns + subprog_insns) * JIT_BYTES_PER_INSN``.  See :func:`jit_bytes_est`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
import struct
from collections.abc import Iterable, Iterator

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .sources import DebInfo, deb_info, iter_deb_files, iter_dir_files

EM_BPF = 247            # include/uapi/linux/elf-em.h
BPF_INSN_SIZE = 8       # sizeof(struct bpf_insn), include/uapi/linux/bpf.h
BPF_JMP_CALL = 0x85     # BPF_JMP | BPF_CALL
BPF_PSEUDO_CALL = 1     # src_reg of a BPF-to-BPF call
SHF_EXECINSTR = 0x4

#: Published x86-64 ``bpftool prog show`` outputs: (bytes_xlated, bytes_jited, where).
#: xlated / 8 = instructions after the verifier; jited = the JIT image bytes that go
#: into bpf_prog_pack.  Pooled ratio sum(jited) / sum(xlated / 8) = 3279 / 663 = 4.95.
JIT_SAMPLES: tuple[tuple[int, int, str], ...] = (
    (528, 370, "Linux tools/bpf/bpftool/Documentation/bpftool-prog.rst, example 'some_prog' (xdp)"),
    (488, 336, "Linux tools/bpf/bpftool/Documentation/bpftool-prog.rst, example 'xdp_prog1'"),
    (512, 325, "public course notes, bpftool prog list, cgroup_device (systemd) program"),
    (528, 359, "public course notes, bpftool prog list, kprobe hello_world2 (BCC)"),
    (528, 299, "public project README, bpftool prog show, kprobe syscall__probe_ (#336)"),
    (2192, 1230, "public project README, bpftool prog show, kprobe syscall__probe_ (#337)"),
    (528, 360, "public blog post, bpftool prog show, kprobe hello_world (2024)"),
)
#: These are bytes per instruction AFTER the verifier (xlated).  The measurement below
#: agrees with them (jited / xlated pooled 4.84, median 4.83), but the tables count
#: instructions in the ELF, BEFORE the verifier, which removes dead code (branches on
#: .rodata constants) and rewrites calls: xlated / ELF pooled 0.81.  Applying 5 to ELF
#: counts overestimated the JIT size by about a quarter (pooled).

#: Measured x86-64 JIT sizes of the shipped programs on Debian's 6.1 kernel under QEMU
#: (recorders/qemu/jitsize.py, ``execbench record jit-sizes``): per program the ELF
#: instruction count and the ``bpf_jit_binary_pack_alloc()`` request(s) of its load.
JIT_MEASUREMENT = pathlib.Path(__file__).resolve().parents[1] / "data" / "bpf" / "jit-sizes-6.1.csv"

#: x86-64 JIT bytes per ELF instruction, for programs :data:`JIT_MEASUREMENT` does not
#: cover (they did not load on 6.1, or are not in the packages it read, e.g. systemd's
#: generated cgroup programs in recorders/churn.py): the pooled ratio
#: sum(alloc_bytes) / sum(elf_insns) of the 774 programs loaded there, 3.97, rounded
#: to 4 (per program: median 4.33, interquartile range 3.65-5.14; the TOML sidecar's
#: [summary]).  tests/test_jitsize.py recomputes it from the CSV.
JIT_BYTES_PER_INSN = 4

#: the measurement's key: the same program has the same section, name and counts
JitKey = tuple[str, str, str, int, int]   # (package=version, section, program, insns, subprog_insns)

_CATEGORIES = (
    (("kprobe", "kretprobe", "ksyscall", "kretsyscall", "kprobe.multi", "kretprobe.multi"), "kprobe"),
    (("fentry", "fexit", "fmod_ret", "lsm", "freplace", "fentry.s", "fexit.s", "lsm.s"), "trampoline"),
    (("tp_btf",), "tp_btf"),
    (("raw_tp", "raw_tracepoint", "raw_tp.w", "raw_tracepoint.w"), "raw_tp"),
    (("tracepoint", "tp"), "tracepoint"),
    (("perf_event",), "perf_event"),
    (("uprobe", "uretprobe", "usdt", "uprobe.s", "uretprobe.s", "uprobe.multi"), "uprobe"),
    (("xdp", "xdp.frags"), "xdp"),
    (("tc", "classifier", "action", "tcx"), "tc"),
    (("iter", "iter.s"), "iter"),
    (("struct_ops",), "struct_ops"),
)

TABLE_COLUMNS = ("package", "tool", "object_offset", "object_bytes", "section", "program",
                 "insns", "subprog_insns", "n_subprogs", "attach_category", "target",
                 "fallback_twin", "jit_bytes_est", "license")


class BpfRecordError(ValueError):
    """No BPF objects, or a corrupt one; the message names the file."""


def attach_category(section: str) -> str:
    """libbpf section name -> the attach category that decides which allocator is used."""
    base = section.split("/", 1)[0]
    if base.startswith("cgroup"):
        return "cgroup"
    for names, cat in _CATEGORIES:
        if base in names:
            return cat
    return "other"


def attach_target(section: str) -> str:
    """The function/event after the first '/' (empty when the tool sets it at run time)."""
    parts = section.split("/", 1)
    return parts[1] if len(parts) == 2 else ""


@dataclasses.dataclass(frozen=True)
class BpfProgram:
    tool: str
    object_offset: int
    object_bytes: int
    section: str
    program: str
    insns: int
    subprog_insns: int
    n_subprogs: int
    license: str


def find_bpf_objects(blob: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, image) for every embedded 64-bit little-endian EM_BPF relocatable ELF.

    The image extent is the end of its section header table (e_shoff + e_shnum *
    e_shentsize): libbpf skeletons embed the object file unchanged, and section headers
    come last in LLVM's output.
    """
    pos = 0
    while True:
        i = blob.find(b"\x7fELF\x02\x01", pos)
        if i < 0:
            return
        pos = i + 4
        if len(blob) < i + 64:
            continue
        e_type, e_machine = struct.unpack_from("<HH", blob, i + 16)
        if e_type != 1 or e_machine != EM_BPF:
            continue
        e_shoff, = struct.unpack_from("<Q", blob, i + 40)
        e_shentsize, e_shnum = struct.unpack_from("<HH", blob, i + 58)
        end = i + e_shoff + e_shnum * e_shentsize
        if e_shentsize != 64 or e_shnum == 0 or end > len(blob):
            continue
        yield i, blob[i:end]
        pos = end


def programs_of_object(image: bytes, tool: str, offset: int, where: str) -> list[BpfProgram]:
    """The programs of one BPF object, with their transitive subprogram sizes."""
    try:
        elf = ELFFile(io.BytesIO(image))
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            raise BpfRecordError(f"{where}: BPF object at {offset} has no .symtab")
        funcs: dict[int, list[tuple[int, int, str]]] = {}   # shndx -> [(value, size, name)]
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC" and isinstance(sym["st_shndx"], int):
                funcs.setdefault(sym["st_shndx"], []).append((sym["st_value"], sym["st_size"], sym.name))
        syms = list(symtab.iter_symbols())
        text_idx = next((i for i, s in enumerate(elf.iter_sections()) if s.name == ".text"), -1)
        # relocations per target section: insn offset -> symbol
        relocs: dict[int, dict[int, object]] = {}
        for sec in elf.iter_sections():
            if sec["sh_type"] in ("SHT_REL", "SHT_RELA"):
                tgt = sec["sh_info"]
                m = relocs.setdefault(tgt, {})
                for r in sec.iter_relocations():
                    m[r["r_offset"]] = syms[r["r_info_sym"]]
        lic_sec = elf.get_section_by_name("license")
        lic = lic_sec.data().split(b"\0", 1)[0].decode("ascii", "replace") if lic_sec is not None else ""

        def callees(shndx: int, value: int, size: int) -> set[tuple[int, int, str]]:
            """.text functions called directly from the insns [value, value+size) of shndx."""
            data = elf.get_section(shndx).data()
            out: set[tuple[int, int, str]] = set()
            for off in range(value, value + size, BPF_INSN_SIZE):
                code, regs = data[off], data[off + 1]
                if code != BPF_JMP_CALL or (regs >> 4) != BPF_PSEUDO_CALL:
                    continue
                imm, = struct.unpack_from("<i", data, off + 4)
                sym = relocs.get(shndx, {}).get(off)
                if sym is not None:
                    tsec, tinsn = sym["st_shndx"], sym["st_value"] // BPF_INSN_SIZE + imm + 1
                else:
                    tsec, tinsn = shndx, off // BPF_INSN_SIZE + imm + 1
                if tsec != text_idx:
                    continue
                for f in funcs.get(tsec, []):
                    if f[0] <= tinsn * BPF_INSN_SIZE < f[0] + max(f[1], 1):
                        out.add(f)
                        break
            return out

        progs: list[BpfProgram] = []
        for idx, sec in enumerate(elf.iter_sections()):
            if idx == text_idx or not sec["sh_flags"] & SHF_EXECINSTR or sec["sh_size"] == 0:
                continue
            for value, size, name in sorted(funcs.get(idx, [])):
                seen: set[tuple[int, int, str]] = set()
                todo = list(callees(idx, value, size))
                while todo:
                    f = todo.pop()
                    if f in seen:
                        continue
                    seen.add(f)
                    todo.extend(callees(text_idx, f[0], f[1]))
                progs.append(BpfProgram(tool, offset, len(image), sec.name, name, size // BPF_INSN_SIZE,
                                        sum(f[1] for f in seen) // BPF_INSN_SIZE, len(seen), lic))
        return progs
    except (ELFError, IndexError, struct.error) as exc:
        raise BpfRecordError(f"{where}: corrupt BPF object at offset {offset}: {exc}") from exc


def _mark_twins(rows: list[dict[str, object]]) -> None:
    by_obj: dict[tuple[str, int], list[dict[str, object]]] = {}
    for r in rows:
        by_obj.setdefault((str(r["tool"]), int(r["object_offset"])), []).append(r)
    for group in by_obj.values():
        tramp = {r["target"] for r in group if r["attach_category"] == "trampoline" and r["target"]}
        btf = {r["target"] for r in group if r["attach_category"] == "tp_btf" and r["target"]}
        for r in group:
            t = str(r["target"])
            if r["attach_category"] == "kprobe" and t in tramp:
                r["fallback_twin"] = "Y"
            elif r["attach_category"] in ("raw_tp", "tracepoint") and (t in btf or t.split("/")[-1] in btf):
                r["fallback_twin"] = "Y"


def record_bpf(src: pathlib.Path, prefixes: tuple[str, ...] = ("usr/sbin/", "usr/bin/"),
               measured: dict[JitKey, int] | None = None) -> tuple[list[dict[str, object]], DebInfo | None]:
    """Scan a package (or a directory of executables) for BPF programs: ELF
    objects with ``e_machine == EM_BPF``, stand-alone (``.o``) or embedded in
    executables and libraries, in the package files under ``prefixes``.  ``jit_bytes_est``
    comes from ``measured`` (default: :func:`measured_jit_sizes`), see :func:`jit_bytes_est`."""
    if measured is None:
        measured = measured_jit_sizes()
    if src.is_dir():
        files: Iterable[tuple[str, bytes]] = iter_dir_files(src, lambda rel: True)
        deb = None
    else:
        if not src.exists():
            raise BpfRecordError(f"{src}: no such file or directory")
        deb = deb_info(src)
        files = iter_deb_files(src, lambda rel: rel.startswith(prefixes))
    package = f"{deb.package}={deb.version}" if deb else f"dir:{src.name}"
    rows: list[dict[str, object]] = []
    for rel, blob in files:
        tool = pathlib.PurePosixPath(rel).name
        for off, image in find_bpf_objects(blob):
            for p in programs_of_object(image, tool, off, rel):
                rows.append({
                    "package": package, "tool": p.tool, "object_offset": p.object_offset,
                    "object_bytes": p.object_bytes, "section": p.section, "program": p.program,
                    "insns": p.insns, "subprog_insns": p.subprog_insns, "n_subprogs": p.n_subprogs,
                    "attach_category": attach_category(p.section), "target": attach_target(p.section),
                    "fallback_twin": "N",
                    "jit_bytes_est": jit_bytes_est(package, p.section, p.program, p.insns, p.subprog_insns,
                                                   measured),
                    "license": p.license,
                })
    if not rows:
        raise BpfRecordError(f"{src}: no embedded BPF programs found")
    _mark_twins(rows)
    rows.sort(key=lambda r: (r["tool"], r["object_offset"], r["section"], r["program"]))
    return rows, deb


def measured_jit_sizes(path: pathlib.Path = JIT_MEASUREMENT) -> dict[JitKey, int]:
    """(package, section, program, insns, subprog_insns) -> measured JIT request bytes,
    for the programs that loaded.  One key with two sizes is an error naming the row."""
    need = ("package", "section", "program", "insns", "subprog_insns", "alloc_bytes", "status")
    out: dict[JitKey, int] = {}
    try:
        with open(path, newline="") as f:
            r = csv.DictReader(f)
            missing = [c for c in need if c not in (r.fieldnames or ())]
            if missing:
                raise BpfRecordError(f"{path}: row 1: no column(s) {', '.join(missing)}")
            for n, row in enumerate(r, start=2):
                if row["status"] != "loaded":
                    continue
                try:
                    key = (row["package"], row["section"], row["program"], int(row["insns"]),
                           int(row["subprog_insns"]))
                    size = int(row["alloc_bytes"])
                except ValueError as exc:
                    raise BpfRecordError(f"{path}: row {n}: {exc}") from exc
                if size <= 0 or out.get(key, size) != size:
                    raise BpfRecordError(f"{path}: row {n}: program {key[2]} measured {size} bytes"
                                         f"{'' if size <= 0 else f', another row {out[key]}'}")
                out[key] = size
    except OSError as exc:
        raise BpfRecordError(f"{path}: {exc.strerror or exc}") from exc
    return out


def jit_bytes_est(package: str, section: str, program: str, insns: int, subprog_insns: int,
                  measured: dict[JitKey, int]) -> int:
    """The program's JIT request in bytes: measured on 6.1 when ``measured`` has it,
    else its ELF instructions (with subprograms) times :data:`JIT_BYTES_PER_INSN`."""
    got = measured.get((package, section, program, int(insns), int(subprog_insns)))
    return got if got is not None else (int(insns) + int(subprog_insns)) * JIT_BYTES_PER_INSN


def jit_bytes(insns: int) -> int:
    """Estimated x86-64 JIT image bytes for a program of ``insns`` instructions."""
    if insns <= 0:
        raise ValueError("a BPF program has at least one instruction")
    return insns * JIT_BYTES_PER_INSN

