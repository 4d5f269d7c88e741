"""Charts for a mailing-list argument: PNG for viewing, SVG for linking.

Four charts per workload, each with a title and axis labels that stand
alone when linked as ``[n]`` from an email:

* ``itlb-<workload>``: iTLB entries needed to map live text over virtual
  time, one small panel per design (shared axes, so no tangle of
  coinciding lines), the design-free floor dashed in each (log scale:
  designs differ by orders of magnitude);
* ``permissions-<workload>``: permission flips (set_memory_* calls),
  global TLB flushes, direct-map 2 MiB splits and text_poke calls, one bar
  per design, each panel on its own scale (log where the range is wide);
* ``fragmentation-<workload>``: backed bytes against requested bytes over
  virtual time, one small panel per design, with the design's
  time-weighted mean internal fragmentation in the panel (log scale when
  the designs span more than 20x);
* ``wx-<workload>``: W^X exposure (page*ms of virtual time with pages both
  writable and executable) and the most pages W+X at once.

Timelines are reduced to at most :data:`POINTS` points per run: each point
is the *maximum* of a bucket of consecutive events (so peaks survive the
reduction), and the x value is the last event of the bucket with its
virtual-clock time ``t_ns``.  The x axis is virtual time in the unit that
fits the trace (seconds, minutes or hours); a timeline written before
``t_ns`` was stored falls back to the event number.  Charts read
only the tidy results and these reduced timelines, which ``execbench all``
stores in ``results/`` so the notebook can redraw them.

Determinism: figures drawn without pyplot (no backend switch), a fixed ``svg.hashsalt``, and no date or
software version in file metadata, so the same inputs give the same bytes.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .replay import RunResult
from .report.data import Headline, arch_phrase
from .report.headline import Table, Row
from .trace import atomic_write_bytes

POINTS = 400
#: metrics kept in the reduced timeline (what the charts and notebook need)
TIMELINE_METRICS = ["itlb_entries", "itlb_entries_ideal", "requested_bytes", "backing_bytes",
                    "internal_frag", "wx_pages", "wx_page_ns", "cpa_calls", "tlb_shootdowns",
                    "tlb_flush_all"]
KINDS = ("itlb", "permissions", "fragmentation", "wx")
FORMATS = ("png", "svg")


def reduce_timeline(r: RunResult, points: int = POINTS) -> pd.DataFrame:
    """Bucket-max reduction of one run's timeline to <= ``points`` rows."""
    cols = [r.metrics.index(m) for m in TIMELINE_METRICS if m in r.metrics]
    names = [r.metrics[c] for c in cols]
    s = r.samples[:, cols]
    n = s.shape[0]
    edges = np.unique(np.linspace(0, n, min(points, n) + 1).round().astype(int))
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        rows.append([b - 1, float(r.t_ns[b - 1]), *s[a:b].max(axis=0)])
    df = pd.DataFrame(rows, columns=["event", "t_ns", *names])
    df.insert(0, "design", r.design)
    df.insert(0, "workload", r.workload)
    return df


def timelines(results: Iterable[RunResult]) -> pd.DataFrame:
    """Reduced timelines of the first seed of every (workload, design)."""
    seen, parts = set(), []
    for r in results:
        if (r.workload, r.design) in seen:
            continue
        seen.add((r.workload, r.design))
        parts.append(reduce_timeline(r))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


#: chart style, applied only while a chart is drawn (a notebook's own
#: figures keep their settings); ``svg.hashsalt`` makes SVG ids stable
RC = {"svg.hashsalt": "execbench", "figure.dpi": 100, "font.size": 9,
      "axes.titlesize": 10, "figure.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3}


class _Figures:
    """``subplots`` without pyplot: figures are plain
    :class:`matplotlib.figure.Figure` objects saved through the Agg/SVG
    canvases, so drawing charts never switches the caller's backend (a
    notebook's inline figures keep rendering) and leaves no figure open."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, figsize=None, **kw):
        from matplotlib.figure import Figure
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kw)


def _setup():
    return _Figures


def _colors(designs: Sequence[str]) -> dict[str, object]:
    """A fixed colour per design (registry order); the floor is black, like
    its dashed line in the line charts."""
    import matplotlib
    cmap = matplotlib.colormaps["tab10"]
    out = {d: cmap(i % 10) for i, d in enumerate(d for d in designs if d != "floor")}
    out["floor"] = (0.0, 0.0, 0.0, 1.0)
    return out


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        buf = io.BytesIO()
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buf, format=fmt, metadata=meta, bbox_inches="tight", dpi=110)
        p = out_dir / f"{stem}.{fmt}"
        if _SINK is not None:
            _SINK[p] = buf.getvalue()         # plot_all(sink=...): written by the caller
        else:
            atomic_write_bytes(p, buf.getvalue())
        paths.append(p)
    return paths


def _finish(fig, out_dir: Path, stem: str, foot: str, suptitle: str | None = None,
            arch: str = "x86-64") -> list[Path]:
    """Title (multi-panel figures), provenance footer, save.  A chart of
    another architecture than x86-64 names it at the start of its title
    too, not only in the footer (x86-64 charts are unchanged)."""
    if arch != "x86-64":
        if suptitle:
            suptitle = f"[{arch}] {suptitle}"
        else:
            fig.text(0.01, 0.99, f"[{arch}]", ha="left", va="top", fontsize=9, fontweight="bold")
    if suptitle:
        fig.suptitle(suptitle)
    fig.text(0.99, 0.005, foot, ha="right", fontsize=6, color="gray")
    if suptitle:
        fig.tight_layout()
    return _save(fig, out_dir, stem)


def _bars(ax, t: Table, row: Row, colors, title: str, ylabel: str) -> None:
    raw = [t.value(d, row) / row.scale for d in t.designs]
    vals = [0.0 if math.isnan(v) else v for v in raw]     # the floor has no bound on some
    x = np.arange(len(t.designs))
    ax.bar(x, vals, color=[colors[d] for d in t.designs])
    pos = [v for v in vals if v > 0]
    if pos and max(pos) / min(pos) > 20:
        ax.set_yscale("log")
        ax.set_ylim(min(pos) / 2, max(pos) * 4)
    else:
        ax.set_ylim(0, (max(vals) if vals and max(vals) > 0 else 1) * 1.2)
    lo = ax.get_ylim()[0]
    for xi, v, r in zip(x, vals, raw):
        label = "-" if math.isnan(r) else _short(v)
        ax.annotate(label, (xi, max(v, lo) if v > 0 else lo), ha="center", va="bottom",
                    fontsize=7, xytext=(0, 2), textcoords="offset points")
    if ax.get_yscale() == "linear":
        from matplotlib.ticker import FuncFormatter
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))   # 1.2M, not 1e6
    if all(float(v).is_integer() for v in vals) and ax.get_yscale() == "linear":
        from matplotlib.ticker import MaxNLocator
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))     # counts: no 2.5 splits
    ax.set_xticks(x, t.designs, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)


def _tick(v: float) -> str:
    """Axis tick label in one style per axis: 800k, 1.2M."""
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _short(v: float) -> str:
    """Bar label narrow enough not to run into its neighbours."""
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 10 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _time_axis(sub: pd.DataFrame, workload: str):
    """(x values of a design's rows, axis label): virtual time in hours,
    minutes or seconds: the largest unit the span covers at least twice; the event
    number for a timeline without ``t_ns``."""
    if not len(sub) or "t_ns" not in sub or sub.t_ns.isna().all():
        return (lambda s: s.event), f"event number in the {workload} trace"
    span = float(sub.t_ns.max())
    for unit, div in (("hours", 3.6e12), ("minutes", 6e10), ("seconds", 1e9)):
        if span >= 2 * div or unit == "seconds":
            return (lambda s, div=div: s.t_ns / div), f"virtual time ({unit}), design's clock"


def _panels(plt, designs: Sequence[str], sub: pd.DataFrame, draw, xlabel: str, ylabel: str,
            out_dir: Path, stem: str, foot: str, title: str, arch: str = "x86-64") -> list[Path]:
    """Small multiples: one panel per design, so designs with identical
    curves stay readable (no overlapping lines).  The y axis is shared; the
    x axis is each design's own virtual clock (a design whose primitives
    cost more takes longer for the same trace), so it is not shared --
    otherwise the slowest design squashes the others to the left edge."""
    n = max(len(designs), 1)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.5 * rows + 0.6),
                             sharex=False, sharey=True, squeeze=False)
    for ax, d in zip(axes.flat, designs):
        draw(ax, d, sub[sub.design == d])
        ax.set_title(d, fontsize=9)
    for ax in list(axes.flat)[len(designs):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    if designs:
        axes.flat[0].legend(fontsize=7, loc="lower right")
    return _finish(fig, out_dir, stem, foot, title, arch)


def plot_workload(h: Headline, tl: pd.DataFrame, workload: str, out_dir: Path) -> list[Path]:
    """The four charts of one workload; returns the written paths."""
    import matplotlib
    with matplotlib.rc_context(RC):
        return _plot_workload(h, tl, workload, out_dir)


def _plot_workload(h: Headline, tl: pd.DataFrame, workload: str, out_dir: Path) -> list[Path]:
    plt = _setup()
    t = Table(h, workload)
    colors = _colors(h.design_names)
    seeds = (f"mean of seeds {h.seeds[0]}..{h.seeds[-1]}" if len(h.seeds) > 1
             else f"seed {h.seeds[0]}")
    first = f"seed {h.seeds[0]}"
    sub = tl[tl.workload == workload] if len(tl) else tl
    arch = arch_phrase(h.machine)
    foot = f"execbench {h.version} ({h.commit}), simulated {arch}"
    written: list[Path] = []

    # 1. iTLB entries over virtual time, one panel per design
    xs, xlabel = _time_axis(sub, workload)
    designs = [d for d in t.designs if not sub[sub.design == d].empty] if len(sub) else []

    def itlb_panel(ax, d, s):
        ax.plot(xs(s), s.itlb_entries, color=colors[d], lw=1.6, label=d)
        if "itlb_entries_ideal" in s:
            ax.plot(xs(s), s.itlb_entries_ideal, "k--", lw=0.9, label="floor")
        ax.set_yscale("log")

    written += _panels(plt, designs, sub, itlb_panel, xlabel,
                       "iTLB entries (4K + 2M leaves, log)", out_dir, f"itlb-{workload}", foot,
                       f"iTLB entries needed for all live executable text -- {workload}, "
                       f"{first}\ndashed: the floor, ceil(live text / 2 MiB); lower is better", arch)

    # 2. permission flips, flushes, splits, pokes
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    panels = [("cpa_calls", "set_memory_* calls (permission flips)", "calls"),
              ("tlb_shootdowns", "TLB shootdowns (broadcast flushes)", "IPIs"),
              ("direct_map_level2_splits", "direct-map 2 MiB leaves split", "splits"),
              ("text_pokes", "text_poke calls", "calls")]
    if arch != "x86-64":
        # arm64: broadcast TLBI instructions, not IPIs; text written through the fixmap
        panels[1] = ("tlb_shootdowns", "TLB invalidations (broadcast TLBI)", "TLBIs")
        panels[3] = ("text_pokes", "text writes through the fixmap", "writes")
    for ax, (m, title, unit) in zip(axes.flat, panels):
        _bars(ax, t, Row(m, "final", m, unit), colors, title, f"{unit} over the trace")
    written += _finish(fig, out_dir, f"permissions-{workload}", foot,
                       f"Permission changes per design -- {workload}, {seeds}; lower is better", arch)

    # 3. fragmentation over virtual time, one panel per design
    frag = Row("internal_frag", "mean", "", "")
    mib = [v for d in designs for v in (sub[sub.design == d].backing_bytes / 2**20) if v > 0]
    log = bool(mib) and max(mib) / min(mib) > 20

    def frag_panel(ax, d, s):
        ax.plot(xs(s), s.backing_bytes / 2**20, color=colors[d], lw=1.6, label="backed")
        ax.plot(xs(s), s.requested_bytes / 2**20, "k--", lw=0.9, label="requested")
        f = t.value(d, frag)
        if not math.isnan(f):
            ax.text(0.02, 0.95, f"internal frag {f:.0%} (mean)", transform=ax.transAxes,
                    va="top", fontsize=7)
        if log:
            ax.set_yscale("log")

    written += _panels(plt, designs, sub, frag_panel, xlabel,
                       "MiB" + (" (log)" if log else ""), out_dir, f"fragmentation-{workload}",
                       foot, f"Memory backing the module range vs requested -- {workload}, "
                       f"{first}\nlower is better", arch)

    # 4. W^X exposure
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    _bars(a1, t, Row("wx_page_ns", "final", "", "page*ms", 1e6), colors,
          "W^X exposure: W+X pages x time", "page*ms of virtual time")
    _bars(a2, t, Row("wx_pages_peak_instant", "final", "", "pages"), colors,
          "Most pages W+X at any instant (incl. inside events)", "pages")
    written += _finish(fig, out_dir, f"wx-{workload}", foot,
                       f"W^X exposure per design -- {workload}, {seeds}; lower is better", arch)
    return written


#: where _save() puts chart bytes instead of writing them (see plot_all)
_SINK: dict[Path, bytes] | None = None


def plot_all(h: Headline, tl: pd.DataFrame, out_dir: str | Path,
             progress: bool | None = None, sink: dict[Path, bytes] | None = None) -> list[Path]:
    """Every chart of every workload under ``out_dir``.  With ``sink`` the
    files are not written: their bytes go into ``sink`` (path -> bytes), so
    that a command can write all its outputs or none."""
    global _SINK
    out = Path(out_dir)
    if sink is None:
        out.mkdir(parents=True, exist_ok=True)
    names = h.workload_names
    it = names
    if progress:
        from tqdm import tqdm
        it = tqdm(names, desc="charts", unit="workload", leave=False)
    paths: list[Path] = []
    _SINK = sink
    try:
        for w in it:
            paths += plot_workload(h, tl, w, out)
    finally:
        _SINK = None
    return paths


def existing_charts(out_dir: str | Path, workloads: Sequence[str]) -> list[Path]:
    """The SVGs present in ``out_dir`` in report order (workload, then kind)."""
    d = Path(out_dir)
    return [d / f"{k}-{w}.svg" for w in workloads for k in KINDS if (d / f"{k}-{w}.svg").exists()]


def chart_refs(paths: Sequence[Path], rel_to: str | Path = ".") -> list[str]:
    """The SVG paths, relative, for the numbered references of a report."""
    base = Path(rel_to).resolve()
    out = []
    for p in paths:
        if p.suffix == ".svg":
            try:
                out.append(str(p.resolve().relative_to(base)))
            except ValueError:
                out.append(str(p))
    return out

