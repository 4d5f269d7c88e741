"""``fleet-days``: the fleet-day recipe run for many days on one host, written as it is generated.

A fleet host is not rebooted every day.  This recipe boots it once (fleet-day's
boot-server set) and then repeats fleet-day's day -- container cgroup-BPF churn,
the monitoring agent, on-demand module loads, on-call kprobe bursts, every rate
from :class:`.churn.FleetRates` -- for ``days`` consecutive days.  Day 0 uses
fleet-day's seeds, so its events are fleet-day's (up to the containers still
running at midnight, whose unloads interleave with day 1); day *k* draws
from seeds offset by ``100 * k`` and prefixes its BPF, ftrace and kprobe
object names with ``d<k>:`` (modules keep their names: each day's on-demand
modules are unloaded the same day).  About 103 k events per day: a week is
~0.72 M events, 97 days ~10 M.

It exists to measure replay at fleet scale (docs/performance.md, "Fleet
scale"), so it is generated on demand (``execbench record fleet-days``) and
never shipped: 10 M events are ~60 MB gzipped.  The file is written one day
at a time (memory does not grow with ``days``) to a temp file, validated as a
stream (:class:`execbench.trace.TraceStream`) and only then renamed into place.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import pathlib
import tempfile
import tomllib
from typing import Callable

from execbench.trace import COLUMNS, SIZE_COLUMNS, TraceStream, trace_stem

from . import churn
from . import session as rs
from .provenance import write_toml
from .tracebuild import TraceBuilder, merge

#: fleet-day's day length (FleetRates.day_s) at ~103 k events: about this many per day
EVENTS_PER_DAY = 103_000


def _day_streams(data: pathlib.Path, k: int, start_ns: int, ctx: dict) -> list[TraceBuilder]:
    """Day ``k``'s streams, as build_churn_workloads() builds fleet-day's (seeds + 100 k)."""
    rates = ctx["rates"]
    end = start_ns + int(rates.day_s * churn.NS)
    off = 100 * k
    seed = ctx["seed"]
    period = rates.probe_burst_every_s
    streams = [
        churn.containers(rates, seed + 31 + off, start_ns, end),
        churn.monitor(ctx["progs"], rates, seed + 32 + off, start_ns, end),
        churn.module_churn(ctx["table"], ctx["modules"], ctx["boot_set"], rates, seed + 33 + off,
                           start_ns, end),
        churn.kprobe_churn(ctx["funcs"], seed + 34 + off, rounds=int(rates.day_s // period),
                           start_ns=start_ns, gap_s=(0.7 * period, 0.9 * period), hold_s=(30.0, 300.0),
                           resident=0, prefix="oncall:"),
    ]
    if k:
        for s in streams:
            for r in s._rows:
                if r["user"] != "module":
                    r["obj"] = f"d{k}:{r['obj']}"
    return streams


def _rows_csv(rows: list[dict], seq0: int) -> str:
    """Rows in the canonical CSV encoding (execbench.trace.to_csv_bytes), numbered from ``seq0``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i, r in enumerate(rows):
        w.writerow([seq0 + i, r["t_ns"], r["cpu"], r["user"], r["op"], r["obj"],
                    *(r.get(c, "") for c in SIZE_COLUMNS)])
    return buf.getvalue()


def _carry(rows: list[dict]) -> TraceBuilder:
    b = TraceBuilder()
    for r in rows:
        cols = {c: v for c, v in r.items() if c not in ("seq", "t_ns", "cpu", "user", "op", "obj")}
        b.add(int(r["t_ns"]), int(r["cpu"]), str(r["user"]), str(r["op"]), str(r["obj"]), **cols)
    return b


def write(data: pathlib.Path, days: int, out: pathlib.Path,
          progress: Callable[[int, int], None] | None = None) -> int:
    """Write ``days`` days of the fleet host to ``out`` (.csv or .csv.gz) and a
    provenance sidecar; returns the number of events."""
    from . import shipped as sh

    if days < 1:
        raise ValueError("days must be at least 1")
    rates = churn.FleetRates()
    boot, bs, rows = sh._boot(data, sh.GENERIC_TABLE, sh.SERVER_LISTING, sh.SERVER_DRIVERS)
    bpf_rows = sh.read_bpf_table(data / sh.BPF_TABLE)
    ctx = {"rates": rates, "seed": sh.SEED, "progs": rs.tool_programs(bpf_rows),
           "table": {r["module"]: r for r in rows}, "modules": sh.FLEET_MODULES,
           "boot_set": set(bs.order), "funcs": sh._probe_functions(bpf_rows)}
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv.gz" if out.name.endswith(".gz") else ".csv",
                               dir=out.parent)
    n = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            f = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) \
                if out.name.endswith(".gz") else raw
            f.write((",".join(COLUMNS) + "\n").encode())
            start = boot.last_t_ns
            head = [boot]
            for k in range(days):
                end = start + int(rates.day_s * churn.NS)
                day = merge(head + _day_streams(data, k, start, ctx))._rows
                last = k == days - 1
                cut = len(day) if last else next((i for i, r in enumerate(day) if r["t_ns"] >= end), len(day))
                f.write(_rows_csv(day[:cut], n).encode())
                n += cut
                head = [_carry(day[cut:])]       # still running at midnight: merged into the next day
                start = end
                if progress:
                    progress(k + 1, n)
            if f is not raw:
                f.close()
        TraceStream(tmp)                          # a broken recipe raises TraceError here
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    stem = trace_stem(out)
    # fleet-day's sidecar (its [parameters] and [placement] set the side allocations), re-labelled
    prov = tomllib.loads((data / "fleet-day.toml").read_text())
    write_toml(out.with_name(stem + ".toml"), prov | {
        "workload": {"name": stem,
                     "description": f"{days} days of one container-host server: fleet-day's boot once, then "
                                    f"fleet-day's day {days} times (container cgroup-BPF churn, monitoring "
                                    "agent, on-call kprobe bursts, on-demand modules)",
                     "users": ["bpf", "ftrace", "kprobe", "module"], "events": n, "synthetic": True,
                     "synthetic_note": "fleet-day's recipe (workloads/data/fleet-day.toml), day k seeded "
                                       "with fleet-day's seeds + 100 k; generated for fleet-scale "
                                       "measurements, not shipped",
                     "default": False},
        "rates": dataclasses.asdict(rates), "days": days,
        "regenerate": {"command": f"execbench record fleet-days --days {days} -o {out.name}"}})
    return n
