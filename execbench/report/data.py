"""What every report, chart and notebook is made from: one headline run.

A *headline run* is a sweep (every design x every workload x a few seeds)
plus the facts a reader needs to trust it: workload provenance, the
effective design parameters, the simulated machine, the primitive costs,
the execbench version and the commit of the code that produced it.  It is
stored in ``results/`` as two files so that reports can be regenerated and
the notebook can reproduce them without re-running anything:

* ``results.csv`` -- the tidy sweep (workload, design, seed, metric,
  final, peak, mean), as :mod:`execbench.results` writes it;
* ``meta.json`` -- everything else, keys sorted.

Why the commit is "the last commit touching the code": ``results/`` is
itself committed, so stamping ``HEAD`` would make every commit of the
results change the results.  Stamping the last commit of the inputs
(engine, models, workloads, pyproject) keeps a re-run byte-identical.
Wall-clock figures (events/s) are deliberately *not* stored: they differ
between runs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from .. import __version__, registry
from ..errors import ExecbenchError, cell
from ..kernel import Costs
from ..replay import RunResult
from ..results import to_csv_bytes
from ..sweep import sweep
from ..arch_trace import sizes_note
from ..trace import Trace

try:        # the floor's lower bounds (execbench/metrics/floor.py)
    from ..metrics import floor as _floor
except ImportError:     # pragma: no cover - older engine without it
    _floor = None

#: inputs whose last commit identifies the code behind a result
SOURCE_PATHS = ("execbench", "models", "workloads", "pyproject.toml", "setup.py")

RESULTS_CSV = "results.csv"
META_JSON = "meta.json"
TIDY_COLUMNS = ["workload", "design", "seed", "metric", "final", "peak", "mean"]


def source_commit(root: Path | None = None) -> str:
    """Short hash of the last commit touching the code, ``-dirty`` when the
    working tree differs there (changed or untracked, not ignored, files),
    ``unknown`` outside a git checkout."""
    root = root or Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "unknown"
    try:
        h = subprocess.run(["git", "log", "-1", "--format=%h", "--", *SOURCE_PATHS], cwd=root,
                           capture_output=True, text=True, check=True, timeout=20).stdout.strip()
        # untracked files count: a new, uncommitted module changes the output too
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal", "--",
                                *SOURCE_PATHS], cwd=root, capture_output=True, text=True,
                               check=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (h or "unknown") + ("-dirty" if dirty else "")


@dataclass
class WorkloadMeta:
    name: str
    events: int
    description: str
    synthetic: str          # what is synthetic ("" when nothing is)
    users: list[str] = field(default_factory=list)
    #: the trace columns whose values are synthetic (``column`` or
    #: ``user:column``, with a parenthetical where only part of it is), from
    #: the TOML's ``synthetic_columns``; None when the TOML does not say
    synthetic_columns: list[str] | None = None


@dataclass
class DesignMeta:
    name: str
    title: str
    kernel: str
    source: str
    params: dict[str, Any]
    #: what the design is on the run's architecture when not as merged/posted there
    #: (``Design.arch_note``: "our reading", "extrapolation ..."), else ""
    arch_note: str = ""


@dataclass
class Headline:
    """One headline run: the tidy sweep plus its provenance."""

    df: pd.DataFrame
    designs: list[DesignMeta]
    workloads: list[WorkloadMeta]
    seeds: list[int]
    machine: dict[str, Any]
    costs: dict[str, float]
    version: str = __version__
    commit: str = "unknown"
    command: str = ""

    @property
    def design_names(self) -> list[str]:
        return [d.name for d in self.designs]

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` and frame: a report asks for the same
        per-workload means and per-row cells hundreds of times while it fits
        its lines (a new ``df`` is a new frame, so nothing stale is returned)."""
        cache = self.__dict__.setdefault("_cache", {})
        k = (id(self.df),) + key
        if k not in cache:
            cache[k] = compute()
        return cache[k]

    @property
    def workload_names(self) -> list[str]:
        return [w.name for w in self.workloads]

    def subset(self, workloads: list[str] | None = None,
               designs: list[str] | None = None) -> "Headline":
        """The same run restricted to some workloads / designs (for a reply
        that argues about one workload); unknown names are an error."""
        for kind, want, have in (("workload", workloads, self.workload_names),
                                 ("design", designs, self.design_names)):
            bad = [x for x in (want or []) if x not in have]
            if bad:
                raise ExecbenchError(f"{kind}(s) {bad} not in this run; it has: {', '.join(have)}")
        ws = workloads or self.workload_names
        ds = designs or self.design_names
        df = self.df[self.df.workload.isin(ws) & self.df.design.isin(ds)].reset_index(drop=True)
        return Headline(df=df, designs=[d for d in self.designs if d.name in ds],
                        workloads=[w for w in self.workloads if w.name in ws], seeds=self.seeds,
                        machine=self.machine, costs=self.costs, version=self.version,
                        commit=self.commit, command=self.command)

    def meta(self) -> dict[str, Any]:
        return {"designs": [asdict(d) for d in self.designs],
                "workloads": [asdict(w) for w in self.workloads],
                "seeds": self.seeds, "machine": self.machine, "costs": self.costs,
                "version": self.version, "commit": self.commit, "command": self.command,
                "baseline": registry.BASELINE}

    def files(self, out_dir: str | Path) -> dict[Path, bytes]:
        """``results.csv`` and ``meta.json`` under ``out_dir``, as bytes."""
        out = Path(out_dir)
        return {out / RESULTS_CSV: to_csv_bytes(self.df[TIDY_COLUMNS]),
                out / META_JSON: (json.dumps(_jsonable(self.meta()), indent=2, sort_keys=True)
                                  + "\n").encode()}

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``results.csv`` and ``meta.json`` (both or neither); returns the paths."""
        from ..results import write_files
        return write_files(self.files(out_dir))


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    return str(o)


def _workload_meta(tr: Trace) -> WorkloadMeta:
    wl = (tr.provenance or {}).get("workload", {})
    syn = wl.get("synthetic", False)
    note = (wl.get("synthetic_note", "") or wl.get("synthetic_what", "")
            or (syn if isinstance(syn, str) else ""))
    if syn is True and not note:
        note = "yes (see provenance)"
    return WorkloadMeta(name=tr.name, events=len(tr), description=str(wl.get("description", "")),
                        synthetic=str(note) if syn else "", users=list(wl.get("users", [])),
                        synthetic_columns=([str(c) for c in wl["synthetic_columns"]]
                                           if "synthetic_columns" in wl else None))


def _design_meta(name: str, params: dict[str, Any], arch: str = "x86_64") -> DesignMeta:
    cls = registry.get(name)
    kernel = tuple(cls.kernel_for({**cls.defaults, **(params or {})}))
    label = ".".join(map(str, kernel))
    unshipped = getattr(cls, "UNSHIPPED", {}).get(kernel)
    if unshipped:
        label += f", {unshipped}"
    return DesignMeta(name=name, title=cls.title, kernel=label,
                      source=cls.source, params=_jsonable(params),
                      arch_note=cls.arch_note(arch, {**cls.defaults, **(params or {})}))


def arch_phrase(machine: dict) -> str:
    """Which architecture a run shows, for report headers and chart footers:
    'x86-64', or 'arm64' with its non-default machine options."""
    arch = machine.get("arch", "x86_64")
    if arch != "arm64":
        return "x86-64"
    opts = []
    if machine.get("module_region_full") is False:
        opts.append("RANDOMIZE_MODULE_REGION_FULL=n")
    if machine.get("kasan", "off") != "off":
        opts.append(f"KASAN {machine['kasan']}")
    if machine.get("linear_map", "ptes") != "ptes":
        opts.append(f"linear map {machine['linear_map']}")
    if machine.get("tlbi_range"):
        opts.append("FEAT_TLBIRANGE")
    return "arm64" + (f" ({', '.join(opts)})" if opts else "")


def collect(traces: Iterable[Trace], designs: list[str], seeds: list[int],
            params: dict[str, dict[str, Any]] | None = None, costs: Costs | None = None,
            machine: dict[str, Any] | None = None, command: str = "",
            progress: bool | None = None,
            on_result: Callable[[RunResult], None] | None = None,
            keep: bool = True, jobs: int | None = None,
            with_floor_rows: bool = True) -> tuple[Headline, list[RunResult]]:
    """Run the sweep and wrap it with its provenance.

    Shows a progress bar (one step per workload x design) on a TTY only.
    ``on_result`` sees every run as it finishes; with ``keep=False`` the
    runs (and their per-event samples, ~20 MB per 100k events) are dropped
    after that instead of returned -- ``execbench all`` needs only the
    summaries and one reduced timeline per (workload, design).  ``jobs`` is
    passed to :func:`execbench.sweep.sweep` (0 = one process per CPU);
    the output does not depend on it.  ``with_floor_rows`` adds the
    design-free floor (:mod:`execbench.metrics.floor`) as a design ``floor``."""
    traces = list(traces)
    if costs is None:
        from ..kernel.arch import get_arch
        costs = get_arch((machine or {}).get("arch", "x86_64")).costs()
    # one sweep() per progress step: per (workload, design) when serial; per
    # workload when ``jobs`` asks sweep() for worker processes, so that each
    # step has (designs x seeds) replays to spread over them
    parallel = jobs is not None and jobs != 1
    steps = ([([tr], designs) for tr in traces] if parallel else
             [([tr], [d]) for tr in traces for d in designs])
    show = progress if progress is not None else sys.stderr.isatty()
    it = steps
    if show and steps:
        from tqdm import tqdm
        it = tqdm(steps, desc="sweep", unit="step", total=len(steps), leave=False,
                  disable=not sys.stderr.isatty())
    frames, results = [], []
    eff_params: dict[str, dict] = {}
    configs: list = []
    extra = {"jobs": jobs} if parallel else {}
    for trs, ds in it:
        f, rs = sweep(trs, ds, seeds, params=params, costs=costs, machine=machine, progress=False,
                      **extra)
        frames.append(f)
        for r in rs:
            if not eff_params.get(r.design):
                eff_params[r.design] = r.params
                configs.append(r.config)
            if on_result:
                on_result(r)
        if keep:
            results += rs
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TIDY_COLUMNS)
    floor_meta = []
    if with_floor_rows and _floor is not None and traces:
        df = _floor.with_floor(df, traces, list(seeds))
        floor_meta = [DesignMeta(name=_floor.FLOOR_NAME, title="lower bound no allocator beats "
                                 "for the same live text (design-free, from the trace)",
                                 kernel="-", source="execbench/metrics/floor.py", params={})]
    eff = eff_params
    cfg = configs[0] if configs else None
    mach = {"mem_bytes": cfg.mem_bytes, "placement": cfg.placement, "kaslr": cfg.kaslr,
            "numa_nodes": cfg.numa_nodes, "itlb_cpu": getattr(cfg, "itlb_cpu", None),
            "arch": getattr(cfg, "arch", "x86_64")} if cfg else {}
    if cfg is not None and cfg.arch == "arm64":
        mach.update(module_region_full=cfg.module_region_full, kasan=cfg.kasan,
                    linear_map=cfg.linear_map, tlbi_range=cfg.tlbi_range)
        notes = sorted({sizes_note(t) for t in traces} - {""})
        if notes:
            mach["module_sizes"] = "; ".join(notes)
    mach = {k: v for k, v in mach.items() if v is not None}
    h = Headline(df=df[TIDY_COLUMNS].reset_index(drop=True),
                 designs=[_design_meta(d, eff.get(d, {}), mach.get("arch", "x86_64")) for d in designs]
                 + floor_meta,
                 workloads=[_workload_meta(t) for t in traces], seeds=list(seeds),
                 machine=mach, costs=costs.as_dict(), commit=source_commit(), command=command)
    return h, results


def load(results_dir: str | Path) -> Headline:
    """Read a headline run back from ``results.csv`` + ``meta.json``."""
    d = Path(results_dir)
    csv_p, meta_p = d / RESULTS_CSV, d / META_JSON
    for p in (csv_p, meta_p):
        if not p.exists():
            raise ExecbenchError(f"{p}: missing; run `execbench all` (or `execbench report`) first")
    try:
        meta = json.loads(meta_p.read_text())
    except json.JSONDecodeError as e:
        raise ExecbenchError(f"{meta_p}: bad JSON: line {e.lineno}: {e.msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExecbenchError(f"{meta_p}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        df = pd.read_csv(csv_p)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise ExecbenchError(f"{csv_p}: cannot read as CSV: {str(e).splitlines()[0] if str(e) else e}") from None
    missing = [c for c in TIDY_COLUMNS if c not in df.columns]
    if missing:
        raise ExecbenchError(f"{csv_p}: row 0 (header): missing column(s) {missing}")
    for c, kind in (("seed", "an integer"), ("final", "a number"), ("peak", "a number"),
                    ("mean", "a number")):
        v = pd.to_numeric(df[c], errors="coerce")
        bad = (v.isna() & df[c].notna()).to_numpy().copy()
        if c == "seed":
            bad |= (v.isna() | (v != v.round())).to_numpy()
        if bad.any():
            r = int(bad.nonzero()[0][0])
            raise ExecbenchError(f"{csv_p}: row {r} (line {r + 2}): column {c!r}: "
                                 f"{cell(df[c].iat[r])} is not {kind}")
        df[c] = v.astype("int64") if c == "seed" else v.astype(float)
    try:
        return Headline(df=df[TIDY_COLUMNS], designs=[DesignMeta(**x) for x in meta["designs"]],
                        workloads=[WorkloadMeta(**x) for x in meta["workloads"]],
                        seeds=list(meta["seeds"]), machine=meta["machine"], costs=meta["costs"],
                        version=meta["version"], commit=meta["commit"],
                        command=meta.get("command", ""))
    except (KeyError, TypeError, AttributeError) as e:
        raise ExecbenchError(f"{meta_p}: missing or malformed field: {e}") from None
