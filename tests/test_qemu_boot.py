"""The real recording: boots a Debian kernel under QEMU (minutes, network, root).

Marked ``qemu`` and skipped unless EXECBENCH_QEMU=1, so the default test run never
downloads packages or boots anything.  Run: EXECBENCH_QEMU=1 pytest -m qemu
"""

from __future__ import annotations

import os
import pathlib

import pytest

from execbench import validation
from execbench.trace import load_trace

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(os.environ.get("EXECBENCH_QEMU") != "1",
                       reason="boots QEMU and downloads Debian packages; set EXECBENCH_QEMU=1"),
]


@pytest.mark.parametrize("series", ["6.1", "6.12", "7.2"])
def test_record_and_validate(series, tmp_path):
    from execbench.workloads.recorders.qemu import record

    scratch = pathlib.Path(os.environ.get("EXECBENCH_QEMU_SCRATCH", tmp_path / "scratch"))
    folder = record.record(series, "generic", tmp_path / "out", scratch)
    t = load_trace(folder / f"{folder.name}.csv.gz")
    truth = validation.load_truth(folder)
    assert (t.df.op == "load").sum() == truth["module_load_events"] > 100
    v = validation.validate(folder)
    assert v.modules.exact.mean() >= 0.95
    assert not v.rows.cause.str.startswith("UNCLASSIFIED").any()


@pytest.mark.parametrize("series,package", [("6.1", "linux-image-6.1.0-56-arm64-unsigned"),
                                            ("6.12", "linux-image-6.12.117+deb13-arm64-unsigned"),
                                            ("7.2", "linux-image-7.2.13+deb14-arm64")])
def test_record_arm64(series, package, tmp_path):
    from execbench.workloads.recorders.qemu import record_arm64, sections

    scratch = pathlib.Path(os.environ.get("EXECBENCH_QEMU_SCRATCH", tmp_path / "scratch"))
    folder = record_arm64.record(series, tmp_path / "out", scratch, package=package)
    t = load_trace(folder / f"{folder.name}.csv.gz")
    truth = validation.load_truth(folder)
    assert (t.df.op == "load").sum() == truth["module_load_events"] > 100
    c = sections.compare(record_arm64.read_sections(folder),
                         sections.parse_sysfs((folder / "guest" / "sections.txt").read_text()),
                         one_area=series == "6.1")
    assert c.exact.mean() >= 0.95
    tr, tt, _ = record_arm64.rebuild(folder, series)
    assert tt.to_csv(index=False, lineterminator="\n").encode() == (folder / "truth.csv").read_bytes()
