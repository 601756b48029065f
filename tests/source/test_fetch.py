"""builder/source/fetch.py, builder/core/progress.py and `build.py fetch`, offline.

The test archive is served over HTTP on 127.0.0.1 (the real `requests` path),
and read as a plain directory and as a file:// URL.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from archive_factory import SECURITY_POOL, FakeDeb, MultiSuiteArchive, ServedArchive, make_deb
from lock_factory import lock as fake_lock
from lock_factory import package_of

from builder.cli import main
from builder.core.errors import FetchError, InputError
from builder.core.progress import Progress, format_size
from builder.source import fetch
from builder.source.debcache import DebCache
from builder.source.fetch import FetchReport, fetch_packages
from builder.source.http import RequestsFetcher, mirror_url
from builder.source.lockfile import LockedPackage, read_lock, write_lock
from builder.source.recipe import load_recipe

PROJECT = Path(__file__).resolve().parents[2]


def locked(deb: FakeDeb, suite: str = "bookworm", component: str = "main") -> LockedPackage:
    return package_of(deb, suite=suite, component=component)


@pytest.fixture
def packages(served_archive: ServedArchive) -> list[LockedPackage]:
    return [locked(deb) for deb in served_archive.archive.debs]


@pytest.fixture
def cache(tmp_path: Path) -> DebCache:
    return DebCache(tmp_path / "cache" / "debs")


def quick_fetcher() -> RequestsFetcher:
    # No transport retries: the tests count mirror attempts made by fetch.py itself.
    return RequestsFetcher(timeout=10, retries=0, backoff=0)


class CountingFetcher:
    """Wraps a fetcher, recording every URL asked for."""

    def __init__(self, inner: RequestsFetcher | None = None) -> None:
        self.inner = inner or quick_fetcher()
        self.urls: list[str] = []

    def fetch_bytes(self, url: str, max_size: int) -> bytes:
        self.urls.append(url)
        return self.inner.fetch_bytes(url, max_size)

    def fetch_to(self, url: str, dest: Path, expected_size: int | None) -> None:
        self.urls.append(url)
        self.inner.fetch_to(url, dest, expected_size)


class DyingFetcher(CountingFetcher):
    """Writes part of the body, then fails the way a killed process or a bug would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def fetch_to(self, url: str, dest: Path, expected_size: int | None) -> None:
        self.urls.append(url)
        dest.write_bytes(b"\0" * ((expected_size or 2) // 2))
        raise self.error


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/debian"


def cache_files(cache: DebCache) -> list[Path]:
    return sorted(p for p in cache.root.rglob("*") if p.is_file())


def assert_all_cached(cache: DebCache, packages: Sequence[LockedPackage]) -> None:
    for pkg in packages:
        assert cache.verified_path(pkg).read_bytes()  # raises if missing or wrong
    assert len(cache_files(cache)) == len({p.sha256 for p in packages})


def test_cold_fetch_over_http(
    served_archive: ServedArchive, packages: list[LockedPackage], cache: DebCache
) -> None:
    report = fetch_packages(packages, [served_archive.mirror], cache, quick_fetcher(), jobs=3)
    assert report.fetched == tuple(packages)
    assert report.cached == ()
    assert report.repaired == ()
    assert report.bytes_fetched == sum(p.size for p in packages)
    assert set(report.sources) == {p.sha256 for p in packages}
    assert all(url.startswith(served_archive.mirror + "/pool/") for url in report.sources.values())
    assert_all_cached(cache, packages)


@pytest.mark.parametrize("kind", ["directory", "file-url"])
def test_cold_fetch_from_local_mirror(
    served_archive: ServedArchive, packages: list[LockedPackage], cache: DebCache, kind: str
) -> None:
    root = served_archive.archive.root
    mirror = str(root) if kind == "directory" else root.as_uri()
    report = fetch_packages(packages, [mirror], cache, quick_fetcher())
    assert len(report.fetched) == len(packages)
    assert_all_cached(cache, packages)


def test_warm_fetch_fetches_nothing(
    served_archive: ServedArchive, packages: list[LockedPackage], cache: DebCache
) -> None:
    fetch_packages(packages, [served_archive.mirror], cache, quick_fetcher())
    counting = CountingFetcher()
    report = fetch_packages(packages, [served_archive.mirror], cache, counting)
    assert counting.urls == []
    assert report.fetched == ()
    assert report.cached == tuple(packages)
    assert report.bytes_fetched == 0


def test_corrupted_cache_entry_is_refetched(
    served_archive: ServedArchive, packages: list[LockedPackage], cache: DebCache
) -> None:
    fetch_packages(packages, [served_archive.mirror], cache, quick_fetcher())
    victim = packages[3]
    path = cache.path(victim.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    replacement = path.with_name("corrupt")
    replacement.write_bytes(bytes(data))
    replacement.replace(path)
    with pytest.raises(InputError, match="corrupt"):
        cache.verified_path(victim)

    counting = CountingFetcher()
    report = fetch_packages(packages, [served_archive.mirror], cache, counting)
    assert report.fetched == (victim,)
    assert report.repaired == (victim,)
    assert len(counting.urls) == 1
    assert counting.urls[0].endswith(victim.filename)
    assert_all_cached(cache, packages)


def test_wrong_bytes_are_refused_with_expected_and_got(
    archive_copy: ServedArchive, cache: DebCache
) -> None:
    deb = archive_copy.archive.debs[0]
    pkg = locked(deb)
    served = archive_copy.archive.root / pkg.filename
    tampered = bytearray(served.read_bytes())
    tampered[-1] ^= 0x01
    served.write_bytes(bytes(tampered))
    got = hashlib.sha256(bytes(tampered)).hexdigest()
    with pytest.raises(FetchError) as caught:
        fetch_packages([pkg], [archive_copy.mirror], cache, quick_fetcher())
    message = caught.value.message
    assert f"{archive_copy.mirror}/{pkg.filename}" in message
    assert f"expected sha256 {pkg.sha256}" in message
    assert f"got {got}" in message
    assert pkg.name in message
    assert not cache.path(pkg.sha256).exists()
    assert cache_files(cache) == []


def test_wrong_size_is_refused(archive_copy: ServedArchive, cache: DebCache) -> None:
    pkg = locked(archive_copy.archive.debs[1])
    served = archive_copy.archive.root / pkg.filename
    served.write_bytes(served.read_bytes() + b"extra")
    with pytest.raises(FetchError) as caught:
        fetch_packages([pkg], [archive_copy.mirror], cache, quick_fetcher())
    assert str(pkg.size) in caught.value.message
    assert f"{archive_copy.mirror}/{pkg.filename}" in caught.value.message
    assert cache_files(cache) == []


def test_first_mirror_down_second_used(
    served_archive: ServedArchive, packages: list[LockedPackage], cache: DebCache
) -> None:
    down = closed_port_url()
    counting = CountingFetcher()
    report = fetch_packages(packages, [down, served_archive.mirror], cache, counting, jobs=2)
    assert len(report.fetched) == len(packages)
    assert all(url.startswith(served_archive.mirror) for url in report.sources.values())
    assert_all_cached(cache, packages)
    # A mirror that failed and never served anything is demoted: at most one try per worker.
    assert sum(url.startswith(down) for url in counting.urls) <= 2


def test_bad_first_mirror_falls_back_to_good_one(
    archive_copy: ServedArchive, served_archive: ServedArchive, cache: DebCache
) -> None:
    pkg = locked(archive_copy.archive.debs[2])
    (archive_copy.archive.root / pkg.filename).write_bytes(b"\0" * pkg.size)
    report = fetch_packages(
        [pkg], [archive_copy.mirror, served_archive.mirror], cache, quick_fetcher()
    )
    assert report.sources[pkg.sha256].startswith(served_archive.mirror)
    assert cache.verified_path(pkg).read_bytes() == archive_copy.archive.debs[2].path.read_bytes()


def test_all_mirrors_unreachable(
    packages: list[LockedPackage], cache: DebCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every package is tried here: without this, a worker thread that starts late
    # could find both mirrors already given up on by the other two (a race).
    monkeypatch.setattr(fetch, "_GIVE_UP_FAILURES", 100)
    first, second = closed_port_url(), closed_port_url()
    with pytest.raises(FetchError) as caught:
        fetch_packages(packages[:3], [first, second], cache, quick_fetcher(), rounds=2)
    message = caught.value.message
    assert message.startswith(
        f"3 of 3 package(s) could not be fetched (mirrors tried in order: {first}, {second}):"
    )
    for pkg in packages[:3]:
        assert f"{pkg.name} {pkg.version}" in message
        assert f"{first}/{pkg.filename}" in message
        assert f"{second}/{pkg.filename}" in message
    assert cache_files(cache) == []


def test_gives_up_early_when_every_mirror_fails(
    packages: list[LockedPackage], cache: DebCache
) -> None:
    first, second = closed_port_url(), closed_port_url()
    counting = CountingFetcher()
    with pytest.raises(FetchError) as caught:
        fetch_packages(packages, [first, second], cache, counting, jobs=1)
    # Three failures per mirror, then the remaining packages are not tried at all.
    assert len(counting.urls) == 6
    message = caught.value.message
    assert message.startswith(f"{len(packages)} of {len(packages)} package(s)")
    assert f"{first}/{packages[0].filename}" in message
    # The two packages actually tried are shown in full; the rest are counted.
    assert f"{packages[1].name} {packages[1].version}" in message
    assert f"{len(packages) - 2} more not tried: every mirror failed 3 times" in message
    assert packages[5].name not in message


def test_missing_file_on_mirror_is_reported(archive_copy: ServedArchive, cache: DebCache) -> None:
    pkg = locked(archive_copy.archive.debs[4])
    (archive_copy.archive.root / pkg.filename).unlink()
    with pytest.raises(FetchError, match="404"):
        fetch_packages([pkg], [archive_copy.mirror], cache, quick_fetcher())


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("bug mid-stream")])
def test_killed_fetch_leaves_nothing_under_final_name(
    served_archive: ServedArchive,
    packages: list[LockedPackage],
    cache: DebCache,
    error: BaseException,
) -> None:
    with pytest.raises(type(error)):
        fetch_packages(packages, [served_archive.mirror], cache, DyingFetcher(error), jobs=2)
    assert cache_files(cache) == []
    for pkg in packages:
        assert not cache.check(pkg).ok
    # The next fetch starts from a clean slate and completes.
    fetch_packages(packages, [served_archive.mirror], cache, quick_fetcher())
    assert_all_cached(cache, packages)


def test_duplicates_are_fetched_once(
    served_archive: ServedArchive, packages: list[LockedPackage], cache: DebCache
) -> None:
    counting = CountingFetcher()
    twice = [packages[0], packages[0]]
    report = fetch_packages(twice, [served_archive.mirror], cache, counting)
    assert len(counting.urls) == 1
    assert report.fetched == tuple(twice)


def test_no_mirror_is_an_input_error(packages: list[LockedPackage], cache: DebCache) -> None:
    with pytest.raises(InputError, match="--mirror"):
        fetch_packages(packages, [], cache, quick_fetcher())
    assert fetch_packages([], [], cache, quick_fetcher()) == FetchReport((), (), (), 0, {})


def test_progress_lines_when_not_a_terminal(
    served_archive: ServedArchive, packages: list[LockedPackage], cache: DebCache
) -> None:
    stream = io.StringIO()
    total = sum(p.size for p in packages[:2])
    with Progress(2, total, stream=stream) as progress:
        assert progress.mode == "lines"
        fetch_packages(
            packages[:2], [served_archive.mirror], cache, quick_fetcher(), progress=progress
        )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("fetched 1/2: ")
    assert lines[1].startswith("fetched 2/2: ")
    assert progress.bytes_done == total


def test_progress_status_line_and_quiet() -> None:
    stream = io.StringIO()
    progress = Progress(4, 2000, stream=stream, mode="quiet")
    progress.done("a 1 (amd64)", 1000, fetched=True)
    progress.note("a warning")
    progress.close()
    assert stream.getvalue() == ""
    assert progress.status_line() == ("[############------------] 1/4 packages, 1.0 kB of 2.0 kB")
    assert [format_size(n) for n in (999, 1500, 2_500_000, 3_210_000_000)] == [
        "999 B",
        "1.5 kB",
        "2.5 MB",
        "3.21 GB",
    ]


def test_progress_terminal_redraws_one_line() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with Progress(1, 10, stream=stream) as progress:
        assert progress.mode == "tty"
        progress.done("a 1 (amd64)", 10, fetched=True)
    text = stream.getvalue()
    assert "\r[########################] 1/1 packages, 10 B of 10 B" in text
    assert text.endswith("\n")
    assert text.count("\n") == 1


# ---- build.py fetch -------------------------------------------------------------


def write_test_lock(recipe_path: Path, debs: Sequence[FakeDeb]) -> None:
    recipe = load_recipe(recipe_path)
    lock = fake_lock(
        (locked(d) for d in debs),
        recipe_name=recipe.name,
        package_set_digest=recipe.package_set_digest(),
    )
    write_lock(lock, recipe.lock_path)


def test_command_fetches_and_is_idempotent(
    served_archive: ServedArchive,
    recipe_factory: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"])
    debs = served_archive.archive.debs
    write_test_lock(recipe, debs)
    cache_dir = tmp_path / "cachedir"
    argv = ["fetch", str(recipe), "--mirror", served_archive.mirror, "--cache-dir", str(cache_dir)]
    assert main([*argv, "--jobs", "2"]) == 0
    out, err = capsys.readouterr()
    assert f"fetched {len(debs)} package(s)" in out
    assert f"fetched {len(debs)}/{len(debs)}: " in err  # plain progress lines: not a TTY
    cache = DebCache(cache_dir / "debs")
    assert_all_cached(cache, [locked(d) for d in debs])

    assert main([*argv, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
    assert main(argv) == 0
    assert f"fetched 0 package(s), 0 B; {len(debs)} already in the cache" in capsys.readouterr().out


def test_command_uses_boothkey_mirror_env(
    served_archive: ServedArchive,
    recipe_factory: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = recipe_factory(packages=["booth"])
    write_test_lock(recipe, served_archive.archive.debs[:3])
    monkeypatch.setenv("BOOTHKEY_MIRROR", f"{closed_port_url()} {served_archive.mirror}")
    monkeypatch.setenv("BOOTHKEY_CACHE", str(tmp_path / "envcache"))
    assert main(["fetch", str(recipe), "--quiet"]) == 0
    cache = DebCache(tmp_path / "envcache" / "debs")
    assert_all_cached(cache, [locked(d) for d in served_archive.archive.debs[:3]])


def test_command_refuses_stale_lock(
    served_archive: ServedArchive,
    recipe_factory: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"])
    write_test_lock(recipe, served_archive.archive.debs)
    recipe_factory(packages=["booth", "python3"])  # the recipe changes after locking
    code = main(
        [
            "fetch",
            str(recipe),
            "--mirror",
            served_archive.mirror,
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "does not match" in err
    assert "build.py lock" in err
    assert not (tmp_path / "c").exists()


def test_command_reports_fetch_failure(
    served_archive: ServedArchive,
    recipe_factory: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"])
    write_test_lock(recipe, served_archive.archive.debs[:2])
    down = closed_port_url()
    code = main(
        ["fetch", str(recipe), "--mirror", down, "--cache-dir", str(tmp_path / "c"), "--quiet"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("boothkey: 2 of 2 package(s) could not be fetched")
    assert down in err


class _StallingHandler(http.server.BaseHTTPRequestHandler):
    """Sends the first half of a file, then stalls until the test lets it go."""

    root: Path
    release: threading.Event

    def do_GET(self) -> None:
        data = (self.root / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.release.wait(30)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_sigkilled_fetch_leaves_nothing_under_final_name(
    recipe_factory: Callable[..., Path], tmp_path: Path
) -> None:
    # Large and incompressible, so the fetcher writes part of it before the stall.
    payload = hashlib.shake_256(b"boothkey big test package").digest(3 * 1024 * 1024)
    deb = make_deb(tmp_path / "debs", "bigpkg", "1.0", files={"/usr/share/big": payload})
    mirror = tmp_path / "mirror"
    (mirror / deb.pool_path()).parent.mkdir(parents=True)
    shutil.copyfile(deb.path, mirror / deb.pool_path())
    recipe = recipe_factory(packages=["booth"])
    write_test_lock(recipe, [deb])
    release = threading.Event()
    handler = type("Handler", (_StallingHandler,), {"root": mirror, "release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache = DebCache(tmp_path / "c" / "debs")
    argv = [sys.executable, str(PROJECT / "build.py"), "fetch", str(recipe), "--quiet"]
    argv += ["--cache-dir", str(tmp_path / "c")]
    try:
        child = subprocess.Popen([*argv, "--mirror", f"http://127.0.0.1:{server.server_port}"])
        partial: list[Path] = []
        for _ in range(300):
            partial = [p for p in cache.root.rglob("*.tmp") if p.stat().st_size > 0]
            if partial or child.poll() is not None:
                break
            release.wait(0.1)
        child.kill()
        child.wait()
        assert partial, "the download never started"
        assert 0 < partial[0].stat().st_size < deb.size
        assert not cache.path(deb.sha256).exists()
        assert not cache.check(locked(deb)).ok
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert subprocess.run([*argv, "--mirror", str(mirror)], check=False).returncode == 0
    assert cache.verified_path(locked(deb)).read_bytes() == deb.path.read_bytes()


def test_command_rejects_bad_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["fetch", "recipe.yaml", "--jobs", "0"])
    assert caught.value.code == 2
    assert "positive whole number" in capsys.readouterr().err


# ---- several suites ------------------------------------------------------------------


def multi_packages(multi: MultiSuiteArchive) -> list[LockedPackage]:
    """Two base packages and the security suite's libc6 (pool/updates/main/...)."""
    base = [locked(d) for d in multi.main.archive.debs if d.name in ("bash", "tar")]
    libc6 = next(d for d in multi.security.archive.debs if d.name == "libc6")
    return [*base, locked(libc6, "bookworm-security", SECURITY_POOL)]


def test_each_suite_is_fetched_from_its_own_mirrors(
    multi_suite: MultiSuiteArchive, cache: DebCache
) -> None:
    packages = multi_packages(multi_suite)
    counting = CountingFetcher()
    mirrors = {
        "bookworm": [multi_suite.main.mirror],
        "bookworm-security": [multi_suite.security.mirror],
    }
    report = fetch_packages(packages, mirrors, cache, counting, jobs=1)
    assert report.fetched == tuple(packages)
    assert sorted(counting.urls) == sorted(
        [mirror_url(multi_suite.main.mirror, p.filename) for p in packages[:2]]
        + [mirror_url(multi_suite.security.mirror, packages[2].filename)]
    )
    assert_all_cached(cache, packages)


def test_one_mirror_list_serves_every_suite(
    multi_suite: MultiSuiteArchive, cache: DebCache
) -> None:
    # A source bundle holds every suite's pool: one plain list is used for all packages.
    bundle = cache.root.parent / "bundle"
    shutil.copytree(multi_suite.main.archive.root / "pool", bundle / "pool")
    shutil.copytree(multi_suite.security.archive.root / "pool", bundle / "pool", dirs_exist_ok=True)
    packages = multi_packages(multi_suite)
    report = fetch_packages(packages, [str(bundle)], cache, quick_fetcher())
    assert report.fetched == tuple(packages)


def test_a_suite_without_mirrors_is_an_input_error(
    multi_suite: MultiSuiteArchive, cache: DebCache
) -> None:
    with pytest.raises(InputError, match="no mirror to fetch suite 'bookworm-security' from"):
        fetch_packages(
            multi_packages(multi_suite),
            {"bookworm": [multi_suite.main.mirror]},
            cache,
            quick_fetcher(),
        )
    assert cache_files(cache) == []


def test_failure_names_the_failing_suites_mirrors(
    multi_suite: MultiSuiteArchive, cache: DebCache
) -> None:
    down = closed_port_url()
    mirrors = {"bookworm": [multi_suite.main.mirror], "bookworm-security": [down]}
    with pytest.raises(FetchError) as caught:
        fetch_packages(multi_packages(multi_suite), mirrors, cache, quick_fetcher(), rounds=1)
    message = caught.value.message
    assert message.startswith(
        f"1 of 3 package(s) could not be fetched (mirrors tried in order: bookworm-security: {down})"
    )
    assert "libc6 2.36-9+deb12u4" in message


def test_command_locks_and_fetches_over_several_suites(
    multi_suite: MultiSuiteArchive,
    recipe_factory: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = recipe_factory(packages=["booth"], updates=["bookworm-updates", "bookworm-security"])
    mirrors = [
        "--mirror",
        multi_suite.main.mirror,
        "--mirror",
        f"bookworm-security={multi_suite.security.mirror}",
    ]
    assert main(["lock", str(recipe), *mirrors]) == 0
    lock = read_lock(recipe.with_name("testbooth.lock.json"))
    cache_dir = tmp_path / "c"
    assert main(["fetch", str(recipe), *mirrors, "--cache-dir", str(cache_dir), "--quiet"]) == 0
    assert_all_cached(DebCache(cache_dir / "debs"), lock.packages)
    # Without the security mirror nothing serves libc6's security update.
    other = tmp_path / "c2"
    code = main(
        ["fetch", str(recipe), "--mirror", multi_suite.main.mirror, "--cache-dir", str(other)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "libc6 2.36-9+deb12u4 (amd64): could not be fetched" in err
