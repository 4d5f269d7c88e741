"""Shared helpers for building small traces in tests."""
from __future__ import annotations

import pandas as pd
import pytest

from execbench.trace import COLUMNS, from_frame


class TraceBuilder:
    """Append events; seq and t_ns are filled in (1 us apart by default)."""

    def __init__(self, step_ns: int = 1000):
        self.rows: list[dict] = []
        self.step = step_ns

    def add(self, user: str, op: str, obj: str, cpu: int = 0, **sizes) -> "TraceBuilder":
        r = dict.fromkeys(COLUMNS)
        r.update(seq=len(self.rows), t_ns=len(self.rows) * self.step, cpu=cpu,
                 user=user, op=op, obj=obj, **sizes)
        self.rows.append(r)
        return self

    def module(self, obj: str, text=0, rodata=0, ro_after_init=0, data=0, init_text=0,
               init_rodata=0, init_data=0, align=16, relocs=0, reloc_secs=0, alt_sites=0,
               orc_entries=0, mcount_locs=0, cpu=0) -> "TraceBuilder":
        return self.add("module", "load", obj, cpu=cpu, text=text, rodata=rodata,
                        ro_after_init=ro_after_init, data=data, init_text=init_text,
                        init_rodata=init_rodata, init_data=init_data, align=align,
                        relocs=relocs, reloc_secs=reloc_secs, alt_sites=alt_sites,
                        orc_entries=orc_entries, mcount_locs=mcount_locs)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS, dtype=object)

    def trace(self, name: str = "test"):
        return from_frame(self.frame(), name)


@pytest.fixture
def tb() -> TraceBuilder:
    return TraceBuilder()
