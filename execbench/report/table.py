"""Fixed-width tables: labels left-aligned, numbers right-aligned, two-space
separator, no trailing spaces (drgn's ``print_table`` convention), ASCII only."""
from __future__ import annotations

import math
from typing import Sequence


def fmt_num(v: float) -> str:
    """Integers without decimals, small fractions with 4 significant digits,
    huge values with thousands grouping -- stable across runs."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if float(v).is_integer():
        return f"{int(v):,}"
    if abs(v) < 10:
        return f"{v:.4f}"
    return f"{v:,.1f}"


def render(header: Sequence[str], rows: Sequence[Sequence[object]], sep: str = "  ") -> str:
    cells = [list(map(str, header))] + [[c if isinstance(c, str) else fmt_num(c) for c in r] for r in rows]
    numeric = [all(not isinstance(r[j], str) for r in rows) if rows else False
               for j in range(len(header))]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    out = []
    for i, r in enumerate(cells):
        parts = [(r[j].rjust(widths[j]) if (numeric[j] or (i == 0 and j > 0)) else r[j].ljust(widths[j]))
                 for j in range(len(header))]
        out.append(sep.join(parts).rstrip())
        if i == 0:
            out.append(sep.join("-" * w for w in widths))
    return "\n".join(out)
