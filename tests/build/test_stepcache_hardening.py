"""Step cache under prune, tampering and damage (issue 11): prune beside running builds,
entries held by a session, a record's facts verified, malformed records discarded,
entries verified whole (xattrs included)."""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from builder.build.stepcache import StepCache
from builder.core.canonical import pretty_json, sha256_json
from builder.core.errors import BuildError

PROJECT = Path(__file__).resolve().parents[2]
STEP_ID = "ab" + "0" * 62
OTHER_ID = "cd" + "1" * 62
# vfs_cap_data revision 2, effective, permitting cap_net_raw (13): what `setcap` writes
CAP_NET_RAW = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
FACTS: dict[str, Any] = {"root_hash": "5a" * 32, "partitions": [{"sha256": "c3" * 32}]}


def _writer(content: bytes = b"hello", calls: list[str] | None = None) -> Any:
    def build(out: Path) -> dict[str, Any]:
        if calls is not None:
            calls.append("built")
        (out / "data.bin").write_bytes(content)
        os.symlink("data.bin", out / "link")
        return copy.deepcopy(FACTS)

    return build


def _never(out: Path) -> dict[str, Any]:
    raise AssertionError("expected a cache hit")


def _record_path(cache: StepCache, step_id: str = STEP_ID) -> Path:
    return cache.root / step_id[:2] / step_id / "record.json"


def _prune_cli(cache_dir: Path, *options: str) -> str:
    """`build.py cache prune` in a process of its own, as an operator would run it."""
    env = {**os.environ, "HOME": str(cache_dir.parent), "XDG_CACHE_HOME": str(cache_dir.parent)}
    env.pop("BOOTHKEY_CACHE", None)
    result = subprocess.run(
        [sys.executable, "build.py", "cache", "prune", "--cache-dir", str(cache_dir), *options],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def test_prune_during_a_build_spares_its_staging(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "cache" / "steps")
    started, resume = threading.Event(), threading.Event()

    def build(out: Path) -> dict[str, Any]:
        (out / "first").write_bytes(b"1")
        started.set()
        assert resume.wait(30)
        (out / "second").write_bytes(b"2")
        return {"files": 2}

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(cache.get_or_build, "demo", STEP_ID, build)
        try:
            assert started.wait(30)
            _prune_cli(tmp_path / "cache")  # the default options
        finally:
            resume.set()
        output, cached = running.result(timeout=30)

    assert not cached
    assert sorted(p.name for p in output.path.iterdir()) == ["first", "second"]
    again, cached = cache.get_or_build("demo", STEP_ID, _never)
    assert cached and again.info == {"files": 2}


def test_prune_removes_leftovers_of_dead_builds_only(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    cache.get_or_build("demo", STEP_ID, _writer())
    dead_staging = cache.root / ".tmp" / f"{OTHER_ID}.4242"
    (dead_staging / "out").mkdir(parents=True)
    dead_trash = cache.root / ".trash" / "dead"
    (dead_trash / "sub").mkdir(parents=True)
    being_deleted = cache.root / ".trash" / "busy"
    being_deleted.mkdir()
    fd = os.open(being_deleted, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        cache.prune(14)
        assert being_deleted.exists()
    finally:
        os.close(fd)
    assert not dead_staging.exists() and not dead_trash.exists()
    assert cache.lookup("demo", STEP_ID) is not None


@pytest.mark.parametrize("recreate", [False, True], ids=["removed", "replaced"])
def test_build_whose_staging_vanished_fails_and_caches_nothing(
    tmp_path: Path, recreate: bool
) -> None:
    cache = StepCache(tmp_path / "steps")

    def build(out: Path) -> dict[str, Any]:
        (out / "first").write_bytes(b"1")
        shutil.rmtree(out.parent)  # what `cache prune` used to do to a running build
        if recreate:
            out.mkdir(parents=True)
            (out / "second").write_bytes(b"2")
        return {}

    with pytest.raises(BuildError, match=r"staging directory .* removed or replaced"):
        cache.get_or_build("demo", STEP_ID, build)
    assert list(cache.entries()) == []
    assert cache.lookup("demo", STEP_ID) is None
    assert list((cache.root / ".tmp").iterdir()) == []


@pytest.mark.parametrize("how", ["built", "hit", "lookup"])
def test_entries_a_session_returned_survive_prune(tmp_path: Path, how: str) -> None:
    cache = StepCache(tmp_path / "cache" / "steps")
    cache.get_or_build("demo", OTHER_ID, _writer(b"unused"))
    if how != "built":
        cache.get_or_build("demo", STEP_ID, _writer())
    with cache.session():
        if how == "lookup":
            output = cache.lookup("demo", STEP_ID)
            assert output is not None
        else:
            output, cached = cache.get_or_build("demo", STEP_ID, _writer())
            assert cached == (how == "hit")
        printed = _prune_cli(tmp_path / "cache", "--all")
        assert printed.startswith("removed 1 step outputs") and "(1 in use" in printed
        assert (output.path / "data.bin").read_bytes() == b"hello"
    report = cache.prune(None)
    assert (report.removed, report.kept, report.in_use) == (1, 0, 0)


def test_damaged_entry_in_use_is_replaced_only_after_its_user_is_done(tmp_path: Path) -> None:
    user = StepCache(tmp_path / "steps")
    pool = ThreadPoolExecutor(1)
    try:
        with user.session():
            output, _ = user.get_or_build("demo", STEP_ID, _writer())
            (output.path / "data.bin").write_bytes(b"tampered")
            other = StepCache(tmp_path / "steps")
            rebuilding = pool.submit(other.get_or_build, "demo", STEP_ID, _writer())
            time.sleep(0.3)
            assert not rebuilding.done()
            assert (output.path / "data.bin").read_bytes() == b"tampered"  # still its user's
        _, cached = rebuilding.result(timeout=30)
    finally:
        pool.shutdown()
    assert not cached
    assert (output.path / "data.bin").read_bytes() == b"hello"


def test_a_session_rebuilding_its_own_damaged_entry_does_not_wait_for_itself(
    tmp_path: Path,
) -> None:
    cache = StepCache(tmp_path / "steps")
    with cache.session():
        output, _ = cache.get_or_build("demo", STEP_ID, _writer())
        (output.path / "data.bin").write_bytes(b"tampered")
        again, cached = cache.get_or_build("demo", STEP_ID, _writer())
        assert not cached and (again.path / "data.bin").read_bytes() == b"hello"
        assert cache.prune(None).in_use == 1
    with pytest.raises(RuntimeError, match="session"), cache.session(), cache.session():
        pass


def _edit_root_hash(record: Any) -> None:
    record["info"]["root_hash"] = "00" * 32


def _edit_partition(record: Any) -> None:
    record["info"]["partitions"][0]["sha256"] = "00" * 32


@pytest.mark.parametrize(
    "edit", [_edit_root_hash, _edit_partition], ids=["root-hash", "partition-sha256"]
)
def test_edited_record_facts_are_not_used(tmp_path: Path, edit: Callable[[Any], None]) -> None:
    cache = StepCache(tmp_path / "steps")
    cache.get_or_build("demo", STEP_ID, _writer())
    record = json.loads(_record_path(cache).read_bytes())
    edit(record)
    _record_path(cache).write_bytes(pretty_json(record))

    output, cached = cache.get_or_build("demo", STEP_ID, _writer())

    assert not cached
    assert output.info == FACTS


def _reseal(record: Any) -> Any:
    """Recompute the entry digest as the format defines it, so that only the record's
    shape is wrong, not its digest."""
    if isinstance(record, dict) and "entry_digest" in record:
        keys = ("format", "step", "id", "info", "content_digest")
        record["entry_digest"] = "sha256:" + sha256_json({k: record.get(k) for k in keys})
    return record


def _without(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda record: _reseal({k: v for k, v in record.items() if k != key})


def _with(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda record: _reseal({**record, key: value})


MALFORMED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a-list": lambda record: [record],
    "null": lambda record: None,
    "a-string": lambda record: "record",
    **{
        f"no-{key}": _without(key)
        for key in ("format", "step", "id", "info", "content_digest", "entry_digest")
    },
    "info-a-string": _with("info", "facts"),
    "info-a-list": _with("info", [FACTS]),
    "content-digest-a-number": _with("content_digest", 5),
    "content-digest-not-sha256": _with("content_digest", "md5:00"),
    "format-a-string": _with("format", "2"),
    "format-1": lambda record: (
        {k: v for k, v in record.items() if k != "entry_digest"} | {"format": 1}
    ),
    "unknown-key": _with("signed_by", "nobody"),
}


@pytest.mark.parametrize("damage", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_record_is_discarded_and_rebuilt(
    tmp_path: Path, damage: Callable[[dict[str, Any]], Any]
) -> None:
    cache = StepCache(tmp_path / "steps")
    calls: list[str] = []
    cache.get_or_build("demo", STEP_ID, _writer(calls=calls))
    record = json.loads(_record_path(cache).read_bytes())
    _record_path(cache).write_bytes(pretty_json(damage(record)))

    output, cached = cache.get_or_build("demo", STEP_ID, _writer(calls=calls))

    assert not cached and calls == ["built", "built"]
    assert output.info == FACTS
    assert cache.get_or_build("demo", STEP_ID, _never)[0].info == FACTS


def _raw(text: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(text)

    return write


def _duplicate_info(path: Path) -> None:
    text = path.read_bytes()
    path.write_bytes(text.replace(b'"info": {', b'"info": {}, "info": {', 1))


def _symlink_to_copy(path: Path) -> None:
    copy = path.parent.parent / "elsewhere.json"
    shutil.copy(path, copy)
    path.unlink()
    os.symlink(copy, path)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGED_FILES: dict[str, Callable[[Path], None]] = {
    "duplicate-key": _duplicate_info,
    "nan": _raw(b'{"format": NaN}'),
    "not-utf8": _raw(b'{"step": "\xff"}'),
    "nested-deeply": _raw(b"[" * 100_000 + b"]" * 100_000),
    "symlink": _symlink_to_copy,
    "fifo": _fifo,
    "directory": _directory,
}


@pytest.mark.parametrize("damage", DAMAGED_FILES.values(), ids=DAMAGED_FILES.keys())
def test_damaged_record_file_is_discarded_and_rebuilt(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    cache = StepCache(tmp_path / "steps")
    cache.get_or_build("demo", STEP_ID, _writer())
    damage(_record_path(cache))

    output, cached = cache.get_or_build("demo", STEP_ID, _writer())

    assert not cached and output.info == FACTS


def _needs_xattrs(path: Path, name: str, value: bytes) -> None:
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
        os.removexattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EPERM):
            pytest.skip(f"cannot set {name} here: {exc}")
        raise


def _set_xattr(relative: str, name: str, value: bytes = b"\x00added") -> Callable[[Path], None]:
    def change(out: Path) -> None:
        _needs_xattrs(out / relative, name, value)
        os.setxattr(out / relative, name, value, follow_symlinks=False)

    return change


def _relink(out: Path) -> None:
    os.unlink(out / "link")
    os.symlink("/etc/shadow", out / "link")


def _touch_later(out: Path) -> None:
    os.utime(out / "data.bin", (1e9, 1e9))


TREE_CHANGES: dict[str, Callable[[Path], object]] = {
    "xattr-on-file": _set_xattr("data.bin", "user.boothkey"),
    "file-capability": _set_xattr("data.bin", "security.capability", CAP_NET_RAW),
    "xattr-on-root": _set_xattr(".", "user.boothkey"),
    "trusted-xattr-on-symlink": _set_xattr("link", "trusted.boothkey"),
    "content": lambda out: (out / "data.bin").write_bytes(b"HELLO"),
    "mode": lambda out: os.chmod(out / "data.bin", 0o4755),
    "owner": lambda out: os.chown(out / "data.bin", 1234, 1234),
    "link": _relink,
    "new-file": lambda out: (out / "extra").write_bytes(b""),
    "mtime": _touch_later,
}


@pytest.mark.parametrize("change", TREE_CHANGES.values(), ids=TREE_CHANGES.keys())
def test_entry_is_verified_whole(tmp_path: Path, change: Callable[[Path], object]) -> None:
    cache = StepCache(tmp_path / "steps")
    output, _ = cache.get_or_build("demo", STEP_ID, _writer())
    change(output.path)

    again, cached = cache.get_or_build("demo", STEP_ID, _writer())

    assert not cached
    assert sorted(p.name for p in again.path.iterdir()) == ["data.bin", "link"]
    assert os.listxattr(again.path / "data.bin") == []


def test_facts_read_the_same_on_a_miss_and_a_hit(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    built, _ = cache.get_or_build("demo", STEP_ID, lambda out: {"pair": (1, 2)})
    hit, cached = cache.get_or_build("demo", STEP_ID, _never)
    assert cached and built.info == hit.info == {"pair": [1, 2]}


@pytest.mark.parametrize("step_id", ["../" + "a" * 61, "AB" + "0" * 62, ""])
def test_step_ids_are_checked(tmp_path: Path, step_id: str) -> None:
    with pytest.raises(ValueError, match="not a step id"):
        StepCache(tmp_path / "steps").get_or_build("demo", step_id, _never)
