"""The one fake lock of the test suite: archives, locked packages and locks.

Every test that needs a `Lock` or a `LockedPackage` makes it here, so a change to
the lock's format is made once. Packages come either from real .deb files
(`package_of`: their size and sha256) or stand alone (`package`: a sha256 derived
from name and version, for tests that never open the file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from archive_factory import FIXED_EPOCH, FakeDeb

from builder.core.canonical import sha256_file
from builder.source.lockfile import ArchiveInfo, Lock, LockedPackage

ARCHIVE_DATE = "Sat, 10 Jun 2023 08:40:00 UTC"
PACKAGE_SET_DIGEST = "sha256:" + "0" * 64


def archive(
    suite: str = "bookworm",
    *,
    codename: str = "bookworm",
    date: str = ARCHIVE_DATE,
    inrelease_sha256: str = "0" * 64,
    signing_key: str = "F" * 40,
) -> ArchiveInfo:
    """A verified suite of Debian's archive (amd64, main)."""
    return ArchiveInfo(suite, codename, date, inrelease_sha256, signing_key, "amd64", ("main",))


def pool_path(name: str, version: str, architecture: str = "amd64") -> str:
    prefix = name[:4] if name.startswith("lib") else name[:1]
    return f"pool/main/{prefix}/{name}/{name}_{version.split(':')[-1]}_{architecture}.deb"


def package(
    name: str,
    version: str = "1.0",
    *,
    sets: tuple[str, ...] = ("rootfs",),
    architecture: str = "amd64",
    sha256: str | None = None,
    size: int = 1,
    suite: str = "",
) -> LockedPackage:
    """A locked package that no test opens: its sha256 is derived from name and version."""
    return LockedPackage(
        name=name,
        version=version,
        architecture=architecture,
        size=size,
        sha256=sha256 or hashlib.sha256(f"{name} {version}".encode()).hexdigest(),
        filename=pool_path(name, version, architecture),
        sets=sets,
        suite=suite,
    )


def package_of(
    deb: FakeDeb | Path,
    *,
    name: str | None = None,
    version: str | None = None,
    architecture: str = "amd64",
    sets: tuple[str, ...] = ("rootfs",),
    suite: str = "",
    component: str = "main",
) -> LockedPackage:
    """The .deb `deb` as a lock pins it: its real size and sha256 (a FakeDeb: at its
    pool path in a fixture archive's `component`)."""
    if isinstance(deb, FakeDeb):
        name, version, architecture, path = deb.name, deb.version, deb.architecture, deb.path
        filename = deb.pool_path(component)
    else:
        path = deb
        if name is None or version is None:
            raise ValueError("a .deb given by path needs its name and version")
        filename = pool_path(name, version, architecture)
    return LockedPackage(
        name=name,
        version=version,
        architecture=architecture,
        size=path.stat().st_size,
        sha256=sha256_file(path),
        filename=filename,
        sets=sets,
        suite=suite,
    )


def lock(
    packages: Iterable[LockedPackage] = (),
    *,
    recipe_name: str = "demo",
    package_set_digest: str = PACKAGE_SET_DIGEST,
    epoch: int = FIXED_EPOCH,
    base: ArchiveInfo | None = None,
    updates: tuple[ArchiveInfo, ...] = (),
) -> Lock:
    """A lock of `packages` (sorted as a lock file lists them) from `base` (default:
    `archive()`) and the update suites `updates`."""
    return Lock(
        recipe_name=recipe_name,
        package_set_digest=package_set_digest,
        archive=base or archive(),
        source_date_epoch=epoch,
        packages=tuple(sorted(packages, key=lambda p: (p.name, p.architecture))),
        updates=updates,
    )
