"""Run designs x workloads x seeds and collect tidy summaries."""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from .kernel import Costs
from .replay import RunResult, run
from .trace import Trace


def sweep(traces: Iterable[Trace], designs: list[str], seeds: list[int],
          params: dict[str, dict[str, Any]] | None = None, costs: Costs | None = None,
          machine: dict[str, Any] | None = None) -> tuple[pd.DataFrame, list[RunResult]]:
    """Every combination, in a fixed order; returns (tidy summary, results)."""
    frames, results = [], []
    for tr in traces:
        for d in designs:
            for s in seeds:
                r = run(tr, d, seed=s, params=(params or {}).get(d), costs=costs, machine=machine)
                results.append(r)
                frames.append(r.summary())
    return pd.concat(frames, ignore_index=True), results
