"""Synthetic-schedule generators: they stay valid traces and keep the kernel's rules."""

from __future__ import annotations

import collections

from execbench.trace import from_frame
from execbench.workloads.recorders import churn
from execbench.workloads.recorders import session as rs

FUNCS = [f"fn{i}" for i in range(40)]


def test_kprobe_churn_rounds_and_resident_probes():
    b = churn.kprobe_churn(FUNCS, seed=3, rounds=5, per_round=(10, 20), resident=4)
    from_frame(b.frame())                                   # schema + lifecycle
    rows = b._rows
    ops = collections.Counter(r["op"] for r in rows)
    assert ops["register"] == ops["unregister"]
    # resident probes are the first 4 registered and the last 4 unregistered
    first = [r["obj"] for r in rows if r["op"] == "register"][:4]
    last = [r["obj"] for r in rows if r["op"] == "unregister"][-4:]
    assert first == last
    # each round optimizes round(k * 21/25) of its k probes; residents are all optimized
    assert ops["optimize"] >= 4
    assert all(r["size"] == rs.KPROBE_SLOT_BYTES for r in rows if r["op"] == "register")


def test_trampoline_churn_shares_one_trampoline_per_function():
    b = churn.trampoline_churn(FUNCS, [100, 200], seed=4, rounds=3, per_round=(2, 5))
    from_frame(b.frame())
    by_obj = collections.defaultdict(list)
    for r in b._rows:
        if r["obj"].startswith("tramp:"):
            by_obj[r["obj"]].append(r["op"])
    # per function per round: attach, update (fexit joins), update (fentry leaves), detach
    for seq in by_obj.values():
        assert len(seq) % 4 == 0
        assert seq[:4] == ["tramp_attach", "tramp_update", "tramp_update", "tramp_detach"]


def test_containers_load_and_unload_three_programs_each():
    rates = churn.FleetRates(container_every_s=60.0, container_life_s=120.0, day_s=3600.0)
    b = churn.containers(rates, seed=5, start_ns=0, end_ns=3600 * churn.NS)
    from_frame(b.frame())
    ops = collections.Counter(r["op"] for r in b._rows)
    assert ops["prog_load"] == ops["prog_unload"] and ops["prog_load"] % 3 == 0 and ops["prog_load"] > 0


def test_module_churn_respects_dependencies_and_boot_set():
    row = {"text": "100", "rodata": "1", "ro_after_init": "0", "data": "1", "init_text": "1",
           "init_rodata": "0", "init_data": "1", "align": "16", "relocs": "1", "reloc_secs": "1",
           "alt_sites": "0", "orc_entries": "1", "mcount_locs": "1", "kallsyms": "1", "init_kallsyms": "1"}
    table = {n: dict(row, module=n, depends=d) for n, d in
             [("base", ""), ("lib", "base"), ("leaf", "lib")]}
    rates = churn.FleetRates(module_every_s=100.0)
    b = churn.module_churn(table, ["leaf"], {"base"}, rates, seed=1, start_ns=0, end_ns=350 * churn.NS)
    from_frame(b.frame())
    loads = [r["obj"] for r in b._rows if r["op"] == "load"]
    unloads = [r["obj"] for r in b._rows if r["op"] == "unload"]
    # 'base' is a boot module: never loaded again, never unloaded; lib before leaf, leaf unloaded first
    assert loads[:2] == ["lib", "leaf"] and "base" not in loads + unloads
    assert unloads[:2] == ["leaf", "lib"]
