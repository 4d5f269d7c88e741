"""A seeded **synthetic** stress trace for measuring the simulator itself.

Why: the shipped workloads are small (boot-cloud has 132 events), too small
to measure events/s or to catch a slow path that only shows under churn.
This builds a valid trace of any length that exercises every user and op of
the schema, so that speed measurements and the speed-equivalence regression
pins (tests/test_speed_equivalence.py) cover every code path of a design.

Everything here is synthetic -- the mix, the rates, the sizes -- except the
module sizes, which are real 6.1.0-56-cloud-amd64 ``.ko`` layouts copied
from the shipped ``boot-cloud`` trace (:data:`MODULES`).  It is *not* a workload
for conclusions about designs and is not shipped under workloads/data/.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .trace import COLUMNS, MODULE_SIZE_COLUMNS, MODULE_WORK_COLUMNS, Trace, from_frame

#: op mix (relative weights) of the synthetic churn; synthetic, not measured.
MIX = {
    "module": 2, "module_patch": 2, "bpf_prog": 10, "bpf_tramp": 4, "dispatcher": 1,
    "ftrace": 2, "kprobe": 3,
}


#: Real module layouts: every 6th ``load`` row of the shipped boot-cloud trace
#: as recorded on 2026-11-25 (6.1.0-56-cloud-amd64 ``.ko`` files; columns
#: text, rodata, ro_after_init, data, init_text, init_rodata, init_data,
#: align, relocs, reloc_secs, alt_sites, orc_entries, mcount_locs).  Copied
#: here so that the stress trace -- and the regression pins computed on it --
#: do not move when that workload is re-recorded.
MODULES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("scsi_common", (950, 1570, 0, 3523, 0, 0, 2951, 16, 135, 6, 11, 42, 8)),
    ("pcbc", (988, 433, 0, 1654, 17, 0, 2128, 16, 79, 8, 5, 27, 4)),
    ("md_mod", (98124, 42320, 992, 41987, 343, 0, 43135, 16, 7248, 13, 415, 2421, 272)),
    ("raid6_pq", (18563, 87499, 0, 6542, 775, 0, 6680, 16, 989, 9, 34, 545, 42)),
    ("async_raid6_recov", (529, 598, 32, 1922, 0, 0, 1827, 16, 63, 6, 6, 23, 2)),
    ("x_tables", (14182, 12600, 32, 19780, 281, 0, 20152, 16, 1842, 14, 103, 768, 74)),
    ("ib_core", (183892, 115548, 768, 140787, 690, 0, 117455, 16, 15874, 16, 933, 6705, 637)),
    ("ecc", (19082, 5698, 0, 8917, 0, 0, 7824, 16, 773, 8, 52, 421, 38)),
    ("overlay", (79546, 43678, 928, 26472, 161, 0, 29652, 16, 6220, 11, 297, 2414, 247)),
    ("iptable_nat", (537, 916, 0, 1654, 69, 0, 2074, 16, 94, 7, 3, 40, 4)),
    ("xfs", (799969, 422520, 10432, 725578, 2562, 0, 444158, 16, 65104, 13, 3948, 30236, 2645)),
)


def _module_rows() -> list[dict]:
    cols = MODULE_SIZE_COLUMNS + ["align"] + MODULE_WORK_COLUMNS
    return [dict(zip(cols, vals)) for _, vals in MODULES]


def stress_frame(n_events: int = 20000, seed: int = 0) -> pd.DataFrame:
    """A schema-valid event table of about ``n_events`` rows (synthetic churn)."""
    rng = np.random.default_rng(seed)
    mods = _module_rows()
    kinds = list(MIX)
    p = np.array([MIX[k] for k in kinds], dtype=float)
    p /= p.sum()
    out: list[dict] = []
    live_mod: dict[str, int] = {}          # name -> text bytes
    live_prog: list[str] = []
    live_tramp: list[str] = []
    live_ops: list[str] = []
    live_kp: dict[str, bool] = {}           # name -> optimized
    serial = 0
    t = 0

    def emit(user: str, op: str, obj: str, **kw) -> None:
        row = {"seq": len(out), "t_ns": t, "cpu": len(out) % 4, "user": user, "op": op, "obj": obj}
        row.update(kw)
        out.append(row)

    while len(out) < n_events:
        t += int(rng.integers(1_000, 2_000_000))
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        serial += 1
        if kind == "module":
            if live_mod and (len(live_mod) > 40 or rng.random() < 0.45):
                name = sorted(live_mod)[int(rng.integers(len(live_mod)))]
                emit("module", "unload", name)
                del live_mod[name]
            else:
                m = mods[int(rng.integers(len(mods)))]
                name = f"mod{serial}"
                emit("module", "load", name, **m)
                t += 1_000_000
                emit("module", "init_done", name)
                live_mod[name] = m["text"]
        elif kind == "module_patch":
            cand = [n for n, tx in sorted(live_mod.items()) if tx >= 16]
            if cand:
                name = cand[int(rng.integers(len(cand)))]
                off = int(rng.integers(0, live_mod[name] - 5))
                emit("module", "patch", name, offset=off, len=5)
        elif kind == "bpf_prog":
            if live_prog and (len(live_prog) > 300 or rng.random() < 0.48):
                name = live_prog.pop(int(rng.integers(len(live_prog))))
                emit("bpf", "prog_unload", name)
            else:
                name = f"prog{serial}"
                size = int(min(rng.lognormal(7.0, 1.2), 3 * 1024 * 1024)) + 1
                emit("bpf", "prog_load", name, size=size)
                live_prog.append(name)
        elif kind == "bpf_tramp":
            r = rng.random()
            if live_tramp and r < 0.3:
                name = live_tramp.pop(int(rng.integers(len(live_tramp))))
                emit("bpf", "tramp_detach", name)
            elif live_tramp and r < 0.6:
                name = live_tramp[int(rng.integers(len(live_tramp)))]
                emit("bpf", "tramp_update", name, size=int(rng.integers(100, 4096)))
            else:
                name = f"tramp{serial}"
                emit("bpf", "tramp_attach", name, size=int(rng.integers(100, 4096)))
                live_tramp.append(name)
        elif kind == "dispatcher":
            emit("bpf", "dispatcher_update", f"disp{int(rng.integers(2))}")
        elif kind == "ftrace":
            r = rng.random()
            if live_ops and r < 0.35:
                name = live_ops.pop(int(rng.integers(len(live_ops))))
                emit("ftrace", "ops_unregister", name)
            elif live_ops and r < 0.6:
                emit("ftrace", "ops_update", live_ops[int(rng.integers(len(live_ops)))])
            else:
                name = f"ops{serial}"
                emit("ftrace", "ops_register", name, size=int(rng.integers(200, 600)))
                live_ops.append(name)
        else:
            r = rng.random()
            names = sorted(live_kp)
            if names and r < 0.35:
                name = names[int(rng.integers(len(names)))]
                emit("kprobe", "unregister", name)
                del live_kp[name]
            elif names and r < 0.6:
                cand = [n for n in names if not live_kp[n]]
                if cand:
                    name = cand[int(rng.integers(len(cand)))]
                    emit("kprobe", "optimize", name, size=int(rng.integers(64, 256)))
                    live_kp[name] = True
            else:
                name = f"kp{serial}"
                emit("kprobe", "register", name, size=int(rng.integers(16, 64)))
                live_kp[name] = False
    return pd.DataFrame(out[:n_events] if _closes_ok(out, n_events) else out, columns=COLUMNS)


def _closes_ok(out: list[dict], n: int) -> bool:
    # a module's load/init_done pair may straddle the cut; keep the pair whole
    return not (len(out) > n and out[n - 1]["op"] == "load" and out[n - 1]["user"] == "module")


def stress_trace(n_events: int = 20000, seed: int = 0) -> Trace:
    """:func:`stress_frame` validated into a :class:`Trace` named ``stress-<n>-<seed>``."""
    tr = from_frame(stress_frame(n_events, seed), name=f"stress-{n_events}-{seed}")
    tr.provenance = {"workload": {"name": tr.name, "synthetic": True,
                                  "description": "synthetic stress churn over all users (execbench.stress)"}}
    return tr
