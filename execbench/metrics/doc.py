"""docs/metrics.md, generated from the metric catalogue.

Why generated: the catalogue (:data:`.catalog.METRICS`) is the one place a
metric is defined, and metrics are added often; a hand-kept copy drifts.
``tests/test_metrics_doc.py`` fails when docs/metrics.md differs from
:func:`render`; regenerate with::

    python -m execbench.metrics.doc > docs/metrics.md
"""
from __future__ import annotations

import math

from .catalog import ARCH_METRICS, METRICS, MetricSpec
from .floor import ZERO, floor_row

#: the order of the families in the document, then any new family
FAMILY_ORDER = ("itlb", "fragmentation", "permissions", "interface", "cost", "concurrency")

#: the floor's rule for the metrics whose bound is not 0 (execbench/metrics/floor.py)
FLOOR_RULE = {
    "text_ptes_4k": "0",
    "text_pmds_2m": "ceil(T / 2 MiB)",
    "itlb_entries": "ceil(T / 2 MiB)",
    "itlb_entries_ideal": "ceil(T / 2 MiB)",
    "requested_bytes": "R (the workload's)",
    "backing_bytes": "PAGE_ALIGN(T) + PAGE_ALIGN(R - T)",
    "internal_frag": "1 - R / backing floor",
}

HEADER = """\
# Metrics

Generated from `execbench/metrics/catalog.py` by
`python -m execbench.metrics.doc > docs/metrics.md`; a test keeps the two in
sync.  `execbench list --metrics` prints the same catalogue.

## How a run is summarised

Every metric is sampled after every event of the trace.  A **gauge** is a
state (live entries, bytes, pages): a run reports its *peak* and its
*time-weighted mean* over the virtual clock (the value after event *i*
holds until event *i+1*).  A **counter** only grows (calls, flushes,
splits, exposure integrals): a run reports its *final* value, the total
over the trace; a time-weighted mean of a counter means nothing and is not
shown by `run`, `compare` or `report`.

All metrics are **lower is better** except those marked otherwise in the
`better` column (`largest_free_extent`, `DirectMap1G`: higher; `DirectMap2M`:
neither, it grows when a 1 GiB leaf splits and shrinks when a 2 MiB one does).

## The floor

`floor` is not a design: it is the per-metric lower bound no allocator can
beat for the same trace, computed from the live objects alone
(`execbench/metrics/floor.py`).  With `T` live text bytes and `R` live
requested bytes: iTLB entries >= ceil(T / 2 MiB) (every byte under 2 MiB
leaves, no gaps); backing >= PAGE_ALIGN(T) + PAGE_ALIGN(R - T) (W^X keeps
text and data on separate pages); text born read-only+executable needs no
`set_memory_*` call, no flush, no direct-map split and is never W+X, so
those bounds are 0.  The bounds are per metric: one placement need not
reach all of them at once.  Metrics without a stated bound show `-`.

Reports give ratios to the baseline design (`legacy`); across workloads
they take the geometric mean of the per-workload ratios (every workload
weighs the same, and the result does not depend on which design is the
baseline), with the min-max over the workloads and the spread over seeds.
A ratio whose baseline is 0 is undefined and is printed as the two values
or `n/a`, never `inf`.

## What drives text pokes and W^X exposure

`text_pokes_<source>` split `text_pokes` by what each `__text_poke()` was
for (`execbench/kernel/text_poke.py` `SOURCES`): the module loader's
writes (`fill`, `invalidate`, `reloc`, `alternatives`, `orc_sort`,
`mcount_sort`, `ftrace_init`), `patch` (live patching of module text), the
other users (`bpf`, `trampoline`, `dispatcher`, `ftrace`, `kprobe`),
`cache` (an allocator refilling pooled memory) and `other` (pokes outside
any replayed event: 0 in a replay); they sum to `text_pokes`.  How many
the loader makes depends on its strategy, the design parameter `loader`
(`inplace`, `staged`, `temp_rw`, `rw`; `models/common/load_work.py`),
which every run records with its parameters.

`wx_page_ns_<cause>` split `wx_page_ns` by why the pages were W+X
(`execbench/kernel/pagetable.py` `WX_CAUSES`); they sum to `wx_page_ns`.
`text_poke_wx_page_ns` is the part of `wx_page_ns` that accrued while
`__text_poke()` ran: that part scales with the assumed `text_poke` cost,
the rest does not.  `wx_pages_peak_instant` is the most W+X pages at any
instant, inside events too -- not the peak of the per-event gauge
`wx_pages`.
"""


def _floor(m: MetricSpec) -> str:
    if m.name in FLOOR_RULE:
        return FLOOR_RULE[m.name]
    if m.name in ZERO:
        return "0"
    probe = floor_row(3 * 2**21 + 4096, 2**21 + 100).get(m.name, math.nan)
    return "-" if math.isnan(probe) else "see floor.py"


def _stat(m: MetricSpec) -> str:
    return "peak, mean" if m.kind == "gauge" else "final"


def _cell(s: str) -> str:
    return s.replace("|", "\\|")


def render() -> str:
    fams = list(FAMILY_ORDER) + sorted({m.family for m in METRICS} - set(FAMILY_ORDER))
    out = [HEADER]
    for fam in fams:
        ms = [m for m in METRICS if m.family == fam]
        if not ms:
            continue
        out += [f"## Family `{fam}`", "",
                "| metric | kind | unit | reported | better | floor | what it counts |",
                "|---|---|---|---|---|---|---|"]
        for m in ms:
            out.append(f"| `{m.name}` | {m.kind} | {_cell(m.unit)} | {_stat(m)} | {m.better} | "
                       f"{_cell(_floor(m))} | {_cell(m.doc)} |")
        out.append("")
    for arch, specs in ARCH_METRICS.items():
        out += [f"## Only on {arch} (`--arch {arch}`)", "",
                "Sampled after the common metrics on a machine of that architecture, "
                "absent from other runs; no floor is stated for them "
                "(docs/arm64.md says what each follows). On arm64 `tlb_shootdowns` counts "
                "broadcast TLBI sequences (no IPIs) and `sync_core_ipis` the "
                "`kick_all_cpus_sync()` of `flush_icache_range()`.", ""]
        out += [f"- `{m.name}` ({m.kind}, {m.unit}): {m.doc}" for m in specs]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys
    sys.stdout.write(render())
