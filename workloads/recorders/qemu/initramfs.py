"""Build the guest's initramfs (a gzip'd ``newc`` cpio archive) in memory.

Why no disk image: the kernel unpacks an initramfs into tmpfs by itself
(``init/initramfs.c``), so a recording needs no root filesystem, no
partitioning tools and no loop devices; the archive is written next to the
kernel in the scratch folder and handed to ``qemu -initrd``.

The ``newc`` format (``Documentation/driver-api/early-userspace/buffer-format.rst``):
a 110-byte ASCII header ``070701`` + 13 eight-digit hex fields, the NUL-terminated
name, padding to 4 bytes, the data, padding to 4 bytes; ``TRAILER!!!`` ends it.
All mtimes are 0 and entries are sorted, so the same inputs give the same bytes.
"""

from __future__ import annotations

import gzip

Entry = tuple[str, int, bytes]  # (path without leading '/', mode, data); data b"" for dirs


def _hdr(ino: int, mode: int, size: int, name: bytes) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    return b"070701" + b"".join(f"{v:08x}".encode() for v in fields)


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def cpio_newc(entries: list[Entry]) -> bytes:
    """The uncompressed archive; parent directories are added automatically."""
    files: dict[str, tuple[int, bytes]] = {}
    for path, mode, data in entries:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            files.setdefault("/".join(parts[:i]), (0o040755, b""))
        files[path.strip("/")] = (mode, data)
    out = bytearray()
    for ino, name in enumerate(sorted(files), start=1):
        mode, data = files[name]
        bname = name.encode()
        h = _hdr(ino, mode, len(data), bname)
        out += h + bname + b"\0"
        out += _pad(len(h) + len(bname) + 1)
        out += data + _pad(len(data))
    t = _hdr(0, 0, 0, b"TRAILER!!!")
    out += t + b"TRAILER!!!\0" + _pad(len(t) + 11)
    return bytes(out)


def build(entries: list[Entry], level: int = 6) -> bytes:
    """gzip'd newc archive (mtime 0: deterministic)."""
    return gzip.compress(cpio_newc(entries), compresslevel=level, mtime=0)


FILE = 0o100644
EXEC = 0o100755
