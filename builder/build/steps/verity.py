"""The dm-verity hash tree of the root image.

Output `out/verity.img`: a veritysetup hash device *with* its superblock
(format 1, sha256, 4096-byte data and hash blocks), so the kernel's dm table
uses hash_start_block 1. Salt and UUID are derived from the root image's
sha256, never random, so the same root image always gives the same hash tree
and root hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from builder.build.steps.base import BuildContext, StepEnv, StepOutput, tools_sandbox
from builder.build.steps.rootimage import BLOCK_SIZE, pad_to_block
from builder.core.canonical import derive_hex, derive_uuid, sha256_file
from builder.core.errors import BuildError
from builder.core.sandbox import Sandbox

HASH_ALGORITHM = "sha256"
_ROOT_HASH_RE = re.compile(r"^Root hash:\s*([0-9a-f]{64})\s*$", re.MULTILINE)


def verity_salt(root_sha256: str) -> str:
    return derive_hex(64, "verity-salt", root_sha256)


def verity_uuid(root_sha256: str) -> str:
    return derive_uuid("verity-uuid", root_sha256)


def format_verity(tools: Sandbox, data: Path, hash_device: Path, salt: str, uuid: str) -> str:
    """Write the hash tree of `data` to `hash_device`; return the root hash (hex)."""
    result = tools.run(
        [
            "veritysetup",
            "format",
            data,
            hash_device,
            "--format=1",
            f"--hash={HASH_ALGORITHM}",
            f"--data-block-size={BLOCK_SIZE}",
            f"--hash-block-size={BLOCK_SIZE}",
            f"--salt={salt}",
            f"--uuid={uuid}",
        ],
        binds=[data],
        writable=[hash_device.parent],
    )
    found = _ROOT_HASH_RE.search(result.stdout.decode(errors="replace"))
    if found is None:
        raise BuildError(f"veritysetup format printed no root hash for {data}")
    return found.group(1)


@dataclass(frozen=True)
class VerityOptions:
    format: int = 1
    hash_algorithm: str = HASH_ALGORITHM
    data_block_size: int = BLOCK_SIZE
    hash_block_size: int = BLOCK_SIZE
    superblock: bool = True


@dataclass(frozen=True)
class VerityFacts:
    root_hash: str
    salt: str
    uuid: str
    data_blocks: int
    data_block_size: int
    hash_block_size: int
    hash_algorithm: str


class VerityStep:
    name: ClassVar[str] = "verity"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "rootimage")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> VerityOptions:
        return VerityOptions()

    def run(
        self, options: VerityOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> VerityFacts:
        root_image = inputs["rootimage"].path / "root.img"
        size = root_image.stat().st_size
        if size == 0 or size % BLOCK_SIZE:
            raise BuildError(f"{root_image}: size {size} is not a multiple of {BLOCK_SIZE}")
        root_sha256 = sha256_file(root_image)
        salt = verity_salt(root_sha256)
        uuid = verity_uuid(root_sha256)
        hash_device = out / "verity.img"
        env.report("computing the dm-verity hash tree")
        root_hash = format_verity(tools_sandbox(env, inputs), root_image, hash_device, salt, uuid)
        pad_to_block(hash_device)
        return VerityFacts(
            root_hash=root_hash,
            salt=salt,
            uuid=uuid,
            data_blocks=size // BLOCK_SIZE,
            data_block_size=BLOCK_SIZE,
            hash_block_size=BLOCK_SIZE,
            hash_algorithm=HASH_ALGORITHM,
        )
