"""Direct-map split causes: the recording's side (dmap.changes) and the validation's.

The expected values are worked out by hand from arch/x86/mm/pat/set_memory.c (7.2):
``set_memory_ro()`` clears _PAGE_RW (and _PAGE_DIRTY) on the vmalloc address, then
``cpa_process_alias()`` calls ``__change_page_attr_set_clr(&alias_cpa, 0)`` on the
direct-map address of each page; ``set_memory_nx()`` reaches the alias with empty
masks (no alias change for NX-only); ``__set_pages_np()`` clears _PAGE_PRESENT|_PAGE_RW
on a direct-map address with primary=1, ``__set_pages_p()`` sets them back.
"""

from __future__ import annotations

import pandas as pd

from execbench import validation as V
from execbench.workloads.recorders.qemu import dmap

MOD = 0xFFFFFFFFC0100000          # a module-range address
DM = 0xFF11000000000000            # a direct-map base (2 MiB aligned)
MB2 = 2 << 20
RW, DIRTY, PRESENT, NX = 0x2, 0x40, 0x1, 1 << 63


def cpa(seq, vaddr, n, set_=0, clr=0, primary=1, pid=7):
    return {"seq": seq, "t_ns": seq, "cpu": "0", "pid": str(pid), "comm": "insmod", "event": "cpa_set_clr",
            "site": "", "addr": "", "size": "", "npages": "", "len": "", "ret": "", "type": "",
            "args": f"vaddr={vaddr:#x} numpages={n} set={set_:#x} clr={clr:#x} primary={primary}",
            "context": "", "caller": "", "stack": ""}


def test_changes_by_hand():
    ev = pd.DataFrame([
        # set_memory_ro(MOD, 2): its alias is 2 pages straddling the boundary of
        # direct-map regions 0 and 1 -> 2 page flips, regions 0 and 1 first by set_memory_ro
        cpa(1, MOD, 2, clr=RW | DIRTY),
        cpa(2, DM + MB2 - 4096, 2, clr=RW | DIRTY, primary=0),
        # set_memory_nx(MOD, 2): alias call with empty masks -> nothing
        cpa(3, MOD, 2, set_=NX),
        cpa(4, DM + MB2 - 4096, 2, primary=0),
        # set_memory_rw(MOD, 1): alias RW on the first (RO) page -> 1 flip, no new region
        cpa(5, MOD, 1, set_=RW),
        cpa(6, DM + MB2 - 4096, 1, set_=RW, primary=0),
        # ... and RW on an RW page of a new region (region 5): no flip, no region
        cpa(7, DM + 5 * MB2, 1, set_=RW, primary=0),
        # vm_reset_perms(): __set_pages_np on a page of region 3 -> 1 flip, region 3;
        # __set_pages_p restores it: state only, not counted again
        cpa(8, DM + 3 * MB2 + 4096, 1, clr=PRESENT | RW | DIRTY),
        cpa(9, DM + 3 * MB2 + 4096, 1, set_=PRESENT | RW),
        # a kernel-image alias (above __START_KERNEL_map) is not the direct map
        cpa(10, 0xFFFFFFFF81000000, 1, clr=RW | DIRTY, primary=0),
    ])
    r = dmap.changes(ev)
    assert r.pages == {"set_memory_ro": 2, "set_memory_rox": 0, "set_memory_rw": 1,
                       "vm_reset_perms": 1, "other": 0}
    assert r.regions_first == {"set_memory_ro": 2, "set_memory_rox": 0, "set_memory_rw": 0,
                               "vm_reset_perms": 1, "other": 0}
    assert r.regions == 3 and r.events == 10


def test_rox_alias_is_its_own_cause_and_old_recordings_have_none():
    # set_memory_rox clears _PAGE_RW and _PAGE_NX (and DIRTY): 512 pages of one aligned region
    ev = pd.DataFrame([cpa(1, MOD, 512, clr=RW | DIRTY | NX), cpa(2, DM + 7 * MB2, 512, clr=RW | DIRTY, primary=0)])
    r = dmap.changes(ev)
    assert (r.pages["set_memory_rox"], r.regions_first["set_memory_rox"], r.regions) == (512, 1, 1)
    assert dmap.changes(ev.assign(event="set_memory_ro")) is None


def _rows(**passes):
    pairs = [f"direct_map_pages_changed_{c}" for c in V.DMAP_CAUSES] + ["direct_map_splits_2m"]
    return pd.DataFrame([{"pair": p, "passes": passes.get(p, p != "direct_map_splits_2m")} for p in pairs])


def test_splits_are_explained_only_when_every_cause_changes_the_same_pages():
    truth = {"direct_map_2m_regions_changed": 10, "direct_map_level2_splits": 9,
             "direct_map_2m_regions_first_set_memory_ro": 10}
    model = {"dmap:direct_map_2m_regions_changed": 4, "dmap:direct_map_2m_regions_first_set_memory_ro": 4}
    why = V.explain_splits(_rows(), truth, model)
    assert "10 2 MiB regions in the guest and 4 in the replay" in why["direct_map_splits_2m"]
    assert "set_memory_ro 10 vs 4" in why["direct_map_splits_2m"]
    # one cause changing other pages than the guest's: no explanation, the row fails
    assert V.explain_splits(_rows(direct_map_pages_changed_vm_reset_perms=False), truth, model) == {}
    # a recording without the probe: nothing to explain with
    assert V.explain_splits(_rows(), {"direct_map_level2_splits": 9}, model) == {}
    # a passing row needs no explanation
    assert V.explain_splits(_rows(direct_map_splits_2m=True), truth, model) == {}


def test_validation_names_the_same_causes_as_the_recording():
    # the validation's pairs (execbench/validation.py) are built from its own copy
    assert V.DMAP_CAUSES == dmap.CAUSES
