"""``legacy`` with ``bpf_prog_pack_huge=true``: each 2 MiB bpf_prog_pack is
one PMD leaf (v5.18-rc1..rc3: fac54e2bfb5b made huge vmalloc opt-out on x86,
559089e0a93d made it opt-in again; kernel/bpf/core.c ``alloc_new_pack``).

Hand-worked expectations: one program of 100 B JITed takes
round_up(100 + 8 + 16, 64) = 128 B = 2 chunks of one new pack
(kernel/bpf/core.c ``bpf_jit_binary_pack_alloc``).  The pack is 2 MiB =
512 pages.  With 4 KiB leaves the program's 100 B of text lie in 1 page ->
text_ptes_4k = 1, text_pmds_2m = 0.  With one 2 MiB leaf -> text_ptes_4k = 0,
text_pmds_2m = 1.  set_memory_ro/x cover the whole 512-page block, so
cpa.py never splits the PMD (vmalloc_pmd_splits = 0).
"""
from __future__ import annotations

from execbench.kernel import Kernel, KernelConfig
from execbench import registry
from execbench.trace import Event


def _load_one(huge: bool):
    k = Kernel(KernelConfig(seed=0, kaslr=False, itlb_cpu="off"))
    d = registry.get("legacy")(k, bpf_prog_pack_huge=huge)
    k.user, k.obj = "bpf", "p0"
    ev = Event(seq=0, t_ns=0, cpu=0, user="bpf", op="load", obj="p0", size=100)
    d.bpf.prog_load(ev)
    return k


def test_pack_is_one_pmd_leaf_when_huge():
    k = _load_one(True)
    assert (k.pt.n_text_ptes_4k, k.pt.n_text_pmds_2m) == (0, 1)
    assert k.counters["vmalloc_huge"] == 1
    assert k.counters["vmalloc_pmd_splits"] == 0


def test_pack_is_4k_leaves_by_default():
    k = _load_one(False)
    assert (k.pt.n_text_ptes_4k, k.pt.n_text_pmds_2m) == (1, 0)
    assert k.counters["vmalloc_huge"] == 0
