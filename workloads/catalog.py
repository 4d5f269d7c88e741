"""The shipped workloads: what exists, where, and which one ``execbench compare`` uses.

Why a catalog: the CLI, asv benchmarks and notebooks must find traces by name from an
installed wheel as well as from a checkout, so the lookup goes through
``importlib.resources`` on the ``execbench.workloads`` package, never a path relative
to the working directory.  A workload is a ``<name>.csv.gz`` trace with a ``<name>.toml``
provenance sidecar directly under ``data/``; the default one has ``default = true`` in
its ``[workload]`` table.  Tables in sub-folders (``data/modules``, ``data/bpf``) carry
a ``[table]`` sidecar and are not workloads.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib
import tomllib


@dataclasses.dataclass(frozen=True)
class WorkloadInfo:
    """One shipped workload, as its provenance sidecar describes it."""

    name: str
    path: pathlib.Path
    provenance: dict
    events: int
    summary: str
    default: bool
    #: the architecture the trace was recorded on (``[workload] arch``; x86_64 if absent)
    arch: str = "x86_64"


class CatalogError(LookupError):
    """A shipped sidecar is inconsistent (missing trace, bad TOML, two defaults)."""


def data_dir() -> pathlib.Path:
    """The installed ``data`` folder of ``execbench.workloads``."""
    return pathlib.Path(str(importlib.resources.files("execbench.workloads") / "data"))


def _info(toml_path: pathlib.Path, doc: dict) -> WorkloadInfo:
    wl = doc.get("workload")
    if not isinstance(wl, dict) or "name" not in wl:
        raise CatalogError(f"{toml_path}: no [workload] table with a name")
    name = str(wl["name"])
    if name != toml_path.stem:
        raise CatalogError(f"{toml_path}: [workload] name {name!r} does not match the file name")
    trace = toml_path.with_name(name + ".csv.gz")
    if not trace.exists():
        raise CatalogError(f"{toml_path}: trace {trace.name} is missing")
    return WorkloadInfo(name=name, path=trace, provenance=doc, events=int(wl.get("events", 0)),
                        summary=str(wl.get("description", "")), default=bool(wl.get("default", False)),
                        arch=str(wl.get("arch", "x86_64")))


def _load(toml_path: pathlib.Path) -> dict:
    try:
        return tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{toml_path}: bad TOML: {exc}") from exc


def shipped(arch: str | None = "x86_64") -> list[WorkloadInfo]:
    """Every shipped workload recorded on ``arch`` (None: on any architecture), sorted by name.

    A workload is any ``*.toml`` under ``data/`` (sub-folders included, e.g. QEMU
    recordings) that has a ``[workload]`` table; table sidecars (``[table]``) are skipped.
    Top-level sidecars must have a ``[workload]`` table.  The arm64 QEMU recordings
    (``[workload] arch = "arm64"``) are left out by default: replayed on the x86-64
    machine they would mix architectures (an x86-64 workload replays on arm64 through
    :mod:`execbench.workloads.archsizes` instead).
    """
    d = data_dir()
    out: dict[str, WorkloadInfo] = {}
    for p in sorted(d.rglob("*.toml")):
        doc = _load(p)
        if "workload" not in doc and p.parent != d:
            continue
        w = _info(p, doc)
        if w.name in out:
            raise CatalogError(f"{p}: workload name {w.name!r} also used by {out[w.name].path}")
        out[w.name] = w
    return [out[k] for k in sorted(out) if arch is None or out[k].arch == arch]


def find(name: str) -> WorkloadInfo:
    """The shipped workload called ``name`` (any architecture); :class:`UnknownName` (a
    KeyError) with the known names and a suggestion otherwise."""
    all_ = shipped(arch=None)
    for w in all_:
        if w.name == name:
            return w
    from execbench.errors import UnknownName
    raise UnknownName("workload", name, [w.name for w in all_])


def default() -> WorkloadInfo:
    """The workload marked ``default = true`` (exactly one must be)."""
    marked = [w for w in shipped() if w.default]
    if len(marked) != 1:
        raise CatalogError(f"expected exactly one default workload, found {[w.name for w in marked]}")
    return marked[0]
