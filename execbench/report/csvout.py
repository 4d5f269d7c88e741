"""``execbench report --format csv``: the headline numbers, unscaled.

One row per (workload, design, metric, stat) with the mean over seeds,
the number of seeds, and the ratios the text formats print.  By default
only the headline rows; ``full=True`` adds every metric and statistic.
"""
from __future__ import annotations

import pandas as pd

from ..results import to_csv_bytes
from .data import Headline
from .headline import Table, all_rows, headline_rows

COLUMNS = ["workload", "design", "metric", "stat", "unit", "value", "seeds", "vs_baseline",
           "vs_floor"]


def frame(h: Headline, full: bool = False) -> pd.DataFrame:
    rows = all_rows() if full else headline_rows()
    parts = [Table(h, w, rows).tidy() for w in h.workload_names]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    df["seeds"] = len(h.seeds)
    return df[COLUMNS]


def render(h: Headline, full: bool = False) -> str:
    return to_csv_bytes(frame(h, full)).decode()
