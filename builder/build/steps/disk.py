"""The whole disk image: GPT with ESP, root, root-verity (and optionally booth-data).

Partitions start on 1 MiB boundaries and are exactly as large as their
contents, so each partition's sha256 is its source file's. The root and
root-verity partition UUIDs are the first and last 128 bits of the dm-verity
root hash (as the Discoverable Partitions Specification suggests); every other
GUID is derived from content. Contents are streamed in bounded memory; gaps
and the booth-data partition are left as holes, which read back as zeros.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

from builder.build.manifest import (
    DATA_PARTITION,
    ESP_PARTITION,
    ROOT_PARTITION,
    VERITY_PARTITION,
    PartitionInfo,
)
from builder.build.steps.base import BuildContext, StepEnv, StepOutput
from builder.build.steps.verity import VerityFacts
from builder.core.canonical import CHUNK_SIZE, derive_uuid, sha256_file, update_zeros
from builder.core.errors import BuildError
from builder.core.fsutil import atomic_output
from builder.formats.gpt import (
    ESP_TYPE,
    LINUX_DATA_TYPE,
    ROOT_X86_64_TYPE,
    ROOT_X86_64_VERITY_TYPE,
    GptDisk,
    PartitionRequest,
    gpt_structures,
    layout_disk,
)

MIB = 1024 * 1024


def uuid_from_hex(hex32: str) -> str:
    """A UUID string from 32 hex digits, taken as they are (no version bits forced)."""
    if len(hex32) != 32:
        raise ValueError("need 32 hex digits")
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def _copy_into(source: Path, stream: IO[bytes], offset: int, length: int) -> str:
    """Copy `source` (exactly `length` bytes) to `stream` at `offset`; return its sha256."""
    digest = hashlib.sha256()
    copied = 0
    stream.seek(offset)
    with open(source, "rb") as src:
        while chunk := src.read(CHUNK_SIZE):
            digest.update(chunk)
            stream.write(chunk)
            copied += len(chunk)
    if copied != length:
        raise BuildError(f"{source}: changed size while being copied ({copied} != {length})")
    return digest.hexdigest()


def _zeros_sha256(length: int) -> str:
    digest = hashlib.sha256()
    update_zeros(digest, length)
    return digest.hexdigest()


def write_disk(disk: GptDisk, contents: Mapping[str, Path | None], image: Path) -> list[str]:
    """Write `image`: the GPT of `disk` and each partition's content (None: zeros).

    Returns each partition's sha256, in `disk.partitions` order.
    """
    structures = gpt_structures(disk)
    digests = []
    with atomic_output(image) as stream:
        stream.write(structures.primary)
        for part in disk.partitions:
            source = contents[part.name]
            if source is None:
                digests.append(_zeros_sha256(part.size))
            else:
                digests.append(_copy_into(source, stream, part.offset, part.size))
        stream.seek(structures.backup_offset)
        stream.write(structures.backup)
        stream.truncate(disk.size)
    if image.stat().st_size != disk.size:
        raise BuildError(f"{image}: size {image.stat().st_size}, expected {disk.size}")
    return digests


@dataclass(frozen=True)
class DiskOptions:
    partitions: tuple[str, ...]
    data_partition_mib: int | None
    label: str = "gpt"
    alignment: int = MIB


@dataclass(frozen=True)
class DiskFacts:
    size: int
    sha256: str
    disk_guid: str
    partitions: tuple[PartitionInfo, ...]  # as the manifest lists them


class DiskStep:
    name: ClassVar[str] = "disk"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("esp", "rootimage", "verity")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> DiskOptions:
        data = ctx.recipe.data_partition
        return DiskOptions(
            partitions=(ESP_PARTITION, ROOT_PARTITION, VERITY_PARTITION)
            + ((DATA_PARTITION,) if data is not None else ()),
            data_partition_mib=data.size_mib if data is not None else None,
        )

    def run(
        self, options: DiskOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> DiskFacts:
        esp = inputs["esp"].path / "esp.img"
        root = inputs["rootimage"].path / "root.img"
        verity = inputs["verity"].path / "verity.img"
        root_hash = inputs["verity"].facts(VerityFacts).root_hash
        if len(root_hash) != 64:
            raise BuildError(f"step disk: verity root hash {root_hash!r} is not sha256 hex")
        esp_sha256 = sha256_file(esp)
        requests = [
            PartitionRequest(
                ESP_PARTITION,
                ESP_TYPE,
                derive_uuid("gpt-partition", ESP_PARTITION, esp_sha256),
                esp.stat().st_size,
            ),
            PartitionRequest(
                ROOT_PARTITION,
                ROOT_X86_64_TYPE,
                uuid_from_hex(root_hash[:32]),
                root.stat().st_size,
            ),
            PartitionRequest(
                VERITY_PARTITION,
                ROOT_X86_64_VERITY_TYPE,
                uuid_from_hex(root_hash[32:]),
                verity.stat().st_size,
            ),
        ]
        contents: dict[str, Path | None] = {
            ESP_PARTITION: esp,
            ROOT_PARTITION: root,
            VERITY_PARTITION: verity,
        }
        data_mib = options.data_partition_mib
        if data_mib is not None:
            requests.append(
                PartitionRequest(
                    DATA_PARTITION,
                    LINUX_DATA_TYPE,
                    derive_uuid("gpt-partition", DATA_PARTITION, root_hash),
                    data_mib * MIB,
                )
            )
            contents[DATA_PARTITION] = None
        disk_guid = derive_uuid("gpt-disk", esp_sha256, root_hash, str(data_mib or 0))
        disk = layout_disk(disk_guid, requests)
        image = out / "image.img"
        env.report(f"writing the disk image ({disk.size // MIB} MiB)")
        digests = write_disk(disk, contents, image)
        return DiskFacts(
            size=disk.size,
            sha256=sha256_file(image),
            disk_guid=disk.disk_guid,
            partitions=tuple(
                PartitionInfo(part.name, part.type_guid, part.uuid, part.offset, part.size, digest)
                for part, digest in zip(disk.partitions, digests, strict=True)
            ),
        )
