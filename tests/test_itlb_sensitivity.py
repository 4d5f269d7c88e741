"""The one-at-a-time sensitivity sweep of the iTLB fetch stream."""
from __future__ import annotations

import numpy as np
import pandas as pd

from execbench import itlb_sensitivity as sens
from execbench.stress import stress_trace


def _frame(rows):
    return pd.DataFrame([{"param": p, "value": v, "design": d, "default": dflt, "m": m}
                         for p, v, d, dflt, m in rows])


def test_a_clear_pair_that_swaps_is_a_reversal_and_a_near_tie_is_not():
    # defaults (user_share=0.5): a 100, b 50, c 98.  Clear pairs (lower below
    # 95 % of higher): b<a (50 < 95), b<c (50 < 93.1); a vs c is a tie (98 > 95).
    # user_share=0:   a 40, b 60, c 100: b > a/0.95 = 42.1 -> "a < b" reversed;
    #                 b < c still -> one reversal.
    # user_share=0.25: a 97, b 51, c 100: a<c swapped, but a/c were tied -> none.
    df = _frame([
        ("user_share", 0.0, "a", False, 40), ("user_share", 0.0, "b", False, 60),
        ("user_share", 0.0, "c", False, 100),
        ("user_share", 0.25, "a", False, 97), ("user_share", 0.25, "b", False, 51),
        ("user_share", 0.25, "c", False, 100),
        ("user_share", 0.5, "a", True, 100), ("user_share", 0.5, "b", True, 50),
        ("user_share", 0.5, "c", True, 98),
    ])
    r = sens.reversals(df, "m")
    assert r.reversed.tolist() == ["a < b", "", ""]
    h = sens.holds(df, "m")
    assert h["ranking holds"].tolist() == ["0.25..0.5"]
    assert h["reversed"].tolist() == ["at 0: a < b"]


def test_sweep_rows_ratios_and_shared_default_runs():
    t = stress_trace(300, 3)
    grid = {"user_share": (0.0, 0.5), "visit_blocks": (8, 16)}
    df = sens.sweep(t, ["execmem"], grid, checkpoints=2)
    # legacy is added as the baseline: 2 params x 2 values x 2 designs
    assert len(df) == 8 and set(df.design) == {"legacy", "execmem"}
    base = df[df.design == "legacy"]
    pos = base.itlb_miss_per_mfetch > 0
    assert pos.any() and np.allclose(base.itlb_miss_per_mfetch_ratio[pos], 1.0)
    assert base.itlb_miss_per_mfetch_ratio[~pos].isna().all()     # no ratio to a 0 baseline
    # user_share=0.5 and visit_blocks=8 are both the defaults: the same replay
    d = df[df["default"]].set_index(["param", "design"]).itlb_miss_per_mfetch
    assert d["user_share", "execmem"] == d["visit_blocks", "execmem"]
    # user text competes for the TLB: more L1 misses with it than without
    us = df[(df.param == "user_share") & (df.design == "legacy")].set_index("value")
    assert us.itlb_miss_per_mfetch[0.5] > us.itlb_miss_per_mfetch[0.0]
