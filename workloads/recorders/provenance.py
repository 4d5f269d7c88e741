"""Provenance sidecars (``<name>.toml``) for shipped traces and tables.

Why: every shipped number must say where it came from and how to regenerate it, and what
in it is synthetic (project rules; trace schema "Provenance sidecar").  Written with
tomli-w, atomically, with keys in a fixed order so re-running gives the same bytes.
The recording date comes from ``SOURCE_DATE_EPOCH`` when set (reproducible builds
convention), else today's UTC date.
"""

from __future__ import annotations

import datetime as _dt
import os
import pathlib

import tomli_w

from .modules import atomic_write_bytes


def record_date() -> str:
    """ISO date of the recording (``SOURCE_DATE_EPOCH`` wins, for byte-identical reruns)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc).date().isoformat()
    return _dt.datetime.now(tz=_dt.timezone.utc).date().isoformat()


def write_toml(path: pathlib.Path, doc: dict) -> None:
    """Write a TOML document atomically."""
    atomic_write_bytes(path, tomli_w.dumps(doc).encode())


def sidecar_path(data_path: pathlib.Path) -> pathlib.Path:
    """``x.csv.gz`` / ``x.csv`` / ``x.modules.csv`` -> the ``.toml`` beside it."""
    name = data_path.name
    for suffix in (".csv.gz", ".csv"):
        if name.endswith(suffix):
            return data_path.with_name(name[: -len(suffix)] + ".toml")
    return data_path.with_name(name + ".toml")
