"""Checks every design's property tests share."""
from __future__ import annotations


def assert_aggregates(pt) -> None:
    """The page table's incremental aggregates equal a full recount."""
    r = pt.recount()
    assert r["present_pages"] == pt.present_pages
    assert r["wx_pages"] == pt.wx_pages
    assert r["wx_by_cause"]          # the per-cause W+X counts sum per page tag
    assert r["text_bytes"] == pt.text_bytes
    assert r["text_ptes_4k"] == pt.text_ptes_4k()
    assert r["text_pmds_2m"] == pt.text_pmds_2m()


def kept_kprobe_pages(d) -> int:
    """kernel/kprobes.c collect_one_slot(): the last page of each insn cache
    is kept ("so there is always a free slot on hand")."""
    kp = d.kprobe
    return len(kp.slots.pages) + (len(kp.opt.pages) if kp.opt is not None else 0)
