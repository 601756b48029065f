"""The EFI system partition: a FAT32 image holding only EFI/BOOT/BOOTX64.EFI.

Built from files, never mounted: mkfs.vfat makes the filesystem (fixed
geometry, `--invariant`, volume id derived from the UKI's digest), mtools
places the UKI. mtools takes its timestamps from SOURCE_DATE_EPOCH and the
copied file keeps its mtime (`mcopy -m`), which is set to the epoch first, so
every timestamp in the image is SOURCE_DATE_EPOCH.

The input is the UKI step's output, or the sbsign step's when the recipe asks
for Secure Boot (the pipeline wires either in as "uki").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from builder.build.steps.base import BuildContext, StepEnv, StepOutput, tools_sandbox
from builder.core.canonical import derive_hex, sha256_file
from builder.core.errors import BuildError
from builder.core.sandbox import Sandbox

MIB = 1024 * 1024
SECTOR_SIZE = 512
# FAT32 needs at least 65525 clusters; with one 512-byte sector per cluster
# (plus FATs and reserved sectors) that is just over 32 MiB.
FAT32_MIN_MIB = 33
LOADER_PATH = ("EFI", "BOOT", "BOOTX64.EFI")
VOLUME_LABEL = "ESP"


def esp_size_mib(payload_bytes: int) -> int:
    """Smallest ESP size (MiB) for `payload_bytes` of files, with margin for FAT overhead.

    The FATs cost 8 bytes per 512-byte cluster (about 1.6%); 5% plus 2 MiB covers
    them, the directories and rounding with room to spare.
    """
    needed = payload_bytes + payload_bytes // 20 + 2 * MIB
    return max(FAT32_MIN_MIB, -(-needed // MIB))


def volume_id(loader_sha256: str) -> str:
    return derive_hex(8, "esp-volume-id", loader_sha256).upper()


def make_esp(tools: Sandbox, loader: Path, image: Path, epoch: int, scratch: Path) -> int:
    """Write a FAT32 image at `image` holding `loader` as EFI/BOOT/BOOTX64.EFI.

    Returns the image size in bytes (a whole number of MiB).
    """
    size_mib = esp_size_mib(loader.stat().st_size)
    # A private copy, so setting its mtime never touches the step cache's file.
    staged = scratch / "BOOTX64.EFI"
    shutil.copyfile(loader, staged)
    os.utime(staged, (epoch, epoch))
    tools.run(
        [
            "mkfs.vfat",
            "-C",
            "--invariant",
            "-i",
            volume_id(sha256_file(loader)),
            "-n",
            VOLUME_LABEL,
            "-F",
            "32",
            "-S",
            str(SECTOR_SIZE),
            "-s",
            "1",
            image,
            str(size_mib * 1024),
        ],
        writable=[image.parent],
    )
    env = {"SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1"}
    directories = [
        "::/" + "/".join(LOADER_PATH[: depth + 1]) for depth in range(len(LOADER_PATH) - 1)
    ]
    tools.run(["mmd", "-i", image, *directories], env=env, writable=[image.parent])
    tools.run(
        ["mcopy", "-m", "-i", image, staged, "::/" + "/".join(LOADER_PATH)],
        env=env,
        binds=[staged],
        writable=[image.parent],
    )
    size = image.stat().st_size
    if size != size_mib * MIB:
        raise BuildError(f"{image}: mkfs.vfat made {size} bytes, expected {size_mib} MiB")
    return size


@dataclass(frozen=True)
class EspOptions:
    filesystem: str = "fat32"
    sector_size: int = SECTOR_SIZE
    label: str = VOLUME_LABEL
    loader_path: str = "/".join(LOADER_PATH)


@dataclass(frozen=True)
class EspFacts:
    size: int
    loader_sha256: str


class EspStep:
    name: ClassVar[str] = "esp"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "uki")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> EspOptions:
        return EspOptions()

    def run(
        self, options: EspOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> EspFacts:
        loader = inputs["uki"].path / "BOOTX64.EFI"
        if not loader.is_file():
            raise BuildError(f"step esp: no {loader} from step {inputs['uki'].name}")
        env.scratch.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="esp-", dir=env.scratch))
        try:
            size = make_esp(
                tools_sandbox(env, inputs), loader, out / "esp.img", env.source_date_epoch, staging
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return EspFacts(size, sha256_file(loader))
