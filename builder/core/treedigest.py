"""The listing of a directory tree, and its digest.

One entry per file, directory, symlink or special file below `root` (the root
itself is the entry "."), sorted by path bytes. This is what a step's content
digest is computed over, and what an observer's file list shows, so two trees
with the same listing hold the same bytes, modes, owners and links.

Entry keys (always present unless stated):
  path    relative POSIX path ("." for the root, "usr/bin/env" below it)
  type    "dir" | "file" | "symlink" | "char" | "block" | "fifo" | "socket"
  mode    permission bits including setuid/setgid/sticky (an int, e.g. 0o4755)
  uid, gid
  size    files only: length in bytes
  sha256  files only: hex digest of the content
  target  symlinks only: the link text, never followed
  device  char/block only: [major, minor]
  xattrs  only when the entry has extended attributes: {name: value as hex}, every
          attribute the process can list (user.*, security.*, system.* ACLs, and
          trusted.* when run as root), read without following symlinks
  mtime   only with `mtimes=True`: seconds since the epoch (int)

Hard links are listed as separate files. File names (and xattr names) that are
not UTF-8 are shown with backslash escapes. An attribute that is listed but
cannot be read is an error (OSError), not skipped: the digest must cover all of it.

Format change: listings made before xattrs were covered had no "xattrs" key, so a
tree carrying extended attributes now has another digest than it had then (trees
without any are unchanged). Content digests in older manifests were computed the
old way; the step cache's RECORD_FORMAT was bumped so its old entries are rebuilt.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from builder.core.canonical import sha256_file, sha256_json

_TYPES = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


def tree_listing(root: Path, *, mtimes: bool = False) -> list[dict[str, Any]]:
    """Every entry below `root` (which must be a directory), sorted by path bytes."""
    root_stat = os.lstat(root)
    if not stat.S_ISDIR(root_stat.st_mode):
        raise ValueError(f"{root}: not a directory")
    entries = [_entry(root, b".", root_stat, mtimes)]
    _walk(os.fsencode(root), b"", entries, mtimes)
    return entries


def tree_digest(root: Path, *, mtimes: bool = False) -> str:
    """sha256 over the canonical JSON of `tree_listing(root)`, as "sha256:<hex>"."""
    return "sha256:" + sha256_json(tree_listing(root, mtimes=mtimes))


def _walk(base: bytes, relative: bytes, entries: list[dict[str, Any]], mtimes: bool) -> None:
    directory = os.path.join(base, relative) if relative else base
    for name in sorted(os.listdir(directory)):
        rel = os.path.join(relative, name) if relative else name
        full = os.path.join(base, rel)
        info = os.lstat(full)
        entries.append(_entry(Path(os.fsdecode(full)), rel, info, mtimes))
        if stat.S_ISDIR(info.st_mode):
            _walk(base, rel, entries, mtimes)


def _entry(full: Path, rel: bytes, info: os.stat_result, mtimes: bool) -> dict[str, Any]:
    kind = next(name for test, name in _TYPES if test(info.st_mode))
    entry: dict[str, Any] = {
        "path": _show(rel),
        "type": kind,
        "mode": stat.S_IMODE(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
    }
    if kind == "file":
        entry["size"] = info.st_size
        entry["sha256"] = sha256_file(full)
    elif kind == "symlink":
        entry["target"] = _show(os.readlink(os.fsencode(full)))
    elif kind in ("char", "block"):
        entry["device"] = [os.major(info.st_rdev), os.minor(info.st_rdev)]
    xattrs = _xattrs(os.fsencode(full))
    if xattrs:
        entry["xattrs"] = xattrs
    if mtimes:
        entry["mtime"] = int(info.st_mtime)
    return entry


def _xattrs(full: bytes) -> dict[str, str]:
    try:
        names = os.listxattr(full, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:  # a filesystem without xattrs has none to hide
            return {}
        raise
    values: dict[str, str] = {}
    for name in sorted(names, key=os.fsencode):
        try:
            value = os.getxattr(full, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENODATA:  # removed since it was listed
                continue
            raise
        values[_show(os.fsencode(name))] = value.hex()
    return values


def _show(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")
