"""Check the recorder's module layout against where the real kernel put each section.

Why: the module tables (``modlayout``) claim to reproduce the loader's layout, including
arm64's PLT growth (``module_frob_arch_sections()``), which changes sizes by a few hundred
bytes -- too little to show in page-rounded allocation sizes.
``/sys/module/<name>/sections/<section>`` (kernel/module/sysfs.c ``add_sect_attrs()``:
every ``SHF_ALLOC`` section with a non-zero size, init sections included, real addresses
for root with ``kptr_restrict=1``) shows each section's address, so each section's offset
inside its ``mod_mem_type`` can be compared byte for byte:

* within a type, ``address - address of the type's first section`` must equal the
  offset ``layout_sections()`` gives it (``modlayout.section_layout``);
* v6.1 keeps the four core types in one allocation (``core_layout``) and the three init
  types in another, each type starting on a page boundary (``strict_align()``), so there
  the distance between two types' first sections must also be the page-rounded sizes of
  the types in between -- which checks the type sizes themselves, last section included.

The guest writes the dump after every module is loaded (``guest/sections.txt``); the
recorder writes its own offsets beside it (``sections.csv``), so a test can compare them
from the committed recording.
"""

from __future__ import annotations

import io

import pandas as pd

from execbench.workloads.recorders import modlayout

PAGE = 4096
CORE = ("text", "rodata", "ro_after_init", "data")
INIT = ("init_text", "init_rodata", "init_data")
COLUMNS = ["module", "section", "type", "offset", "size"]


def layout_rows(kos: list[tuple[str, bytes]], opts: dict) -> pd.DataFrame:
    """``sections.csv``: (module, section, type, offset, size) per laid-out section."""
    rows = []
    for name, data in kos:
        for sec, t, off, size in modlayout.section_layout(data, name, **opts):
            rows.append((name, sec, t, off, size))
    return pd.DataFrame(rows, columns=COLUMNS)


def parse_sysfs(text: str) -> pd.DataFrame:
    """The guest's ``module section address`` lines."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"sections.txt:{lineno}: expected 'module section address': {line!r}")
        rows.append((parts[0], parts[1], int(parts[2], 16)))
    return pd.DataFrame(rows, columns=["module", "section", "addr"])


def compare(layout: pd.DataFrame, guest: pd.DataFrame, one_area: bool) -> pd.DataFrame:
    """Per module: sections compared, how many are where the layout says, whether the
    type-to-type distances agree (``one_area``: v6.1), and ``exact`` = all of it.

    Sections of size 0 are not in sysfs and are skipped; a module the guest did not load
    is not in the result.
    """
    g = guest.set_index(["module", "section"])["addr"]
    out = []
    for mod, lay in layout.groupby("module", sort=True):
        if mod not in g.index.get_level_values(0):
            continue
        gm = g.loc[mod]
        lay = lay[(lay["size"] > 0) & lay["section"].isin(gm.index)]
        base: dict[str, int] = {}
        n = ok = 0
        for r in lay.itertuples(index=False):
            a = int(gm[r.section])
            if r.type not in base:
                base[r.type] = a - r.offset
            n += 1
            ok += int(a - base[r.type] == r.offset)
        types_ok = True
        if one_area:
            mine = layout[layout["module"] == mod]
            end = (mine["offset"] + mine["size"]).groupby(mine["type"]).max()
            for group in (CORE, INIT):
                present = [t for t in group if t in base]
                for t0, t1 in zip(present, present[1:]):
                    # strict_align() starts every type on a page: the types from t0 up to
                    # t1 take their page-rounded sizes
                    gap = sum(-(-int(end.get(t, 0)) // PAGE) * PAGE
                              for t in group[group.index(t0):group.index(t1)])
                    types_ok &= base[t1] - base[t0] == gap
        out.append((mod, n, ok, types_ok, ok == n and types_ok))
    return pd.DataFrame(out, columns=["module", "sections", "matched", "types_ok", "exact"])


def read_layout(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))
