"""``BPF_PROG_PACK_SIZE = SZ_2M * num_possible_nodes()`` (kernel/bpf/core.c,
v6.1, v6.12, 7.2) with the machine's ``numa_nodes`` (``--numa-nodes``)."""
from __future__ import annotations

import json


from execbench.cli import main
from execbench.models.common.bpf_prog_pack import BpfProgPack, PackOps
from execbench.replay import run

MiB = 1 << 20


def test_two_nodes_make_a_4mib_pack_of_65536_chunks():
    ops = PackOps(*(lambda *a: None,) * 7)
    one, two = BpfProgPack(ops, lambda _: None), BpfProgPack(ops, lambda _: None, numa_nodes=2)
    # 2 MiB / 64 = 32768 chunks; 4 MiB / 64 = 65536
    assert (one.pack_size, one.chunks) == (2 * MiB, 32768)
    assert (two.pack_size, two.chunks) == (4 * MiB, 65536)


def _three_big_programs(tb):
    # proglen 1 MiB: round_up(1 MiB + 8 + 16, 64) = 1 MiB + 64 = 16385 chunks
    for i in range(3):
        tb.add("bpf", "prog_load", f"p{i}", size=MiB)
    return tb.trace()


def test_pack_count_follows_the_nodes(tb):
    t = _three_big_programs(tb)
    # one node: 2 x 16385 = 32770 > 32768 -> one program per pack, 3 packs
    r1 = run(t, "legacy", seed=0)
    assert r1.counters["bpf_prog_pack_new"] == 3
    assert r1.counters["vmalloc_bytes"] == 3 * 2 * MiB
    # two nodes: 3 x 16385 = 49155 <= 65536 -> one 4 MiB pack; alloc_new_pack()
    # sets ro + x over its 1024 pages (v6.1)
    r2 = run(t, "legacy", seed=0, machine={"numa_nodes": 2})
    c = r2.counters
    assert c["bpf_prog_pack_new"] == 1 and c["vmalloc_bytes"] == 4 * MiB
    assert (c["cpa_pages_ro"], c["cpa_pages_x"]) == (1024, 1024)
    # v6.10 makes the same pack with one set_memory_rox
    r3 = run(t, "execmem", seed=0, machine={"numa_nodes": 2})
    assert r3.counters["bpf_prog_pack_new"] == 1 and r3.counters["cpa_pages_rox"] == 1024


def test_cli_flag(tb, tmp_path, capsys):
    path = tmp_path / "t.csv"
    tb.add("bpf", "prog_load", "p", size=100)
    tb.frame().to_csv(path, index=False)
    out = tmp_path / "o.csv"
    assert main(["run", "-d", "legacy", "-w", str(path), "--numa-nodes", "2", "--itlb-cpu", "off",
                 "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counters"]["vmalloc_bytes"] == 4 * MiB
    assert main(["run", "-d", "legacy", "-w", str(path), "--numa-nodes", "0"]) == 2
    err = capsys.readouterr().err
    assert "--numa-nodes" in err and "0 is outside 1..1024" in err and err.count("\n") == 1
