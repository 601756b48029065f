"""The build manifest: canonical JSON describing exactly what was built and from what.

Written by `build`, read by `sign`, `verify`, `flash`, `rebuild`. The raw JSON
is kept (`Manifest.raw`) because signatures cover its exact canonical bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .canonical import canonical_json
from .errors import InputError, ValidationErrors
from .fsutil import write_atomic
from .jsonfields import FieldReader, read_json_file

MANIFEST_FORMAT = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageInfo:
    file: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    type: str
    uuid: str
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class VerityInfo:
    root_hash: str
    salt: str
    data_blocks: int
    data_block_size: int
    hash_block_size: int
    hash_algorithm: str


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    image: ImageInfo
    partitions: tuple[PartitionInfo, ...]
    uki_sha256: str
    cmdline: str
    verity: VerityInfo
    source_date_epoch: int
    raw: dict[str, Any]

    def partition(self, name: str) -> PartitionInfo:
        for part in self.partitions:
            if part.name == name:
                return part
        raise InputError(f"manifest of {self.name}: no partition named {name!r}")

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.raw)


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    parse_manifest(manifest, str(path))  # never write what we could not read back
    write_atomic(path, canonical_json(manifest) + b"\n")


def read_manifest(path: Path) -> Manifest:
    return parse_manifest(read_json_file(path, "manifest"), str(path))


def parse_manifest(raw: Any, shown: str) -> Manifest:
    reader = FieldReader(shown)
    get = reader.field_or_empty

    def digest(container: Any, key: str, where: str) -> str:
        value = get(container, key, str, where)
        if value and not _HEX64.match(value):
            reader.error(where, "not a sha256 hex digest")
        return value

    if not isinstance(raw, dict):
        raise InputError(f"{shown}: a manifest is a JSON object")
    if raw.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{shown}: manifest format {raw.get('format')!r} is not {MANIFEST_FORMAT}")
    image_raw = get(raw, "image", dict, "image")
    image = ImageInfo(
        file=get(image_raw, "file", str, "image.file"),
        size=get(image_raw, "size", int, "image.size"),
        sha256=digest(image_raw, "sha256", "image.sha256"),
    )
    if "/" in image.file or image.file in {"", ".", ".."}:
        reader.error("image.file", f"{image.file!r} must be a plain file name")
    partitions = []
    for index, part in enumerate(get(raw, "partitions", list, "partitions")):
        where = f"partitions[{index}]"
        partitions.append(
            PartitionInfo(
                name=get(part, "name", str, f"{where}.name"),
                type=get(part, "type", str, f"{where}.type"),
                uuid=get(part, "uuid", str, f"{where}.uuid"),
                offset=get(part, "offset", int, f"{where}.offset"),
                size=get(part, "size", int, f"{where}.size"),
                sha256=digest(part, "sha256", f"{where}.sha256"),
            )
        )
    uki = get(raw, "uki", dict, "uki")
    verity_raw = get(raw, "verity", dict, "verity")
    verity = VerityInfo(
        root_hash=digest(verity_raw, "root_hash", "verity.root_hash"),
        salt=get(verity_raw, "salt", str, "verity.salt"),
        data_blocks=get(verity_raw, "data_blocks", int, "verity.data_blocks"),
        data_block_size=get(verity_raw, "data_block_size", int, "verity.data_block_size"),
        hash_block_size=get(verity_raw, "hash_block_size", int, "verity.hash_block_size"),
        hash_algorithm=get(verity_raw, "hash_algorithm", str, "verity.hash_algorithm"),
    )
    manifest = Manifest(
        name=get(raw, "name", str, "name"),
        version=get(raw, "version", str, "version"),
        image=image,
        partitions=tuple(partitions),
        uki_sha256=digest(uki, "sha256", "uki.sha256"),
        cmdline=get(uki, "cmdline", str, "uki.cmdline"),
        verity=verity,
        source_date_epoch=get(raw, "source_date_epoch", int, "source_date_epoch"),
        raw=raw,
    )
    if reader.problems:
        raise ValidationErrors(reader.problems)
    return manifest
