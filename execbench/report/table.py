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


# -- metric tables for the terminal (execbench run / compare) ----------------------

#: units shown scaled in terminal tables (catalogue unit -> shown unit, divisor):
#: raw bytes and nanoseconds run to 10-13 digits, which no table fits
SCALE = {"bytes": ("KiB", 1024.0), "ns": ("ms", 1e6), "page*ns": ("page*ms", 1e6),
         "kB": ("MiB", 1024.0)}    # DirectMap*: kB in json/csv, MiB in tables


def width(default: int = 100) -> int:
    """$COLUMNS, else the terminal's width, else ``default`` (a pipe)."""
    import shutil
    return max(shutil.get_terminal_size((default, 24)).columns, 40)


def scaled(unit: str) -> tuple[str, float]:
    return SCALE.get(unit, (unit, 1.0))


def fmt(v) -> str:
    """The one number format of the terminal tables: 3 significant figures,
    thousands grouped, whole numbers from 100 up (:func:`.headline.fmt_sig`);
    an exact whole number is printed whole."""
    from .headline import fmt_sig
    if isinstance(v, (int, float)) and math.isfinite(v) and float(v).is_integer():
        return f"{int(v):,}"       # exact counts stay exact: 5, not 5.00
    return fmt_sig(v)


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], nfixed: int, sep: str = "  ") -> list[str]:
    """Columns after the first ``nfixed`` are numbers: right-aligned."""
    cells = [list(header)] + [list(r) for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    out = []
    for i, r in enumerate(cells):
        parts = [r[j].rjust(widths[j]) if j >= nfixed else r[j].ljust(widths[j])
                 for j in range(len(header))]
        out.append(sep.join(parts).rstrip())
        if i == 0:
            out.append(sep.join("-" * w for w in widths))
    return out


def fit(fixed_header: Sequence[str], columns: Sequence[str], rows: Sequence[tuple[Sequence[str], Sequence[object]]],
        max_width: int | None = None, aliases: dict[str, str] | None = None) -> str:
    """A table of label columns (``fixed_header``) and one numeric column per
    entry of ``columns`` (designs) that fits ``max_width``: full column
    names if they fit, else the short ``aliases`` with a legend line, else
    the numeric columns split over several blocks that repeat the labels.
    ``rows`` are (label cells, values); values are formatted by :func:`fmt`."""
    w = max_width or width()
    body = [(list(lab), [v if isinstance(v, str) else fmt(v) for v in vals]) for lab, vals in rows]
    nf = len(fixed_header)

    def block(names, idx):
        return _grid(list(fixed_header) + [names[i] for i in idx],
                     [lab + [vals[i] for i in idx] for lab, vals in body], nf)

    idx = list(range(len(columns)))
    lines = block(list(columns), idx)
    legend = []
    names = list(columns)
    if max(map(len, lines)) > w and aliases:
        names = [aliases.get(c, c) for c in columns]
        lines = block(names, idx)
        pairs = [f"{a} = {c}" for a, c in zip(names, columns) if a != c]
        if pairs:
            legend = _wrap("columns: " + ", ".join(pairs), w)
    if max(map(len, lines)) > w:
        # split the numeric columns into as few blocks as fit
        for per in range(len(columns) - 1, 0, -1):
            chunks = [idx[i:i + per] for i in range(0, len(idx), per)]
            blocks = [block(names, c) for c in chunks]
            if all(max(map(len, b)) <= w for b in blocks) or per == 1:
                lines = [ln for b in blocks for ln in b + [""]][:-1]
                break
    return "\n".join(legend + lines)


def _wrap(text: str, w: int) -> list[str]:
    import textwrap
    return textwrap.wrap(text, w, break_on_hyphens=False, subsequent_indent="  ")
