"""A recording folder is replaced whole or not at all (record.staging)."""

from __future__ import annotations

import pytest

from execbench.workloads.recorders.qemu import record


def test_staging_replaces_the_folder_on_success(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "old.txt").write_text("old")
    with record.staging(tmp_path, "rec") as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["rec"]          # no temporary left


def test_staging_keeps_the_old_folder_when_the_block_fails(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "old.txt").write_text("old")
    with pytest.raises(KeyError):
        with record.staging(tmp_path, "rec") as tmp:
            (tmp / "half.txt").write_text("half")
            raise KeyError("boom")
    assert (tmp_path / "rec" / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["rec"]
