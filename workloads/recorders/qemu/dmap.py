"""Which 2 MiB direct-map regions a recording's CPA calls changed, and by which call.

Why: ``/proc/vmstat``'s ``direct_map_level2_splits`` says how many 2 MiB
direct-map leaves the guest split, not why.  The splitting functions
(``__split_large_page()``, ``split_large_page()``,
arch/x86/mm/pat/set_memory.c) are inlined in Debian's 7.2.13 and cannot be
probed, but every direct-map change goes through ``__change_page_attr_set_clr(
struct cpa_data *cpa, int primary)`` (recursive through
``cpa_process_alias()``, so it stays out of line), and the recorder probes it
(``cpa_set_clr``: first address of the run, ``numpages``, ``mask_set``,
``mask_clr``, ``primary``).  From those calls this module replays, page by
page, the direct map's RW and PRESENT bits:

* ``primary=0`` with a direct-map address: the alias of a ``set_memory_*()``
  on a vmalloc address (``cpa_process_alias()``); it takes the kind of the
  last ``primary=1`` call on a module-range address of the same task and CPU.
  ``set_memory_nx()``/``_x()`` have no effect on the alias (``checkalias`` is
  false for NX-only changes; the call still appears with empty masks).
* ``primary=1`` with a direct-map address: ``__set_pages_np()`` (``mask_clr``
  has ``_PAGE_PRESENT``: ``set_direct_map_invalid_noflush()`` in
  ``vm_reset_perms()``) or ``__set_pages_p()`` (``mask_set`` has it:
  ``set_direct_map_default_noflush()``).

A page's change is *effective* when it flips a bit (RO on an RW page, RW on
an RO page, not-present on a present one, present again).  A 2 MiB leaf
splits when a change covers it only partly (``should_split_large_page()``), so
the distinct regions with an effective change bound the splits from above:
a region already split before tracing (boot-time objects) or changed whole
(a 2 MiB ROX-cache block's ``set_memory_rox``, until its first partial
change) is in the set without a traced split.  Each region is attributed to
the call that changed it first.

Pages that were RO before tracing (the boot-time ROX-cache block) start as
RW here; a later traced RW on them is then not seen as effective, like the
split they had before tracing, which ``/proc/vmstat``'s start value holds.
"""

from __future__ import annotations

import dataclasses
import re

import pandas as pd

from .build import in_exec
from .parse import num

_PAGE_PRESENT = 0x1
_PAGE_RW = 0x2
_PAGE_NX = 1 << 63
#: x86-64 kernel addresses at and above the kernel image map (__START_KERNEL_map);
#: the direct map (page_offset_base, randomized, PUD-aligned) lies below
START_KERNEL_MAP = 0xFFFFFFFF80000000
PAGES_PER_2M = 512

#: the call each region is attributed to, in report order
CAUSES = ("set_memory_ro", "set_memory_rox", "set_memory_rw", "vm_reset_perms", "other")

_KV = re.compile(r"(\w+)=(\S+)")


@dataclasses.dataclass
class DirectMapChanges:
    """Per cause: direct-map pages changed (effective page changes) and the
    2 MiB regions it changed first."""

    pages: dict[str, int]
    regions_first: dict[str, int]
    regions: int
    events: int

    def rows(self) -> list[tuple[str, int, str]]:
        out = [("direct_map_2m_regions_changed", self.regions,
                "distinct 2 MiB direct-map regions a traced CPA changed (cpa_set_clr): "
                "the splits' upper bound")]
        for c in CAUSES:
            out.append((f"direct_map_2m_regions_first_{c}", self.regions_first.get(c, 0),
                        "regions changed first by this call"))
            out.append((f"direct_map_pages_changed_{c}", self.pages.get(c, 0),
                        "direct-map page changes this call made (bit flips)"))
        return out


def _kind(set_: int, clr: int) -> str:
    if clr & _PAGE_RW and clr & _PAGE_NX:
        return "set_memory_rox"
    if clr & _PAGE_RW:
        return "set_memory_ro"
    if set_ & _PAGE_RW:
        return "set_memory_rw"
    return "other"


def changes(ev: pd.DataFrame) -> DirectMapChanges | None:
    """The reconstruction over ``cpa_set_clr`` events; ``None`` when the
    recording has none (recordings made before the probe)."""
    d = ev[ev["event"] == "cpa_set_clr"]
    if not len(d):
        return None
    ro: set[int] = set()          # direct-map pages (vaddr >> 12) whose alias is RO
    np_: set[int] = set()         # pages made not-present
    first: dict[int, str] = {}    # 2 MiB region (vaddr >> 21) -> cause of its first change
    pages = {c: 0 for c in CAUSES}
    last_kind: dict[int, str] = {}
    for pid, args in zip(d["pid"], d["args"]):
        kv = dict(_KV.findall(args))
        vaddr, n = num(kv["vaddr"]), num(kv["numpages"])
        set_, clr, primary = num(kv["set"]), num(kv["clr"]), num(kv["primary"])
        key = int(pid)
        if in_exec(vaddr) or vaddr >= START_KERNEL_MAP:
            if primary == 1:
                last_kind[key] = _kind(set_, clr)
            continue                      # the vmalloc or kernel-image side, not the direct map
        # primary=1 on a direct-map address: __set_pages_np()/__set_pages_p() of
        # vm_reset_perms(); its restore (set_direct_map_default_noflush()) undoes
        # its own invalidation: state only, not counted again
        restore = primary == 1 and bool(set_ & _PAGE_PRESENT)
        if primary == 1:
            cause = "vm_reset_perms" if (clr | set_) & _PAGE_PRESENT else "other"
        else:
            cause = last_kind.get(key, "other")
        p0 = vaddr >> 12
        for p in range(p0, p0 + n):
            hit = False
            if clr & _PAGE_PRESENT and p not in np_:
                np_.add(p)
                hit = True
            if set_ & _PAGE_PRESENT and p in np_:
                np_.discard(p)
                hit = True
            if clr & _PAGE_RW and not clr & _PAGE_PRESENT and p not in ro:
                ro.add(p)
                hit = True
            if set_ & _PAGE_RW and p in ro:
                ro.discard(p)
                hit = True
            if hit and not restore:
                pages[cause] += 1
                first.setdefault(p // PAGES_PER_2M, cause)
    by: dict[str, int] = {c: 0 for c in CAUSES}
    for c in first.values():
        by[c] += 1
    return DirectMapChanges(pages=pages, regions_first=by, regions=len(first), events=len(d))
