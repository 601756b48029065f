"""The listing digest of a tree."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.core.treedigest import tree_digest, tree_listing


def make(root: Path) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello\n")
    (root / "b" / "run").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "b" / "run", 0o4755)
    os.symlink("../a.txt", root / "b" / "link")
    os.mkfifo(root / "fifo")
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chown(root / "a.txt", 1000, 100)
    os.chmod(root, 0o755)
    return root


def test_listing_shape_and_order(tmp_path: Path) -> None:
    root = make(tmp_path / "t")

    listing = tree_listing(root)

    assert [e["path"] for e in listing] == [".", "a.txt", "b", "b/link", "b/run", "fifo", "null"]
    by_path = {e["path"]: e for e in listing}
    assert by_path["a.txt"] == {
        "path": "a.txt",
        "type": "file",
        "mode": 0o644,
        "uid": 1000,
        "gid": 100,
        "size": 6,
        "sha256": hashlib.sha256(b"hello\n").hexdigest(),
    }
    assert by_path["b/run"]["mode"] == 0o4755
    assert by_path["b/link"]["type"] == "symlink"
    assert by_path["b/link"]["target"] == "../a.txt"
    assert by_path["null"]["type"] == "char"
    assert by_path["null"]["device"] == [1, 3]
    assert by_path["fifo"]["type"] == "fifo"
    assert by_path["."]["type"] == "dir"
    assert "mtime" not in by_path["a.txt"]


def test_same_content_elsewhere_same_digest_and_times_ignored(tmp_path: Path) -> None:
    one = make(tmp_path / "one")
    two = make(tmp_path / "elsewhere" / "two")
    os.utime(two / "a.txt", (0, 0))
    assert tree_digest(one) == tree_digest(two)
    assert tree_digest(one).startswith("sha256:")
    assert tree_digest(one, mtimes=True) != tree_digest(two, mtimes=True)


def _new_link(root: Path, target: str) -> Path:
    path = root / "new-link"
    os.symlink(target, path)
    return path


@pytest.mark.parametrize(
    "change",
    [
        lambda r: (r / "a.txt").write_bytes(b"hellO\n"),
        lambda r: os.chmod(r / "a.txt", 0o600),
        lambda r: os.chown(r / "a.txt", 0, 0),
        lambda r: os.replace(_new_link(r, "../A.txt"), r / "b" / "link"),
        lambda r: (r / "b" / "new").mkdir(),
        lambda r: os.rename(r / "a.txt", r / "c.txt"),
    ],
    ids=["content", "mode", "owner", "link-target", "new-dir", "rename"],
)
def test_every_kind_of_change_changes_the_digest(
    tmp_path: Path, change: Callable[[Path], object]
) -> None:
    root = make(tmp_path / "t")
    before = tree_digest(root)
    change(root)
    assert tree_digest(root) != before


def test_non_utf8_names_and_no_following_links(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", root / "dirlink")
    with open(os.path.join(os.fsencode(root), b"caf\xe9"), "wb") as stream:
        stream.write(b"x")

    paths = [e["path"] for e in tree_listing(root)]

    assert paths == [".", "caf\\xe9", "dirlink"]


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        tree_listing(tmp_path / "f")


def _set_xattr(path: Path, name: str, value: bytes) -> None:
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EPERM):
            pytest.skip(f"cannot set {name} on {path}: {exc}")
        raise


def test_xattrs_are_listed_sorted_as_hex(tmp_path: Path) -> None:
    root = make(tmp_path / "t")
    _set_xattr(root / "a.txt", "user.zeta", b"\x00\xff")
    _set_xattr(root / "a.txt", "user.alpha", b"x")

    by_path = {e["path"]: e for e in tree_listing(root)}

    assert list(by_path["a.txt"]["xattrs"].items()) == [("user.alpha", "78"), ("user.zeta", "00ff")]
    assert "xattrs" not in by_path["b/run"]


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("a.txt", "user.boothkey", b""),
        (".", "user.boothkey", b"on the root"),
        ("b/run", "security.boothkey", b"label"),
        ("b/link", "trusted.boothkey", b"on the link itself"),
        ("null", "trusted.boothkey", b"on a device node"),
    ],
    ids=["empty-user-value", "root", "security", "trusted-on-symlink", "device"],
)
def test_an_added_xattr_changes_the_digest(
    tmp_path: Path, path: str, name: str, value: bytes
) -> None:
    root = make(tmp_path / "t")
    before = tree_digest(root)
    _set_xattr(root / path, name, value)
    assert tree_digest(root) != before


def test_a_changed_xattr_value_changes_the_digest(tmp_path: Path) -> None:
    root = make(tmp_path / "t")
    _set_xattr(root / "a.txt", "user.boothkey", b"one")
    before = tree_digest(root)
    _set_xattr(root / "a.txt", "user.boothkey", b"two")
    assert tree_digest(root) != before
