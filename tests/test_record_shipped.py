"""Shipped workloads and tables: they load, they match the catalog, they regenerate
byte for byte from the committed tables, and the tables agree with an independent count.
"""

from __future__ import annotations

import gzip
import shutil
import tomllib

import pytest

from execbench.trace import load_trace
from execbench.workloads import catalog
from execbench.workloads.recorders import modules, shipped

DATA = catalog.data_dir()


def test_catalog_lists_the_shipped_workloads():
    names = [w.name for w in catalog.shipped()]
    assert names == sorted(names)
    assert {"boot-cloud", "boot-server", "boot-desktop", "bpf-observability", "cloud-session",
            "kprobe-churn", "ftrace-trampolines", "fleet-day"} <= set(names)
    assert catalog.default().name == "cloud-session"
    with pytest.raises(KeyError, match="known: .*boot-cloud"):
        catalog.find("no-such-workload")


@pytest.mark.parametrize("info", catalog.shipped(), ids=lambda w: w.name)
def test_every_shipped_workload_loads_and_matches_its_sidecar(info):
    tr = load_trace(info.path)                       # full schema + lifecycle validation
    assert len(tr) == info.events
    wl = info.provenance["workload"]
    assert set(tr.df["user"].unique()) == set(wl["users"])
    assert isinstance(wl["synthetic"], bool) and wl["description"]
    assert info.provenance["regenerate"]["command"]
    assert info.provenance["licence"]["note"]


def test_default_workload_size_is_small():
    # "a few hundred to ~2k events": the default must stay quick to replay
    assert 200 <= catalog.default().events <= 2000


def _strip_dates(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("date = "))


def test_workloads_regenerate_byte_for_byte(tmp_path):
    for sub in ("modules", "bpf", "listings"):
        shutil.copytree(DATA / sub, tmp_path / sub)
    counts = shipped.build_workloads(tmp_path)
    for name, n in counts.items():
        assert (tmp_path / f"{name}.csv.gz").read_bytes() == (DATA / f"{name}.csv.gz").read_bytes(), name
        assert _strip_dates((tmp_path / f"{name}.toml").read_text()) == \
            _strip_dates((DATA / f"{name}.toml").read_text()), name
        assert catalog.find(name).events == n


def test_module_table_agrees_with_independent_extraction():
    rows = modules.read_table(DATA / shipped.MODULE_TABLE)
    assert len(rows) == 1121            # docs/data-sources.md §1.1: 6.1.0-56 cloud, 1,121 .ko
    text = sum(int(r["text"]) for r in rows)
    # docs/data-sources.md §1.4 (a separate extractor): 6.1 cloud text 16.9 MB, rodata 10.0 MB,
    # data+kallsyms 11.2 MB (rounded to 0.1 MB)
    assert abs(text - 16.9e6) < 0.05e6
    assert abs(sum(int(r["rodata"]) for r in rows) - 10.0e6) < 0.05e6
    assert abs(sum(int(r["data"]) for r in rows) - 11.2e6) < 0.05e6
    assert [r["module"] for r in rows] == sorted(r["module"] for r in rows)


def test_generic_module_table_matches_independent_total_exactly():
    rows = modules.read_table(DATA / shipped.GENERIC_TABLE)
    # docs/data-sources.md §0: 6.1.0-56 amd64 = 4,023 modules, 68,608,991 MOD_TEXT bytes
    assert len(rows) == 4023
    assert sum(int(r["text"]) for r in rows) == 68_608_991


def test_fleet_day_is_long_and_mixed():
    info = catalog.find("fleet-day")
    assert info.events >= 100_000
    assert set(info.provenance["workload"]["users"]) == {"module", "bpf", "ftrace", "kprobe"}
    tr = load_trace(info.path)
    assert (tr.df["op"] == "unload").sum() > 0          # module churn frees memory too


def test_bpf_table_agrees_with_independent_extraction():
    rows = shipped.read_bpf_table(DATA / shipped.BPF_TABLE)
    # docs/data-sources.md §0/§3.3: libbpf-tools 0.26 = 240 programs in 52 tools;
    # 12,847 own instructions, 21,743 counting appended subprograms.
    assert len(rows) == 240
    assert len({r["tool"] for r in rows}) == 52
    assert sum(int(r["insns"]) for r in rows) == 12847
    assert sum(int(r["insns"]) + int(r["subprog_insns"]) for r in rows) == 21743


def test_tables_have_pinned_provenance():
    doc = tomllib.loads((DATA / "modules" / f"{shipped.KERNEL}.modules.toml").read_text())
    pkg = doc["source"]["packages"][0]
    assert (pkg["name"], pkg["version"], pkg["sha256"]) == \
        (shipped.KERNEL_DEB.package, shipped.KERNEL_DEB.version, shipped.KERNEL_DEB.sha256)
    doc = tomllib.loads((DATA / "bpf" / "libbpf-tools-0.26.0.toml").read_text())
    assert doc["source"]["packages"][0]["sha256"] == shipped.BPF_DEB.sha256


def test_catalog_rejects_a_sidecar_without_trace(tmp_path, monkeypatch):
    (tmp_path / "ghost.toml").write_text('[workload]\nname = "ghost"\nevents = 1\n')
    monkeypatch.setattr(catalog, "data_dir", lambda: tmp_path)
    with pytest.raises(catalog.CatalogError, match="ghost.csv.gz is missing"):
        catalog.shipped()


def test_catalog_rejects_two_defaults(tmp_path, monkeypatch):
    for n in ("a", "b"):
        (tmp_path / f"{n}.toml").write_text(f'[workload]\nname = "{n}"\nevents = 1\ndefault = true\n')
        (tmp_path / f"{n}.csv.gz").write_bytes(gzip.compress(b""))
    monkeypatch.setattr(catalog, "data_dir", lambda: tmp_path)
    with pytest.raises(catalog.CatalogError, match="exactly one default"):
        catalog.default()


def test_fetch_refuses_a_wrong_checksum(tmp_path):
    p = tmp_path / shipped.BPF_DEB.filename
    p.write_bytes(b"not the package")
    with pytest.raises(shipped.ShippedError, match="sha256"):
        shipped.fetch(shipped.BPF_DEB, tmp_path, download=False)
    with pytest.raises(shipped.ShippedError, match="missing"):
        shipped.fetch(shipped.KERNEL_DEB, tmp_path, download=False)
