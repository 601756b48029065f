"""A small recipe project on disk (recipe, overlay, keyring, two fake locked .debs)
and a manifest naming it: for the source bundle and rebuild tests (offline)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lock_factory import archive, package
from lock_factory import lock as fake_lock
from manifest_factory import manifest

from builder.core.canonical import sha256_file
from builder.source.lockfile import Lock, LockedPackage, write_lock
from builder.source.recipe import Recipe, load_recipe
from builder.source.toolset import TOOL_PACKAGES

EPOCH = 1_700_000_000
RECIPE = """\
name: demo
version: "2.0"
distribution:
  suite: bookworm
  keyring: keys/archive.gpg
kernel: linux-image-amd64
packages: [busybox-static]
overlays: [overlays/demo]
rootfs: {variant: extract}
"""


@dataclass
class Project:
    root: Path
    recipe: Recipe
    lock: Lock
    debs: dict[str, Path]  # sha256 -> file

    def deb_path(self, package: LockedPackage) -> Path:
        return self.debs[package.sha256]


def make_project(root: Path, debs_dir: Path, *, umask: int = 0o022) -> Project:
    """A small recipe project with an overlay (file, executable, symlink, empty dir),
    a keyring inside the project, and fake locked .debs (two for the root, one per tool package)."""
    old = os.umask(umask)
    try:
        (root / "recipes").mkdir(parents=True)
        (root / "keys").mkdir()
        (root / "keys" / "archive.gpg").write_bytes(b"pretend keyring")
        overlay = root / "overlays" / "demo"
        (overlay / "etc").mkdir(parents=True)
        (overlay / "usr" / "bin").mkdir(parents=True)
        (overlay / "var" / "empty").mkdir(parents=True)
        (overlay / "etc" / "motd.j2").write_text("Welcome to {{ recipe.name }}\n")
        (overlay / "usr" / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
        os.chmod(overlay / "usr" / "bin" / "hello", 0o777 & ~umask | 0o100)
        os.symlink("motd", overlay / "etc" / "issue")
        (root / "recipes" / "demo.yaml").write_text(RECIPE)
    finally:
        os.umask(old)
    recipe = load_recipe(root / "recipes" / "demo.yaml")
    debs_dir.mkdir(parents=True, exist_ok=True)
    packages = []
    debs = {}
    for name in ("busybox-static", "libfoo1", *TOOL_PACKAGES):
        content = f"!<arch>\nfake deb {name}\n".encode() * 50
        sha = hashlib.sha256(content).hexdigest()
        path = debs_dir / f"{name}.deb"
        path.write_bytes(content)
        debs[sha] = path
        packages.append(
            package(
                name,
                "1.0-1",
                sets=("tools",) if name in TOOL_PACKAGES else ("rootfs",),
                size=len(content),
                sha256=sha,
            )
        )
    lock = fake_lock(
        packages,
        package_set_digest=recipe.package_set_digest(),
        epoch=EPOCH,
        base=archive(date="Sat, 01 Jun 2024 00:00:00 UTC"),
    )
    write_lock(lock, recipe.lock_path)
    return Project(root, recipe, lock, debs)


def project_manifest(project: Project) -> dict[str, Any]:
    """A valid manifest for the project's recipe and lock (no partitions)."""
    return manifest(
        project.lock,
        version="2.0",
        image_size=4096,
        image_sha256="a" * 64,
        partitions=[],
        recipe_sha256=sha256_file(project.recipe.path),
        lock_sha256=sha256_file(project.recipe.lock_path),
    )
