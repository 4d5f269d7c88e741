"""Modules recorder: a per-module table of loader sizes and write work from a kernel package.

``execbench record modules <package.deb | /lib/modules/<ver>>`` parses every ``.ko``
(``.ko.xz``, ``.ko.gz``, ``.ko.zst`` too) with :mod:`modlayout` and writes one row per
module, sorted by module name, so that a boot workload can pick a real module set and
every size in it comes from one consistent kernel build (docs/data-sources.md §1, §2.1).

The table is derived numbers only (sizes, counts, names); no code or data bytes of the
GPL-2.0 modules are kept.  Re-running on the same input gives a byte-identical file:
rows are sorted, no timestamps or absolute paths are written.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import pathlib
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence

from .modlayout import (
    ALT_INSTR_SIZE_V61,
    ARM64_COLUMNS,
    MEM_TYPES,
    RO_AFTER_INIT_SECS_V61,
    RO_AFTER_INIT_SECS_V616,
    ModuleLayout,
    ModuleParseError,
    layout_module,
    machine_arch,
    module_exports,
    nr_ftrace_plts_for,
)
from .sources import DebInfo, SourceError, decompress, deb_info, iter_deb_files, iter_dir_files

#: Columns of the per-module table, in order.
TABLE_COLUMNS = (
    "kernel", "module", "relpath", "file_bytes",
    *MEM_TYPES,
    "data_sections", "init_data_sections", "kallsyms", "init_kallsyms", "align",
    "relocs", "reloc_secs", "alt_sites", "orc_entries", "mcount_locs",
    "percpu", "nsyms", "ncore_syms", "init_ro_after_init_secs",
    "intree", "license", "depends", "source",
)
#: arm64 tables carry the PLT candidates of ``module_frob_arch_sections()`` too
#: (modlayout.ARM64_COLUMNS), after ``init_ro_after_init_secs``.
_AT = TABLE_COLUMNS.index("intree")
TABLE_COLUMNS_ARM64 = (*TABLE_COLUMNS[:_AT], *ARM64_COLUMNS, *TABLE_COLUMNS[_AT:])
#: architecture -> its table columns
COLUMNS_FOR_ARCH = {"x86_64": TABLE_COLUMNS, "arm64": TABLE_COLUMNS_ARM64}
#: Debian package architecture -> execbench architecture
DEB_ARCH = {"amd64": "x86_64", "arm64": "arm64"}

_KO = re.compile(r"\.ko(\.xz|\.gz|\.zst)?$")
_MODDIR = re.compile(r"(?:^|/)lib/modules/([^/]+)/")
# struct alt_instr grew from 12 to 14 bytes when cpuid became u32 ft_flags
# (arch/x86/include/asm/alternative.h, v6.3).
ALT_INSTR_SIZE_V63 = 14


class RecordError(ValueError):
    """The recorder cannot produce a table from this input; the message names it."""


@dataclasses.dataclass(frozen=True)
class ModuleTable:
    """The recorded table plus where it came from."""

    kernel: str
    rows: list[dict[str, object]]
    deb: DebInfo | None
    config: dict[str, str]
    arch: str = "x86_64"
    #: every package read, ``deb`` first (sid splits a kernel into modules + base packages)
    debs: tuple[DebInfo, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS_FOR_ARCH[self.arch]


def _version_tuple(kernel: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", kernel)
    if not m:
        raise RecordError(f"cannot read a kernel version from {kernel!r}")
    return int(m.group(1)), int(m.group(2))


def alt_instr_size_for(kernel: str) -> int:
    """Size of struct alt_instr for the kernel version (see ALT_INSTR_SIZE_V63)."""
    return ALT_INSTR_SIZE_V63 if _version_tuple(kernel) >= (6, 3) else ALT_INSTR_SIZE_V61


def ro_after_init_secs_for(kernel: str) -> tuple[str, ...]:
    """Sections the loader makes ro_after_init (``.static_call_sites`` too since v6.16)."""
    return RO_AFTER_INIT_SECS_V616 if _version_tuple(kernel) >= (6, 16) else RO_AFTER_INIT_SECS_V61


def parse_config(text: str) -> dict[str, str]:
    """Kconfig ``.config`` text -> {CONFIG_X: value}; ``# ... is not set`` -> 'n'."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
        else:
            m = re.match(r"# (CONFIG_\w+) is not set", line)
            if m:
                out[m.group(1)] = "n"
    return out


def _want(rel: str) -> bool:
    # boot/config-<ver> (bookworm, trixie); usr/lib/modules/<ver>/config (sid's linux-base)
    return (bool(_KO.search(rel)) or bool(re.search(r"(^|/)config-[^/]+$", rel)) or rel == "config"
            or bool(re.search(r"(^|/)lib/modules/[^/]+/config$", rel)))


def _iter_inputs(src: pathlib.Path) -> tuple[Iterator[tuple[str, bytes]], DebInfo | None]:
    if src.is_dir():
        return iter_dir_files(src, _want), None
    if not src.exists():
        raise RecordError(f"{src}: no such file or directory")
    return iter_deb_files(src, _want), deb_info(src)


def layout_options(arch: str, kernel: str, config: dict[str, str]) -> dict[str, object]:
    """``layout_module()`` keyword arguments for a kernel build (version + its config).

    x86-64: the struct sizes of the version.  arm64: ``NR_FTRACE_PLTS`` of the version and
    ``CONFIG_KALLSYMS_ALL`` from the config (Debian's 6.1 arm64 build leaves it off).  Both:
    ``CONFIG_MODULE_UNLOAD``.  A config that does not say is taken as ``y`` (Debian's
    x86-64 builds).
    """
    opts: dict[str, object] = {
        "arch": arch,
        "module_unload": config.get("CONFIG_MODULE_UNLOAD", "y") != "n",
        "ro_after_init_secs": ro_after_init_secs_for(kernel),
        "kallsyms_all": config.get("CONFIG_KALLSYMS_ALL", "y") != "n",
    }
    if arch == "arm64":
        opts["nr_ftrace_plts"] = nr_ftrace_plts_for(_version_tuple(kernel))
    else:
        opts["alt_instr_size"] = alt_instr_size_for(kernel)
    return opts


def record_modules(src: pathlib.Path | Sequence[pathlib.Path], kernel: str | None = None,
                   arch: str | None = None) -> ModuleTable:
    """Lay out every module of a package or directory; rows sorted by (module, relpath).

    ``src`` may be several packages of one kernel build (sid's ``linux-modules-<abi>`` holds
    the ``.ko`` files, ``linux-base-<abi>`` the config).  ``arch`` (``x86_64``/``arm64``)
    defaults to the ``e_machine`` of the first module; every module must match it (a mixed
    tree is an error naming the file).
    """
    if arch is not None and arch not in COLUMNS_FOR_ARCH:
        raise RecordError(f"unknown architecture {arch!r}; known: {sorted(COLUMNS_FOR_ARCH)}")
    srcs = [pathlib.Path(src)] if isinstance(src, (str, os.PathLike)) else [pathlib.Path(x) for x in src]
    kos: list[tuple[str, bytes, DebInfo | None]] = []
    config_text = ""
    kernels: set[str] = set()
    debs: list[DebInfo] = []
    for one in srcs:
        files, d = _iter_inputs(one)
        n_before = len(kos)
        for rel, data in files:
            if _KO.search(rel):
                kos.append((rel, data, d))
                m = _MODDIR.search(rel)
                if m:
                    kernels.add(m.group(1))
            elif not config_text:
                config_text = data.decode("utf-8", "replace")
        if d is not None:
            # the package with the modules first: it names the table's source
            debs.insert(len(debs) if len(kos) == n_before else 0, d)
    deb = debs[0] if debs else None
    src = srcs[0]
    if not kos:
        raise RecordError(f"{src}: no .ko / .ko.xz / .ko.gz / .ko.zst files found")
    if kernel is None:
        if len(kernels) == 1:
            kernel = kernels.pop()
        elif not kernels and src.is_dir():
            kernel = src.resolve().name
        else:
            raise RecordError(f"{src}: cannot tell the kernel version (found {sorted(kernels)}); pass --kernel")
    config = parse_config(config_text)
    if arch is None:
        try:
            arch = machine_arch(decompress(kos[0][0], kos[0][1]), kos[0][0])
        except ModuleParseError as exc:
            raise RecordError(str(exc)) from exc
    for d in debs:
        if DEB_ARCH.get(d.architecture, arch) != arch:
            raise RecordError(f"{d.package}: a {d.architecture} package, but the table is for {arch}")
    opts = layout_options(arch, kernel, config)

    laid: list[tuple[ModuleLayout, str, int, str]] = []
    for rel, data, d in kos:
        source = f"{d.package}={d.version}" if d else f"dir:{kernel}"
        raw = decompress(rel, data)
        stem = pathlib.PurePosixPath(_KO.sub("", rel)).name
        try:
            lay = layout_module(raw, rel, fallback_name=stem, **opts)
        except ModuleParseError as exc:
            raise RecordError(str(exc)) from exc
        m = _MODDIR.search(rel)
        laid.append((lay, rel[m.end():] if m else rel, len(data), source))
    exports = module_exports(lay for lay, *_ in laid)
    rows = [_row(kernel, lay, relpath, n, source, exports) for lay, relpath, n, source in laid]
    rows.sort(key=lambda r: (r["module"], r["relpath"]))
    return ModuleTable(kernel, rows, deb, config, arch, tuple(debs))


def _row(kernel: str, lay: ModuleLayout, relpath: str, file_bytes: int, source: str,
         exports: frozenset[str]) -> dict[str, object]:
    d = lay.record(exports)
    d.update(kernel=kernel, relpath=relpath, file_bytes=file_bytes, source=source,
             intree="Y" if lay.intree else "N")
    return {c: d[c] for c in COLUMNS_FOR_ARCH[lay.arch]}


def table_csv_text(rows: Iterable[dict[str, object]], columns: tuple[str, ...] = TABLE_COLUMNS) -> str:
    """Render rows as CSV text with LF line ends (deterministic)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
    """Write via a temp file in the same directory, then os.replace: never a half file.

    A ``.gz`` name is gzip-compressed with mtime 0, so reruns give the same bytes.
    """
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; shipped data is world-readable
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_table(path: pathlib.Path, arch: str | None = None) -> list[dict[str, str]]:
    """Read a module table written by :func:`table_csv_text`, checking its header.

    The header must be one architecture's (``arch`` when given, else any of
    :data:`COLUMNS_FOR_ARCH`)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    want = [COLUMNS_FOR_ARCH[arch]] if arch else list(COLUMNS_FOR_ARCH.values())
    with opener(path, "rt", newline="") as f:
        r = csv.DictReader(f)
        if tuple(r.fieldnames or ()) not in want:
            raise RecordError(f"{path}: row 1: header is not the module-table header {want[0]}"
                              + ("" if arch else f" (or the arm64 one {TABLE_COLUMNS_ARM64})"))
        return list(r)


def table_arch(path: pathlib.Path) -> str:
    """Architecture of a module table, from its header."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        header = tuple(next(csv.reader(f), []))
    for a, cols in COLUMNS_FOR_ARCH.items():
        if header == cols:
            return a
    raise RecordError(f"{path}: row 1: not a module-table header")


__all__ = [
    "TABLE_COLUMNS", "TABLE_COLUMNS_ARM64", "COLUMNS_FOR_ARCH", "table_arch", "layout_options",
    "ModuleTable", "RecordError", "SourceError", "record_modules",
    "table_csv_text", "atomic_write_bytes", "read_table", "parse_config", "alt_instr_size_for",
    "ro_after_init_secs_for",
]
