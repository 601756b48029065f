"""The root filesystem image: the overlaid tree packed read-only (squashfs or erofs).

Output `out/root.img`, padded with zeros to a multiple of 4096 bytes so that
dm-verity's 4096-byte data blocks cover it exactly. Every owner becomes root,
every time becomes SOURCE_DATE_EPOCH, and the erofs UUID is derived from the
tree's content digest, so the same tree always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from builder.build.steps.base import BuildContext, StepEnv, StepOutput, tools_sandbox
from builder.core.canonical import derive_uuid
from builder.core.errors import BuildError
from builder.core.sandbox import Sandbox

BLOCK_SIZE = 4096


def pad_to_block(path: Path, block: int = BLOCK_SIZE) -> int:
    """Append zeros to `path` up to a multiple of `block`; return the new size."""
    size = path.stat().st_size
    padded = -(-size // block) * block
    if padded != size:
        with open(path, "r+b") as stream:
            stream.truncate(padded)
    return padded


def make_squashfs(
    tools: Sandbox,
    tree: Path,
    image: Path,
    compression: str,
    epoch: int,
    level: int | None = None,
) -> None:
    """Pack `tree` into a squashfs at `image` with fixed times and owners."""
    # The sandbox never passes SOURCE_DATE_EPOCH on, which matters here: mksquashfs
    # refuses it together with the explicit -mkfs-time/-all-time flags.
    tools.run(
        [
            "mksquashfs",
            tree,
            image,
            "-noappend",
            "-reproducible",
            "-mkfs-time",
            str(epoch),
            "-all-time",
            str(epoch),
            "-all-root",
            "-comp",
            compression,
            *(["-Xcompression-level", str(level)] if level is not None else []),
            "-no-progress",
            "-quiet",
        ],
        binds=[tree],
        writable=[image.parent],
    )


def make_erofs(
    tools: Sandbox,
    tree: Path,
    image: Path,
    compression: str,
    epoch: int,
    uuid: str,
    level: int | None = None,
) -> None:
    """Pack `tree` into an erofs at `image` with fixed times, owners and UUID."""
    argv: list[str | Path] = ["mkfs.erofs"]
    if compression != "none":
        argv.append(f"-z{compression}" + (f",{level}" if level is not None else ""))
    argv += [f"-T{epoch}", "--ignore-mtime", f"-U{uuid}", "--all-root", "--quiet", image, tree]
    tools.run(argv, binds=[tree], writable=[image.parent])


@dataclass(frozen=True)
class RootImageOptions:
    format: str  # squashfs or erofs
    compression: str
    compression_level: int | None  # None: the tool's default


@dataclass(frozen=True)
class RootImageFacts:
    format: str
    size: int


class RootImageStep:
    name: ClassVar[str] = "rootimage"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "overlay")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> RootImageOptions:
        rootfs = ctx.recipe.rootfs
        return RootImageOptions(rootfs.format, rootfs.compression, rootfs.compression_level)

    def run(
        self, options: RootImageOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> RootImageFacts:
        tree = inputs["overlay"].path / "tree"
        if not tree.is_dir():
            raise BuildError(f"step rootimage: the overlay step produced no tree at {tree}")
        fmt, compression, level = options.format, options.compression, options.compression_level
        image = out / "root.img"
        env.report(f"packing the root filesystem ({fmt}, {compression})")
        tools = tools_sandbox(env, inputs)
        if fmt == "squashfs":
            make_squashfs(tools, tree, image, compression, env.source_date_epoch, level)
        elif fmt == "erofs":
            uuid = derive_uuid("erofs-root", inputs["overlay"].content_digest)
            make_erofs(tools, tree, image, compression, env.source_date_epoch, uuid, level)
        else:
            raise BuildError(f"step rootimage: unknown root filesystem format {fmt!r}")
        return RootImageFacts(fmt, pad_to_block(image))
