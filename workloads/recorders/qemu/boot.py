"""Boot the kernel under QEMU (TCG) and split the console into the guest's dumps.

Why TCG and the serial console: the recording must work on a 2-core machine
with no KVM and no disk image; everything the guest wants to hand back is
printed between ``@@BEGIN name@@`` / ``@@END name@@`` lines as gzip+base64
(immune to the console's CRLF and to stray characters), and ``@@DONE@@`` marks a
complete run.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import pathlib
import re
import subprocess
import time

QEMU = "qemu-system-x86_64"
CMDLINE = "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init"
#: arm64: Debian's qemu-system-arm, the ``virt`` board (its device tree carries a KASLR
#: seed, so the module region is randomised as on hardware), the PL011 console.
#: ``pauth-impdef=on`` picks QEMU's cheap pointer-authentication algorithm instead of
#: emulating QARMA5 in TCG: the guest still has FEAT_PAuth and the kernel does the same
#: work; only the emulation is faster.
QEMU_ARM64 = "qemu-system-aarch64"
CMDLINE_ARM64 = "console=ttyAMA0 quiet loglevel=1 panic=-1 rdinit=/init"


def qemu_command(arch: str, vmlinuz: pathlib.Path, initrd: pathlib.Path, mem: str = "2G",
                 smp: int = 2) -> list[str]:
    """The QEMU command line of a recording."""
    if arch == "arm64":
        return [QEMU_ARM64, "-M", "virt", "-cpu", "max,pauth-impdef=on", "-accel", "tcg",
                "-m", mem, "-smp", str(smp), "-nographic", "-no-reboot", "-kernel", str(vmlinuz),
                "-initrd", str(initrd), "-append", CMDLINE_ARM64]
    return [QEMU, "-accel", "tcg", "-cpu", "max", "-m", mem, "-smp", str(smp),
            "-nographic", "-no-reboot", "-kernel", str(vmlinuz), "-initrd", str(initrd),
            "-append", CMDLINE]


class BootError(RuntimeError):
    """QEMU failed, timed out, or the guest did not finish (console path named)."""


def run(vmlinuz: pathlib.Path, initrd: pathlib.Path, console: pathlib.Path,
        mem: str = "2G", smp: int = 2, timeout: float = 900.0, arch: str = "x86_64") -> float:
    """Boot; write the console to ``console``; return the wall time in seconds."""
    cmd = qemu_command(arch, vmlinuz, initrd, mem, smp)
    QEMU = cmd[0]
    t0 = time.monotonic()
    with open(console, "wb") as out:
        try:
            p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BootError(f"{QEMU} timed out after {timeout:.0f} s; console in {console}") from exc
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise BootError(f"{QEMU} exited {p.returncode}; console in {console}")
    return wall


_BEGIN = re.compile(rb"@@BEGIN ([A-Za-z0-9_]+)@@")


def sections(console: bytes, where: str = "<console>") -> dict[str, bytes]:
    """Decode every dump; raise if the run did not reach ``@@DONE@@``."""
    text = console.replace(b"\r", b"")
    if b"@@DONE@@" not in text:
        tail = text[-600:].decode("utf-8", "replace")
        raise BootError(f"{where}: guest did not finish (no @@DONE@@); console tail:\n{tail}")
    out: dict[str, bytes] = {}
    for m in _BEGIN.finditer(text):
        name = m.group(1).decode()
        end = text.find(f"@@END {name}@@".encode(), m.end())
        if end < 0:
            raise BootError(f"{where}: dump {name!r} has no @@END line")
        body = re.sub(rb"[^A-Za-z0-9+/=]", b"", text[m.end():end])
        try:
            out[name] = gzip.decompress(base64.b64decode(body))
        except (binascii.Error, OSError, EOFError) as exc:
            raise BootError(f"{where}: dump {name!r} is corrupt: {exc}") from exc
    return out
