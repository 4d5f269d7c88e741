"""Read files out of a Debian package or a directory tree, without extracting to disk.

Why: recorders take either a ``.deb`` as downloaded by ``apt-get download`` or an
unpacked tree (``/lib/modules/<ver>``, ``/usr/sbin``).  Reading the ``.deb`` in Python
(``ar`` archive -> ``data.tar.*``, format in deb(5)) keeps the recorder free of
``dpkg-deb`` and lets tests use tiny hand-made packages.  Compressed modules
(``.ko.xz``, ``.ko.gz``, ``.ko.zst``) are decompressed here, so that the ELF parsers see
plain bytes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import lzma
import pathlib
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator

AR_MAGIC = b"!<arch>\n"


class SourceError(ValueError):
    """An input package or directory that cannot be read, with the path named."""


@dataclasses.dataclass(frozen=True)
class DebInfo:
    """Identity of a .deb: control fields and the file's sha256."""

    package: str
    version: str
    architecture: str
    sha256: str
    size: int


def sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _ar_members(path: pathlib.Path) -> Iterator[tuple[str, bytes]]:
    with open(path, "rb") as f:
        if f.read(8) != AR_MAGIC:
            raise SourceError(f"{path}: not a Debian package (no ar magic)")
        while True:
            hdr = f.read(60)
            if not hdr:
                return
            if len(hdr) != 60 or hdr[58:60] != b"`\n":
                raise SourceError(f"{path}: truncated or corrupt ar header")
            name = hdr[0:16].decode("ascii").strip().rstrip("/")
            size = int(hdr[48:58].decode("ascii").strip())
            body = f.read(size)
            if len(body) != size:
                raise SourceError(f"{path}: ar member {name} truncated")
            if size % 2:
                f.read(1)
            yield name, body


def _open_tar(name: str, body: bytes, path: pathlib.Path) -> tarfile.TarFile:
    import io

    if name.endswith(".zst"):
        body = _unzstd(body, f"{path}:{name}")
        return tarfile.open(fileobj=io.BytesIO(body), mode="r:")
    return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")


def deb_info(path: pathlib.Path) -> DebInfo:
    """Read Package/Version/Architecture from control.tar.* and hash the file."""
    fields: dict[str, str] = {}
    for name, body in _ar_members(path):
        if name.startswith("control.tar"):
            with _open_tar(name, body, path) as tf:
                for m in tf.getmembers():
                    if m.name.lstrip("./") == "control":
                        text = tf.extractfile(m).read().decode("utf-8", "replace")
                        for line in text.splitlines():
                            if ":" in line and not line.startswith(" "):
                                k, v = line.split(":", 1)
                                fields[k.strip()] = v.strip()
    if "Package" not in fields:
        raise SourceError(f"{path}: no control file with a Package field")
    return DebInfo(fields["Package"], fields.get("Version", ""), fields.get("Architecture", ""),
                   sha256_file(path), path.stat().st_size)


def iter_deb_files(path: pathlib.Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield (path inside the package, bytes) for regular files of data.tar.* that ``want``."""
    found = False
    for name, body in _ar_members(path):
        if not name.startswith("data.tar"):
            continue
        found = True
        with _open_tar(name, body, path) as tf:
            for m in tf:
                if m.isfile():
                    rel = m.name[2:] if m.name.startswith("./") else m.name
                    if want(rel):
                        yield rel, tf.extractfile(m).read()
    if not found:
        raise SourceError(f"{path}: no data.tar member")


def iter_dir_files(root: pathlib.Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield (path relative to root, bytes) for regular files under root that ``want``, sorted."""
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory")
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            rel = p.relative_to(root).as_posix()
            if want(rel):
                yield rel, p.read_bytes()


def _unzstd(data: bytes, where: str) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found]

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except ImportError:
        exe = shutil.which("zstd")
        if exe is None:
            raise SourceError(f"{where}: zstd-compressed; install the 'zstandard' package or zstd(1)")
        return subprocess.run([exe, "-dc"], input=data, capture_output=True, check=True).stdout


def decompress(name: str, data: bytes) -> bytes:
    """Undo the module compression named by the file suffix (kmod's rules: .xz .gz .zst)."""
    try:
        if name.endswith(".xz"):
            return lzma.decompress(data)
        if name.endswith(".gz"):
            return gzip.decompress(data)
        if name.endswith(".zst"):
            return _unzstd(data, name)
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise SourceError(f"{name}: cannot decompress: {exc}") from exc
    return data
