"""A local, flat apt repository holding exactly the locked .debs, and nothing else.

mmdebstrap installs the root filesystem from this repository, so apt's
resolver can only ever pick a locked package at its locked version: anything
the lock does not name is simply not there. The repository is unsigned; it is
built from .debs whose sha256 was already verified against the lock, and apt
is told to trust it (`[trusted=yes]`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.core.canonical import sha256_bytes, sha256_file
from builder.core.errors import InputError
from builder.core.fsutil import write_atomic
from builder.formats.debarchive import parse_control, read_control_file
from builder.source.lockfile import LockedPackage

# Fields apt needs from the control paragraph; missing ones mean a broken .deb.
_REQUIRED_FIELDS = ("Package", "Version", "Architecture")


@dataclass(frozen=True)
class LocalRepo:
    """A flat repository directory: the .debs, `Packages` and an unsigned `Release`."""

    root: Path

    @property
    def source_line(self) -> str:
        """The one-line apt source for this repository (flat, trusted, no signature)."""
        return f"deb [trusted=yes] file://{self.root} ./"


def make_local_repo(
    packages: Iterable[LockedPackage],
    deb_path: Callable[[LockedPackage], Path],
    root: Path,
    *,
    suite: str,
    codename: str,
) -> LocalRepo:
    """Build a flat repository at `root` (created; must not exist or be empty).

    Each package's .deb comes from `deb_path` (which verifies it); its control
    paragraph must name the locked package, version and architecture, or an
    `InputError` names the mismatch. `suite` and `codename` go into `Release`:
    mmdebstrap picks the Essential:yes set of the archive whose suite or
    codename is the one it is asked to bootstrap. The `Packages` index lists the packages
    sorted by name, so the same lock always gives the same index bytes.
    """
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root}: local repository directory is not empty")
    paragraphs: list[bytes] = []
    for package in sorted(packages, key=lambda p: (p.name, p.architecture)):
        source = deb_path(package)
        filename = f"{package.name}_{_epochless(package.version)}_{package.architecture}.deb"
        target = root / filename
        _link_or_copy(source, target)
        control = _control_paragraph(target)
        _check_control(control, package, target)
        paragraphs.append(
            control.rstrip(b"\n")
            + b"\n"
            + f"Filename: ./{filename}\n"
            f"Size: {target.stat().st_size}\n"
            f"SHA256: {sha256_file(target)}\n".encode()
        )
    index = b"\n".join(paragraphs)
    write_atomic(root / "Packages", index)
    # A Release file keeps apt from treating the repository as "no Release at all",
    # which current apt refuses even for trusted sources. No Date: it must not vary.
    release = (
        "Origin: boothkey\n"
        "Label: boothkey-lock\n"
        f"Suite: {suite}\n"
        f"Codename: {codename}\n"
        "Architectures: all amd64\n"
        "SHA256:\n"
        f" {sha256_bytes(index)} {len(index)} Packages\n"
    )
    write_atomic(root / "Release", release.encode())
    return LocalRepo(root)


def _epochless(version: str) -> str:
    # ':' in file names upsets some tools; Debian's pool names drop the epoch too.
    return version.split(":", 1)[1] if ":" in version else version


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _control_paragraph(deb: Path) -> bytes:
    # The control file's own bytes (what `dpkg-deb --field` prints), so the index
    # carries each package's paragraph unchanged.
    text = read_control_file(deb)
    if not text.strip():
        raise InputError(f"{deb}: has an empty control file")
    return text


def _check_control(control: bytes, package: LockedPackage, deb: Path) -> None:
    fields = parse_control(control, str(deb))
    expected = {
        "Package": package.name,
        "Version": package.version,
        "Architecture": package.architecture,
    }
    for key in _REQUIRED_FIELDS:
        if fields.get(key) != expected[key]:
            raise InputError(
                f"package {package.name}: the .deb says {key}: {fields.get(key)!r} "
                f"but the lock says {expected[key]!r}"
            )
