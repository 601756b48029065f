"""Atomic outputs: readable results, nothing left under the final name on failure."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from builder.core.fsutil import atomic_output, atomic_path, lstat_or_none, write_atomic


def test_atomic_path_result_is_world_readable(tmp_path: Path) -> None:
    target = tmp_path / "image.img"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"disk")
    assert target.read_bytes() == b"disk"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert list(tmp_path.iterdir()) == [target]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as stream:
        stream.write(b"half of the new")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_lstat_or_none_never_follows_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("missing-target")
    info = lstat_or_none(tmp_path / "link")
    assert info is not None and stat.S_ISLNK(info.st_mode)
    assert lstat_or_none(tmp_path / "missing-target") is None
