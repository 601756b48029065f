"""Recipe -> Lock: verify the archive index, resolve both package sets, pin every .deb."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .archive import ArchiveIndex, PackageRecord, load_index
from .errors import ValidationErrors
from .fetcher import Fetcher
from .lockfile import ArchiveInfo, Lock, LockedPackage
from .recipe import Recipe
from .resolver import PackageUniverse, Resolution, Root, resolve


@dataclass(frozen=True)
class LockResult:
    """A new lock and the verified index it came from (for the caller's summary)."""

    lock: Lock
    index: ArchiveIndex


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (for messages)."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def rootfs_roots(recipe: Recipe, universe: PackageUniverse) -> list[Root]:
    """What mmdebstrap installs: Essential: yes packages (variant essential) + recipe.packages."""
    shown = shown_path(recipe.path)
    roots: list[Root] = []
    if recipe.rootfs.variant == "essential":
        roots.extend(Root(name, "Essential: yes") for name in universe.essential())
    roots.extend(
        Root(name, f"{shown}: packages[{index}]") for index, name in enumerate(recipe.packages)
    )
    return roots


def boot_roots(recipe: Recipe) -> list[Root]:
    """What the boot steps extract: the kernel and recipe.boot.packages."""
    shown = shown_path(recipe.path)
    roots = [Root(recipe.kernel, f"{shown}: kernel")]
    roots.extend(
        Root(name, f"{shown}: boot.packages[{index}]")
        for index, name in enumerate(recipe.boot.packages)
    )
    return roots


def resolve_sets(recipe: Recipe, index: ArchiveIndex) -> tuple[LockedPackage, ...]:
    """Both package sets as locked packages sorted by (name, architecture).

    The boot set prefers packages the rootfs set already chose, so a package in
    both has one version and `sets == ("boot", "rootfs")`. Every problem of both
    sets is raised at once (`ValidationErrors`).
    """
    universe = PackageUniverse(index.packages, index.architecture)
    problems: list[str] = []
    rootfs = Resolution()
    try:
        rootfs = resolve(universe, rootfs_roots(recipe, universe))
    except ValidationErrors as exc:
        problems.extend(exc.problems)
    boot = Resolution()
    try:
        boot = resolve(universe, boot_roots(recipe), prefer=rootfs.chosen)
    except ValidationErrors as exc:
        problems.extend(exc.problems)
    if problems:
        raise ValidationErrors(list(dict.fromkeys(problems)))

    members: dict[str, tuple[PackageRecord, list[str]]] = {}
    for set_name, resolution in (("boot", boot), ("rootfs", rootfs)):
        for record in resolution.chosen.values():
            entry = members.setdefault(record.name, (record, []))
            if entry[0] is not record:
                problems.append(
                    f"{record.name}: the boot set needs {record.version} but the rootfs set "
                    f"has {entry[0].version}"
                )
            entry[1].append(set_name)
    if problems:
        raise ValidationErrors(problems)
    locked = [
        LockedPackage(
            name=record.name,
            version=record.version,
            architecture=record.architecture,
            size=record.size,
            sha256=record.sha256,
            filename=record.filename,
            sets=tuple(sorted(sets)),
        )
        for record, sets in members.values()
    ]
    return tuple(sorted(locked, key=lambda p: (p.name, p.architecture)))


def lock_recipe(
    recipe: Recipe,
    fetcher: Fetcher,
    mirrors: Sequence[str],
    report: Callable[[str], None] | None = None,
) -> LockResult:
    """Verify the recipe's archive index (first working mirror) and build its Lock.

    Pure apart from fetching: the same recipe and archive snapshot give an equal Lock
    whichever mirror served it. `archive.suite` is the recipe's suite (the `dists/`
    directory that was verified); `source_date_epoch` is the recipe's, else the
    Release Date. `report` gets progress lines for the user.
    """
    dist = recipe.distribution
    index = load_index(
        fetcher, mirrors, dist.suite, dist.architecture, dist.components, dist.keyring, report
    )
    packages = resolve_sets(recipe, index)
    release = index.release
    archive = ArchiveInfo(
        suite=dist.suite,
        codename=release.codename,
        date=release.date,
        inrelease_sha256=release.inrelease_sha256,
        signing_key=release.signing_key,
        architecture=dist.architecture,
        components=dist.components,
    )
    epoch = recipe.source_date_epoch
    lock = Lock(
        recipe_name=recipe.name,
        package_set_digest=recipe.package_set_digest(),
        archive=archive,
        source_date_epoch=epoch if epoch is not None else release.date_epoch,
        packages=packages,
    )
    return LockResult(lock, index)
