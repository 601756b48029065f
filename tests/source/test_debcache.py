"""builder/source/debcache.py: the content-addressed .deb store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from lock_factory import package

from builder.core import canonical
from builder.core.errors import FetchError, InputError
from builder.source.debcache import CacheMismatch, DebCache
from builder.source.lockfile import LockedPackage

CONTENT = b"!<arch>\n" + b"pretend this is a .deb " * 100


def locked(content: bytes = CONTENT, name: str = "hello", version: str = "1.0-1") -> LockedPackage:
    return package(name, version, size=len(content), sha256=hashlib.sha256(content).hexdigest())


def put(cache: DebCache, pkg: LockedPackage, content: bytes) -> Path:
    with cache.temp_path(pkg) as tmp:
        tmp.write_bytes(content)
        return cache.store(pkg, tmp)


def leftovers(cache: DebCache) -> list[Path]:
    """Every file in the cache that is not a final `<sha256>.deb`."""
    return [p for p in cache.root.rglob("*") if p.is_file() and p.name.startswith(".")]


def test_path_is_content_addressed(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    digest = "ab" + "0" * 62
    assert cache.path(digest) == tmp_path / "sha256" / "ab" / f"{digest}.deb"
    with pytest.raises(ValueError):
        cache.path("../../etc/passwd")


def test_store_then_verified_path(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    pkg = locked()
    final = put(cache, pkg, CONTENT)
    assert final == cache.path(pkg.sha256)
    assert final.read_bytes() == CONTENT
    assert final.stat().st_mode & 0o777 == 0o644
    assert cache.verified_path(pkg) == final
    assert leftovers(cache) == []


def test_missing_package_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        DebCache(tmp_path).verified_path(locked(name="bash", version="5.2.15-2"))
    message = caught.value.message
    assert "package bash version 5.2.15-2 is not in the cache" in message
    assert "run build.py fetch" in message


@pytest.mark.parametrize(
    ("served", "expected_words"),
    [
        (
            CONTENT[:-1] + b"X",
            [
                f"expected sha256 {hashlib.sha256(CONTENT).hexdigest()}",
                f"got {hashlib.sha256(CONTENT[:-1] + b'X').hexdigest()}",
            ],
        ),
        (CONTENT + b"tail", ["expected size", f"got {len(CONTENT) + 4}"]),
    ],
)
def test_store_refuses_wrong_bytes(
    tmp_path: Path, served: bytes, expected_words: list[str]
) -> None:
    cache = DebCache(tmp_path)
    pkg = locked()
    with pytest.raises(CacheMismatch) as caught, cache.temp_path(pkg) as tmp:
        tmp.write_bytes(served)
        cache.store(pkg, tmp)
    assert isinstance(caught.value, FetchError)
    for word in expected_words:
        assert word in caught.value.message
    assert not cache.path(pkg.sha256).exists()
    assert leftovers(cache) == []


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    pkg = locked()
    with pytest.raises(KeyboardInterrupt), cache.temp_path(pkg) as tmp:
        tmp.write_bytes(CONTENT[:10])
        raise KeyboardInterrupt
    assert not cache.path(pkg.sha256).exists()
    assert leftovers(cache) == []


def test_corrupt_cached_file_is_reported_never_returned(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    pkg = locked()
    final = put(cache, pkg, CONTENT)
    assert cache.verified_path(pkg) == final
    # Replace it the way a bad copy or restore would: a new file, same size.
    bad = final.with_name("bad")
    bad.write_bytes(CONTENT[:-1] + b"X")
    os.replace(bad, final)
    with pytest.raises(InputError) as caught:
        cache.verified_path(pkg)
    assert "is not in the cache" in caught.value.message
    assert "corrupt" in caught.value.message
    assert "expected sha256" in caught.value.message
    assert not cache.check(pkg).ok


def test_truncated_cached_file_is_reported(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    pkg = locked()
    final = put(cache, pkg, CONTENT)
    with open(final, "r+b") as stream:
        stream.truncate(5)
    with pytest.raises(InputError, match="expected size"):
        cache.verified_path(pkg)


def test_verification_is_remembered_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DebCache(tmp_path)
    pkg = locked(CONTENT + b"memo")
    final = cache.path(pkg.sha256)
    final.parent.mkdir(parents=True)
    final.write_bytes(CONTENT + b"memo")  # placed without store(): nothing remembered yet
    hashed: list[Path] = []
    real = canonical.sha256_file

    def counting(path: Path, length: int | None = None) -> str:
        hashed.append(path)
        return real(path, length)

    monkeypatch.setattr("builder.source.debcache.sha256_file", counting)
    assert cache.verified_path(pkg) == final
    assert cache.verified_path(pkg) == final
    assert hashed == [final]
    # A different file under the same name (new inode) is hashed again.
    replacement = final.with_name("new")
    replacement.write_bytes(CONTENT + b"memo")
    os.replace(replacement, final)
    assert cache.verified_path(pkg) == final
    assert hashed == [final, final]


def test_store_overwrites_a_corrupt_entry(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    pkg = locked()
    final = cache.path(pkg.sha256)
    final.parent.mkdir(parents=True)
    final.write_bytes(b"garbage")
    put(cache, pkg, CONTENT)
    assert final.read_bytes() == CONTENT
    assert cache.check(pkg).ok


def test_stale_temp_files_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    pkg = locked()
    final = put(cache, pkg, CONTENT)
    with cache.temp_path(pkg) as fresh, cache.temp_path(pkg) as stale:
        fresh.write_bytes(b"in flight")
        stale.write_bytes(b"left by a killed fetch")
        os.utime(stale, (1_000_000_000, 1_000_000_000))
        assert cache.remove_stale_temp_files(max_age_seconds=3600) == 1
        assert not stale.exists()
        assert fresh.exists()
    assert final.exists()
    assert DebCache(tmp_path / "empty").remove_stale_temp_files() == 0


def test_require_present_names_absent_and_truncated_packages(tmp_path: Path) -> None:
    cache = DebCache(tmp_path)
    here, short = locked(name="here"), locked(b"x" * 10, name="short")
    gone = locked(b"never fetched", name="gone")
    put(cache, here, CONTENT)
    put(cache, short, b"x" * 10)
    cache.path(short.sha256).write_bytes(b"x" * 5)  # truncated after it was stored
    cache.require_present([here])
    with pytest.raises(InputError) as caught:
        cache.require_present([here, gone, short])
    message = caught.value.message
    assert message.startswith("2 locked package(s) not in the cache (gone 1.0-1, short 1.0-1)")
    assert "run build.py fetch" in message
