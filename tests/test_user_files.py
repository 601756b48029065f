"""Tests leave the user's files alone: the session's own cache, and the guard that
notices when a test changes the checkout's out/ or the user's cache (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from user_files import CHECKOUT, changes, seed_debs, snapshot, user_cache_dirs

from builder.core.paths import deb_cache_dir, default_cache_dir
from builder.source.debcache import DebCache
from builder.source.lockfile import read_lock

PRINT_CACHE = "from builder.core.paths import default_cache_dir; print(default_cache_dir())"


def test_boothkey_uses_the_sessions_cache_here_and_in_subprocesses(
    boothkey_cache: Path, tmp_path: Path
) -> None:
    users = [path.resolve() for path in user_cache_dirs({})]
    assert default_cache_dir() == boothkey_cache
    assert default_cache_dir().resolve() not in users
    child = subprocess.run(
        [sys.executable, "-c", PRINT_CACHE], cwd=CHECKOUT, capture_output=True, text=True
    )
    assert Path(child.stdout.strip()) == boothkey_cache
    # A subprocess given an environment without BOOTHKEY_CACHE still stays out of ~/.cache.
    env = {k: v for k, v in os.environ.items() if k != "BOOTHKEY_CACHE"}
    child = subprocess.run(
        [sys.executable, "-c", PRINT_CACHE], cwd=CHECKOUT, env=env, capture_output=True, text=True
    )
    assert Path(child.stdout.strip()).resolve() not in users


def test_the_guard_sees_any_change_under_a_watched_directory(tmp_path: Path) -> None:
    watched = tmp_path / "cache"
    assert changes(None, snapshot(watched)) == []
    busybox = watched / "steps" / "rootfs" / "tree" / "usr" / "bin" / "busybox"
    busybox.parent.mkdir(parents=True)
    busybox.write_bytes(b"\x7fELF original")
    (watched / "record.json").write_text("{}")
    before = snapshot(watched)
    assert before is not None
    assert changes(None, before) == ["created"]
    assert changes(before, snapshot(watched)) == []
    # What test_build_cache once did to the user's real cache: rewrite a cached file (same
    # size here; the clock may not have ticked since, so move its mtime on explicitly).
    mtime = busybox.stat().st_mtime_ns
    busybox.write_bytes(b"\x7fELF tampered")
    os.utime(busybox, ns=(mtime, mtime + 1))
    (watched / "record.json").unlink()
    (watched / "out.img").write_bytes(b"")
    assert changes(before, snapshot(watched)) == [
        "record.json: removed",
        "out.img: added",
        "steps/rootfs/tree/usr/bin/busybox: changed",
    ]


def test_seeding_reads_the_users_debs_and_never_writes_there(tmp_path: Path) -> None:
    lock_path = CHECKOUT / "recipes" / "hello.lock.json"
    package = read_lock(lock_path).packages[0]
    user = tmp_path / "user-cache"
    deb = DebCache(deb_cache_dir(user)).path(package.sha256)
    deb.parent.mkdir(parents=True)
    deb.write_bytes(b"x" * package.size)  # fetch checks the digest, seeding only the size
    before = snapshot(user)
    assert seed_debs(lock_path, [user], tmp_path / "session") == 1
    copied = DebCache(deb_cache_dir(tmp_path / "session")).path(package.sha256)
    assert copied.read_bytes() == deb.read_bytes()
    assert not copied.samefile(deb)
    assert changes(before, snapshot(user)) == []
    assert seed_debs(lock_path, [user], tmp_path / "session") == 0


@pytest.mark.parametrize("variable", ["BOOTHKEY_CACHE", "XDG_CACHE_HOME"])
def test_a_users_cache_named_in_the_environment_is_watched(variable: str, tmp_path: Path) -> None:
    named = tmp_path / "elsewhere"
    expected = named if variable == "BOOTHKEY_CACHE" else named / "boothkey"
    assert expected in user_cache_dirs({variable: str(named)})
    assert Path.home() / ".cache" / "boothkey" in user_cache_dirs({})
