"""The user's files that tests must never change, and the test session's own cache.

A test session runs with `BOOTHKEY_CACHE` and `XDG_CACHE_HOME` pointing into a
temporary directory (tests/conftest.py), so boothkey, in the test process and in
every subprocess that inherits the environment, uses the session's cache unless a
test names a cache itself. Tests that need the real locked .debs copy them from
the user's deb cache, which they only read, with `seed_debs`; `build.py fetch`
then downloads only what is still missing, into the session's cache.

`snapshot` and `changes` back the session's guard: the checkout's out/ and the
user's cache are listed (path, type, size, modification time) before the first
test and compared after the last one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from builder.core.paths import deb_cache_dir
from builder.source.debcache import DebCache
from builder.source.lockfile import read_lock

CHECKOUT = Path(__file__).resolve().parent.parent

# relative path -> (st_mode, st_size, st_mtime_ns); None: the directory does not exist.
Snapshot = dict[str, tuple[int, int, int]] | None


def user_cache_dirs(environ: Mapping[str, str]) -> list[Path]:
    """The caches a user's own boothkey commands use: what `$BOOTHKEY_CACHE` or
    `$XDG_CACHE_HOME` name, and the default ~/.cache/boothkey."""
    found = [Path.home() / ".cache" / "boothkey"]
    if environ.get("XDG_CACHE_HOME"):
        found.append(Path(environ["XDG_CACHE_HOME"]) / "boothkey")
    if environ.get("BOOTHKEY_CACHE"):
        found.append(Path(environ["BOOTHKEY_CACHE"]))
    return list(dict.fromkeys(path.absolute() for path in found))


def snapshot(root: Path) -> Snapshot:
    """Every entry under `root` (symbolic links not followed), or None if `root` is absent.
    A directory counts by its entries, not its times; a file by its size and mtime."""
    if not os.path.lexists(root):
        return None
    entries: dict[str, tuple[int, int, int]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            try:
                stat = os.lstat(path)
            except OSError:  # removed while walking: missing from the listing
                continue
            if name in dirs and not os.path.islink(path):
                entries[os.path.relpath(path, root)] = (stat.st_mode, 0, 0)
            else:
                entries[os.path.relpath(path, root)] = (
                    stat.st_mode,
                    stat.st_size,
                    stat.st_mtime_ns,
                )
    return entries


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs between two snapshots of one directory, one line per entry."""
    if before is None or after is None:
        if before is None and after is None:
            return []
        return ["created" if before is None else "removed"]
    lines = [f"{path}: removed" for path in sorted(before.keys() - after.keys())]
    lines += [f"{path}: added" for path in sorted(after.keys() - before.keys())]
    lines += [
        f"{path}: changed"
        for path in sorted(before.keys() & after.keys())
        if before[path] != after[path]
    ]
    return lines


def seed_debs(lock_path: Path, sources: Iterable[Path], cache: Path) -> int:
    """Copy into `cache` the locked .debs that a `sources` cache holds (the sources are
    only read; `build.py fetch` checks every copy). Returns how many were copied."""
    packages = read_lock(lock_path).packages
    target = DebCache(deb_cache_dir(cache))
    copied = 0
    for source in sources:
        have = DebCache(deb_cache_dir(source))
        for package in packages:
            wanted, found = target.path(package.sha256), have.path(package.sha256)
            if wanted.exists() or not found.is_file() or found.stat().st_size != package.size:
                continue
            wanted.parent.mkdir(parents=True, exist_ok=True)
            partial = wanted.with_name(f".seeding-{wanted.name}")
            shutil.copyfile(found, partial)
            os.replace(partial, wanted)
            copied += 1
    return copied
