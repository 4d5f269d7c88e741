"""Compare a real kernel's ground truth with a replay of the same workload.

Why: a design model is only as good as its agreement with the kernel it claims
to model.  A QEMU recording (``workloads/data/qemu/<name>/``) carries both the
workload trace its users produced and ``truth.csv``, what the real kernel did
(calls, pages, bytes per primitive).  Replaying the trace on the matching design
(``legacy`` for 6.1, ``execmem`` for 6.12) must give the same counts: each row
is a pass when within 5 %, otherwise it needs an explanation line (why the
trace cannot contain that work, or where the model simplifies).

Explanations are looked up by metric in :data:`KNOWN`; a row that differs
by more than 5 % without one is marked ``UNEXPLAINED``.
"""

from __future__ import annotations

import os
import pathlib
import tomllib

import pandas as pd

#: replay counter -> truth metric (``truth.csv`` names; see recorders/qemu/truth.py)
PAIRS: tuple[tuple[str, str], ...] = (
    ("vmalloc_calls", "vmalloc_calls"),
    ("vmalloc_bytes", "vmalloc_bytes_page_aligned"),
    ("vfree_calls", "vfree_calls"),
    ("cpa_calls", "cpa_calls"),
    ("cpa_pages_req", "cpa_pages"),
    ("cpa_calls_ro", "cpa_calls_ro"),
    ("cpa_pages_ro", "cpa_pages_ro"),
    ("cpa_calls_x", "cpa_calls_x"),
    ("cpa_pages_x", "cpa_pages_x"),
    ("cpa_calls_nx", "cpa_calls_nx"),
    ("cpa_pages_nx", "cpa_pages_nx"),
    ("cpa_calls_rw", "cpa_calls_rw"),
    ("cpa_calls_rox", "cpa_calls_rox"),
    ("cpa_pages_rox", "cpa_pages_rox"),
    ("text_pokes", "text_pokes"),
    ("text_poke_bytes", "text_poke_bytes"),
    ("text_poke_bp", "text_poke_bp_batch_sites"),
    ("bpf_prog_pack_new", "bpf_prog_pack_new"),
    ("insn_pages_new", "insn_pages_new"),
    ("vmap_areas", "vmap_areas"),
)

#: design that models each recorded kernel series
DESIGN_FOR = {"6.1": "legacy", "6.12": "execmem"}

TOLERANCE = 0.05

#: why a count may legitimately differ beyond the quantified adjustments below.
KNOWN: dict[str, str] = {
    "vmap_areas": ("truth is /proc/vmallocinfo at the end: it also lists areas made before /init "
                   "(the boot-time bpf_prog_pack, the kprobe-ftrace trampoline), which no traced "
                   "event created"),
    "bpf_prog_pack_new": ("the first 2 MiB pack is allocated during boot (before tracing); a replay "
                          "starts with no pack and must allocate one for the first prog_load"),
    "text_pokes": ("truth counts every __text_poke: also pokes into vmlinux text (kprobes and "
                   "ftrace on kernel functions), into init text and module data (not module "
                   "core text, so not in the trace), plus text_poke_copy/set of BPF images"),
    "text_poke_bytes": "same scope difference as text_pokes",
    "text_poke_bp": ("truth sums text_poke_bp_batch nr_entries over every address (vmlinux and "
                     "trampolines too); the trace keeps only patches in live module core text"),
}

PACK_PAGES = 512  # BPF_PROG_PACK_SIZE / PAGE_SIZE on x86-64 (kernel/bpf/core.c, v6.1)


def adjustments(truth: dict[str, int], counters: dict[str, int],
                kallsyms_pages: int = 0, series: str = "6.1") -> dict[str, tuple[int, str]]:
    """Work a replay does (or skips) for reasons known and counted: counter -> (delta, why).

    * A replay starts with no ``bpf_prog_pack``; the real kernel made its first pack
      at boot, before tracing (``vmap_areas_bpf_prog_pack_alloc`` live at the end
      but ``bpf_prog_pack_new`` = 0).  Each extra pack the replay allocates costs one
      vmalloc of 2 MiB and ``set_memory_ro`` + ``set_memory_x`` on 512 pages
      (kernel/bpf/core.c ``alloc_new_pack()``, v6.1; one ``set_memory_rox`` on 512
      pages since v6.2), and is vfree'd when its last chunk goes, while the boot
      pack stays (it also holds boot-time programs).
    * ``kallsyms_pages``: pages the v6.1 loader spends because the kallsyms start on
      a fresh page after the page-aligned data (``layout_symtab()``); the trace's
      ``data``/``init_data`` include the kallsyms as one sum, so a replay that pages
      ``data`` as a whole maps that many pages fewer, all of them NX data pages.
    """
    adj: dict[str, list] = {}

    def add(k: str, d: int, why: str) -> None:
        cur = adj.setdefault(k, [0, []])
        cur[0] += d
        cur[1].append(why)

    extra = counters.get("bpf_prog_pack_new", 0) - truth.get("bpf_prog_pack_new", 0)
    if extra > 0 and truth.get("vmap_areas_bpf_prog_pack_alloc", 0) > 0:
        why = f"{extra} bpf_prog_pack made at boot in reality, by the replay"
        if series == "6.1":
            cpa = (("cpa_calls", 2 * extra), ("cpa_calls_ro", extra), ("cpa_calls_x", extra),
                   ("cpa_pages_req", 2 * PACK_PAGES * extra), ("cpa_pages_ro", PACK_PAGES * extra),
                   ("cpa_pages_x", PACK_PAGES * extra))
        else:
            cpa = (("cpa_calls", extra), ("cpa_calls_rox", extra),
                   ("cpa_pages_req", PACK_PAGES * extra), ("cpa_pages_rox", PACK_PAGES * extra))
        for k, d in (("vmalloc_calls", extra), ("vmalloc_bytes", extra * PACK_PAGES * 4096), *cpa):
            add(k, d, why)
        freed = counters.get("bpf_prog_pack_freed", 0)
        if freed:
            add("vfree_calls", freed, "the replay frees its pack when empty; the boot pack stays")
    boot_packs = truth.get("vmap_areas_bpf_prog_pack_alloc", 0) - truth.get("bpf_prog_pack_new", 0)
    if boot_packs > 0:
        add("bpf_prog_pack_new", boot_packs,
            f"{boot_packs} pack live in vmallocinfo at the end but not allocated while tracing: "
            "made at boot; a replay starts without it")
    boot_areas = boot_packs
    boot_areas += truth.get("vmap_areas_arch_ftrace_update_trampoline", 0) - _live_tramps(truth)
    if boot_areas > 0:
        add("vmap_areas", -boot_areas, f"{boot_areas} areas in vmallocinfo were made before /init")
    # patches of vmlinux text (ftrace/kprobes on built-in functions) are not module
    # patches and so not in the trace; truth splits __text_poke and the bp sites by address
    outside = {
        "text_pokes": truth.get("text_pokes", 0) - truth.get("text_pokes_module_range", 0),
        "text_poke_bytes": truth.get("text_poke_bytes", 0) - truth.get("text_poke_bytes_module_range", 0),
        "text_poke_bp": sum(truth.get(f"{f}_calls", 0) - truth.get(f"{f}_calls_module_range", 0)
                            for f in ("text_poke_bp", "text_poke_queue")),
    }
    for k, n in outside.items():
        if n > 0:
            add(k, -n, f"{n} outside the module range (vmlinux text)")
    if kallsyms_pages:
        why = f"{kallsyms_pages} pages of v6.1 kallsyms page alignment not expressible in the trace"
        for k, d in (("vmalloc_bytes", -4096 * kallsyms_pages), ("cpa_pages_req", -kallsyms_pages),
                     ("cpa_pages_nx", -kallsyms_pages)):
            add(k, d, why)
    return {k: (v[0], "; ".join(v[1])) for k, v in adj.items()}


def _live_tramps(truth: dict[str, int]) -> int:
    """Trampolines made during the trace and still live at the end."""
    made = truth.get("module_alloc_calls_from_arch_ftrace_update_trampoline",
                     truth.get("execmem_alloc_calls_ftrace", 0))
    return max(0, made - truth.get("ftrace_trampolines_freed", made))


def _series(folder: pathlib.Path) -> str:
    name = folder.name
    for s in ("6.12", "6.1"):
        if name.startswith(f"qemu-{s}-"):
            return s
    toml = folder / f"{name}.toml"
    if toml.exists():
        cmd = tomllib.loads(toml.read_text())["regenerate"]["command"]
        return "6.12" if "--kernel 6.12" in cmd else "6.1"
    raise ValueError(f"{folder}: cannot tell the kernel series of this recording")


def load_truth(folder: str | os.PathLike) -> dict[str, int]:
    t = pd.read_csv(pathlib.Path(folder) / "truth.csv")
    return dict(zip(t["metric"], t["value"].astype(int)))


def _rel(r: int, t: int) -> float:
    return (r - t) / t if t else (0.0 if r == 0 else float("inf"))


def compare(truth: dict[str, int], counters: dict[str, int],
            adjust: dict[str, tuple[int, str]] | None = None) -> pd.DataFrame:
    """Row per pair: truth, replay, difference; then the residual after the quantified
    adjustments.  ``explained`` holds when the raw count is within 5 % or the
    residual is; otherwise the row needs a KNOWN cause or is ``UNEXPLAINED``."""
    adjust = adjust or {}
    rows = []
    for counter, metric in PAIRS:
        if metric not in truth or counter not in counters:
            continue
        t, r = int(truth[metric]), int(counters[counter])
        diff = _rel(r, t)
        ok = abs(diff) <= TOLERANCE
        delta, why = adjust.get(counter, (0, ""))
        resid = _rel(r, t + delta)
        explained = ok or abs(resid) <= TOLERANCE
        if ok:
            text = ""
        elif explained:
            text = f"{delta:+d} expected: {why}"
        else:
            text = KNOWN.get(counter, "UNEXPLAINED")
        rows.append({"counter": counter, "truth_metric": metric, "truth": t, "replay": r,
                     "diff_pct": round(100 * diff, 1) if diff != float("inf") else float("inf"),
                     "within_5pct": ok, "expected_delta": delta,
                     "residual_pct": round(100 * resid, 1) if resid != float("inf") else float("inf"),
                     "explained": explained, "explanation": text})
    return pd.DataFrame(rows)


def validate(recording_dir: str | os.PathLike, design: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Replay a recording's trace on ``design`` (default: the kernel's own) and compare."""
    from execbench.replay import run
    from execbench.trace import load_trace

    folder = pathlib.Path(recording_dir)
    series = _series(folder)
    design = design or DESIGN_FOR[series]
    res = run(load_trace(folder / f"{folder.name}.csv.gz"), design=design, seed=seed)
    truth = load_truth(folder)
    k = kallsyms_pages(folder)
    out = compare(truth, res.counters, adjustments(truth, res.counters, k, series))
    out.insert(0, "design", design)
    out.insert(0, "recording", folder.name)
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A plain table (no tabulate dependency) + one explanation line per differing row."""
    cols = ["counter", "truth", "replay", "diff_pct", "within_5pct", "expected_delta",
            "residual_pct", "explained"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(getattr(r, c)) for c in cols) + " |")
    notes = [f"- `{r.counter}` ({r.diff_pct:+} %): {r.explanation}" for r in df.itertuples(index=False)
             if not r.within_5pct]
    return "\n".join(lines) + ("\n\nDifferences over 5 %:\n\n" + "\n".join(notes) if notes else "") + "\n"


def _pa(n: int) -> int:
    return -(-int(n) // 4096) * 4096


#: v6.4+ allocation order: ``for_each_mod_mem_type`` walks enum mod_mem_type
#: (include/linux/module.h): MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT,
#: MOD_INIT_TEXT, MOD_INIT_DATA, MOD_INIT_RODATA; empty types are skipped.
MEM_TYPE_ORDER = ("text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata")


def module_allocations(recording_dir: str | os.PathLike) -> pd.DataFrame:
    """Per module: the real kernel's allocation sizes next to the layout rule.

    Why: a replay's vmalloc/CPA page counts can only match if each module's
    allocations have the right size.  Real sizes are the ``module_alloc`` /
    ``execmem_alloc`` requests owned by ``load_module``, attributed by pid to the
    ``module:module_load`` that follows (failed loads are dropped).

    v6.1 (one core and one init allocation), from ``kernel/module/main.c``
    ``layout_sections()`` (``strict_align`` = PAGE_ALIGN between text, rodata,
    ro_after_init and data, and after the whole data part) and
    ``kernel/module/kallsyms.c`` ``layout_symtab()`` (the kallsyms go after the
    page-aligned data, then the size is page-aligned again), applied to
    ``modules.csv``::

        core = PA(text) + PA(rodata) + PA(ro_after_init) + PA(data_sections) + PA(data - data_sections)
        init = PA(init_text) + PA(init_rodata) + PA(init_data_sections) + PA(init_data - init_data_sections)

    v6.4+ (one allocation per non-empty type, in :data:`MEM_TYPE_ORDER`): each is
    PA(size of that type) (kernel/module/main.c ``module_memory_alloc()``).
    """
    folder = pathlib.Path(recording_dir)
    ev = pd.read_csv(folder / "events.csv.gz", dtype=str, keep_default_na=False)
    lay = pd.read_csv(folder / "modules.csv").set_index("module")
    v61 = (ev.event == "module_alloc").any()
    alloc_e, free_e = ("module_alloc", "module_memfree") if v61 else ("execmem_alloc", "execmem_free")
    sizes: dict[str, list[int]] = {}
    out = []
    for r in ev.itertuples(index=False):
        if r.event == alloc_e and r.caller == "load_module":
            sizes.setdefault(r.pid, []).append(int(r.size))
        elif r.event == free_e and r.caller == "load_module":
            sizes.pop(r.pid, None)  # failed load
        elif r.event == "module_load":
            got = sizes.pop(r.pid, [])
            if r.type not in lay.index:
                continue
            L = lay.loc[r.type]
            if v61:
                core = (_pa(L.text) + _pa(L.rodata) + _pa(L.ro_after_init) + _pa(L.data_sections)
                        + _pa(L.data - L.data_sections))
                init = (_pa(L.init_text) + _pa(L.init_rodata) + _pa(L.init_data_sections)
                        + _pa(L.init_data - L.init_data_sections))
                out.append({"module": r.type, "core_real": got[0] if got else 0,
                            "init_real": got[1] if len(got) > 1 else 0,
                            "core_rule": core, "init_rule": init})
            else:
                rule = [_pa(L[c]) for c in MEM_TYPE_ORDER if L[c] > 0]
                core_n = sum(1 for c in MEM_TYPE_ORDER[:4] if L[c] > 0)
                out.append({"module": r.type, "core_real": sum(got[:core_n]),
                            "init_real": sum(got[core_n:]), "core_rule": sum(rule[:core_n]),
                            "init_rule": sum(rule[core_n:]), "areas_real": len(got),
                            "areas_rule": len(rule), "per_type_match": [_pa(g) for g in got] == rule})
    df = pd.DataFrame(out)
    if len(df):
        df["core_match"] = df.core_real == df.core_rule
        df["init_match"] = df.init_real == df.init_rule
    return df


def kallsyms_pages(recording_dir: str | os.PathLike) -> int:
    """Pages the real v6.1 allocations hold beyond ``PAGE_ALIGN`` of each trace size.

    Real = the ``module_alloc`` sizes; per-type = PA(text) + PA(rodata) +
    PA(ro_after_init) + PA(data) (+ the same for init) from ``modules.csv``.  The
    difference is the kallsyms' own page(s) (see :func:`module_allocations`).
    """
    folder = pathlib.Path(recording_dir)
    d = module_allocations(folder)
    if d.empty or "areas_real" in d:  # v6.4+: one area per type, nothing shared
        return 0
    lay = pd.read_csv(folder / "modules.csv").set_index("module").loc[d.module]
    naive = sum(lay[c].map(_pa).sum() for c in ("text", "rodata", "ro_after_init", "data",
                                                 "init_text", "init_rodata", "init_data"))
    return int((d.core_real.sum() + d.init_real.sum() - naive) // 4096)


def report(recordings: list[pathlib.Path], seed: int = 0) -> str:
    """``results/validation.md``: one section per recording, replayed on its design."""
    from execbench import registry

    parts = ["# Validation: real kernels under QEMU vs. replay\n",
             "Generated by `python -m execbench.validation` from the shipped recordings in "
             "`workloads/data/qemu/` (see `workloads/recorders/qemu/`).  `truth` = what the "
             "real kernel did (tracefs kprobes), `replay` = `execbench.replay.run` of the same "
             "recording's workload trace on the design that models that kernel.  "
             "`expected_delta` = work the replay does or skips for a counted reason (listed under "
             "the table), `residual_pct` = the difference left after it.\n"]
    for folder in recordings:
        series = _series(folder)
        design = DESIGN_FOR[series]
        parts.append(f"\n## {folder.name} on `{design}`\n\n")
        parts.append(_measured(folder))
        d = module_allocations(folder)
        if len(d):
            parts.append(f"Module allocation sizes vs. the layout rule (`module_allocations`): "
                         f"core {int(d.core_match.sum())}/{len(d)}, init {int(d.init_match.sum())}/{len(d)} "
                         "modules exact.\n")
        try:
            registry.get(design)
        except Exception as exc:  # design not written yet: say so, keep the command runnable
            parts.append(f"\nNot replayed: design `{design}` is not registered yet ({exc}). "
                         f"Run `python -m execbench.validation` again once it is.\n")
            continue
        parts.append("\n" + to_markdown(validate(folder, design, seed)))
    return "".join(parts)


def _measured(folder: pathlib.Path) -> str:
    """One paragraph of what the recording measured (for the workloads helper too)."""
    prov = tomllib.loads((folder / f"{folder.name}.toml").read_text())
    m = prov["measured"]
    pkg = next(k for k in prov["source"]["packages"] if k.startswith("linux-image-"))
    ev = pd.read_csv(folder / "events.csv.gz", dtype=str, keep_default_na=False)
    tramp = sorted(set(ev[ev.caller.eq("arch_ftrace_update_trampoline")
                          & ev.event.isin(["module_alloc", "execmem_alloc"])]["size"]))
    slots = ev[ev.event == "__get_insn_slot"]
    slot_sizes = sorted(set(zip(slots["type"], slots["args"].str.extract(r"insn_size=(\d+)")[0])))
    jit = []
    for line in (folder / "guest" / "bpfinfo.txt").read_text().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        if line.startswith("bpfinfo") and int(f.get("insns", 0)) >= 100:
            jit.append(int(f["jited"]) / int(f["insns"]))
    ratio = f"{min(jit):.2f}-{max(jit):.2f}" if jit else "n/a"
    return (f"`{pkg}` {prov['source']['packages'][pkg]['version']}: QEMU/TCG wall {m['qemu_wall_s']} s "
            f"(whole record {m['record_wall_s']} s); {m['guest_events']} guest events -> "
            f"{m['trace_events']} trace events; {m['modules_in_set']} modules inserted.  "
            f"ftrace trampoline request: {', '.join(tramp)} bytes.  kprobe slots "
            f"(cache, insn_size): {slot_sizes}.  x86-64 JIT image bytes per BPF instruction "
            f"(socket filters of 100-4000 insns): {ratio}.\n\n")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from execbench.trace import atomic_write_bytes

    root = pathlib.Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description="write results/validation.md")
    p.add_argument("--data", type=pathlib.Path, default=root / "workloads" / "data" / "qemu")
    p.add_argument("-o", "--output", type=pathlib.Path, default=root / "results" / "validation.md")
    a = p.parse_args(argv)
    recs = sorted(q for q in a.data.glob("qemu-*") if q.is_dir())
    if not recs:
        print(f"{a.data}: no recordings", file=__import__("sys").stderr)
        return 1
    atomic_write_bytes(a.output, report(recs).encode())
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
