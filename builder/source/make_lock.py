"""Recipe -> Lock: verify each suite's archive index, resolve both package sets, pin every .deb."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import FetchError, InputError, ValidationErrors
from builder.source.archive import ArchiveIndex, PackageRecord, load_index
from builder.source.http import Fetcher
from builder.source.lockfile import ArchiveInfo, Lock, LockedPackage
from builder.source.recipe import Recipe
from builder.source.resolver import PackageUniverse, Resolution, Root, resolve
from builder.source.toolset import TOOL_PACKAGES, TOOLS_SET


@dataclass(frozen=True)
class LockResult:
    """A new lock and the verified indexes it came from (for the caller's summary):
    one per suite, the base suite first, then the update suites in recipe order."""

    lock: Lock
    indexes: tuple[ArchiveIndex, ...]

    @property
    def index(self) -> ArchiveIndex:
        """The base suite's index."""
        return self.indexes[0]


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


def tools_roots(universe: PackageUniverse) -> list[Root]:
    """What the tools tree unpacks: the Essential set plus `toolset.TOOL_PACKAGES`."""
    roots = [Root(name, "Essential: yes (tools)") for name in universe.essential()]
    roots.extend(Root(name, f"boothkey's build tools: {name}") for name in TOOL_PACKAGES)
    return roots


def merge_indexes(indexes: Sequence[ArchiveIndex]) -> list[PackageRecord]:
    """The packages of every index, as one universe.

    For a name, every suite's versions are candidates and the resolver takes the
    highest that fits (apt's choice with default pins). The same name, version and
    architecture in several suites (a security upload later folded into a point
    release) is kept once, from the first index given, so the choice is stable.
    """
    seen: set[tuple[str, str, str]] = set()
    merged: list[PackageRecord] = []
    for index in indexes:
        for record in index.packages:
            key = (record.name, record.version, record.architecture)
            if key not in seen:
                seen.add(key)
                merged.append(record)
    return merged


def resolve_sets(recipe: Recipe, *indexes: ArchiveIndex) -> tuple[LockedPackage, ...]:
    """The three package sets as locked packages sorted by (name, architecture).

    `indexes` are the base suite's then the update suites' (see `merge_indexes`).
    The boot set prefers packages the rootfs set already chose, and the tools set
    those of both, so a package in several has one version and `sets` names each
    (e.g. `("boot", "rootfs", "tools")`). Every problem of every set is raised at
    once (`ValidationErrors`).
    """
    if not indexes:
        raise ValueError("resolve_sets needs at least one index")
    universe = PackageUniverse(merge_indexes(indexes), indexes[0].architecture)
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
    tools = Resolution()
    try:
        tools = resolve(universe, tools_roots(universe), prefer={**rootfs.chosen, **boot.chosen})
    except ValidationErrors as exc:
        problems.extend(exc.problems)
    if problems:
        raise ValidationErrors(list(dict.fromkeys(problems)))

    members: dict[str, tuple[PackageRecord, list[str]]] = {}
    for set_name, resolution in (("boot", boot), ("rootfs", rootfs), (TOOLS_SET, tools)):
        for record in resolution.chosen.values():
            entry = members.setdefault(record.name, (record, []))
            if entry[0] is not record:
                problems.append(
                    f"{record.name}: the {set_name} set needs {record.version} but the "
                    f"{entry[1][0]} set has {entry[0].version}"
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
            suite=record.suite,
        )
        for record, sets in members.values()
    ]
    return tuple(sorted(locked, key=lambda p: (p.name, p.architecture)))


def lock_recipe(
    recipe: Recipe,
    fetcher: Fetcher,
    mirrors: Sequence[str] | Mapping[str, Sequence[str]],
    report: Callable[[str], None] | None = None,
) -> LockResult:
    """Verify the index of every suite of the recipe (first working mirror each) and
    build its Lock.

    `mirrors` is one list for every suite, or a list per suite (`mirrors_by_suite`).
    Pure apart from fetching: the same recipe and archive snapshots give an equal
    Lock whichever mirrors served them. Each `ArchiveInfo.suite` and
    `LockedPackage.suite` is a suite of the recipe (the `dists/` directory that was
    verified); `source_date_epoch` is the recipe's, else the newest Release Date among the
    suites that supplied a locked package.
    `report` gets progress lines for the user. An update suite whose Release says
    `NotAutomatic: yes` (backports, experimental) is refused: apt would not take
    its newer versions by default, and boothkey's choice would differ from apt's.
    """
    dist = recipe.distribution
    indexes: list[ArchiveIndex] = []
    for suite in dist.suites:
        suite_mirrors = mirrors.get(suite, ()) if isinstance(mirrors, Mapping) else mirrors
        try:
            index = load_index(
                fetcher,
                suite_mirrors,
                suite,
                dist.architecture,
                dist.components,
                dist.keyring,
                report,
            )
        except FetchError as exc:
            # Security updates live on another host than the rest of Debian: say how to
            # point one suite elsewhere.
            raise FetchError(
                f"{exc.message}\n(suite {suite}: to read it from another mirror, pass "
                f"--mirror {suite}=URL)"
            ) from exc
        indexes.append(index)
    automatic = [
        f"{shown_path(recipe.path)}: distribution.updates[{position}]: {suite} is marked "
        "NotAutomatic (apt installs from it only when asked); it cannot be an update suite"
        for position, (suite, index) in enumerate(zip(dist.updates, indexes[1:], strict=True))
        if index.release.not_automatic
    ]
    if automatic:
        raise InputError("\n".join(automatic))
    packages = resolve_sets(recipe, *indexes)
    archives = [
        ArchiveInfo(
            suite=suite,
            codename=index.release.codename,
            date=index.release.date,
            inrelease_sha256=index.release.inrelease_sha256,
            signing_key=index.release.signing_key,
            architecture=dist.architecture,
            components=dist.components,
        )
        for suite, index in zip(dist.suites, indexes, strict=True)
    ]
    epoch = recipe.source_date_epoch
    # Only suites that supplied a package date the content: -updates is re-signed daily
    # with nothing new, and that must not move SOURCE_DATE_EPOCH (and so the image).
    supplying = {package.suite or dist.suite for package in packages}
    newest = max(
        index.release.date_epoch
        for suite, index in zip(dist.suites, indexes, strict=True)
        if suite in supplying
    )
    lock = Lock(
        recipe_name=recipe.name,
        package_set_digest=recipe.package_set_digest(),
        archive=archives[0],
        source_date_epoch=epoch if epoch is not None else newest,
        packages=packages,
        updates=tuple(sorted(archives[1:], key=lambda a: a.suite)),
    )
    return LockResult(lock, tuple(indexes))
