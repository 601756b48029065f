"""Normalising a root filesystem tree so it carries no trace of when, where or by whom it was built.

What `normalize_tree` does, in this order (paths are inside the tree):

- empties /var/log, /var/cache and /var/lib/apt/lists of files (directories stay,
  because packages own them): logs and caches describe the build, not the image,
  and the booth never runs apt or dpkg;
- empties /tmp and /var/tmp completely;
- removes host identity and secrets: /etc/resolv.conf, a /var/lib/dbus/machine-id
  that is a file, random seeds (/var/lib/systemd/random-seed,
  /var/lib/urandom/random-seed, /var/lib/systemd/credential.secret), SSH host
  keys made at install time (/etc/ssh/ssh_host_*: every key would share them);
- makes /etc/machine-id empty if it exists (systemd then generates one per boot
  in RAM, which is what a read-only root wants) and leaves it absent otherwise;
- writes /etc/hostname ("booth") and a fixed /etc/hosts, when /etc exists;
- removes backup files: names ending in "-", "-old" or ".dpkg-old" below /etc,
  and names ending in "-old" below /var/lib (dpkg's status-old and friends);
- removes __pycache__ directories and *.pyc/*.pyo files everywhere (bytecode
  depends on the hash seed and on the build path);
- refuses (BuildError) a tree in which one of the `forbidden` strings (build
  and scratch paths) still appears in a file or symlink;
- clamps every mtime (and atime), symlinks included, to SOURCE_DATE_EPOCH.

Paths in `keep` (written on purpose by overlays or file rules) are never removed
or rewritten: an overlay may ship its own /etc/hostname or /etc/hosts. Symlinks
in the tree are never followed: a link /var/log -> /somewhere is left alone, so
normalising can never reach outside the tree.
"""

from __future__ import annotations

import mmap
import os
import shutil
import stat
from collections.abc import Collection, Sequence
from pathlib import Path

from builder.core.errors import BuildError
from builder.core.fsutil import lstat_or_none

HOSTNAME = "booth"
HOSTS = (
    "127.0.0.1\tlocalhost\n"
    f"127.0.1.1\t{HOSTNAME}\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
_EMPTY_FILES_BELOW = ("var/log", "var/cache", "var/lib/apt/lists")
_EMPTY_COMPLETELY = ("tmp", "var/tmp")
_REMOVE_FILES = (
    "etc/resolv.conf",
    "var/lib/dbus/machine-id",
    "var/lib/systemd/random-seed",
    "var/lib/urandom/random-seed",
    "var/lib/systemd/credential.secret",
)
_BACKUP_SUFFIXES = {"etc": ("-", "-old", ".dpkg-old"), "var/lib": ("-old",)}
_MAX_SHOWN = 20


def normalize_tree(
    root: Path,
    source_date_epoch: int,
    *,
    keep: Collection[str] = (),
    forbidden: Sequence[str] = (),
) -> list[str]:
    """Normalise the tree at `root` in place; return the sorted paths removed or rewritten.

    `keep` holds tree paths ("etc/hostname", no leading slash) that stay as they are.
    """
    changed: list[str] = []
    kept = frozenset(keep)

    def remove(rel: str) -> None:
        if rel in kept:
            return
        full = root / rel
        info = lstat_or_none(full)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(full)
        else:
            full.unlink()
        changed.append(rel)

    for top in _EMPTY_FILES_BELOW:
        for rel in _files_below(root, top):
            remove(rel)
    for top in _EMPTY_COMPLETELY:
        if _real_dir(root, top):
            for name in sorted(os.listdir(root / top)):
                remove(f"{top}/{name}")
    for rel in _REMOVE_FILES:
        info = lstat_or_none(root / rel)
        if (
            info is not None
            and _real_dir(root, os.path.dirname(rel))
            and stat.S_ISREG(info.st_mode)
        ):
            remove(rel)
    for top, suffixes in _BACKUP_SUFFIXES.items():
        for rel in _files_below(root, top):
            if rel.endswith(suffixes):
                remove(rel)
    for rel in _bytecode(root):
        remove(rel)
    if _real_dir(root, "etc/ssh"):
        for name in sorted(os.listdir(root / "etc/ssh")):
            if name.startswith("ssh_host_"):
                remove(f"etc/ssh/{name}")

    if _real_dir(root, "etc"):
        machine_id = lstat_or_none(root / "etc/machine-id")
        if (
            "etc/machine-id" not in kept
            and machine_id is not None
            and stat.S_ISREG(machine_id.st_mode)
            and machine_id.st_size
        ):
            _rewrite(root / "etc/machine-id", b"")
            changed.append("etc/machine-id")
        for rel, content in (("etc/hostname", f"{HOSTNAME}\n"), ("etc/hosts", HOSTS)):
            if rel not in kept and _rewrite(root / rel, content.encode()):
                changed.append(rel)

    if forbidden:
        check_no_build_paths(root, forbidden)
    clamp_mtimes(root, source_date_epoch)
    return sorted(set(changed))


def clamp_mtimes(root: Path, source_date_epoch: int) -> None:
    """Set every atime and mtime below `root` (and its own) to min(mtime, epoch), links too."""
    limit = source_date_epoch * 1_000_000_000
    # Children first: changing an entry's time does not touch its parent's,
    # but creating or removing entries would, so the directory comes last.
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in (*filenames, *dirnames):
            _clamp(os.path.join(dirpath, name), limit)
        _clamp(dirpath, limit)


def check_no_build_paths(root: Path, forbidden: Sequence[str]) -> None:
    """Raise `BuildError` if any file content or symlink target below `root` holds one of
    the `forbidden` strings (scratch and build directories)."""
    needles = [text.encode() for text in forbidden if text]
    offenders: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Symlinks to directories come in `dirnames` (os.walk does not enter them).
        for name in (*filenames, *dirnames):
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                found = any(needle in os.fsencode(os.readlink(full)) for needle in needles)
            elif stat.S_ISREG(info.st_mode):
                found = info.st_size > 0 and _file_contains(full, needles)
            else:
                found = False
            if found:
                offenders.append(os.path.relpath(full, root))
    if offenders:
        shown = ", ".join(sorted(offenders)[:_MAX_SHOWN])
        more = f" and {len(offenders) - _MAX_SHOWN} more" if len(offenders) > _MAX_SHOWN else ""
        raise BuildError(f"the root filesystem still names the build directory in: {shown}{more}")


def _file_contains(path: str, needles: Sequence[bytes]) -> bool:
    # mmap: a large file is searched without reading it all into memory.
    with open(path, "rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return any(data.find(needle) != -1 for needle in needles)


def _clamp(path: str, limit: int) -> None:
    info = os.lstat(path)
    when = min(info.st_mtime_ns, limit)
    if info.st_mtime_ns != when or info.st_atime_ns != when:
        os.utime(path, ns=(when, when), follow_symlinks=False)


def _real_dir(root: Path, rel: str) -> bool:
    """True if `rel` is a directory reached without passing through any symlink."""
    current = root
    for part in (p for p in rel.split("/") if p):
        current = current / part
        info = lstat_or_none(current)
        if info is None or not stat.S_ISDIR(info.st_mode):
            return False
    return True


def _files_below(root: Path, top: str) -> list[str]:
    """Every non-directory below `top` (symlinked directories are not entered)."""
    if not _real_dir(root, top):
        return []
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root / top):
        relative_dir = os.path.relpath(dirpath, root)
        found.extend(f"{relative_dir}/{name}" for name in filenames)
        # os.walk lists symlinks to directories as directories without entering them.
        found.extend(
            f"{relative_dir}/{name}"
            for name in dirnames
            if os.path.islink(os.path.join(dirpath, name))
        )
    return sorted(found)


def _bytecode(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        relative_dir = os.path.relpath(dirpath, root)
        prefix = "" if relative_dir == "." else f"{relative_dir}/"
        for name in list(dirnames):
            if name == "__pycache__" and not os.path.islink(os.path.join(dirpath, name)):
                found.append(prefix + name)
                dirnames.remove(name)
        found.extend(prefix + name for name in filenames if name.endswith((".pyc", ".pyo")))
    return sorted(found)


def _rewrite(path: Path, content: bytes) -> bool:
    """Make `path` a regular file 0644 root:root holding `content`; False if it already was."""
    info = lstat_or_none(path)
    if (
        info is not None
        and stat.S_ISREG(info.st_mode)
        and stat.S_IMODE(info.st_mode) == 0o644
        and (info.st_uid, info.st_gid) == (0, 0)
        and path.read_bytes() == content
    ):
        return False
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise BuildError(f"{path.name}: expected a file in /etc, found a directory")
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as stream:
        stream.write(content)
    os.chmod(path, 0o644)
    os.chown(path, 0, 0)
    return True
