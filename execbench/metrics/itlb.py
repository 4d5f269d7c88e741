"""Dynamic iTLB metric: misses per million instruction fetches.

The static iTLB metrics (``text_ptes_4k``, ``itlb_entries`` ...) count the
leaves that map live text.  This one asks what those leaves cost a CPU: a
seeded stream of instruction fetches over the live text is translated through
the design's page tables *as they stand at that point of the trace* (4 KiB
PTE or 2 MiB PMD leaf, :attr:`PageTable.flags` HUGE bit) and run through a
set-associative LRU model of a real CPU's L1 iTLB + second-level TLB
(:mod:`execbench.itlb_cpus`, :mod:`.tlbsim`).  The kernel's own text
(vmlinux, mapped with 2 MiB pages) takes a share of the fetches and competes
for the same entries.

**Checkpoints, not every event.**  The stream is simulated at about
``checkpoints`` evenly spaced events (always including the first and the
last); between checkpoints the last value holds (sample-and-hold), so the
time-weighted mean is over a step function.  Each checkpoint starts from a
cold TLB and measures the steady state of the layout at that instant.  (A
TLB carried across checkpoints would have to be invalidated on every CPA
flush; cold + warm-up is simpler and does not depend on how often a design
flushes.)

**Steady state.**  A fixed warm-up shorter than it takes to touch the
second-level TLB's capacity leaves compulsory (first-touch) misses in the
counted window: on a machine that has run for hours those pages were
touched long ago, so the counted rate would be a cold-start rate.  The
warm-up therefore runs in windows of ``warmup`` fetches with the TLB state
carried over, until either the fetches so far have touched
``steady_cover`` x the second-level TLB's entries in distinct pages (every
entry has been filled and replaced: capacity, not first touches, decides
what misses) or a window adds fewer than ``steady_new_keys`` new distinct
pages relative to those seen (the working set is covered), at most
``warmup_windows`` windows.  Then ``fetches`` are counted.  These are
simulation settings (convergence criteria), not calibration.

**User-space competition.**  Kernel text does not have the TLB to itself:
with PCID the entries of the running task's user text stay resident beside
the kernel's global ones and compete for the same L1 4 KiB array and STLB.
A fraction ``user_share`` of all fetches goes to a user-space hot text of
``user_text_mib`` MiB on 4 KiB pages (a service binary not remapped with
huge pages), uniform over it.  Both defaults are assumed (no published
kernel/user split of instruction fetches or hot-text size was found that
fits this model); ``itlb_miss_per_mfetch_userspace`` shows their weight and
notebooks/itlb-sensitivity.ipynb sweeps them.  ``user_share=0`` gives the
kernel-only stream.

**The fetch stream** -- every distribution is a named parameter
(:class:`ItlbParams`), and all of them are *synthetic*: the shipped
workloads record which objects exist, not how often they run.

* A fetch goes to user text with probability ``user_share`` (above).
* A kernel fetch goes to vmlinux with probability ``vmlinux_share`` (uniform over
  ``vmlinux_text_mib`` MiB of 2 MiB-mapped text at ``_text`` =
  0xffffffff81000000, arch/x86/kernel/vmlinux.lds.S ``__START_KERNEL``);
  otherwise to module-range text.
* Module-range fetches are split between users by ``share_<user>``
  (renormalised over users that have live text): BPF programs, trampolines
  and dispatchers run once per event they are attached to, so each live BPF
  object gets an equal share; module text follows a Zipf law over the live
  modules with exponent ``module_zipf`` (rank = a seeded hash of the module
  name, so the ranking does not depend on the design or on load order);
  ftrace trampolines and kprobe slots are uniform.
* Within an object a *visit* starts at a uniform offset and fetches
  ``visit_blocks`` consecutive 64-byte blocks (clamped to the object's
  end): a crude stand-in for straight-line code between taken branches.

Objects and their addresses come from :attr:`Kernel.text_regions` (the
kernel's per-object text index), never from a design.  For a given seed the
random draws depend only on the live objects, which every design shares, so
designs are compared on common random numbers.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..itlb_cpus import SIZE_2M, SIZE_4K, CpuItlb, get
from ..kernel.pagetable import HUGE
from ..units import MiB, PMD_SHIFT
from . import itlb_fast, tlbsim

if TYPE_CHECKING:
    from ..kernel import Kernel

# x86-64's key base and vmlinux text (the layout of execbench/kernel/arch/x86_64.py)
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000   # __START_KERNEL_map, arch/x86/include/asm/page_64_types.h
VMLINUX_TEXT = 0xFFFF_FFFF_8100_0000       # __START_KERNEL (default CONFIG_PHYSICAL_START, no KASLR)
#: user text, as an offset in the same key space as the kernel offsets above
#: but far beyond them (a user VA such as 0x400000 would collide with them;
#: only distinct pages and their set index matter to the TLB model)
USER_TEXT = 1 << 46
FETCH_BLOCK = 64                           # bytes per fetch: one I-cache line
USERS = ("module", "bpf", "ftrace", "kprobe")
#: owners of fetched addresses, in the order of the per-user metrics
#: (``userspace`` is the user text of the module doc, "User-space competition")
OWNERS = ("bpf", "module", "ftrace", "kprobe", "vmlinux", "userspace")
_OWNER_IDX = {u: i for i, u in enumerate(OWNERS)}


#: upper bounds of the integer --itlb values, 64x their defaults: the work
#: of every checkpoint grows with them, and this keeps a replay bounded
_MAX_INT = {"checkpoints": 1024, "fetches": 1 << 22, "warmup": 1 << 20, "warmup_windows": 2048,
            "visit_blocks": 512}
#: the float values (MiB sizes, shares, exponents) must be finite, 0..this
_MAX_FLOAT_PARAM = 65536.0


@dataclass(frozen=True)
class ItlbParams:
    """Named, synthetic parameters of the fetch stream (see module doc)."""

    checkpoints: int = 16
    fetches: int = 65536
    warmup: int = 16384
    warmup_windows: int = 32
    steady_cover: float = 2.0
    steady_new_keys: float = 0.01
    visit_blocks: int = 8
    user_share: float = 0.5
    user_text_mib: float = 2.0
    vmlinux_share: float = 0.5
    vmlinux_text_mib: float = 16.0
    module_zipf: float = 1.0
    share_module: float = 0.55
    share_bpf: float = 0.35
    share_ftrace: float = 0.05
    share_kprobe: float = 0.05

    @classmethod
    def parse(cls, items: tuple[tuple[str, Any], ...] | dict | None) -> "ItlbParams":
        """From ``(name, value)`` pairs (KernelConfig.itlb_params) or a dict."""
        known = {f.name: f.type for f in fields(cls)}
        kw = {}
        for name, value in dict(items or {}).items():
            if name not in known:
                raise ValueError(f"unknown iTLB parameter {name!r}; known: {', '.join(known)}")
            try:
                v = int(value) if known[name] == "int" else float(value)
            except (TypeError, ValueError):
                kind = "an integer" if known[name] == "int" else "a number"
                raise ValueError(f"{name}: {str(value)[:30]!r} is not {kind}") from None
            if known[name] == "int" and not 0 <= v <= _MAX_INT.get(name, 1 << 20):
                raise ValueError(f"{name}: {v} is outside 0..{_MAX_INT.get(name, 1 << 20)}")
            if known[name] != "int" and not (math.isfinite(v) and 0 <= v <= _MAX_FLOAT_PARAM):
                raise ValueError(f"{name}: {value} must be a finite number in 0..{_MAX_FLOAT_PARAM:g}")
            kw[name] = v
        p = cls(**kw)
        if (p.checkpoints < 1 or p.fetches < 1 or p.warmup < 0 or p.visit_blocks < 1
                or p.warmup_windows < 1):
            raise ValueError("iTLB checkpoints, fetches, visit_blocks and warmup_windows must be >= 1, "
                             "warmup >= 0")
        for name in ("vmlinux_share", "user_share"):
            if not 0.0 <= getattr(p, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        if p.user_text_mib <= 0 or p.vmlinux_text_mib <= 0 or p.steady_cover <= 0 or p.steady_new_keys < 0:
            raise ValueError("user_text_mib, vmlinux_text_mib and steady_cover must be > 0, "
                             "steady_new_keys >= 0")
        return p


def _rank_key(name: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{name}".encode())


class FetchStream:
    """The fetch distribution over the text live now, built once per
    checkpoint; :meth:`draw` samples fetches from it (see module doc).

    Pick index 0 is vmlinux, 1 user text, then the live kernel objects in a
    design-free order."""

    def __init__(self, k: "Kernel", p: ItlbParams, seed: int = 0):
        self.k, self.p = k, p
        objs: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for addr, (nbytes, user, obj) in k.text_regions.items():
            objs.setdefault((user, obj), []).append((nbytes, addr))
        by_user: dict[str, list[tuple[str, str]]] = {}
        for key in sorted(objs):
            by_user.setdefault(key[0], []).append(key)
        shares = {u: getattr(p, f"share_{u}", 0.0) for u in by_user}
        total_share = sum(shares.values())
        kern = 1.0 - p.user_share
        mod_share = (1.0 - p.vmlinux_share) if total_share > 0 else 0.0
        weights: list[float] = []
        order: list[tuple[str, str]] = []
        for user, ks in by_user.items():
            if shares[user] <= 0:
                continue
            if user == "module":
                ranked = sorted(ks, key=lambda kk: (_rank_key(kk[1], seed), kk[1]))
                w = 1.0 / np.arange(1, len(ranked) + 1, dtype=np.float64) ** p.module_zipf
                ks = ranked
            else:
                w = np.ones(len(ks))
            w = w / w.sum() * (kern * mod_share * shares[user] / total_share)
            order.extend(ks)
            weights.extend(w.tolist())
        reg_addr: list[int] = []
        reg_len: list[int] = []
        obj_len: list[int] = []
        # addresses as offsets from the architecture's key base (x86-64:
        # __START_KERNEL_map; arm64: the lowest modelled window, arch/arm64.py)
        lay = k.layout
        key_base = lay.itlb_base
        for key in order:
            regs = sorted(objs[key], key=lambda r: (-r[0], r[1]))
            obj_len.append(sum(r[0] for r in regs))
            for nbytes, addr in regs:
                reg_addr.append(addr - key_base)
                reg_len.append(nbytes)
        self.vm_base = lay.vmlinux_text - key_base
        self.user_base = lay.user_text
        self.vm_len = int(p.vmlinux_text_mib * MiB)
        self.user_len = int(p.user_text_mib * MiB)
        prob = np.array([kern * (1.0 - mod_share), p.user_share] + weights, dtype=np.float64)
        cum = np.cumsum(prob)
        self.cum = cum / cum[-1]
        self.n_pick = prob.size
        self.lens = np.array([self.vm_len, self.user_len] + obj_len, dtype=np.int64)
        self.reg_addr = np.array(reg_addr, dtype=np.int64)
        self.reg_len = np.array(reg_len, dtype=np.int64)
        self.reg_end = np.cumsum(self.reg_len)
        self.obj_start = np.concatenate(([0], np.cumsum(np.array(obj_len, dtype=np.int64))))
        self.pick_owner = np.array([_OWNER_IDX["vmlinux"], _OWNER_IDX["userspace"]]
                                   + [_OWNER_IDX[key[0]] for key in order], dtype=np.int64)

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(addresses as offsets from __START_KERNEL_map, is_2m, owner index) of ``n`` fetches."""
        p = self.p
        visits = -(-n // p.visit_blocks)
        pick = np.searchsorted(self.cum, rng.random(visits), side="right")
        pick = np.minimum(pick, self.n_pick - 1)
        u = rng.random(visits)
        off = (u * self.lens[pick]).astype(np.int64)
        is_vm = pick == 0
        is_user = pick == 1
        flat = self.obj_start[np.maximum(pick - 2, 0)] + off
        if self.reg_end.size:
            reg = np.minimum(np.searchsorted(self.reg_end, flat, side="right"), self.reg_end.size - 1)
            reg_start = self.reg_end - self.reg_len
            base = self.reg_addr[reg] + (flat - reg_start[reg])
            last = self.reg_addr[reg] + self.reg_len[reg] - 1
        else:
            base = np.zeros(visits, np.int64)
            last = base
        vm_base, user_base = self.vm_base, self.user_base
        base = np.where(is_vm, vm_base + off, np.where(is_user, user_base + off, base))
        last = np.where(is_vm, vm_base + self.vm_len - 1, np.where(is_user, user_base + self.user_len - 1, last))
        steps = np.arange(p.visit_blocks, dtype=np.int64) * FETCH_BLOCK
        addr = np.minimum(base[:, None] + steps[None, :], last[:, None]).ravel()[:n]
        # -- translate through the page tables as they stand --------------------------------
        in_range = np.repeat(pick >= 2, p.visit_blocks)[:n]
        huge = np.repeat(is_vm, p.visit_blocks)[:n]     # vmlinux: 2 MiB leaves; user text: 4 KiB
        page = self.k.layout.itlb_pages(addr[in_range])
        huge[in_range] = (self.k.pt.flags[page] & HUGE) != 0
        owner = np.repeat(self.pick_owner[pick], p.visit_blocks)[:n]
        return addr, huge, owner


def fetch_stream(k: "Kernel", p: ItlbParams, rng: np.random.Generator, seed: int = 0
                 , owners: bool = False) -> tuple[np.ndarray, ...]:
    """(virtual addresses as offsets from __START_KERNEL_map, is_2m) of
    ``warmup + fetches`` instruction fetches over the text live now (one
    fixed-length draw; :class:`ItlbProbe` warms up in windows instead); with
    ``owners=True`` also the :data:`OWNERS` index of each fetch."""
    addr, huge, owner = FetchStream(k, p, seed).draw(rng, p.warmup + p.fetches)
    return (addr, huge, owner) if owners else (addr, huge)


def keys_for(cpu: CpuItlb, addr: np.ndarray, huge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TLB keys ``(page_number << 1) | is_2m`` and the L1 array of each fetch."""
    keys = np.where(huge, ((addr >> PMD_SHIFT) << 1) | 1, (addr >> 12) << 1)
    arr = np.where(huge, cpu.l1_for(SIZE_2M), cpu.l1_for(SIZE_4K)).astype(np.int64)
    return keys.astype(np.int64), arr


class ItlbProbe:
    """Runs the fetch stream at checkpoints of a replay; holds the last values."""

    def __init__(self, kernel: "Kernel", n_events: int, cpu: str, params: ItlbParams):
        self.k = kernel
        self.cpu = get(cpu)
        self.p = params
        self.every = max(1, -(-n_events // params.checkpoints))
        self.last = n_events - 1
        self.seed = kernel.config.seed
        self.values = (0.0,) * (2 + 2 * len(OWNERS))
        self.runs = 0
        self.warm_fetches = 0
        # load the compiled loop now (first use in a process: ~0.5 s from numba's
        # cache), so that it is set-up time, not time inside the replay loop
        one = np.zeros(1, dtype=np.int64)
        tlbsim.simulate(self.cpu, one, one)
        #: the compiled checkpoint (itlb_fast); None: the Python reference path
        self.fast = itlb_fast.available()
        if self.fast:
            self._table = np.empty(itlb_fast.table_size(params, self.cpu), dtype=np.int64)
            tiny = replace(params, fetches=8, warmup=8, warmup_windows=1)
            itlb_fast.checkpoint(FetchStream(kernel, tiny), tiny, self.cpu, np.random.default_rng(0),
                                 len(OWNERS), np.empty(64, dtype=np.int64))

    def due(self, i: int) -> bool:
        return i % self.every == 0 or i == self.last

    def measure(self, i: int) -> tuple[float, ...]:
        """(L1 iTLB misses, second-level misses) per million counted fetches,
        then L1 misses per owner and second-level misses per owner
        (:data:`OWNERS` order), each per million *total* counted fetches, so
        the per-owner values sum to the totals.  Counted after a steady-state
        warm-up (module doc).  With numba the whole checkpoint runs compiled
        (:mod:`.itlb_fast`, the same numbers); :meth:`measure_reference` is
        the Python path."""
        if not self.fast:
            return self.measure_reference(i)
        rng = np.random.default_rng([self.seed, zlib.crc32(b"itlb"), i])
        stream = FetchStream(self.k, self.p, self.seed)
        m1, m2, warm = itlb_fast.checkpoint(stream, self.p, self.cpu, rng, len(OWNERS), self._table)
        return self._values(m1, m2, warm, self.p.fetches)

    def measure_reference(self, i: int) -> tuple[float, ...]:
        """:meth:`measure` through :meth:`steady_stream` and
        :func:`.tlbsim.simulate_owners` (numpy draws, ``union1d``)."""
        rng = np.random.default_rng([self.seed, zlib.crc32(b"itlb"), i])
        stream = FetchStream(self.k, self.p, self.seed)
        keys, arr, owner, warm = self.steady_stream(stream, rng)
        m1, m2 = tlbsim.simulate_owners(self.cpu, keys, arr, owner, len(OWNERS), warm)
        return self._values(m1, m2, warm, keys.size - warm)

    def _values(self, m1: np.ndarray, m2: np.ndarray, warm: int, counted: int) -> tuple[float, ...]:
        self.runs += 1
        self.warm_fetches = warm
        scale = 1e6 / counted
        self.values = (int(m1.sum()) * scale, int(m2.sum()) * scale,
                       *(float(x) * scale for x in m1), *(float(x) * scale for x in m2))
        return self.values

    def steady_stream(self, stream: FetchStream, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Warm-up windows drawn until the steady-state criterion holds, then
        the counted fetches: (keys, L1 array, owner, number of warm-up fetches)."""
        p = self.p
        cover = p.steady_cover * self.cpu.l2.sets * self.cpu.l2.ways
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        seen = np.zeros(0, dtype=np.int64)
        warm = 0
        for w in range(p.warmup_windows if p.warmup > 0 else 0):
            addr, huge, own = stream.draw(rng, p.warmup)
            keys, arr = keys_for(self.cpu, addr, huge)
            parts.append((keys, arr, own))
            warm += keys.size
            before = seen.size
            seen = np.union1d(seen, keys)
            if seen.size >= cover or (w > 0 and seen.size - before < p.steady_new_keys * before):
                break
        addr, huge, own = stream.draw(rng, p.fetches)
        keys, arr = keys_for(self.cpu, addr, huge)
        parts.append((keys, arr, own))
        return (np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts]),
                np.concatenate([x[2] for x in parts]), warm)

    def sample(self, i: int) -> tuple[float, ...]:
        return self.measure(i) if self.due(i) else self.values
