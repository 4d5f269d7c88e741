"""Writing results: tidy CSV, written atomically and deterministically.

Tidy = one row per (workload, design, seed, metric) with the final value,
the peak and the time-weighted mean.  Floats are written with 12
significant digits so that the same run gives the same bytes.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from .errors import OutputError, printable
from .trace import atomic_write_bytes

RESULTS_DIR = Path(os.environ.get("EXECBENCH_RESULTS", "results"))


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n", float_format="%.12g").encode()


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` to ``path`` via temp file + rename; returns the path."""
    p = Path(path)
    atomic_write_bytes(p, to_csv_bytes(df))
    return p


def write_files(files: dict[Path, bytes]) -> list[Path]:
    """Write every file or none: each goes to a temp file in its own folder
    first, and only when all of them are written are they renamed into
    place (a failed run replaces nothing).  An OSError names the path."""
    staged: list[tuple[str, Path]] = []
    path = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, path in staged:
            os.replace(tmp, path)
        staged = []
    except OSError as e:
        raise OutputError(f"{printable(path, 150)}: cannot write: {e.strerror or e}") from None
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [Path(p) for p in files]
