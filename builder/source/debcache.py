"""A content-addressed store of .deb files: `<root>/sha256/<aa>/<hex>.deb`.

A file is only ever put under its final name after its size and sha256 were
checked (`store`), and it is checked again before use (`verified_path`), so a
killed fetch or a corrupted disk never makes a build use wrong bytes. The
second check is remembered in memory for the life of the process, keyed by the
file's identity and times, so one build does not hash the same file twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.core.canonical import sha256_file
from builder.core.errors import FetchError, InputError
from builder.source.lockfile import LockedPackage

# A temp file not written to for this long belongs to a fetch that was killed: a live
# download writes every few seconds or times out.
STALE_TEMP_SECONDS = 3600.0
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# (device, inode, size, mtime_ns, ctime_ns) of files whose digest was checked in this
# process, with that digest. ctime cannot be set back by a user, so an in-place
# rewrite always changes the key.
_FileKey = tuple[int, int, int, int, int]
_verified: dict[_FileKey, str] = {}
_verified_lock = threading.Lock()


@dataclass(frozen=True)
class CacheCheck:
    """Outcome of checking one cache entry: `ok`, else `problem` says why not."""

    path: Path
    ok: bool
    problem: str = ""


def _file_key(stat: os.stat_result) -> _FileKey:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _remember(path: Path, sha256: str) -> None:
    with contextlib.suppress(OSError), _verified_lock:
        _verified[_file_key(path.stat())] = sha256


def check_file(path: Path, size: int, sha256: str) -> CacheCheck:
    """Check that `path` has exactly `size` bytes with digest `sha256`.

    Never raises for a missing or unreadable file: that is a failed check.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return CacheCheck(path, False, "missing")
    except OSError as exc:
        return CacheCheck(path, False, f"unreadable: {exc.strerror}")
    if stat.st_size != size:
        return CacheCheck(path, False, f"expected size {size}, got {stat.st_size}")
    key = _file_key(stat)
    with _verified_lock:
        known = _verified.get(key)
    if known is None:
        try:
            known = sha256_file(path)
        except (OSError, ValueError) as exc:
            return CacheCheck(path, False, f"unreadable: {exc}")
        with _verified_lock:
            _verified[key] = known
    if known != sha256:
        return CacheCheck(path, False, f"expected sha256 {sha256}, got {known}")
    return CacheCheck(path, True)


class DebCache:
    """The .deb store under `root`. Safe to use from several threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the .deb with this sha256 lives (whether or not it is there)."""
        if not _SHA256_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / f"{sha256}.deb"

    def check(self, pkg: LockedPackage) -> CacheCheck:
        """Whether the cache holds `pkg` with the locked size and sha256."""
        return check_file(self.path(pkg.sha256), pkg.size, pkg.sha256)

    def verified_path(self, pkg: LockedPackage) -> Path:
        """The cached .deb of `pkg`, checked against the lock's size and sha256.

        A missing or corrupt file raises `InputError`; a corrupt file is never returned.
        """
        result = self.check(pkg)
        if not result.ok:
            detail = ""
            if result.problem != "missing":
                detail = f" (the cached file {result.path} is corrupt: {result.problem})"
            raise InputError(
                f"package {pkg.name} version {pkg.version} is not in the cache{detail}; "
                f"run build.py fetch RECIPE"
            )
        return result.path

    def require_present(self, packages: Iterable[LockedPackage]) -> None:
        """Raise `InputError` naming every package whose file is absent or of the wrong
        size: a cheap check before a build starts. Content is checked on use, by
        `verified_path`, so a build never reads bytes it has not verified."""
        absent = []
        for pkg in packages:
            try:
                ok = self.path(pkg.sha256).stat().st_size == pkg.size
            except FileNotFoundError:
                ok = False
            if not ok:
                absent.append(f"{pkg.name} {pkg.version}")
        if absent:
            shown = ", ".join(absent[:8]) + (
                f" and {len(absent) - 8} more" if len(absent) > 8 else ""
            )
            raise InputError(
                f"{len(absent)} locked package(s) not in the cache ({shown}); "
                "run build.py fetch RECIPE"
            )

    @contextlib.contextmanager
    def temp_path(self, pkg: LockedPackage) -> Iterator[Path]:
        """A fresh temp file beside `pkg`'s final path, removed on exit unless stored.

        Being in the same directory is what makes `store`'s rename atomic.
        """
        final = self.path(pkg.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def remove_stale_temp_files(self, max_age_seconds: float = STALE_TEMP_SECONDS) -> int:
        """Remove temp files a killed fetch left behind; return how many.

        Only files untouched for `max_age_seconds` go, so a fetch running in
        another process at the same time keeps its downloads in flight.
        """
        store = self.root / "sha256"
        if not store.is_dir():
            return 0
        cutoff = time.time() - max_age_seconds
        removed = 0
        for tmp in store.glob("*/.*.deb.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed

    def store(self, pkg: LockedPackage, tmp_file: Path) -> Path:
        """Check `tmp_file` against `pkg`'s size and sha256, then rename it into place.

        `tmp_file` must be on the same file system as the cache (use `temp_path`).
        On a mismatch `CacheMismatch` (a `FetchError`) names the expected and the
        actual size or digest, and nothing is put under the final name.
        """
        result = check_file(tmp_file, pkg.size, pkg.sha256)
        if not result.ok:
            raise CacheMismatch(pkg, result.problem)
        final = self.path(pkg.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp_file, "rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(tmp_file, 0o644)
        os.replace(tmp_file, final)
        _fsync_dir(final.parent)
        _remember(final, pkg.sha256)
        return final


class CacheMismatch(FetchError):
    """A file offered to `DebCache.store` is not the locked package; `problem` says how."""

    def __init__(self, pkg: LockedPackage, problem: str) -> None:
        super().__init__(f"{pkg.name} {pkg.version}: {problem}")
        self.pkg = pkg
        self.problem = problem


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some file systems refuse fsync on a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
