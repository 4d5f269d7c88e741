"""Session workloads: observability tools loading real BPF programs, kprobes, ftrace ops.

Why: the BPF JIT, BPF trampolines, kprobe slots and ftrace trampolines are the
non-module users of executable memory.  A realistic mix comes from running real tools:
the programs, their sizes and their attach targets are those of libbpf-tools (the table
from recorders/bpf.py); which tools run is Brendan Gregg's BCC tool checklist
(iovisor/bcc ``docs/tutorial.md``, "1. General Performance": execsnoop, opensnoop,
ext4slower, biolatency, biosnoop, cachestat, tcpconnect, tcpaccept, tcpretrans, runqlat,
profile — the ones libbpf-tools 0.26 ships).  *When* each tool starts and how long it
runs is synthetic (seeded), and the provenance says so.

What each tool run asks of the kernel, following the kernel's own rules:

* every program the tool loads on a BTF kernel (``fallback_twin == N``): ``bpf
  prog_load`` with ``size`` = estimated JIT bytes (recorders/bpf.py JIT_BYTES_PER_INSN),
  ``prog_unload`` when the tool exits;
* fentry/fexit/fmod_ret/lsm programs: one BPF trampoline per target function
  (kernel/bpf/trampoline.c ``bpf_trampoline_lookup`` keys by target), shared by every
  program attached to it: ``tramp_attach`` for the first, ``tramp_update`` for each
  later attach/detach (``bpf_trampoline_update`` builds a new image), ``tramp_detach``
  when the last goes;
* kprobe/kretprobe programs attach at function entry, which on this kernel
  (CONFIG_KPROBES_ON_FTRACE=y) is an ftrace call site: ``arch_prepare_kprobe_ftrace``
  takes **no** insn slot; ``__arm_kprobe_ftrace`` (kernel/kprobes.c, v6.1) registers
  the shared ``kprobe_ftrace_ops`` when the first such probe arms and only changes its
  filter afterwards; ``__disarm_kprobe_ftrace`` unregisters it with the last.  A kprobe
  and a kretprobe on the same function share one (aggregated) probe.  So these become
  ``ftrace ops_register`` / ``ops_update`` / ``ops_unregister`` of ``kprobe_ftrace_ops``.
  (``entry_kprobes="slot"`` instead emits a ``kprobe register`` per target, for
  kernels without KPROBES_ON_FTRACE.)
* tracepoint, tp_btf, raw_tp, perf_event and uprobe programs need only their JIT image.

Sizes of trampolines and slots are the named constants below, each with its source or
marked ESTIMATE.  Simplified: the ftrace direct-call ops a BPF trampoline registers
(kernel/bpf/trampoline.c register_fentry) is not emitted as a separate ftrace event; the
BPF trampoline image stands for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from .tracebuild import TraceBuilder

#: Bytes of one dynamic ftrace trampoline on Debian 6.1: ``module_alloc(207)`` called from
#: ``arch_ftrace_update_trampoline`` in the QEMU recording of 6.1.0-56-amd64
#: (events.csv.gz of workloads/data/qemu/qemu-6.1-generic: ``module_alloc`` size=207 with
#: caller ``arch_ftrace_update_trampoline``, once per ftrace instance).
FTRACE_TRAMP_BYTES = 207
#: x86 kprobe insn slot: MAX_INSN_SIZE (16) * sizeof(kprobe_opcode_t) (1)
#: (arch/x86/include/asm/kprobes.h; kernel/kprobes.c kprobe_insn_slots.insn_size).
KPROBE_SLOT_BYTES = 16
#: x86 optprobe detour buffer, MAX_OPTINSN_SIZE = template length + MAX_OPTIMIZED_LENGTH
#: (16 + 5) + JMP32_INSN_SIZE (5).  ESTIMATE: the template (arch/x86/kernel/kprobes/opt.c,
#: register save/restore + call optimized_callback) was not measured here; ~100 B assumed.
OPTPROBE_SLOT_BYTES = 128
#: Share of offset kprobes that the optimizer turns into jumps: 21 of 25 in the QEMU
#: recording of 6.1.0-56-amd64 that set this value ("[OPTIMIZED]" in the guest's
#: /sys/kernel/debug/kprobes/list; later recordings' guest/kprobes_list.txt list theirs).
OPTIMIZED_SHARE = 21 / 25
#: BPF trampoline bytes, ESTIMATE (arch/x86/net/bpf_jit_comp.c arch_prepare_bpf_trampoline:
#: prologue/epilogue + argument save/restore, ~64 B; per program ~80 B of
#: __bpf_prog_enter / call / __bpf_prog_exit; +48 B to call the original function when an
#: fexit is attached).  To be measured (bpf_trampoline image sizes) by the QEMU issue.
BPF_TRAMP_BASE_BYTES = 64
BPF_TRAMP_PER_PROG_BYTES = 80
BPF_TRAMP_FEXIT_BYTES = 48

#: The BCC tool checklist (iovisor/bcc docs/tutorial.md) restricted to libbpf-tools 0.26.
CHECKLIST_TOOLS = ("execsnoop", "opensnoop", "fsslower", "biolatency", "biosnoop",
                   "cachestat", "tcpconnect", "runqlat")
#: fsslower/fsdist attach to dummy_* placeholders and retarget them at run time
#: (libbpf-tools fsslower.c ``fs_configs``); ext4slower = fsslower -t ext4:
EXT4_TARGETS = {"dummy_file_read": "ext4_file_read_iter", "dummy_file_write": "ext4_file_write_iter",
                "dummy_file_open": "ext4_file_open", "dummy_file_sync": "ext4_sync_file"}

_TRAMP_KINDS = ("fentry", "fexit", "fmod_ret", "lsm")


def tramp_bytes(n_progs: int, has_fexit: bool) -> int:
    """Estimated trampoline bytes for ``n_progs`` attached programs (see constants)."""
    return BPF_TRAMP_BASE_BYTES + BPF_TRAMP_PER_PROG_BYTES * n_progs + (BPF_TRAMP_FEXIT_BYTES if has_fexit else 0)


@dataclasses.dataclass(frozen=True)
class Prog:
    """One program of a tool, as the session needs it."""

    name: str
    kind: str          # section base name (fentry, kprobe, tracepoint, ...)
    category: str
    target: str
    jit_bytes: int


def tool_programs(bpf_rows: Sequence[Mapping[str, str]]) -> dict[str, list[Prog]]:
    """Programs per tool from a BPF table, twins dropped, ext4 targets filled in."""
    out: dict[str, list[Prog]] = {}
    for r in bpf_rows:
        if r["fallback_twin"] == "Y":
            continue
        target = EXT4_TARGETS.get(r["target"], r["target"]) if r["tool"] == "fsslower" else r["target"]
        out.setdefault(r["tool"], []).append(Prog(r["program"], r["section"].split("/", 1)[0],
                                                  r["attach_category"], target, int(r["jit_bytes_est"])))
    return out


class _State:
    """Kernel-side sharing rules that turn program attaches into allocator requests."""

    def __init__(self, b: TraceBuilder, entry_kprobes: str):
        self.b = b
        self.entry_kprobes = entry_kprobes
        self.tramps: dict[str, list[str]] = {}        # target -> attached prog kinds
        self.kprobes: dict[str, int] = {}             # target -> users (aggregated probe)
        self.t = 0

    def emit(self, t: int, cpu: int, user: str, op: str, obj: str, **cols: int) -> None:
        self.t = max(self.t, t)
        self.b.add(self.t, cpu, user, op, obj, **cols)
        self.t += 20_000  # 20 us between consecutive events of one action (synthetic)

    def attach(self, t: int, cpu: int, p: Prog) -> None:
        if p.category == "trampoline":
            kinds = self.tramps.setdefault(p.target, [])
            kinds.append(p.kind)
            size = tramp_bytes(len(kinds), "fexit" in kinds)
            op = "tramp_attach" if len(kinds) == 1 else "tramp_update"
            self.emit(t, cpu, "bpf", op, f"tramp:{p.target}", size=size)
        elif p.category == "kprobe":
            n = self.kprobes.get(p.target, 0)
            self.kprobes[p.target] = n + 1
            if n:
                return  # aggregated with the probe already on this function
            if self.entry_kprobes == "slot":
                self.emit(t, cpu, "kprobe", "register", f"kprobe:{p.target}", size=KPROBE_SLOT_BYTES)
            elif len(self.kprobes) == 1:   # first armed ftrace kprobe: register the ops
                self.emit(t, cpu, "ftrace", "ops_register", "kprobe_ftrace_ops", size=FTRACE_TRAMP_BYTES)
            else:
                self.emit(t, cpu, "ftrace", "ops_update", "kprobe_ftrace_ops")

    def detach(self, t: int, cpu: int, p: Prog) -> None:
        if p.category == "trampoline":
            kinds = self.tramps[p.target]
            kinds.remove(p.kind)
            if kinds:
                self.emit(t, cpu, "bpf", "tramp_update", f"tramp:{p.target}",
                          size=tramp_bytes(len(kinds), "fexit" in kinds))
            else:
                del self.tramps[p.target]
                self.emit(t, cpu, "bpf", "tramp_detach", f"tramp:{p.target}")
        elif p.category == "kprobe":
            n = self.kprobes[p.target] - 1
            if n:
                self.kprobes[p.target] = n
                return
            del self.kprobes[p.target]
            if self.entry_kprobes == "slot":
                self.emit(t, cpu, "kprobe", "unregister", f"kprobe:{p.target}")
            elif self.kprobes:
                self.emit(t, cpu, "ftrace", "ops_update", "kprobe_ftrace_ops")
            else:
                self.emit(t, cpu, "ftrace", "ops_unregister", "kprobe_ftrace_ops")


@dataclasses.dataclass(frozen=True)
class SessionPlan:
    """The synthetic schedule: which tool runs when (seeded)."""

    runs: list[tuple[str, int, int, int]]   # (tool, run index, start_ns, stop_ns)


def plan_session(tools: Sequence[str], seed: int, start_ns: int, *, rounds: int = 2,
                 gap_s: tuple[float, float] = (2.0, 8.0), run_s: tuple[float, float] = (10.0, 60.0)) -> SessionPlan:
    """Run the tools in checklist order, ``rounds`` times; start gaps and run lengths drawn
    uniformly from the given ranges with numpy's PCG64 seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    runs = []
    t = start_ns
    for r in range(rounds):
        for tool in tools:
            t += int(rng.uniform(*gap_s) * 1e9)
            runs.append((tool, r, t, t + int(rng.uniform(*run_s) * 1e9)))
    return SessionPlan(runs)


def bpf_session(b: TraceBuilder, progs: Mapping[str, Sequence[Prog]], plan: SessionPlan, *,
                entry_kprobes: str = "ftrace", ncpus: int = 2) -> None:
    """Append the session's events in time order."""
    if entry_kprobes not in ("ftrace", "slot"):
        raise ValueError("entry_kprobes must be 'ftrace' or 'slot'")
    st = _State(b, entry_kprobes)
    st.t = b.last_t_ns
    actions = []
    for i, (tool, r, t0, t1) in enumerate(plan.runs):
        if tool not in progs:
            raise KeyError(f"tool {tool!r} has no programs in the BPF table")
        actions.append((t0, 0, i, tool, r))
        actions.append((t1, 1, i, tool, r))
    for t, stop, i, tool, r in sorted(actions):
        cpu = i % ncpus
        plist = progs[tool]
        if not stop:
            for p in plist:   # bpf_object__load: every program is loaded first
                st.emit(t, cpu, "bpf", "prog_load", f"{tool}.{r}:{p.name}", size=p.jit_bytes)
            for p in plist:   # then bpf_object__attach (skeleton attach, program order)
                st.attach(t, cpu, p)
        else:
            for p in plist:   # bpf_link destroy, then the object is closed
                st.detach(t, cpu, p)
            for p in plist:
                st.emit(t, cpu, "bpf", "prog_unload", f"{tool}.{r}:{p.name}")


def probe_session(b: TraceBuilder, functions: Sequence[str], seed: int, start_ns: int, stop_ns: int,
                  *, ncpus: int = 2) -> int:
    """Offset kprobes (perf-probe style, ``func+off``): a slot each, most get optimized.

    Synthetic: the probed functions are given, the offsets and the optimized subset are
    drawn with the seed (share OPTIMIZED_SHARE).  Returns how many were optimized.
    """
    rng = np.random.default_rng(seed)
    n = len(functions)
    offs = rng.integers(1, 16, size=n) * 4 + 1
    optimized = rng.permutation(n)[: round(n * OPTIMIZED_SHARE)]
    t = max(start_ns, b.last_t_ns)
    names = [f"kprobe:{f}+{int(o):#x}" for f, o in zip(functions, offs)]
    for i, name in enumerate(names):
        b.add(t, i % ncpus, "kprobe", "register", name, size=KPROBE_SLOT_BYTES)
        t += 50_000
    # kprobe_optimizer runs from a delayed work item (OPTIMIZE_DELAY = 5 jiffies) after
    # registration, batching every queued probe.
    t += 20_000_000
    for i in sorted(int(x) for x in optimized):
        b.add(t, 0, "kprobe", "optimize", names[i], size=OPTPROBE_SLOT_BYTES)
        t += 10_000
    t = max(t, stop_ns)
    for i, name in enumerate(names):
        b.add(t, i % ncpus, "kprobe", "unregister", name)
        t += 50_000
    return len(optimized)


def ftrace_ops_session(b: TraceBuilder, ops: Sequence[str], start_ns: int, stop_ns: int,
                       updates: int = 2) -> None:
    """Dynamic ftrace_ops (e.g. a function tracer with a filter): register, filter
    updates, unregister; one trampoline each (arch_ftrace_update_trampoline)."""
    t = max(start_ns, b.last_t_ns)
    for name in ops:
        b.add(t, 0, "ftrace", "ops_register", name, size=FTRACE_TRAMP_BYTES)
        t += 1_000_000
    step = max((stop_ns - t) // (updates + 1), 1_000_000)
    for _ in range(updates):
        t += step
        for name in ops:
            b.add(t, 0, "ftrace", "ops_update", name)
            t += 1_000_000
    t = max(t, stop_ns)
    for name in ops:
        b.add(t, 0, "ftrace", "ops_unregister", name)
        t += 1_000_000
