"""Synthetic schedules over real objects: kprobe churn, trampoline churn, a fleet day.

Why: allocator differences that only show under churn (slot-page reuse and garbage
collection in kernel/kprobes.c, BPF trampoline image replacement, bpf_prog_pack
fragmentation when programs of many sizes come and go) need long traces that no public
recording provides.  These generators keep every *object* real — module sizes from the
Debian tables, BPF program sizes and targets from libbpf-tools, function names that real
tools probe — and make the *schedule* synthetic, seeded, and labelled as such in the
provenance.  Rates and distributions are named parameters with the reason for each value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from . import session as rs
from .tracebuild import TraceBuilder

NS = 1_000_000_000


def probe_names(functions: Sequence[str], n: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    """``n`` distinct ``func+off`` probe points not in ``taken`` (offsets 1..0x7d, odd-ish
    like perf-probe line offsets: 4*k+1)."""
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise ValueError("not enough distinct probe points for the requested count")
        f = functions[int(rng.integers(len(functions)))]
        name = f"kprobe:{f}+{int(rng.integers(0, 32)) * 4 + 1:#x}"
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def kprobe_churn(functions: Sequence[str], seed: int, *, rounds: int = 40, start_ns: int = 0,
                 per_round: tuple[int, int] = (16, 300), hold_s: tuple[float, float] = (5.0, 120.0),
                 gap_s: tuple[float, float] = (1.0, 30.0), resident: int = 8,
                 prefix: str = "") -> TraceBuilder:
    """Rounds of a tracing agent: register K offset probes (K uniform in ``per_round``,
    crossing the 256-slot page of kernel/kprobes.c slots_per_page), optimize the measured
    share after the optimizer delay, hold, unregister all.  ``resident`` probes stay for
    the whole trace (a long-running monitor), so the slot cache is never empty."""
    rng = np.random.default_rng(seed)
    b = TraceBuilder()
    taken: set[str] = set()
    t = start_ns
    keep = [prefix + p for p in probe_names(functions, resident, rng, taken)]
    for i, name in enumerate(keep):
        b.add(t, i % 2, "kprobe", "register", name, size=rs.KPROBE_SLOT_BYTES)
        t += 100_000
    t += 20_000_000
    for name in keep:
        b.add(t, 0, "kprobe", "optimize", name, size=rs.OPTPROBE_SLOT_BYTES)
        t += 10_000
    for _ in range(rounds):
        t += int(rng.uniform(*gap_s) * NS)
        k = int(rng.integers(per_round[0], per_round[1] + 1))
        names = [prefix + p for p in probe_names(functions, k, rng, taken)]
        cpu = int(rng.integers(2))
        for name in names:
            b.add(t, cpu, "kprobe", "register", name, size=rs.KPROBE_SLOT_BYTES)
            t += 50_000
        t += 20_000_000   # kprobe_optimizer: OPTIMIZE_DELAY = 5 jiffies (20 ms at HZ=250)
        for j in sorted(int(x) for x in rng.permutation(k)[: round(k * rs.OPTIMIZED_SHARE)]):
            b.add(t, 0, "kprobe", "optimize", names[j], size=rs.OPTPROBE_SLOT_BYTES)
            t += 10_000
        t += int(rng.uniform(*hold_s) * NS)
        for name in names:
            b.add(t, cpu, "kprobe", "unregister", name)
            t += 30_000
        for name in names:
            taken.discard(name[len(prefix):])
    t += NS
    for name in keep:
        b.add(t, 0, "kprobe", "unregister", name)
        t += 30_000
    return b


def trampoline_churn(functions: Sequence[str], prog_bytes: Sequence[int], seed: int, *, rounds: int = 30,
                     start_ns: int = 0, per_round: tuple[int, int] = (4, 60),
                     hold_s: tuple[float, float] = (2.0, 60.0), gap_s: tuple[float, float] = (1.0, 20.0),
                     ftrace_ops: tuple[int, int] = (1, 4)) -> TraceBuilder:
    """Rounds of a retsnoop-style tracer: load an fentry and an fexit program per chosen
    function (sizes drawn from real libbpf-tools trampoline programs), attach both (one
    shared trampoline per function: attach, then update), plus 1-3 function-tracer
    ftrace_ops with filters; then tear everything down in reverse."""
    rng = np.random.default_rng(seed)
    b = TraceBuilder()
    t = start_ns
    for r in range(rounds):
        t += int(rng.uniform(*gap_s) * NS)
        k = int(rng.integers(per_round[0], min(per_round[1], len(functions)) + 1))
        fns = [functions[int(i)] for i in rng.permutation(len(functions))[:k]]
        cpu = int(rng.integers(2))
        progs = []
        for f in fns:
            for kind in ("fentry", "fexit"):
                name = f"r{r}:{kind}:{f}"
                b.add(t, cpu, "bpf", "prog_load", name, size=int(prog_bytes[int(rng.integers(len(prog_bytes)))]))
                progs.append(name)
                t += 20_000
        for f in fns:
            b.add(t, cpu, "bpf", "tramp_attach", f"tramp:{f}", size=rs.tramp_bytes(1, False))
            t += 20_000
            b.add(t, cpu, "bpf", "tramp_update", f"tramp:{f}", size=rs.tramp_bytes(2, True))
            t += 20_000
        ops = [f"ftrace_ops:r{r}.{j}" for j in range(int(rng.integers(ftrace_ops[0], ftrace_ops[1])))]
        for o in ops:
            b.add(t, cpu, "ftrace", "ops_register", o, size=rs.FTRACE_TRAMP_BYTES)
            t += 1_000_000
        hold = int(rng.uniform(*hold_s) * NS)
        t += hold // 2
        for o in ops:   # the user narrows the filter half-way (ftrace_set_filter -> update)
            b.add(t, cpu, "ftrace", "ops_update", o)
            t += 1_000_000
        t += hold // 2
        for o in ops:
            b.add(t, cpu, "ftrace", "ops_unregister", o)
            t += 1_000_000
        for f in reversed(fns):
            b.add(t, cpu, "bpf", "tramp_update", f"tramp:{f}", size=rs.tramp_bytes(1, True))
            t += 20_000
            b.add(t, cpu, "bpf", "tramp_detach", f"tramp:{f}")
            t += 20_000
        for name in reversed(progs):
            b.add(t, cpu, "bpf", "prog_unload", name)
            t += 20_000
    return b


@dataclasses.dataclass(frozen=True)
class FleetRates:
    """Rates of the synthetic fleet day; every value is an assumption, stated here.

    * ``container_every_s``: mean gap between container starts on a busy Kubernetes node
      (Poisson); each container gets systemd/runc's cgroup BPF: one cgroup_device program
      and ingress/egress cgroup_skb programs (docs/data-sources.md §3.4: systemd builds them in
      user space; sizes here are assumptions in the 20-200 instruction range it quotes).
    * ``container_life_s``: median lifetime (lognormal, sigma 1.0).
    * ``monitor_every_s`` / ``monitor_run_s``: a monitoring agent runs one BCC-checklist
      tool for a short window every period.
    * ``probe_burst_every_s``: an on-call engineer's kprobe session (a kprobe_churn round).
    * ``module_every_s``: an on-demand module load (netfilter/overlay-style), unloaded later.
    """

    container_every_s: float = 8.0
    container_life_s: float = 600.0
    monitor_every_s: float = 60.0
    monitor_run_s: float = 10.0
    probe_burst_every_s: float = 1800.0
    module_every_s: float = 1800.0
    day_s: float = 86400.0
    cgroup_device_insns: tuple[int, int] = (60, 200)
    cgroup_skb_insns: tuple[int, int] = (20, 60)


def containers(rates: FleetRates, seed: int, start_ns: int, end_ns: int) -> TraceBuilder:
    """Container churn: 3 cgroup programs loaded at start, unloaded at exit (lifecycles may
    overlap; events are emitted in time order)."""
    rng = np.random.default_rng(seed)
    events: list[tuple[int, int, str, str, int | None]] = []   # (t, order, op, obj, size)
    t = start_ns
    i = 0
    while True:
        t += int(rng.exponential(rates.container_every_s) * NS)
        if t >= end_ns:
            break
        life = int(rng.lognormal(np.log(rates.container_life_s), 1.0) * NS)
        stop = min(t + life, end_ns + int(10 * NS))
        sizes = [int(rng.integers(*rates.cgroup_device_insns)), int(rng.integers(*rates.cgroup_skb_insns)),
                 int(rng.integers(*rates.cgroup_skb_insns))]
        for j, (kind, n) in enumerate(zip(("dev", "skb_in", "skb_out"), sizes)):
            events.append((t + j * 50_000, i * 8 + j, "prog_load", f"ctr{i}:{kind}", n * 5))
            events.append((stop + j * 50_000, i * 8 + 4 + j, "prog_unload", f"ctr{i}:{kind}", None))
        i += 1
    events.sort()
    b = TraceBuilder()
    from .bpf import JIT_BYTES_PER_INSN
    for t, order, op, obj, size in events:
        if size is None:
            b.add(t, order % 2, "bpf", op, obj)
        else:
            b.add(t, order % 2, "bpf", op, obj, size=size // 5 * JIT_BYTES_PER_INSN)
    return b


def monitor(progs: Mapping[str, Sequence[rs.Prog]], rates: FleetRates, seed: int, start_ns: int,
            end_ns: int) -> TraceBuilder:
    """The monitoring agent: one checklist tool per period, round-robin, short runs."""
    runs = []
    k = 0
    t = start_ns
    rng = np.random.default_rng(seed)
    period = int(rates.monitor_every_s * NS)
    while t + period < end_ns:
        t += period
        tool = rs.CHECKLIST_TOOLS[k % len(rs.CHECKLIST_TOOLS)]
        jitter = int(rng.uniform(0, 1) * NS)
        runs.append((tool, k, t + jitter, t + jitter + int(rates.monitor_run_s * NS)))
        k += 1
    b = TraceBuilder()
    rs.bpf_session(b, progs, rs.SessionPlan(runs))
    return b


def module_churn(table: Mapping[str, Mapping[str, str]], candidates: Sequence[str], loaded: set[str],
                 rates: FleetRates, seed: int, start_ns: int, end_ns: int) -> TraceBuilder:
    """On-demand module loads (with their not-yet-loaded dependencies) and later unloads
    in reverse order, one batch at a time, never unloading a boot-time module."""
    from .boot import choose_boot_set, boot_trace

    rng = np.random.default_rng(seed)
    b = TraceBuilder()
    t = start_ns
    period = int(rates.module_every_s * NS)
    pool = [c for c in candidates if c in table and c not in loaded]
    while t + period < end_ns and pool:
        t += period
        mod = pool[int(rng.integers(len(pool)))]
        order = [m for m in choose_boot_set(table, [mod]).order if m not in loaded]
        boot_trace(table, order, start_ns=t, spacing_ns=5_000_000, init_ns=1_000_000, builder=b)
        t2 = t + int(rng.uniform(0.2, 0.8) * period)
        for m in reversed(order):
            b.add(t2, 0, "module", "unload", m)
            t2 += 1_000_000
    return b
