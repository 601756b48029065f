"""Normalising a root filesystem tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from builder.build.steps.normalize import HOSTS, check_no_build_paths, clamp_mtimes, normalize_tree
from builder.core.errors import BuildError

EPOCH = 1700000000
OLD = 1500000000
NEW = 1800000000


def write(path: Path, data: str = "x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A root filesystem with every kind of build trace normalisation removes."""
    root = tmp_path / "tree"
    for rel, text in {
        "etc/os-release": "ID=debian\n",
        "etc/hostname": "buildhost\n",
        "etc/hosts": "127.0.0.1 buildhost\n",
        "etc/resolv.conf": "nameserver 10.0.0.1\n",
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
        "etc/passwd-": "old\n",
        "etc/shadow-": "old\n",
        "etc/default/thing.dpkg-old": "old\n",
        "var/lib/dpkg/status": "Package: a\n",
        "var/lib/dpkg/status-old": "old\n",
        "var/lib/dbus/machine-id": "0123\n",
        "var/lib/systemd/random-seed": "seed",
        "var/lib/apt/lists/deb.example.org_Packages": "P",
        "var/log/dpkg.log": "log\n",
        "var/log/apt/history.log": "log\n",
        "var/cache/ldconfig/aux-cache": "c",
        "var/cache/debconf/templates.dat": "t",
        "tmp/leftover/file": "t",
        "var/tmp/x": "t",
        "usr/lib/python3/dist-packages/mod.py": "x = 1\n",
        "usr/lib/python3/dist-packages/__pycache__/mod.cpython-311.pyc": "bytecode",
        "usr/lib/python3/dist-packages/old.pyc": "bytecode",
        "usr/share/doc/keep-": "a file that is not in /etc\n",
    }.items():
        write(root / rel, text)
    (root / "var/log/journal").mkdir()
    return root


def test_normalize_removes_build_traces_and_keeps_the_rest(tree: Path) -> None:
    changed = normalize_tree(tree, EPOCH)

    gone = [
        "etc/resolv.conf",
        "etc/passwd-",
        "etc/shadow-",
        "etc/default/thing.dpkg-old",
        "var/lib/dpkg/status-old",
        "var/lib/dbus/machine-id",
        "var/lib/systemd/random-seed",
        "var/lib/apt/lists/deb.example.org_Packages",
        "var/log/dpkg.log",
        "var/log/apt/history.log",
        "var/cache/ldconfig/aux-cache",
        "var/cache/debconf/templates.dat",
        "tmp/leftover",
        "var/tmp/x",
        "usr/lib/python3/dist-packages/__pycache__",
        "usr/lib/python3/dist-packages/old.pyc",
    ]
    for rel in gone:
        assert not os.path.lexists(tree / rel), rel
        assert rel in changed
    for rel in (
        "etc/os-release",
        "etc/passwd",
        "var/lib/dpkg/status",
        "usr/lib/python3/dist-packages/mod.py",
        "usr/share/doc/keep-",
    ):
        assert (tree / rel).is_file(), rel
    # Directories packages own stay, empty.
    for rel in ("var/log/apt", "var/log/journal", "var/cache/ldconfig", "tmp", "var/tmp"):
        assert (tree / rel).is_dir(), rel
    assert (tree / "etc/machine-id").read_bytes() == b""
    assert (tree / "etc/hostname").read_text() == "booth\n"
    assert (tree / "etc/hosts").read_text() == HOSTS
    assert stat.S_IMODE(os.stat(tree / "etc/hostname").st_mode) == 0o644
    assert changed == sorted(changed)


def test_normalize_is_idempotent(tree: Path) -> None:
    normalize_tree(tree, EPOCH)
    assert normalize_tree(tree, EPOCH) == []


def test_kept_paths_survive(tree: Path) -> None:
    changed = normalize_tree(
        tree, EPOCH, keep={"etc/hostname", "etc/hosts", "etc/resolv.conf", "var/log/dpkg.log"}
    )
    assert (tree / "etc/hostname").read_text() == "buildhost\n"
    assert (tree / "etc/hosts").read_text() == "127.0.0.1 buildhost\n"
    assert (tree / "etc/resolv.conf").exists()
    assert (tree / "var/log/dpkg.log").exists()
    assert "etc/hostname" not in changed


def test_absent_machine_id_stays_absent(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    normalize_tree(root, EPOCH)
    assert not (root / "etc/machine-id").exists()
    assert (root / "etc/hostname").read_text() == "booth\n"


def test_tree_without_etc_gets_no_etc(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write(root / "usr/bin/busybox")
    assert normalize_tree(root, EPOCH) == []
    assert not (root / "etc").exists()


def test_symlinks_are_never_followed_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "host-var-log"
    write(outside / "syslog", "host log\n")
    write(outside / "sub" / "x.pyc", "host bytecode")
    host_tmp = tmp_path / "host-tmp"
    write(host_tmp / "file")
    root = tmp_path / "tree"
    (root / "var").mkdir(parents=True)
    (root / "usr").mkdir()
    os.symlink(outside, root / "var/log")
    os.symlink(host_tmp, root / "tmp")
    os.symlink(outside, root / "usr/lib")
    os.symlink(tmp_path / "host-etc", root / "etc")

    normalize_tree(root, EPOCH)

    assert (outside / "syslog").read_text() == "host log\n"
    assert (outside / "sub" / "x.pyc").exists()
    assert (host_tmp / "file").exists()
    assert not (tmp_path / "host-etc").exists()
    assert os.readlink(root / "var/log") == str(outside)


def test_ssh_host_keys_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write(root / "etc/ssh/ssh_host_ed25519_key", "secret")
    write(root / "etc/ssh/ssh_host_ed25519_key.pub", "public")
    write(root / "etc/ssh/sshd_config", "config")
    normalize_tree(root, EPOCH)
    assert sorted(os.listdir(root / "etc/ssh")) == ["sshd_config"]


def test_clamp_mtimes_including_symlinks_and_directories(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    old = write(root / "usr/old")
    new = write(root / "usr/new")
    os.symlink("new", root / "usr/link")
    os.utime(old, (OLD, OLD))
    os.utime(new, (NEW, NEW))
    os.utime(root / "usr/link", (NEW, NEW), follow_symlinks=False)

    clamp_mtimes(root, EPOCH)

    assert os.lstat(old).st_mtime == OLD
    assert os.lstat(new).st_mtime == EPOCH
    assert os.lstat(root / "usr/link").st_mtime == EPOCH
    assert os.lstat(root / "usr").st_mtime == EPOCH
    assert os.lstat(root).st_mtime == EPOCH
    assert os.lstat(new).st_atime == EPOCH


def test_build_paths_left_in_files_or_links_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write(root / "etc/clean", "nothing here\n")
    check_no_build_paths(root, ["/tmp/boothkey-build-abc"])

    write(root / "etc/apt/sources.list", "deb file:///tmp/boothkey-build-abc/repo ./\n")
    os.symlink("/tmp/boothkey-build-abc/x", root / "etc/link")
    os.symlink(root, root / "etc/dirlink")  # a link to a directory that names the build
    with pytest.raises(BuildError) as caught:
        check_no_build_paths(root, [str(root), "/tmp/boothkey-build-abc"])
    assert "etc/apt/sources.list, etc/dirlink, etc/link" in caught.value.message

    with pytest.raises(BuildError):
        normalize_tree(root, EPOCH, forbidden=["/tmp/boothkey-build-abc"])
