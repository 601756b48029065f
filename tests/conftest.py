"""Shared fixtures: throwaway gpg keys, a signed test archive served on 127.0.0.1."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from archive_factory import (
    Archive,
    FakeDeb,
    GpgKey,
    HttpServer,
    ServedArchive,
    make_archive,
    make_gpg_key,
    standard_universe,
    write_recipe,
)


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
