"""``module_memfree(NULL)`` / ``execmem_free(NULL)`` counted as the kernel
makes them (issue 11 item 10), for a module without init sections.

kernel/module/main.c:

* v6.1: ``do_init_module()`` queues ``freeinit->module_init =
  mod->init_layout.base`` -- NULL without an init area -- and
  ``do_free_init()`` calls ``module_memfree()`` on it whatever it is; it
  then sets ``init_layout.base = NULL``, so ``free_module()``'s
  ``module_memfree(mod->init_layout.base)`` is NULL too, before the core.
* v6.4+ (ac3b43283923): ``do_free_init()`` makes three calls --
  ``init_text``, ``init_data``, ``init_rodata`` -- NULL for an absent type
  (v6.4 ``module_memfree``; Song Liu's v1 ``module_memfree_type``; Kent's
  reading ``jit_free`` for text; v6.10+ ``execmem_free``).
  ``free_mod_mem()`` frees only ``if (mod_mem->size)``: no NULL at unload.

Each NULL call does nothing (``vfree(NULL)``; ``jit_free`` begins ``if
(!buf) return;``) but is a call into the API, like the already counted
``set_vm_flush_reset_perms(NULL)``.
"""
from __future__ import annotations

import pytest

from execbench.replay import run


def _no_init(tb, unload=True):
    # text 100 (1 page), rodata 50 (1 page), data 3000 (1 page); no init sections
    tb.module("B", text=100, rodata=50, data=3000)
    tb.add("module", "init_done", "B")
    if unload:
        tb.add("module", "unload", "B")
    return tb.trace()


@pytest.mark.parametrize("design,nulls,by_entry", [
    # v6.1: do_free_init(NULL) + free_module()'s init (NULL) = 2
    ("legacy", 2, {"module_memfree_null": 2}),
    # v6.4+: three do_free_init() calls, all NULL; none at unload
    ("module_alloc_type", 3, {"module_memfree_type_null": 3}),
    ("jitalloc", 3, {"jit_free_null": 1, "module_memfree_null": 2}),
    ("execmem", 3, {"execmem_free_null": 3}),
    ("execmem_rox", 3, {"execmem_free_null": 3}),
])
def test_module_without_init(tb, design, nulls, by_entry):
    r = run(_no_init(tb), design, seed=0)
    c = r.counters
    assert c["free_null_calls"] == nulls
    for k, v in by_entry.items():
        assert c[k] == v, k
    # a NULL free frees nothing: only the three real areas (legacy: one core
    # area) were vfree'd and nothing is left
    assert r.final["vmap_areas"] == 0


def test_legacy_null_calls_are_api_calls(tb):
    # init_done: module_enable_ro(mod, true) = 2 set_vm_flush_reset_perms (core,
    # NULL init) + 5 set_memory_ro, then module_memfree(NULL) = 8 calls; unload:
    # module_memfree(NULL) + module_memfree(core) = 2 calls
    tb.module("B", text=100, rodata=50, data=3000)
    r0 = run(tb.trace(), "legacy", seed=0)
    tb.add("module", "init_done", "B")
    r1 = run(tb.trace(), "legacy", seed=0)
    assert r1.counters["api_calls"] - r0.counters["api_calls"] == 2 + 5 + 1
    tb.add("module", "unload", "B")
    r2 = run(tb.trace(), "legacy", seed=0)
    assert r2.counters["api_calls"] - r1.counters["api_calls"] == 2


def test_v64_init_text_only(tb):
    # init_text present, init_data and init_rodata absent: 2 NULL calls in
    # do_free_init(); v6.1 has an init area (init text) -> only free_module()'s
    tb.module("A", text=5000, data=100, init_text=300)
    tb.add("module", "init_done", "A")
    tb.add("module", "unload", "A")
    t = tb.trace()
    assert run(t, "execmem", seed=0).counters["free_null_calls"] == 2
    assert run(t, "legacy", seed=0).counters["free_null_calls"] == 1
