"""Real builds of recipes/hello.yaml sharing one step cache (slow): what reruns after a
change, and a corrupted cache entry rebuilt rather than used.

The cache is the test's own, in its temporary directory: it corrupts an entry on
purpose, which must never happen to the user's cache (it once did) nor to the
session's cache that other tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from user_files import seed_debs

from builder.build.image import BuildResult, build_image
from builder.source.recipe import load_recipe

PROJECT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _project_copy(into: Path) -> Path:
    (into / "recipes").mkdir(parents=True)
    for name in ("hello.yaml", "hello.lock.json"):
        shutil.copy2(PROJECT / "recipes" / name, into / "recipes" / name)
    shutil.copytree(PROJECT / "overlays" / "hello", into / "overlays" / "hello")
    return into / "recipes" / "hello.yaml"


def _build(recipe: Path, out: Path, cache: Path) -> BuildResult:
    return build_image(load_recipe(recipe), out, cache, report=lambda line: None)


def _rebuilt(result: BuildResult) -> set[str]:
    return {name for name, run in result.steps.items() if not run.cached}


def test_cache_hits_misses_and_corruption(
    tmp_path: Path, hello_boot_debs: object, boothkey_cache: Path
) -> None:
    recipe = _project_copy(tmp_path / "project")
    cache = tmp_path / "cache"
    seed_debs(recipe.with_name("hello.lock.json"), [boothkey_cache], cache)
    first = _build(recipe, tmp_path / "out1", cache)
    unchanged = _build(recipe, tmp_path / "out2", cache)
    assert _rebuilt(unchanged) == set()
    assert unchanged.manifest_data["image"] == first.manifest_data["image"]
    assert (tmp_path / "out2" / "hello.img").read_bytes() == (
        tmp_path / "out1" / "hello.img"
    ).read_bytes()

    init = next((tmp_path / "project" / "overlays" / "hello").rglob("*.j2"))
    init.write_text(init.read_text() + "# one overlay file changed\n")
    edited = _build(recipe, tmp_path / "out3", cache)
    assert _rebuilt(edited) == {"overlay", "rootimage", "verity", "uki", "esp", "disk"}
    assert edited.manifest_data["image"]["sha256"] != first.manifest_data["image"]["sha256"]

    rootfs = edited.steps["rootfs"].output.path
    busybox = rootfs / "tree" / "usr" / "bin" / "busybox"
    busybox.write_bytes(busybox.read_bytes() + b"tampered")
    repaired = _build(recipe, tmp_path / "out4", cache)
    assert "rootfs" in _rebuilt(repaired)
    assert repaired.manifest_data["image"] == edited.manifest_data["image"]
