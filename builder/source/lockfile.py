"""The lock file: exactly which bytes go into an image.

`recipes/NAME.lock.json` pins the archive snapshot of every suite the recipe
names (the base suite and its update suites: suite, date, InRelease digest,
signing key) and every package by name, version, architecture, size, sha256,
pool path and the suite it came from. It is pretty-printed with sorted keys
(archives sorted by suite) so a re-lock of an unchanged recipe against an
unchanged archive is byte-identical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.core.canonical import pretty_json, sha256_json
from builder.core.errors import InputError, ValidationErrors
from builder.core.fsutil import write_atomic
from builder.core.jsonfields import FieldReader, read_json_file
from builder.source.recipe import Recipe
from builder.source.toolset import TOOL_PACKAGES, TOOLS_SET

# 2: one archive per suite ("archives", "base_suite") and a "suite" per package.
LOCK_FORMAT = 2
# Which part of the build a package is for: installed into the root filesystem,
# extracted by the boot steps (kernel, UKI stub, initrd tools), or unpacked into
# the tools tree every byte-producing program runs from (builder/source/toolset.py).
PACKAGE_SETS = ("rootfs", "boot", TOOLS_SET)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    architecture: str
    size: int
    sha256: str
    filename: str  # pool path relative to the mirror root, e.g. pool/main/b/bash/bash_5.2_amd64.deb
    sets: tuple[str, ...]  # subset of PACKAGE_SETS
    suite: str = ""  # the suite (`dists/` directory) whose signed index pinned it

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "size": self.size,
            "sha256": self.sha256,
            "filename": self.filename,
            "sets": list(self.sets),
            "suite": self.suite,
        }


@dataclass(frozen=True)
class ArchiveInfo:
    """One verified suite: `suite` is the `dists/` directory that was read."""

    suite: str
    codename: str
    date: str  # the Release file's Date field, as written there
    inrelease_sha256: str
    signing_key: str  # fingerprint of the key that made the InRelease signature
    architecture: str
    components: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "codename": self.codename,
            "date": self.date,
            "inrelease_sha256": self.inrelease_sha256,
            "signing_key": self.signing_key,
            "architecture": self.architecture,
            "components": list(self.components),
        }


@dataclass(frozen=True)
class Lock:
    """A lock: `archive` is the recipe's base suite (the one mmdebstrap installs from),
    `updates` the update suites' archives (sorted by suite). A package given without
    a suite is written as coming from the base suite."""

    recipe_name: str
    package_set_digest: str
    archive: ArchiveInfo
    source_date_epoch: int
    packages: tuple[LockedPackage, ...]  # sorted by (name, architecture)
    updates: tuple[ArchiveInfo, ...] = ()

    @property
    def archives(self) -> tuple[ArchiveInfo, ...]:
        """Every suite's archive, sorted by suite (as the lock file lists them)."""
        return tuple(sorted((self.archive, *self.updates), key=lambda a: a.suite))

    @property
    def suites(self) -> tuple[str, ...]:
        """The base suite, then the update suites."""
        return (self.archive.suite, *(a.suite for a in self.updates))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": LOCK_FORMAT,
            "recipe": {"name": self.recipe_name, "package_set_digest": self.package_set_digest},
            "base_suite": self.archive.suite,
            "archives": [a.to_json() for a in self.archives],
            "source_date_epoch": self.source_date_epoch,
            "packages": [
                {**p.to_json(), "suite": p.suite or self.archive.suite} for p in self.packages
            ],
        }

    def to_bytes(self) -> bytes:
        return pretty_json(self.to_json())

    def digest(self) -> str:
        """sha256 of the canonical form; the manifest records it."""
        return sha256_json(self.to_json())

    def in_set(self, name: str) -> tuple[LockedPackage, ...]:
        return tuple(p for p in self.packages if name in p.sets)

    def package(self, name: str) -> LockedPackage:
        for candidate in self.packages:
            if candidate.name == name:
                return candidate
        raise InputError(f"package {name!r} is not in the lock")

    def check_matches(self, recipe: Recipe, lock_path: Path) -> None:
        """Refuse a lock written for another recipe or another package set."""
        if self.recipe_name != recipe.name:
            raise InputError(
                f"{lock_path}: written for recipe {self.recipe_name!r}, not {recipe.name!r}"
            )
        if self.package_set_digest != recipe.package_set_digest():
            raise InputError(
                f"{lock_path}: does not match {recipe.path.name} any more (the distribution, "
                f"packages, kernel, boot packages or rootfs variant changed since it was locked); "
                f"run `build.py lock {recipe.path}` again"
            )


def check_tools(lock: Lock, recipe: Recipe) -> None:
    """Refuse to build from a lock whose tools set lacks a tool this boothkey runs."""
    tools = {p.name for p in lock.in_set(TOOLS_SET)}
    missing = [name for name in TOOL_PACKAGES if name not in tools]
    if missing:
        raise InputError(
            f"{recipe.lock_path}: the tools set lacks {', '.join(missing)} (this boothkey "
            f"builds with tools from the lock); run `build.py lock {recipe.path}` again"
        )


def write_lock(lock: Lock, path: Path) -> None:
    write_atomic(path, lock.to_bytes())


def read_lock(path: Path) -> Lock:
    """Read and validate a lock file; every problem is named with its path."""
    raw = read_json_file(path, "lock file", "; run `build.py lock` on the recipe first")
    return parse_lock(raw, str(path))


def parse_lock(raw: Any, shown: str) -> Lock:
    fields = FieldReader(shown)
    need = fields.field

    if not isinstance(raw, dict):
        raise InputError(f"{shown}: a lock file is a JSON object")
    if raw.get("format") != LOCK_FORMAT:
        hint = (
            "; it predates update suites (distribution.updates): run `build.py lock` on "
            "the recipe again"
            if raw.get("format") == 1
            else ""
        )
        raise InputError(f"{shown}: lock format {raw.get('format')!r} is not {LOCK_FORMAT}{hint}")
    recipe = need(raw, "recipe", dict, "recipe") or {}
    base_suite = need(raw, "base_suite", str, "base_suite") or ""
    archives: dict[str, ArchiveInfo] = {}
    for position, archive_raw in enumerate(need(raw, "archives", list, "archives") or []):
        where = f"archives[{position}]"
        archive = ArchiveInfo(
            suite=need(archive_raw, "suite", str, f"{where}.suite") or "",
            codename=need(archive_raw, "codename", str, f"{where}.codename") or "",
            date=need(archive_raw, "date", str, f"{where}.date") or "",
            inrelease_sha256=need(archive_raw, "inrelease_sha256", str, f"{where}.inrelease_sha256")
            or "",
            signing_key=need(archive_raw, "signing_key", str, f"{where}.signing_key") or "",
            architecture=need(archive_raw, "architecture", str, f"{where}.architecture") or "",
            components=tuple(need(archive_raw, "components", list, f"{where}.components") or ()),
        )
        if archive.suite in archives:
            fields.error(f"{where}.suite", f"{archive.suite!r} is listed twice")
        archives[archive.suite] = archive
    if base_suite and base_suite not in archives:
        fields.error("base_suite", f"{base_suite!r} is not one of the archives")
    packages: list[LockedPackage] = []
    for index, entry in enumerate(need(raw, "packages", list, "packages") or []):
        where = f"packages[{index}]"
        sha = need(entry, "sha256", str, f"{where}.sha256") or ""
        if sha and not _SHA256_RE.match(sha):
            fields.error(f"{where}.sha256", "not a sha256 hex digest")
        sets = tuple(need(entry, "sets", list, f"{where}.sets") or ())
        for member in sets:
            if member not in PACKAGE_SETS:
                fields.error(f"{where}.sets", f"unknown set {member!r}")
        suite = need(entry, "suite", str, f"{where}.suite")
        if suite is not None and suite not in archives:
            fields.error(f"{where}.suite", f"{suite!r} is not one of the archives")
        filename = need(entry, "filename", str, f"{where}.filename") or ""
        if filename.startswith("/") or ".." in filename.split("/"):
            fields.error(f"{where}.filename", f"{filename!r} is not a relative pool path")
        packages.append(
            LockedPackage(
                name=need(entry, "name", str, f"{where}.name") or "",
                version=need(entry, "version", str, f"{where}.version") or "",
                architecture=need(entry, "architecture", str, f"{where}.architecture") or "",
                size=need(entry, "size", int, f"{where}.size") or 0,
                sha256=sha,
                filename=filename,
                sets=sets,
                suite=suite or "",
            )
        )
    epoch = need(raw, "source_date_epoch", int, "source_date_epoch") or 0
    recipe_name = need(recipe, "name", str, "recipe.name") or ""
    digest = need(recipe, "package_set_digest", str, "recipe.package_set_digest") or ""
    if fields.problems:
        raise ValidationErrors(fields.problems)
    return Lock(
        recipe_name=recipe_name,
        package_set_digest=digest,
        archive=archives[base_suite],
        source_date_epoch=epoch,
        packages=tuple(packages),
        updates=tuple(a for name, a in sorted(archives.items()) if name != base_suite),
    )


def load_lock_for(recipe: Recipe) -> Lock:
    """The recipe's lock, checked to still match the recipe."""
    lock = read_lock(recipe.lock_path)
    lock.check_matches(recipe, recipe.lock_path)
    return lock
