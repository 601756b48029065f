"""Step cache: hits, misses, corruption, concurrent builds, prune."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from builder.build.stepcache import StepCache

STEP_ID = "ab" + "0" * 62


def _writer(content: bytes, calls: list[str]) -> Any:
    def build(out: Path) -> dict[str, Any]:
        calls.append("built")
        (out / "data.bin").write_bytes(content)
        return {"length": len(content)}

    return build


def test_miss_then_hit(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    calls: list[str] = []
    first, cached = cache.get_or_build("demo", STEP_ID, _writer(b"hello", calls))
    assert not cached
    second, cached = cache.get_or_build("demo", STEP_ID, _writer(b"other", calls))
    assert cached
    assert calls == ["built"]
    assert (second.path / "data.bin").read_bytes() == b"hello"
    assert second.info == {"length": 5}
    assert first.content_digest == second.content_digest


def test_corrupted_entry_is_rebuilt_not_used(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    calls: list[str] = []
    out, _ = cache.get_or_build("demo", STEP_ID, _writer(b"hello", calls))
    (out.path / "data.bin").write_bytes(b"HELLO")
    again, cached = cache.get_or_build("demo", STEP_ID, _writer(b"hello", calls))
    assert not cached
    assert calls == ["built", "built"]
    assert (again.path / "data.bin").read_bytes() == b"hello"


def test_damaged_record_is_rebuilt(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    calls: list[str] = []
    out, _ = cache.get_or_build("demo", STEP_ID, _writer(b"x", calls))
    (out.path.parent / "record.json").write_text("{not json")
    _, cached = cache.get_or_build("demo", STEP_ID, _writer(b"x", calls))
    assert not cached and len(calls) == 2


def test_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")

    def explode(out: Path) -> dict[str, Any]:
        (out / "half").write_bytes(b"partial")
        raise RuntimeError("tool died")

    with pytest.raises(RuntimeError):
        cache.get_or_build("demo", STEP_ID, explode)
    assert cache.lookup("demo", STEP_ID) is None
    assert list(cache.entries()) == []


def _concurrent_build(root: str, marker_dir: str) -> None:
    cache = StepCache(Path(root))

    def build(out: Path) -> dict[str, Any]:
        Path(marker_dir, f"built-{os.getpid()}").touch()
        time.sleep(0.3)  # widen the race window
        (out / "data.bin").write_bytes(b"same")
        return {}

    cache.get_or_build("demo", STEP_ID, build)


def test_two_processes_share_the_cache(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_concurrent_build, args=(str(tmp_path / "steps"), str(markers)))
        for _ in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert len(list(markers.iterdir())) == 1  # built once, the others waited and reused it
    out = StepCache(tmp_path / "steps").lookup("demo", STEP_ID)
    assert out is not None and (out.path / "data.bin").read_bytes() == b"same"


def test_prune_by_age_and_all(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    old_id, new_id = "cd" + "1" * 62, "ef" + "2" * 62
    cache.get_or_build("demo", old_id, _writer(b"old", []))
    cache.get_or_build("demo", new_id, _writer(b"new", []))
    record = tmp_path / "steps" / old_id[:2] / old_id / "record.json"
    long_ago = time.time() - 30 * 86400
    os.utime(record, (long_ago, long_ago))
    report = cache.prune(14)
    assert (report.removed, report.kept) == (1, 1)
    assert cache.lookup("demo", old_id) is None
    assert cache.lookup("demo", new_id) is not None
    assert cache.prune(None).removed == 1
    assert list(cache.entries()) == []
