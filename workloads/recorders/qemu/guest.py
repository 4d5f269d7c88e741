"""Assemble what goes into the guest: /init, busybox, the BPF helper, modules, plans.

Why generated here: the workload plan (module order, rmmod list, kprobe targets,
ftrace filters) is data the parser needs again on the host, so it is written
once from Python and shipped with the recording's provenance.
"""

from __future__ import annotations

import importlib.resources
import pathlib
import shutil
import subprocess

from . import initramfs, probes
from .modset import Module, RMMOD, read_ko

#: kprobe targets placed through kprobe_events (group ``wk``).  Functions that the
#: guest script never calls on its read/write path (pitfall 5), most of them in
#: loaded modules so that arming them patches module text.
WK_PROBES: tuple[str, ...] = (
    "ext4_fill_super", "ext4_statfs", "ext4_sync_fs", "xfs_fs_fill_super", "xfs_fs_statfs",
    "btrfs_statfs", "btrfs_sync_fs", "fuse_fill_super", "ovl_fill_super", "squashfs_fill_super",
    "isofs_fill_super", "udf_fill_super", "sctp_init_sock", "vrf_dev_init",
    "br_add_bridge", "wg_noise_init", "nft_chain_nat_init", "dm_crypt_init_only_probe",
    "ksys_sync", "do_sysinfo", "__x64_sys_reboot", "vfs_statfs",
)
#: offsets tried in order: +5 is the first instruction after the 5-byte
#: ``call __fentry__`` (6.1, no IBT); +9 after endbr64 + call (6.12, IBT); +0 is
#: the ftrace site (a kprobe on ftrace, no instruction slot).
KP_OFFSETS = "+5 +9 +0"
#: arm64: the syscall wrapper is ``__arm64_sys_reboot`` (arch/arm64/include/asm/syscall_wrapper.h)
WK_PROBES_ARM64: tuple[str, ...] = tuple("__arm64_sys_reboot" if f == "__x64_sys_reboot" else f
                                         for f in WK_PROBES)
#: arm64: +8 is the first instruction after the two patchable-entry NOPs (``mov x9, x30``
#: and the ``bl`` site at +4, which ``check_ftrace_location()`` refuses without
#: KPROBES_ON_FTRACE); +0 (the ``mov x9, x30``) as a fallback.
KP_OFFSETS_ARM64 = "+8 +0"

#: ftrace instances: name|filter|filter appended while registered (disjoint sets,
#: pitfall 6: a function traced by two ops gets the list function, no trampoline).
FTRACE = (
    ("ft1", "ext4_*", "jbd2_*"),
    ("ft2", "xfs_*", ""),
    ("ft3", "vfs_statfs", "ksys_sync"),
)

BUFFER_KB = 65536  # ring buffer per CPU; 0 overruns in the reference runs


#: arm64: the initramfs has no /dev/console node, so /init starts without stdin/stdout;
#: it reopens them on the devtmpfs console (the x86-64 recordings did without).
CONSOLE_ARM64 = "exec </dev/console >/dev/console 2>&1"


def init_script(arch: str = "x86_64") -> str:
    src = importlib.resources.files(__package__).joinpath("guest/init.sh").read_text()
    arm = arch == "arm64"
    return (src.replace("@BUFKB@", str(BUFFER_KB))
            .replace("@KPOFFS@", KP_OFFSETS_ARM64 if arm else KP_OFFSETS)
            .replace("@CONSOLE@", CONSOLE_ARM64 if arm else ":"))


#: C compiler per architecture (arm64: Debian's gcc-aarch64-linux-gnu cross compiler,
#: headers from linux-libc-dev-arm64-cross)
CC = {"x86_64": "gcc", "arm64": "aarch64-linux-gnu-gcc"}


def build_bpfload(out: pathlib.Path, arch: str = "x86_64") -> pathlib.Path:
    """Compile the static BPF helper with the host gcc (linux-libc-dev headers)."""
    src = importlib.resources.files(__package__).joinpath("guest/bpfload.c")
    out.parent.mkdir(parents=True, exist_ok=True)
    with importlib.resources.as_file(src) as p:
        subprocess.run([CC[arch], "-static", "-O2", "-Wall", "-o", str(out), str(p)], check=True,
                       capture_output=True, text=True)
    return out


def entries(mods: list[Module], bpfload: pathlib.Path, busybox: pathlib.Path,
            series: str = "6.1", arch: str = "x86_64") -> list[initramfs.Entry]:
    wk = WK_PROBES_ARM64 if arch == "arm64" else WK_PROBES
    e: list[initramfs.Entry] = [
        ("init", initramfs.EXEC, init_script(arch).encode()),
        ("bin/busybox", initramfs.EXEC, busybox.read_bytes()),
        ("bin/bpfload", initramfs.EXEC, bpfload.read_bytes()),
        ("etc/probes.txt", initramfs.FILE, probes.probes_file(series, arch).encode()),
        ("etc/wkprobes.txt", initramfs.FILE, ("\n".join(wk) + "\n").encode()),
        ("etc/ftrace.txt", initramfs.FILE, ("\n".join("|".join(f) for f in FTRACE) + "\n").encode()),
    ]
    names = {m.name for m in mods}
    order = []
    for m in mods:
        e.append((f"lib/modules/{m.name}.ko", initramfs.FILE, read_ko(m.path)))
        order.append(f"/lib/modules/{m.name}.ko")
    e.append(("etc/modules.order", initramfs.FILE, ("\n".join(order) + "\n").encode()))
    rm = [r for r in RMMOD if r in names]
    e.append(("etc/rmmod.order", initramfs.FILE, ("\n".join(rm) + "\n").encode()))
    return e


def busybox_path() -> pathlib.Path:
    p = shutil.which("busybox")
    if not p:
        raise FileNotFoundError("busybox not found: apt-get install busybox-static")
    return pathlib.Path(p)
