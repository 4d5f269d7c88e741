"""Writing results: tidy CSV, written atomically and deterministically.

Tidy = one row per (workload, design, seed, metric) with the final value,
the peak and the time-weighted mean.  Floats are written with 12
significant digits so that the same run gives the same bytes.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .trace import atomic_write_bytes

RESULTS_DIR = Path(os.environ.get("EXECBENCH_RESULTS", "results"))


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n", float_format="%.12g").encode()


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` to ``path`` via temp file + rename; returns the path."""
    p = Path(path)
    atomic_write_bytes(p, to_csv_bytes(df))
    return p
