"""The rootfs step: mmdebstrap from exactly the locked .debs.

The offline tests use small .debs from archive_factory with the "extract"
variant (no maintainer scripts, so fake packages install fine); the slow ones
lock real bookworm packages from the machine's mirror and install them.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from archive_factory import FIXED_EPOCH, FakeDeb, make_deb
from step_factory import host_tools_output, locked_fake, make_context, options_of, run_step

from builder.build.steps.base import BuildContext, StepOutput
from builder.build.steps.overlay import OverlayStep
from builder.build.steps.rootfs import (
    RootfsStep,
    check_merged_usr,
    compare_with_lock,
    installed_packages,
)
from builder.core import tools
from builder.core.errors import BuildError
from builder.core.treedigest import tree_digest, tree_listing
from builder.source.archive import ArchiveIndex, load_index
from builder.source.debcache import DebCache
from builder.source.fetch import fetch_packages
from builder.source.http import RequestsFetcher
from builder.source.lockfile import LockedPackage
from builder.source.mirrors import default_mirrors
from builder.source.recipe import DEFAULT_KEYRING, Recipe, load_recipe
from builder.source.resolver import PackageUniverse, Root, resolve

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root needs root")


def write_recipe(directory: Path, packages: Iterable[str], variant: str = "extract") -> Recipe:
    recipes = directory / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"  - {name}\n" for name in packages)
    path = recipes / "rootfstest.yaml"
    path.write_text(
        "name: rootfstest\n"
        'version: "1.0"\n'
        "distribution:\n  suite: bookworm\n"
        f"packages:\n{lines}"
        f"rootfs:\n  variant: {variant}\n"
    )
    return load_recipe(path)


@pytest.fixture(scope="module")
def small_debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FakeDeb]:
    directory = tmp_path_factory.mktemp("rootfs-debs")
    debs = [
        make_deb(
            directory,
            "tool",
            "1:2.0-1",
            depends="libtool1",
            files={"/bin/tool": b"#!/bin/sh\necho tool\n", "/etc/tool.conf": b"x=1\n"},
        ),
        make_deb(directory, "libtool1", "2.0-1", files={"/lib/libtool.so.1": b"\x7fELF fake"}),
        make_deb(directory, "unrelated", "1.0", arch="all", files={"/usr/share/u": b"u\n"}),
    ]
    return {deb.name: deb for deb in debs}


def run_rootfs(ctx: BuildContext, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True)
    tools = host_tools_output(out.with_name(out.name + "-tools"))
    return run_step(RootfsStep(), ctx, {"tools": tools}, out)


@needs_root
def test_extract_installs_exactly_the_lock_merged_usr_and_clean(
    tmp_path: Path, small_debs: dict[str, FakeDeb]
) -> None:
    recipe = write_recipe(tmp_path / "project", ["tool"])
    debs = {locked_fake(small_debs[n]): small_debs[n].path for n in ("tool", "libtool1")}
    ctx = make_context(recipe, debs, tmp_path / "scratch")

    info = run_rootfs(ctx, tmp_path / "out")

    tree = tmp_path / "out" / "tree"
    assert info == {
        "packages": [
            {"name": "libtool1", "version": "2.0-1", "architecture": "amd64"},
            {"name": "tool", "version": "1:2.0-1", "architecture": "amd64"},
        ]
    }
    # Package files under /bin and /lib land in /usr through the merged-/usr links.
    assert (tree / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho tool\n"
    assert (tree / "usr/lib/libtool.so.1").is_file()
    check_merged_usr(tree)
    for host_file in (
        "etc/hostname",
        "etc/resolv.conf",
        "etc/apt/sources.list",
        "etc/apt/apt.conf.d/99mmdebstrap",
    ):
        assert not (tree / host_file).exists(), host_file
    assert not list((tree / "var/cache/apt").rglob("*.deb"))
    assert not list((tree / "var/cache/apt").glob("*.bin"))
    # Nothing points back at the build; every time is clamped.
    for entry in tree_listing(tree, mtimes=True):
        assert entry["mtime"] <= FIXED_EPOCH, entry["path"]
    scratch_bytes = str(tmp_path).encode()
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert scratch_bytes not in path.read_bytes(), path


@needs_root
def test_two_runs_in_different_directories_give_identical_trees(
    tmp_path: Path, small_debs: dict[str, FakeDeb]
) -> None:
    recipe = write_recipe(tmp_path / "project", ["tool"])
    debs = {locked_fake(small_debs[n]): small_debs[n].path for n in ("tool", "libtool1")}
    # One build directory everyone may enter, one private (umask 077): apt's
    # sandbox user reaches only the first, which must not change owners in the tree.
    with tempfile.TemporaryDirectory(prefix="boothkey-test-", dir="/tmp") as public_dir:
        public = Path(public_dir)
        public.chmod(0o755)
        (tmp_path / "private").mkdir(mode=0o700)
        first = make_context(recipe, debs, public / "scratch")
        second = make_context(recipe, debs, tmp_path / "private" / "b" / "scratch")

        run_rootfs(first, public / "out")
        run_rootfs(second, tmp_path / "private" / "b" / "out")

        one = public / "out" / "tree"
        two = tmp_path / "private" / "b" / "out" / "tree"
        assert tree_listing(one, mtimes=True) == tree_listing(two, mtimes=True)
        assert tree_digest(one) == tree_digest(two)


@needs_root
def test_locked_package_that_is_not_installed_fails_naming_it(
    tmp_path: Path, small_debs: dict[str, FakeDeb]
) -> None:
    recipe = write_recipe(tmp_path / "project", ["tool"])
    debs = {
        locked_fake(small_debs[n]): small_debs[n].path for n in ("tool", "libtool1", "unrelated")
    }
    ctx = make_context(recipe, debs, tmp_path / "scratch")

    with pytest.raises(BuildError) as caught:
        run_rootfs(ctx, tmp_path / "out")

    assert "locked but not installed: unrelated 1.0 (all)" in caught.value.message
    assert "installed but not locked" not in caught.value.message


@needs_root
def test_missing_dependency_in_the_lock_fails_in_mmdebstrap(
    tmp_path: Path, small_debs: dict[str, FakeDeb]
) -> None:
    recipe = write_recipe(tmp_path / "project", ["tool"])
    debs = {locked_fake(small_debs["tool"]): small_debs["tool"].path}  # libtool1 not locked
    ctx = make_context(recipe, debs, tmp_path / "scratch")

    with pytest.raises(BuildError) as caught:
        run_rootfs(ctx, tmp_path / "out")

    assert "tool : Depends: libtool1 but it is not installable" in caught.value.message


def test_compare_with_lock_names_both_directions() -> None:
    locked_set = {("a", "1", "amd64"), ("b", "2", "all")}
    compare_with_lock(set(locked_set), locked_set)

    with pytest.raises(BuildError) as caught:
        compare_with_lock({("a", "1", "amd64"), ("c", "3", "amd64")}, locked_set)

    message = caught.value.message
    assert "installed but not locked: c 3 (amd64)" in message
    assert "locked but not installed: b 2 (all)" in message


def test_a_different_version_counts_both_ways() -> None:
    with pytest.raises(BuildError) as caught:
        compare_with_lock({("a", "1.1", "amd64")}, {("a", "1", "amd64")})
    assert "installed but not locked: a 1.1 (amd64)" in caught.value.message
    assert "locked but not installed: a 1 (amd64)" in caught.value.message


def test_installed_packages_reads_only_installed_entries(tmp_path: Path) -> None:
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"
        "Description: x\n continued: not a field\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2\n"
    )
    assert installed_packages(tmp_path) == {("a", "1", "amd64")}


def test_merged_usr_check(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    for name in ("bin", "sbin", "lib"):
        os.symlink(f"usr/{name}", tmp_path / name)
    check_merged_usr(tmp_path)  # lib64 may be absent

    (tmp_path / "lib64").mkdir()
    with pytest.raises(BuildError, match="/lib64 is not a symlink"):
        check_merged_usr(tmp_path)


def test_options_name_every_locked_deb_by_digest(
    tmp_path: Path, small_debs: dict[str, FakeDeb]
) -> None:
    recipe = write_recipe(tmp_path / "project", ["tool"])
    tool = locked_fake(small_debs["tool"])
    lib = locked_fake(small_debs["libtool1"])
    ctx = make_context(recipe, {tool: Path(), lib: Path()}, tmp_path / "s")
    other_lib = dataclasses.replace(lib, sha256="f" * 64)
    changed = make_context(recipe, {tool: Path(), other_lib: Path()}, tmp_path / "s")

    options = options_of(RootfsStep(), ctx, {})

    assert options["variant"] == "extract"
    assert options["include"] == ["tool"]
    assert [p["name"] for p in options["packages"]] == ["libtool1", "tool"]
    assert options != options_of(RootfsStep(), changed, {})
    assert str(tmp_path) not in repr(options)


@pytest.fixture(scope="module")
def real_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArchiveIndex, DebCache]:
    """The machine's bookworm archive (verified index) and a private .deb cache."""
    mirrors = default_mirrors("bookworm")
    index = load_index(RequestsFetcher(), mirrors, "bookworm", "amd64", ["main"], DEFAULT_KEYRING)
    return index, DebCache(tmp_path_factory.mktemp("real-debs"))


def lock_real(
    archive: tuple[ArchiveIndex, DebCache], roots: Iterable[str]
) -> dict[LockedPackage, Path]:
    """Resolve `roots` in the real archive, fetch them verified; {locked package: .deb}."""
    index, cache = archive
    universe = PackageUniverse(index.packages)
    resolution = resolve(universe, [Root(name, "test") for name in roots])
    packages = [
        LockedPackage(r.name, r.version, r.architecture, r.size, r.sha256, r.filename, ("rootfs",))
        for r in resolution.packages()
    ]
    fetch_packages(packages, [index.mirror], cache, RequestsFetcher())
    return {package: cache.verified_path(package) for package in packages}


@pytest.mark.slow
@needs_root
def test_real_busybox_static_extract_twice_gives_identical_trees(
    tmp_path: Path, real_archive: tuple[ArchiveIndex, DebCache]
) -> None:
    debs = lock_real(real_archive, ["busybox-static"])
    recipe = write_recipe(tmp_path / "project", ["busybox-static"], variant="extract")
    first = make_context(recipe, debs, tmp_path / "one" / "scratch")
    second = make_context(recipe, debs, tmp_path / "two" / "deeper" / "scratch")

    info = run_rootfs(first, tmp_path / "one" / "out")
    run_rootfs(second, tmp_path / "two" / "deeper" / "out")

    one = tmp_path / "one" / "out" / "tree"
    two = tmp_path / "two" / "deeper" / "out" / "tree"
    assert [p["name"] for p in info["packages"]] == ["busybox-static"]
    assert (one / "usr/bin/busybox").is_file()
    assert tree_listing(one, mtimes=True) == tree_listing(two, mtimes=True)


@pytest.mark.slow
@needs_root
def test_real_essential_variant_is_exact_and_independent_of_time_zone_and_directory(
    tmp_path: Path, real_archive: tuple[ArchiveIndex, DebCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _cache = real_archive
    essential = PackageUniverse(index.packages).essential()
    debs = lock_real(real_archive, [*essential, "busybox-static"])
    recipe = write_recipe(tmp_path / "project", ["busybox-static"], variant="essential")
    (tmp_path / "two").mkdir(mode=0o700)
    first = make_context(recipe, debs, tmp_path / "one" / "scratch")
    second = make_context(recipe, debs, tmp_path / "two" / "scratch")

    info = run_rootfs(first, tmp_path / "one" / "rootfs")
    # The second build runs its tools a year later, in another time zone.
    monkeypatch.setitem(tools.BASE_ENV, "LD_PRELOAD", tools.LIBFAKETIME)
    monkeypatch.setitem(tools.BASE_ENV, "FAKETIME", "@2027-03-01 10:00:00")
    monkeypatch.setitem(tools.BASE_ENV, "FAKETIME_DONT_FAKE_MONOTONIC", "1")
    monkeypatch.setitem(tools.BASE_ENV, "TZ", "Asia/Tokyo")
    assert b"2027" in tools.run_tool(["date"]).stdout
    run_rootfs(second, tmp_path / "two" / "rootfs")

    one = tmp_path / "one" / "rootfs" / "tree"
    two = tmp_path / "two" / "rootfs" / "tree"
    names = {p["name"] for p in info["packages"]}
    assert names == {p.name for p in debs}
    assert {"base-files", "dpkg", "busybox-static"} <= names
    check_merged_usr(one)
    # ld.so.cache and dpkg's database included: the whole tree is the same, byte for byte.
    assert tree_listing(one, mtimes=True) == tree_listing(two, mtimes=True)

    # And after normalisation (which also checks no build path is left in any file).
    for base in (tmp_path / "one", tmp_path / "two"):
        (base / "overlay").mkdir()
        rootfs = StepOutput("rootfs", "0" * 64, base / "rootfs", info, "")
        tools_tree = host_tools_output(base / "tools")
        run_step(OverlayStep(), first, {"rootfs": rootfs, "tools": tools_tree}, base / "overlay")
    normal = tmp_path / "one" / "overlay" / "tree"
    assert tree_listing(normal, mtimes=True) == tree_listing(
        tmp_path / "two" / "overlay" / "tree", mtimes=True
    )
    assert (normal / "etc/hostname").read_text() == "booth\n"
    assert not list((normal / "var/log").rglob("*.log"))
