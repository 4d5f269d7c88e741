"""Replay: one call from a trace and a design to metrics.

``run(trace, "legacy", seed=0)`` builds a fresh simulated kernel for the
design's kernel version, instantiates the design, feeds every event to the
user it belongs to, samples every metric after every event and returns a
:class:`RunResult`.  Like libCacheSim's ``process_trace``: the whole
pipeline is one function.  A :class:`~.trace.TraceStream` (``execbench run
--stream``) is replayed the same way, read chunk by chunk, with the samples
reduced on the fly (the result has the summary and no timeline).
"""
from __future__ import annotations

import gc
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import registry
from .arch_trace import for_arch
from .errors import ExecbenchError, KernelBug, OutOfMemory, UsageError, printable
from .kernel import Costs, Kernel, KernelConfig
from .kernel.sidealloc import SideAllocs, SideParams
from .metrics.sampler import NAMES, Sampler, summarise
from .trace import Trace
from .users import dispatch_table


@dataclass
class RunResult:
    """Everything one replay produced."""

    design: str
    workload: str
    seed: int
    params: dict[str, Any]
    config: KernelConfig
    samples: np.ndarray | None          # (events, metrics), after each event; None if streamed
    t_ns: np.ndarray | None             # virtual clock after each event; None if streamed
    counters: dict[str, int]
    entry_points: dict[str, list[str]]
    wall_s: float
    api_per_op: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(NAMES))
    #: a streamed replay's summary, reduced on the fly (``samples`` is None)
    reduced: dict[str, tuple[float, float, float]] | None = None
    n_events: int | None = None

    @property
    def events(self) -> int:
        return self.n_events if self.samples is None else int(self.samples.shape[0])

    @property
    def stats(self) -> dict[str, tuple[float, float, float]]:
        """metric -> (final, peak, time-weighted mean)."""
        if self.reduced is not None:
            return self.reduced
        return summarise(self.samples, self.t_ns, self.metrics)

    @property
    def final(self) -> dict[str, float]:
        if self.reduced is not None:
            return {m: v[0] for m, v in self.reduced.items()}
        return {m: float(v) for m, v in zip(self.metrics, self.samples[-1])}

    def summary(self) -> pd.DataFrame:
        """Tidy summary: one row per metric."""
        rows = [{"workload": self.workload, "design": self.design, "seed": self.seed,
                 "metric": m, "final": f, "peak": p, "mean": mean}
                for m, (f, p, mean) in self.stats.items()]
        return pd.DataFrame(rows)

    def timeline(self) -> pd.DataFrame:
        if self.samples is None:
            raise UsageError("a streamed replay keeps no per-event samples, so it has no "
                             "timeline: replay without --stream for --timeline")
        df = pd.DataFrame(self.samples, columns=self.metrics)
        df.insert(0, "t_ns", self.t_ns)
        df.insert(0, "seq", np.arange(self.events))
        return df


#: ops that create the object they name: when one gets -ENOMEM the object
#: does not exist, and the trace's later events on it are skipped
CREATE_OPS = frozenset({"load", "prog_load", "tramp_attach", "ops_register", "register"})
#: ops that free their object (the end of a skipped object too)
FREE_OPS = frozenset({"unload", "prog_unload", "tramp_detach", "ops_unregister", "unregister"})


def _where(trace: Trace, i: int, ev, design: str) -> str:
    return printable(f"{trace.path}: row {i} ({ev.user}/{ev.op} {ev.obj}) on {design}", 160)


def run(trace: Trace, design: str, seed: int = 0, params: dict[str, Any] | None = None,
        costs: Costs | None = None, machine: dict[str, Any] | None = None,
        progress: bool | None = None,
        observe: Callable[[Kernel, Any], None] | None = None) -> RunResult:
    """Replay ``trace`` on ``design``; deterministic for a given seed.

    ``machine`` overrides :class:`KernelConfig` fields (``mem_bytes``,
    ``placement``, ``kaslr``, ``cpus``: default the trace's CPUs; ``version``:
    default the release the design and its parameters model).  Around
    every event :class:`~.kernel.sidealloc.SideAllocs` allocates what the
    kernel and the loader allocate besides the design's executable memory,
    the same for every design.  ``progress`` shows a bar on a TTY (default:
    only for traces of 20k+ events).  ``observe(kernel, design)`` is called
    once before the first event, e.g. for ``execbench.validation`` to watch
    the calls a design makes (it must not change what they do).

    An allocation the simulated kernel cannot satisfy
    (:class:`~execbench.errors.OutOfMemory`, the kernel's -ENOMEM) fails that
    one operation, as in the kernel: the design's error path has freed what
    it took, ``alloc_failures`` counts it and the replay goes on.  A failed
    creating op (load, prog_load, tramp_attach, ops_register, register)
    leaves no object, so the trace's later events on that object are skipped
    (``events_skipped``); a failed update (tramp_update, optimize, a
    dispatcher's first update) leaves the object as it was.  Neither changes
    ``requested_bytes``.
    """
    # A finished replay's kernel is cyclic garbage holding the machine's page
    # arrays (~80 MB at 16 GiB); the cyclic collector rarely reaches it, so a
    # process replaying many runs (sweep and fuzz workers) grew by that much
    # per run until the OOM killer stopped it.  A run that returns breaks its
    # cycles (_release); one that raised, or that an observer may still
    # inspect, is collected before the next run starts.
    global _unreleased
    if _unreleased is not None and _unreleased() is not None:
        gc.collect()
    _unreleased = None
    cls = registry.get(design)
    machine = dict(machine or {})
    if trace.streamed:
        refuse_stream_arch(machine.get("arch", "x86_64"))
    # the architecture's module sizes (execbench/arch_trace.py; x86-64: the trace as it is)
    trace = for_arch(trace, machine.get("arch", "x86_64"))
    if "itlb_cpu" not in machine and machine.get("arch", "x86_64") != "x86_64":
        from .kernel.arch import get_arch
        machine["itlb_cpu"] = get_arch(machine["arch"]).itlb_cpu   # the architecture's CPU preset
    if "cpus" not in machine and len(trace):
        # one per-CPU page list per CPU the trace runs on
        machine["cpus"] = max(2, trace.max_cpu() + 1)
    # the release the parameters select (execmem_rox --param version=...), or the
    # release a recording was made on (``machine["version"]``: execbench.validation
    # replays the arm64 7.2 recording on execmem -- arm64 has no ROX cache -- under
    # 7.2's architecture rules)
    version = machine.pop("version", None) or cls.kernel_for({**cls.defaults, **(params or {})})
    config = KernelConfig(seed=seed, version=tuple(version), costs=costs or Costs(), **machine)
    kernel = Kernel(config)
    kernel.module_arch_info = trace.__dict__.get("arch_modinfo", {})
    side = SideAllocs(kernel, SideParams.from_provenance(trace.provenance)
                      if config.side_allocs else SideParams(enabled=False))
    d = cls(kernel, **(params or {}))
    if observe is not None:
        observe(kernel, d)
    _unreleased = weakref.ref(kernel)         # until _release() below
    table = dispatch_table(d)
    n = len(trace)
    sampler = Sampler(kernel, n, keep=not trace.streamed)   # streamed: reduced on the fly
    demand = sampler.demand
    show = (progress if progress is not None else n >= 20000) and sys.stderr.isatty()
    events = trace.events()
    if show:
        from tqdm import tqdm
        events = tqdm(events, total=n, desc=f"{design} on {trace.name}", unit="ev", leave=False)
    api_per_op: dict[tuple[str, str], list[int]] = {}   # (user, op) -> [events, API calls]
    counters = kernel.counters
    counters["alloc_failures"] = counters["events_skipped"] = 0
    failed: set[tuple[str, str]] = set()     # (user, obj) whose creating op got -ENOMEM
    t0 = time.perf_counter()
    for i, ev in enumerate(events):
        kernel.advance_to(ev.t_ns)
        kernel.cpu = ev.cpu
        kernel.user = ev.user
        kernel.obj = ev.obj
        if failed and (ev.user, ev.obj) in failed:
            # the object never came to be: its later events have nothing to act on
            counters["events_skipped"] += 1
            if ev.op in FREE_OPS:
                failed.discard((ev.user, ev.obj))
            sampler.sample(i)
            continue
        calls0 = counters["api_calls"]
        try:
            try:
                side.before(ev)
                table[(ev.user, ev.op)](ev)
            finally:
                side.after(ev)          # the operation's own scratch is freed either way
        except OutOfMemory as e:
            side.abort(ev)              # and what the failed object would have kept
            if ev.op in FREE_OPS:
                raise KernelBug(f"{_where(trace, i, ev, design)}: a free path allocated: {e}") from e
            # -ENOMEM to this one operation; the kernel (and the replay) go on
            counters["alloc_failures"] += 1
            if ev.op in CREATE_OPS:
                failed.add((ev.user, ev.obj))
        except ExecbenchError as e:
            raise type(e)(f"{_where(trace, i, ev, design)}: {e}") from e
        else:
            demand.apply(ev)
        acc = api_per_op.get((ev.user, ev.op))
        if acc is None:
            acc = api_per_op[(ev.user, ev.op)] = [0, 0]
        acc[0] += 1
        acc[1] += counters["api_calls"] - calls0
        sampler.sample(i)
    wall = time.perf_counter() - t0
    eps: dict[str, list[str]] = {}
    for user, entry in sorted(kernel.entry_points):
        eps.setdefault(user, []).append(entry)
    result = RunResult(design=design, workload=trace.name, seed=seed, params=dict(d.params),
                       config=config, samples=sampler.samples, t_ns=sampler.t,
                       counters=kernel.snapshot_counters(), entry_points=eps, wall_s=wall,
                       api_per_op={k: (v[0], v[1]) for k, v in sorted(api_per_op.items())},
                       metrics=list(sampler.names), n_events=n,
                       reduced=None if sampler.stream is None else sampler.stream.result(sampler.names))
    if observe is None:
        _release(kernel, d, side, sampler)
        _unreleased = None
    return result


def refuse_stream_arch(arch: str) -> None:
    """A streamed trace replays on x86-64 only: other architectures retarget
    module sizes on the whole trace (execbench/arch_trace.py)."""
    if arch != "x86_64":
        raise UsageError("--stream replays x86-64 only (other architectures retarget module "
                         "sizes on the whole trace)")


#: the kernel of the last run that did not break its cycles (a weak reference)
_unreleased: "weakref.ref[Kernel] | None" = None


def _release(*objs) -> None:
    """Drop what a finished run's objects hold, so that reference counting
    frees the simulated machine now: the kernel, the design, its users and
    the kernel's helpers refer to each other (each helper keeps the kernel,
    the kernel keeps them), and a full ``gc.collect()`` per run costs more
    than a short replay (0.1-0.2 s; 70 % of a fuzz case).  The
    :class:`RunResult` holds copies and the sample arrays, nothing of these."""
    for o in objs:
        o.__dict__.clear()
