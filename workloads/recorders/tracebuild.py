"""Build a trace table event by event and save it through the engine's schema code.

Why: recorders think in events ("load this module, then free its init memory"); the
trace schema (execbench/trace.py, docs/trace-schema.md) wants one row per event with empty cells
where an op does not use a column.  This builder keeps that bookkeeping in one place and
hands the finished frame to ``execbench.trace.save_trace``, which validates it (schema,
lifecycle, time order) before writing, so a recorder can never ship a bad trace.
"""

from __future__ import annotations

import os
import pathlib

import pandas as pd

from execbench.trace import COLUMNS, OPS, OPTIONAL, SIZE_COLUMNS, save_trace, validate

from .modlayout import MEM_TYPES

_MODULE_LOAD_COLS = (*MEM_TYPES, "align", "relocs", "reloc_secs", "alt_sites", "orc_entries", "mcount_locs",
                     "kallsyms", "init_kallsyms")


class TraceBuilder:
    """Accumulates events in order; ``seq`` is assigned on append."""

    def __init__(self) -> None:
        self._rows: list[dict[str, object]] = []

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def last_t_ns(self) -> int:
        return int(self._rows[-1]["t_ns"]) if self._rows else 0

    def add(self, t_ns: int, cpu: int, user: str, op: str, obj: str, **cols: int) -> None:
        """Append one event; ``cols`` must be exactly the columns the op requires
        (plus, all or none, the ones it may leave empty)."""
        need = OPS.get((user, op))
        if need is None:
            raise ValueError(f"unknown op {user}/{op}")
        if set(cols) not in (set(need), set(need) | set(OPTIONAL.get((user, op), ()))):
            raise ValueError(f"{user}/{op} on {obj!r} needs columns {sorted(need)}, got {sorted(cols)}")
        row: dict[str, object] = {"seq": len(self._rows), "t_ns": int(t_ns), "cpu": int(cpu),
                                  "user": user, "op": op, "obj": obj}
        for c, v in cols.items():
            row[c] = int(v)
        self._rows.append(row)

    def module_load(self, t_ns: int, cpu: int, row: dict[str, object]) -> None:
        """A ``module load`` from a module-table row (see recorders/modules.py)."""
        self.add(t_ns, cpu, "module", "load", str(row["module"]),
                 **{c: int(row[c]) for c in _MODULE_LOAD_COLS})

    def frame(self) -> pd.DataFrame:
        """The events as a schema-ordered frame (nullable Int64 size columns)."""
        df = pd.DataFrame(self._rows)
        for c in COLUMNS:
            if c not in df.columns:
                df[c] = pd.NA
        for c in SIZE_COLUMNS:
            df[c] = df[c].astype("Int64")
        return df[COLUMNS]

    def check(self, name: str = "<trace>") -> None:
        """Validate without writing (raises TraceError naming the row)."""
        raw = self.frame().astype(object).where(self.frame().notna(), "").astype(str)
        validate(raw, name)

    def save(self, path: pathlib.Path) -> None:
        """Validate and write atomically (gzip when the name ends in .gz, mtime 0)."""
        save_trace(self.frame(), path)
        os.chmod(path, 0o644)  # the temp file behind the atomic write is 0600


def merge(streams: list[TraceBuilder]) -> TraceBuilder:
    """Interleave independent event streams by time (ties: stream order, then seq).

    Valid only when the streams touch disjoint objects, so that each stream's lifecycle
    stays intact; validation on save re-checks that.
    """
    rows = [(int(r["t_ns"]), k, int(r["seq"]), r) for k, s in enumerate(streams) for r in s._rows]
    rows.sort(key=lambda x: x[:3])
    out = TraceBuilder()
    for _, _, _, r in rows:
        cols = {c: v for c, v in r.items() if c not in ("seq", "t_ns", "cpu", "user", "op", "obj")}
        out.add(int(r["t_ns"]), int(r["cpu"]), str(r["user"]), str(r["op"]), str(r["obj"]), **cols)
    return out
