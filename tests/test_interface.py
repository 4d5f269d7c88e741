"""Interface metrics per user operation, worked out from v6.1's callers."""
from __future__ import annotations

import json

from execbench.cli import main
from execbench.replay import run


def test_legacy_api_calls_per_operation(tb):
    # A module with init: load = module_alloc(core) + module_alloc(init)
    #   + module_enable_ro: 2 set_vm_flush_reset_perms + 4 set_memory_ro
    #   + module_enable_nx: 5 set_memory_nx + module_enable_x: 2 set_memory_x = 15
    tb.module("A", text=5000, rodata=100, data=100, init_text=100)
    # Without init: one module_alloc; set_vm_flush_reset_perms(NULL) is still
    # called by module_enable_ro -> 1 + 2 + 4 + 5 + 2 = 14
    tb.module("B", text=100, data=100)
    # init_done: module_enable_ro(mod, true) = 2 + 5, then module_memfree(init) = 8 for A
    tb.add("module", "init_done", "A")
    # first program: bpf_prog_pack's new pack = module_alloc + set_vm_flush_reset_perms
    # + set_memory_ro + set_memory_x, then bpf_arch_text_copy (text_poke_copy) = 5;
    # the next two only text_poke_copy = 1 each
    for i in range(3):
        tb.add("bpf", "prog_load", f"p{i}", size=100)
    r = run(tb.trace(), "legacy")
    assert r.api_per_op[("module", "load")] == (2, 15 + 14)
    assert r.api_per_op[("module", "init_done")] == (1, 8)
    assert r.api_per_op[("bpf", "prog_load")] == (3, 5 + 1 + 1)
    assert r.entry_points["bpf"] == ["module_alloc", "set_memory_ro", "set_memory_x",
                                     "set_vm_flush_reset_perms", "text_poke_copy"]


def test_interface_command_json(capsys):
    assert main(["interface", "--designs", "legacy", "jitalloc", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    d = out["designs"]
    # jitalloc's BPF user needs exactly its three entry points
    assert d["jitalloc"]["entry_points"]["bpf"] == ["jit_alloc", "jit_free", "jit_update"]
    assert d["legacy"]["per_op"]["module/load"]["mean"] > 0
