"""Shared fixtures: throwaway gpg keys, a signed test archive served on 127.0.0.1; the
session's own boothkey cache, and the guard that tests leave the user's files alone.

Tests never write outside their temporary directories. Before anything is
collected, the session points `BOOTHKEY_CACHE` and `XDG_CACHE_HOME` at a
temporary directory (removed at the end), so every boothkey call, in this process
or a subprocess that inherits the environment, uses the session's cache unless a
test names one. The checkout's out/ and the user's caches are listed then, and
compared after the last test: any change fails the session (see tests/user_files.py).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from archive_factory import (
    Archive,
    FakeDeb,
    GpgKey,
    HttpServer,
    MultiSuiteArchive,
    ServedArchive,
    make_archive,
    make_gpg_key,
    make_multi_suite,
    standard_universe,
    write_recipe,
)
from user_files import CHECKOUT, Snapshot, changes, seed_debs, snapshot, user_cache_dirs

from builder.core.paths import deb_cache_dir
from builder.source.debcache import DebCache
from builder.source.lockfile import Lock, LockedPackage, read_lock

_CACHE_VARIABLES = ("BOOTHKEY_CACHE", "XDG_CACHE_HOME")


@dataclass(frozen=True)
class _Isolation:
    session_dir: Path  # holds the session's cache; removed at the end
    user_caches: tuple[Path, ...]  # read only: .debs may be copied from them
    watched: dict[Path, Snapshot]  # the user's files as they were before the session
    saved_environment: dict[str, str | None]


_ISOLATION = pytest.StashKey[_Isolation]()


def pytest_configure(config: pytest.Config) -> None:
    user_caches = tuple(user_cache_dirs(os.environ))
    watched = {path: snapshot(path) for path in (CHECKOUT / "out", *user_caches)}
    session_dir = Path(tempfile.mkdtemp(prefix="boothkey-tests-"))
    saved = {name: os.environ.get(name) for name in _CACHE_VARIABLES}
    os.environ["BOOTHKEY_CACHE"] = str(session_dir / "cache")
    os.environ["XDG_CACHE_HOME"] = str(session_dir / "xdg-cache")
    config.stash[_ISOLATION] = _Isolation(session_dir, user_caches, watched, saved)


def pytest_unconfigure(config: pytest.Config) -> None:
    isolation = config.stash.get(_ISOLATION, None)
    if isolation is None:
        return
    for name, value in isolation.saved_environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _remove_tree(isolation.session_dir)


def _remove_tree(path: Path) -> None:
    left: list[str] = []

    def writable_and_retry(function: Callable[..., object], name: str, _info: object) -> None:
        # Cached trees may hold read-only directories.
        try:
            os.chmod(os.path.dirname(name), 0o700)
            function(name)
        except OSError:
            left.append(name)

    shutil.rmtree(path, onerror=writable_and_retry)
    if left:
        print(f"boothkey tests: could not remove {len(left)} entries of {path}", file=sys.stderr)


@pytest.fixture(scope="session", autouse=True)
def user_files_untouched(pytestconfig: pytest.Config) -> Iterator[None]:
    """Fails the session if a test changed the checkout's out/ or the user's cache."""
    yield
    isolation = pytestconfig.stash[_ISOLATION]
    found = [
        f"{path}/{change}" if ":" in change else f"{path}: {change}"
        for path, before in isolation.watched.items()
        for change in changes(before, snapshot(path))
    ]
    if found:
        shown = "\n  ".join(found[:20]) + ("\n  ..." if len(found) > 20 else "")
        pytest.fail(
            "the tests changed the user's files (only temporary directories are theirs; "
            f"or did something else write there meanwhile?):\n  {shown}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def boothkey_cache(pytestconfig: pytest.Config) -> Path:
    """The session's boothkey cache (`$BOOTHKEY_CACHE` for the session), shared by the
    real builds so that each step runs once per session."""
    return pytestconfig.stash[_ISOLATION].session_dir / "cache"


def seed_session_debs(config: pytest.Config, lock_path: Path) -> None:
    """Copy the lock's .debs the user's caches hold into the session's cache (reading
    the user's cache only), so that `build.py fetch` downloads only what is missing."""
    isolation = config.stash[_ISOLATION]
    seed_debs(lock_path, isolation.user_caches, isolation.session_dir / "cache")


@pytest.fixture(scope="session")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    """The key that signs the test archive."""
    key = make_gpg_key(tmp_path_factory.mktemp("archive-key"))
    yield key
    key.close()


@pytest.fixture(scope="session")
def other_gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    """A second key, trusted by nobody: for wrong-key tests."""
    key = make_gpg_key(tmp_path_factory.mktemp("other-key"), uid="someone else <other@example.org>")
    yield key
    key.close()


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One HTTP server on 127.0.0.1 for the session, serving a fresh directory."""
    server = HttpServer(tmp_path_factory.mktemp("www"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def universe(tmp_path_factory: pytest.TempPathFactory) -> list[FakeDeb]:
    """The standard test packages (see archive_factory.standard_universe)."""
    return standard_universe(tmp_path_factory.mktemp("debs"))


@pytest.fixture(scope="session")
def served_archive(
    http_server: HttpServer, universe: list[FakeDeb], gpg_key: GpgKey
) -> ServedArchive:
    """The standard universe as a signed 'bookworm' archive; do not modify it (see archive_copy)."""
    archive = make_archive(http_server.root / "debian", "bookworm", universe, gpg_key)
    return ServedArchive(archive, http_server.url_for(archive.root))


@pytest.fixture(scope="session")
def multi_suite(
    http_server: HttpServer,
    universe: list[FakeDeb],
    gpg_key: GpgKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> MultiSuiteArchive:
    """bookworm (+ -updates, -backports) and bookworm-security on two served roots; do not
    modify it (see archive_factory.MultiSuiteArchive)."""
    return make_multi_suite(
        http_server.root / "multi",
        universe,
        tmp_path_factory.mktemp("update-debs"),
        gpg_key,
        http_server.url_for,
    )


_copies = itertools.count()


@pytest.fixture
def archive_copy(http_server: HttpServer, served_archive: ServedArchive) -> ServedArchive:
    """A private, served copy of `served_archive` that a test may tamper with."""
    source = served_archive.archive
    root = http_server.root / f"copy-{next(_copies)}"
    shutil.copytree(source.root, root)
    archive = Archive(root, source.suite, source.codename, source.keyring, source.debs)
    return ServedArchive(archive, http_server.url_for(root))


@pytest.fixture
def recipe_factory(tmp_path: Path, gpg_key: GpgKey) -> Callable[..., Path]:
    """`recipe_factory(packages=[...], name=..., variant=..., extra=...)` -> recipe path
    in tmp_path/recipes/, trusting the test archive key."""

    def make(**kwargs: object) -> Path:
        return write_recipe(tmp_path, gpg_key.keyring, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def hello_boot_debs(
    pytestconfig: pytest.Config, boothkey_cache: Path
) -> tuple[Lock, Callable[[LockedPackage], Path]]:
    """The committed hello lock and a `deb_path` for its packages: the real locked kernel,
    busybox-static, dmsetup..., copied from the user's cache or fetched (network) into
    the session's cache, and verified."""
    project = Path(__file__).resolve().parent.parent
    recipe = project / "recipes" / "hello.yaml"
    seed_session_debs(pytestconfig, project / "recipes" / "hello.lock.json")
    subprocess.run(
        [sys.executable, "build.py", "fetch", "--quiet", "--cache-dir", str(boothkey_cache),
         str(recipe)],
        cwd=project,
        check=True,
    )  # fmt: skip
    cache = DebCache(deb_cache_dir(boothkey_cache))
    return read_lock(project / "recipes" / "hello.lock.json"), cache.verified_path


PROJECT_DIR = Path(__file__).resolve().parent.parent


def _build_committed_recipe(config: pytest.Config, name: str, out: Path) -> tuple[Path, Path]:
    """Fetch (the user's cache first, then the network) and build a committed recipe
    through the real CLI into `out`; return (image, manifest). Uses the session's cache,
    so later builds in the session reuse the steps."""
    recipe = PROJECT_DIR / "recipes" / f"{name}.yaml"
    cache = str(config.stash[_ISOLATION].session_dir / "cache")
    seed_session_debs(config, PROJECT_DIR / "recipes" / f"{name}.lock.json")
    python = sys.executable
    subprocess.run(
        [python, "build.py", "fetch", "--quiet", "--cache-dir", cache, str(recipe)],
        cwd=PROJECT_DIR,
        check=True,
    )
    subprocess.run(
        [python, "build.py", "build", "--quiet", "--out", str(out), "--cache-dir", cache,
         str(recipe)],
        cwd=PROJECT_DIR,
        check=True,
    )  # fmt: skip
    return out / f"{name}.img", out / f"{name}.manifest.json"


@pytest.fixture(scope="session")
def built_hello_image(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """recipes/hello.yaml built once per session: (image, manifest). Treat as read-only."""
    return _build_committed_recipe(pytestconfig, "hello", tmp_path_factory.mktemp("hello-out"))


@pytest.fixture(scope="session")
def built_booth_image(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """recipes/booth.yaml built once per session: (image, manifest). Treat as read-only."""
    return _build_committed_recipe(pytestconfig, "booth", tmp_path_factory.mktemp("booth-out"))
