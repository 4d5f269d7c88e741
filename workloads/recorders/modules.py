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
from collections.abc import Iterable, Iterator

from .modlayout import (
    ALT_INSTR_SIZE_V61,
    MEM_TYPES,
    RO_AFTER_INIT_SECS_V61,
    RO_AFTER_INIT_SECS_V616,
    ModuleLayout,
    ModuleParseError,
    layout_module,
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
    return bool(_KO.search(rel)) or bool(re.search(r"(^|/)config-[^/]+$", rel)) or rel == "config"


def _iter_inputs(src: pathlib.Path) -> tuple[Iterator[tuple[str, bytes]], DebInfo | None]:
    if src.is_dir():
        return iter_dir_files(src, _want), None
    if not src.exists():
        raise RecordError(f"{src}: no such file or directory")
    return iter_deb_files(src, _want), deb_info(src)


def record_modules(src: pathlib.Path, kernel: str | None = None) -> ModuleTable:
    """Lay out every module of a package or directory; rows sorted by (module, relpath)."""
    files, deb = _iter_inputs(src)
    kos: list[tuple[str, bytes]] = []
    config_text = ""
    kernels: set[str] = set()
    for rel, data in files:
        if _KO.search(rel):
            kos.append((rel, data))
            m = _MODDIR.search(rel)
            if m:
                kernels.add(m.group(1))
        elif not config_text:
            config_text = data.decode("utf-8", "replace")
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
    module_unload = config.get("CONFIG_MODULE_UNLOAD", "y") != "n"
    alt_size = alt_instr_size_for(kernel)
    source = f"{deb.package}={deb.version}" if deb else f"dir:{kernel}"

    rows: list[dict[str, object]] = []
    for rel, data in kos:
        raw = decompress(rel, data)
        stem = pathlib.PurePosixPath(_KO.sub("", rel)).name
        try:
            lay = layout_module(raw, rel, module_unload=module_unload,
                                alt_instr_size=alt_size, fallback_name=stem,
                                ro_after_init_secs=ro_after_init_secs_for(kernel))
        except ModuleParseError as exc:
            raise RecordError(str(exc)) from exc
        m = _MODDIR.search(rel)
        relpath = rel[m.end():] if m else rel
        rows.append(_row(kernel, lay, relpath, len(data), source))
    rows.sort(key=lambda r: (r["module"], r["relpath"]))
    return ModuleTable(kernel, rows, deb, config)


def _row(kernel: str, lay: ModuleLayout, relpath: str, file_bytes: int, source: str) -> dict[str, object]:
    d = dataclasses.asdict(lay)
    d.update(kernel=kernel, relpath=relpath, file_bytes=file_bytes, source=source,
             intree="Y" if lay.intree else "N")
    return {c: d[c] for c in TABLE_COLUMNS}


def table_csv_text(rows: Iterable[dict[str, object]]) -> str:
    """Render rows as CSV text with LF line ends (deterministic)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
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


def read_table(path: pathlib.Path) -> list[dict[str, str]]:
    """Read a module table written by :func:`table_csv_text`, checking its header."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        r = csv.DictReader(f)
        if tuple(r.fieldnames or ()) != TABLE_COLUMNS:
            raise RecordError(f"{path}: row 1: header is not the module-table header {TABLE_COLUMNS}")
        return list(r)


__all__ = [
    "TABLE_COLUMNS", "ModuleTable", "RecordError", "SourceError", "record_modules",
    "table_csv_text", "atomic_write_bytes", "read_table", "parse_config", "alt_instr_size_for",
    "ro_after_init_secs_for",
]
