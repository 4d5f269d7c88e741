"""Choose the module set a recording inserts, in dependency order.

Why these modules: they load without hardware (filesystems, network protocols,
netfilter, qdiscs, crypto, device-mapper), so every ``insmod`` exercises the
loader's allocation and permission path the same way as on a real machine; and
together with their dependencies they span module text sizes from a few hundred
bytes to ~1 MiB (btrfs, xfs, ext4).

The Debian package does not ship ``modules.dep`` (``depmod`` writes it at
install time), so dependencies come from each ``.ko``'s ``.modinfo``
``depends=`` field, which is what ``depmod`` reads too.  Order: depth-first,
dependencies before dependents (what ``modprobe`` does).
"""

from __future__ import annotations

import dataclasses
import lzma
import pathlib

from elftools.elf.elffile import ELFFile
import io

#: roots (module names); their dependency closure is loaded.
ROOTS: tuple[str, ...] = (
    # filesystems
    "ext4", "xfs", "btrfs", "f2fs", "fuse", "overlay", "squashfs", "isofs", "udf",
    "vfat", "nilfs2", "jfs", "reiserfs", "hfsplus", "minix", "erofs",
    "nfsv4", "cifs",
    # networking
    "sctp", "sctp_diag", "vrf", "bridge", "8021q", "bonding", "veth", "vxlan", "geneve",
    "wireguard", "tun", "macvlan", "ipvlan", "dummy", "openvswitch", "l2tp_eth",
    "tcp_bbr", "tcp_westwood", "sch_htb", "sch_fq", "sch_netem", "cls_bpf", "act_bpf",
    "nft_chain_nat", "nft_ct", "nft_reject_inet", "ip_tables", "iptable_filter",
    "ip6_tables", "xt_conntrack", "ip_set_hash_ip",
    # block / dm / crypto
    "dm_crypt", "dm_thin_pool", "raid456", "loop", "zram", "nbd",
    "aesni_intel", "sha512_ssse3", "chacha20poly1305", "xts", "serpent_avx2",
    "twofish_avx_x86_64", "camellia_aesni_avx2", "crc32c_intel",
)

#: arm64 counterparts of the x86-only crypto roots above (aesni_intel, sha512_ssse3,
#: serpent_avx2, ...): the ARMv8 Crypto Extension and NEON drivers of arch/arm64/crypto,
#: so that an arm64 recording loads a crypto set of similar weight.  SYNTHETIC CHOICE.
ROOTS_ARM64_EXTRA: tuple[str, ...] = (
    "aes_ce_blk", "aes_neon_bs", "sha512_ce", "sha3_ce", "sm4_ce", "chacha_neon", "poly1305_neon",
    "ghash_ce", "crct10dif_ce",
)


def roots_for(arch: str = "x86_64") -> tuple[str, ...]:
    return ROOTS + ROOTS_ARM64_EXTRA if arch == "arm64" else ROOTS


#: leaves removed at the end, in this order (a module still in use fails to
#: unload; the failure is logged and no unload event is recorded).
RMMOD: tuple[str, ...] = (
    "sctp_diag", "vrf", "tcp_westwood", "tcp_bbr", "sch_netem", "sch_fq", "sch_htb",
    "act_bpf", "cls_bpf", "dummy", "veth", "ipvlan", "macvlan", "l2tp_eth",
    "isofs", "udf", "squashfs", "minix", "erofs", "nilfs2", "jfs",
    "xfs", "btrfs", "sctp",
)


class ModsetError(RuntimeError):
    """A root module is missing from the package, or a dependency cannot be found."""


@dataclasses.dataclass(frozen=True)
class Module:
    name: str
    path: pathlib.Path
    depends: tuple[str, ...]


def read_ko(path: pathlib.Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        data = lzma.decompress(data)
    return data


def _modinfo(data: bytes, where: pathlib.Path) -> dict[str, str]:
    elf = ELFFile(io.BytesIO(data))
    sec = elf.get_section_by_name(".modinfo")
    if sec is None:
        raise ModsetError(f"{where}: no .modinfo section")
    out: dict[str, str] = {}
    for item in sec.data().split(b"\0"):
        if b"=" in item:
            k, v = item.decode("utf-8", "replace").split("=", 1)
            out.setdefault(k, v)
    return out


def _modinfo_all(data: bytes) -> list[str]:
    """Every ``alias=`` value of a module, in file order."""
    sec = ELFFile(io.BytesIO(data)).get_section_by_name(".modinfo")
    if sec is None:
        return []
    return [i[6:].decode("utf-8", "replace") for i in sec.data().split(b"\0") if i.startswith(b"alias=")]


def index(moddir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Module name -> file (names use '_' as the kernel does)."""
    out = {}
    for p in sorted(moddir.rglob("*.ko*")):
        base = p.name.split(".ko")[0]
        out[base.replace("-", "_")] = p
    return out


def closure(moddir: pathlib.Path, roots: tuple[str, ...] = ROOTS) -> list[Module]:
    """Roots and their dependencies, dependencies first."""
    idx = index(moddir)
    seen: dict[str, Module] = {}
    order: list[Module] = []

    aliases: dict[str, str] = {}

    def resolve_alias(word: str) -> str | None:
        """Module name for a softdep name, which may be an alias ("crc32c")."""
        w = word.replace("-", "_")
        if w in idx:
            return w
        if not aliases:
            for n, p in idx.items():
                try:
                    mi = _modinfo_all(read_ko(p))
                except Exception:
                    continue
                for a in mi:
                    aliases.setdefault(a, n)
        for cand in (word, f"crypto-{word}"):
            if cand in aliases:
                return aliases[cand]
        return None  # built in (modules.builtin) or absent: modprobe skips it too

    def visit(name: str, chain: tuple[str, ...]) -> None:
        cur = ""
        if name in seen:
            return
        if name not in idx:
            raise ModsetError(f"{moddir}: module {name!r} not found (needed by {' -> '.join(chain) or 'roots'})")
        info = _modinfo(read_ko(idx[name]), idx[name])
        deps = tuple(d for d in info.get("depends", "").split(",") if d)
        # softdep "pre:" modules must be present before init (libcrc32c asks the
        # crypto API for "crc32c" at init; without modprobe nothing loads it).
        for word in info.get("softdep", "").split():
            if word.endswith(":"):
                cur = word
            elif cur == "pre:":
                dep = resolve_alias(word)
                if dep is not None and dep != name:
                    deps += (dep,)
        mod = Module(info.get("name", name), idx[name], deps)
        seen[name] = mod
        for d in deps:
            visit(d.replace("-", "_"), chain + (name,))
        order.append(mod)

    for r in roots:
        if r in idx:  # roots absent from this package are reported by missing_roots()
            visit(r, ())
    return order


def missing_roots(moddir: pathlib.Path, roots: tuple[str, ...] = ROOTS) -> list[str]:
    """Roots this kernel package does not ship (e.g. a filesystem Debian dropped)."""
    idx = index(moddir)
    return [r for r in roots if r not in idx]
