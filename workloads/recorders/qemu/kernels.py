"""Fetch and unpack the Debian kernel package a recording boots.

Why Debian packages only: the recording must be reproducible from pinned,
signed artifacts (package name + version + sha256 in the provenance), and the
project's machines reach only Debian's, PyPI's and npm's registries.

* 6.1 comes from the machine's own suite (bookworm) through plain
  ``apt-get download``.
* 6.12 comes from trixie through a *private* apt configuration (its own
  sources list, state and cache folders under the scratch folder), so the
  machine's apt state is left untouched.  trixie's keys are in bookworm's
  ``debian-archive-keyring`` (``/etc/apt/trusted.gpg.d``).
* 7.2 comes from sid the same way (the source line names its keyring with
  ``signed-by``).  sid splits the kernel: ``linux-image-<abi>`` is an empty
  package that depends on ``linux-binary-<abi>`` (``vmlinuz`` under
  ``usr/lib/modules/<release>/``), ``linux-modules-<abi>`` (the ``.ko.xz``
  files) and ``linux-base-<abi>`` (config, modules.order); there is no
  ``-unsigned`` package.  All three are downloaded, pinned by sha256 and
  unpacked into one tree.

The metapackage (``linux-image-amd64`` / ``linux-image-cloud-amd64``) is
resolved to the concrete ABI package (``linux-image-6.1.0-56-amd64``) whose
``.deb`` holds ``vmlinuz`` and the ``.ko`` files.

arm64 (``arch="arm64"``): every suite goes through a private configuration
with ``APT::Architecture=arm64`` and ``[arch=arm64]`` source lines, so that the
amd64 host downloads arm64 packages without ``dpkg --add-architecture``.
bookworm's lines include ``bookworm-security``, where the 6.1.0-56 ABI of the
x86-64 recordings lives for arm64 too.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import subprocess

from execbench.workloads.recorders.sources import sha256_file

MIRROR = "http://deb.debian.org/debian"


class FetchError(RuntimeError):
    """A package could not be resolved, downloaded or unpacked (command named)."""


#: Debian architecture of the host (the x86-64 recordings' packages)
HOST_ARCH = "amd64"
#: execbench architecture name -> Debian architecture
DEB_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    series: str  # "6.1" or "6.12"
    flavour: str  # "generic" or "cloud"
    suite: str  # Debian suite
    private_apt: bool  # use a private apt configuration
    split: bool = False  # sid: linux-image-<abi> = linux-{binary,modules,base}-<abi>
    arch: str = HOST_ARCH  # Debian architecture of the packages

    @property
    def metapackage(self) -> str:
        return f"linux-image-cloud-{self.arch}" if self.flavour == "cloud" else f"linux-image-{self.arch}"

    @property
    def foreign(self) -> bool:
        """Packages of another architecture than the host's."""
        return self.arch != HOST_ARCH


SPECS = {
    "6.1": ("bookworm", False),
    "6.12": ("trixie", True),
    "7.2": ("sid", True),
}

#: suites whose kernel is split into these packages (see the module docstring)
SPLIT_PARTS = {"sid": ("binary", "modules", "base")}

#: extra options of a suite's source line
SIGNED_BY = {"sid": "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: (archive, suite) lines of a private configuration for foreign-architecture packages
FOREIGN_SOURCES = {
    "bookworm": (("debian", "bookworm"), ("debian-security", "bookworm-security")),
    "trixie": (("debian", "trixie"),),
    "sid": (("debian", "sid"),),
}


def spec(series: str, flavour: str = "generic", arch: str = "x86_64") -> KernelSpec:
    if series not in SPECS:
        raise FetchError(f"unknown kernel series {series!r}; known: {sorted(SPECS)}")
    if flavour not in ("generic", "cloud"):
        raise FetchError(f"unknown flavour {flavour!r}; known: generic, cloud")
    if arch not in DEB_ARCH:
        raise FetchError(f"unknown architecture {arch!r}; known: {sorted(DEB_ARCH)}")
    suite, private = SPECS[series]
    deb_arch = DEB_ARCH[arch]
    return KernelSpec(series, flavour, suite, private or deb_arch != HOST_ARCH,
                      split=suite in SPLIT_PARTS, arch=deb_arch)


@dataclasses.dataclass(frozen=True)
class Fetched:
    """An unpacked kernel package."""

    package: str
    version: str
    sha256: str
    deb: pathlib.Path
    root: pathlib.Path  # unpacked tree
    vmlinuz: pathlib.Path
    moddir: pathlib.Path  # .../lib/modules/<release>
    release: str
    parts: tuple[tuple[str, str, str], ...] = ()  # split kernels: (package, version, sha256)


def _run(cmd: list[str], **kw) -> str:
    try:
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    except FileNotFoundError as exc:
        raise FetchError(f"{cmd[0]}: not installed ({exc})") from exc
    except subprocess.CalledProcessError as exc:
        raise FetchError(f"{' '.join(cmd)} failed ({exc.returncode}): {exc.stderr.strip()[-800:]}") from exc
    return res.stdout


def _apt_opts(scratch: pathlib.Path, ks: KernelSpec) -> list[str]:
    """Options that point apt at a private configuration for ``ks.suite``."""
    if not ks.private_apt:
        return []
    base = scratch / (f"apt-{ks.suite}" if not ks.foreign else f"apt-{ks.suite}-{ks.arch}")
    for d in ("lists/partial", "cache/archives/partial", "etc/preferences.d"):
        (base / d).mkdir(parents=True, exist_ok=True)
    src = base / "etc/sources.list"
    if ks.foreign:
        mirror = MIRROR.rsplit("/", 1)[0]
        src.write_text("".join(f"deb [arch={ks.arch} signed-by={KEYRING}] {mirror}/{archive} {suite} main\n"
                               for archive, suite in FOREIGN_SOURCES[ks.suite]))
    else:
        src.write_text(f"deb {SIGNED_BY.get(ks.suite, '')}{MIRROR} {ks.suite} main\n")
    (base / "status").touch()
    arch_opts = (["-o", f"APT::Architecture={ks.arch}", "-o", f"APT::Architectures={ks.arch}"]
                 if ks.foreign else [])
    return [
        "-o", f"Dir::Etc::sourcelist={src}",
        "-o", "Dir::Etc::sourceparts=-",
        "-o", f"Dir::Etc::preferencesparts={base}/etc/preferences.d",
        "-o", f"Dir::State::Lists={base}/lists",
        "-o", f"Dir::State::status={base}/status",
        "-o", f"Dir::Cache={base}/cache",
        "-o", "APT::Get::List-Cleanup=0",
        "-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
        *arch_opts,
    ]


def resolve(ks: KernelSpec, scratch: pathlib.Path, update: bool = True) -> tuple[str, str]:
    """(concrete package, version) the metapackage depends on in ``ks.suite``."""
    opts = _apt_opts(scratch, ks)
    if ks.private_apt and update:
        _run(["apt-get", *opts, "update"])
    out = _run(["apt-cache", *opts, "depends", ks.metapackage])
    m = re.search(r"Depends: (linux-image-[0-9][^\s]*)", out)
    if not m:
        raise FetchError(f"apt-cache depends {ks.metapackage}: no linux-image-<abi> dependency in:\n{out}")
    pkg = m.group(1)
    pol = _run(["apt-cache", *opts, "policy", pkg])
    v = re.search(r"Candidate: (\S+)", pol)
    if not v or v.group(1) == "(none)":
        raise FetchError(f"apt-cache policy {pkg}: no candidate version")
    return pkg, v.group(1)


def fetch(ks: KernelSpec, scratch: pathlib.Path, package: str | None = None) -> Fetched:
    """Download (if absent) and unpack the kernel package into ``scratch``."""
    scratch.mkdir(parents=True, exist_ok=True)
    debs = scratch / "debs"
    debs.mkdir(exist_ok=True)
    pkg, ver = (package, "") if package else resolve(ks, scratch)
    opts = _apt_opts(scratch, ks)
    if package and ks.private_apt and not any(_lists(scratch, ks).glob("*Packages*")):
        _run(["apt-get", *opts, "update"])
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if ver:
        found = [p for p in found if p.name.startswith(f"{pkg}_{ver.replace(':', '%3a')}_")]
    if not found:
        _run(["apt-get", *opts, "download", pkg], cwd=debs)
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            raise FetchError(f"apt-get download {pkg}: no .deb appeared in {debs}")
    deb = found[-1]
    version = deb.name.split("_")[1].replace("%3a", ":")
    root = scratch / deb.name.removesuffix(".deb")
    debs_all = [deb]
    parts: list[tuple[str, str, str]] = []
    if ks.split:
        for part in SPLIT_PARTS[ks.suite]:
            ppkg = pkg.replace("linux-image-", f"linux-{part}-", 1)
            pdeb = _download(opts, debs, ppkg, version)
            debs_all.append(pdeb)
            parts.append((ppkg, version, sha256_file(pdeb)))
    if not (root / ".unpacked").exists():
        for d in debs_all:
            _run(["dpkg-deb", "-x", str(d), str(root)])
        (root / ".unpacked").touch()
    vmlinuz = (sorted((root / "boot").glob("vmlinuz-*"))
               + sorted((root / "usr/lib/modules").glob("*/vmlinuz")))
    mods = sorted((root / "lib/modules").glob("*")) + sorted((root / "usr/lib/modules").glob("*"))
    if not vmlinuz or not mods:
        raise FetchError(f"{deb}: no boot/vmlinuz-* or lib/modules/<release> inside")
    return Fetched(pkg, version, sha256_file(deb), deb, root, vmlinuz[0], mods[0], mods[0].name,
                   tuple(parts))


def _lists(scratch: pathlib.Path, ks: KernelSpec) -> pathlib.Path:
    return scratch / (f"apt-{ks.suite}" if not ks.foreign else f"apt-{ks.suite}-{ks.arch}") / "lists"


def download(ks: KernelSpec, scratch: pathlib.Path, pkg: str, version: str,
             debs: pathlib.Path | None = None) -> pathlib.Path:
    """``pkg=version`` of ``ks``'s suite and architecture into ``debs`` (default
    ``scratch/debs``) unless already there; apt state lives under ``scratch``."""
    opts = _apt_opts(scratch, ks)
    if ks.private_apt and not any(_lists(scratch, ks).glob("*Packages*")):
        _run(["apt-get", *opts, "update"])
    debs = debs or scratch / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    return _download(opts, debs, pkg, version)


def _download(opts: list[str], debs: pathlib.Path, pkg: str, version: str) -> pathlib.Path:
    """``apt-get download pkg=version`` into ``debs`` unless already there."""
    want = f"{pkg}_{version.replace(':', '%3a')}_"
    found = sorted(p for p in debs.glob(f"{pkg}_*.deb") if p.name.startswith(want))
    if not found:
        _run(["apt-get", *opts, "download", f"{pkg}={version}"], cwd=debs)
        found = sorted(p for p in debs.glob(f"{pkg}_*.deb") if p.name.startswith(want))
        if not found:
            raise FetchError(f"apt-get download {pkg}={version}: no .deb appeared in {debs}")
    return found[-1]


#: host packages a recording needs, per guest architecture (arm64: the emulator, the cross
#: compiler for the BPF helper; busybox comes from busybox-static:arm64, :func:`fetch_busybox`)
HOST_PACKAGES = {
    "x86_64": ("qemu-system-x86", "busybox-static", "linux-libc-dev", "gcc"),
    "arm64": ("qemu-system-arm", "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross",
              "linux-libc-dev-arm64-cross"),
}


def tool_versions(arch: str = "x86_64") -> dict[str, str]:
    """Installed versions of the host packages the recording used (for provenance)."""
    out = {}
    for p in HOST_PACKAGES[arch]:
        try:
            out[p] = _run(["dpkg-query", "-W", "-f=${Version}", p]).strip()
        except FetchError:
            out[p] = "not installed"
    return out


@dataclasses.dataclass(frozen=True)
class Busybox:
    path: pathlib.Path  # the static binary, unpacked
    package: str
    version: str
    sha256: str


def fetch_busybox(scratch: pathlib.Path, arch: str = "arm64") -> Busybox:
    """busybox-static of bookworm for ``arch`` (the same version the x86-64 host runs),
    downloaded through the private apt configuration and unpacked under ``scratch``."""
    ks = spec("6.1", arch=arch)
    opts = _apt_opts(scratch, ks)
    if not any(_lists(scratch, ks).glob("*Packages*")):
        _run(["apt-get", *opts, "update"])
    pol = _run(["apt-cache", *opts, "policy", "busybox-static"])
    v = re.search(r"Candidate: (\S+)", pol)
    if not v or v.group(1) == "(none)":
        raise FetchError(f"apt-cache policy busybox-static ({ks.arch}): no candidate version")
    deb = download(ks, scratch, "busybox-static", v.group(1))
    root = scratch / deb.name.removesuffix(".deb")
    if not (root / "bin" / "busybox").exists():
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    return Busybox(root / "bin" / "busybox", f"busybox-static:{ks.arch}", v.group(1), sha256_file(deb))


def ensure_host_packages(arch: str = "x86_64") -> None:
    """apt-get install what the recording needs on the host, if missing."""
    need = [p for p, v in tool_versions(arch).items() if v == "not installed"]
    need += [p for p in ("xz-utils",) if not _which("xz")]
    if need:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run(["apt-get", "update", "-q"], env=env)
        _run(["apt-get", "install", "-y", "-q", *need], env=env)


def _which(name: str) -> bool:
    return any(os.access(os.path.join(d, name), os.X_OK) for d in os.environ.get("PATH", "").split(":"))
