"""The tools tree: the lock's "tools" packages unpacked, for every byte-producing program.

Output `out/tree/`: each locked tools .deb unpacked in name order into one
merged-/usr tree (bin, sbin, lib, lib64 are links into usr/), as dpkg-deb -x
would, by boothkey's own reader (no host dpkg or tar). Maintainer scripts do not
run; the two things the tools need from them are done here: /etc/passwd and
/etc/group from base-passwd's master files, and /usr/bin/awk (mawk's
alternative). Every later step that runs a program runs it from this tree, in
a sandbox (builder/core/sandbox.py), so the host's own tools never touch the image.

Facts: ToolsFacts, the packages by name, version, architecture and sha256 (the
manifest lists them as the build's tools).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from builder.build.manifest import PackageRef
from builder.build.steps.base import BuildContext, DebInput, StepEnv, StepOutput, deb_inputs
from builder.core.errors import BuildError
from builder.formats.debarchive import extract_data
from builder.source.lockfile import LockedPackage
from builder.source.toolset import TOOLS_SET

MERGED_USR = ("bin", "sbin", "lib", "lib64")
# What maintainer scripts would have made that the tools call: (link, target).
_ALTERNATIVES = (("usr/bin/awk", "mawk"),)
_ACCOUNTS = (
    ("etc/passwd", "usr/share/base-passwd/passwd.master"),
    ("etc/group", "usr/share/base-passwd/group.master"),
)


def tools_packages(ctx: BuildContext) -> tuple[LockedPackage, ...]:
    packages = tuple(sorted(ctx.lock.in_set(TOOLS_SET), key=lambda p: (p.name, p.architecture)))
    if not packages:
        raise BuildError(f"{ctx.lock.recipe_name}: the lock has no packages in the tools set")
    return packages


def make_tools_tree(debs: list[Path], tree: Path) -> None:
    """Unpack `debs` in order into `tree` (merged-/usr) and add accounts and alternatives."""
    tree.mkdir(parents=True)
    (tree / "usr").mkdir()
    for name in MERGED_USR:
        (tree / "usr" / name).mkdir()
        os.symlink(f"usr/{name}", tree / name)
    for deb in debs:
        extract_data(deb, tree, merged_usr=True)
    (tree / "etc").mkdir(exist_ok=True)
    for target, master in _ACCOUNTS:
        if not (tree / master).is_file():
            raise BuildError(f"the tools tree has no /{master} (package base-passwd)")
        shutil.copyfile(tree / master, tree / target)
        (tree / target).chmod(0o644)
    for link, target in _ALTERNATIVES:
        if not (tree / link).parent.joinpath(target).exists():
            raise BuildError(f"the tools tree has no /{Path(link).parent / target}")
        if not (tree / link).exists():
            os.symlink(target, tree / link)


@dataclass(frozen=True)
class ToolsOptions:
    packages: tuple[DebInput, ...]


@dataclass(frozen=True)
class ToolsFacts:
    packages: tuple[PackageRef, ...]  # as the manifest lists the tools


class ToolsStep:
    name: ClassVar[str] = "tools"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ()

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> ToolsOptions:
        return ToolsOptions(deb_inputs(tools_packages(ctx)))

    def run(
        self, options: ToolsOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> ToolsFacts:
        env.report(f"unpacking the build tools ({len(options.packages)} packages)")
        make_tools_tree([env.deb_path(p.package) for p in options.packages], out / "tree")
        return ToolsFacts(
            tuple(PackageRef(p.name, p.version, p.architecture, p.sha256) for p in options.packages)
        )
