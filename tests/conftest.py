"""Shared fixtures: throwaway gpg keys, a signed test archive served on 127.0.0.1."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
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

from builder.debcache import DebCache
from builder.lockfile import Lock, LockedPackage, read_lock
from builder.paths import deb_cache_dir, default_cache_dir


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
def hello_boot_debs() -> tuple[Lock, Callable[[LockedPackage], Path]]:
    """The committed hello lock and a `deb_path` for its packages: the real locked kernel,
    busybox-static, dmsetup..., fetched and verified into the boothkey cache (network)."""
    project = Path(__file__).resolve().parent.parent
    recipe = project / "recipes" / "hello.yaml"
    subprocess.run(
        [sys.executable, "build.py", "fetch", "--quiet", str(recipe)], cwd=project, check=True
    )
    cache = DebCache(deb_cache_dir(default_cache_dir()))
    return read_lock(project / "recipes" / "hello.lock.json"), cache.verified_path


PROJECT_DIR = Path(__file__).resolve().parent.parent


def _build_committed_recipe(name: str, out: Path) -> tuple[Path, Path]:
    """Fetch (network) and build a committed recipe through the real CLI; return
    (image, manifest). Uses the user's boothkey cache, so repeated runs reuse steps."""
    recipe = PROJECT_DIR / "recipes" / f"{name}.yaml"
    python = sys.executable
    subprocess.run(
        [python, "build.py", "fetch", "--quiet", str(recipe)], cwd=PROJECT_DIR, check=True
    )
    subprocess.run(
        [python, "build.py", "build", "--quiet", "--out", str(out), str(recipe)],
        cwd=PROJECT_DIR,
        check=True,
    )
    return out / f"{name}.img", out / f"{name}.manifest.json"


@pytest.fixture(scope="session")
def built_hello_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """recipes/hello.yaml built once per session: (image, manifest). Treat as read-only."""
    return _build_committed_recipe("hello", tmp_path_factory.mktemp("hello-out"))


@pytest.fixture(scope="session")
def built_booth_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """recipes/booth.yaml built once per session: (image, manifest). Treat as read-only."""
    return _build_committed_recipe("booth", tmp_path_factory.mktemp("booth-out"))
