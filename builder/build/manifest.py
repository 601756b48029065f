"""The build manifest: canonical JSON describing exactly what was built and from what.

Written by `build`, read by `sign`, `verify`, `flash`, `rebuild`. The raw JSON
is kept (`Manifest.raw`) because signatures cover its exact canonical bytes.
`parse_manifest` checks every field's type (and that no number is negative);
`check_layout` checks, before anything is measured against it, that the image
and partition table it describes could exist.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from builder.core.canonical import canonical_json
from builder.core.errors import InputError, ValidationErrors
from builder.core.fsutil import write_atomic
from builder.core.jsonfields import FieldReader, read_json_file
from builder.core.typedjson import TypedJsonError, from_json
from builder.source.lockfile import LockedPackage

if TYPE_CHECKING:
    from builder.build.steps.verity import VerityFacts

T = TypeVar("T")

# The image's partitions by GPT partition name, in disk order; the last is optional
# (a recipe's data_partition), the slot for one polling station's election data.
ESP_PARTITION = "esp"
ROOT_PARTITION = "root"
VERITY_PARTITION = "root-verity"
DATA_PARTITION = "booth-data"

MANIFEST_FORMAT = 1
# \Z, not $: `$` also matches before a final newline.
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_STEP_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_GUID = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\Z")
SECTOR_SIZE = 512
# A GPT disk: the protective MBR, the header and 32 sectors of entries before the first
# partition; the backup entries and header (33 sectors) after the last.
_GPT_HEAD = 34 * SECTOR_SIZE
_GPT_TAIL = 33 * SECTOR_SIZE


def package_entry(package: LockedPackage, *, sets: bool = True) -> dict[str, Any]:
    """A locked package as the manifest lists it: under "packages" (with its sets) and,
    for the tools tree, under "tools" (without)."""
    entry: dict[str, Any] = {
        "name": package.name,
        "version": package.version,
        "architecture": package.architecture,
        "sha256": package.sha256,
    }
    if sets:
        entry["sets"] = list(package.sets)
    return entry


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

    @classmethod
    def from_step_facts(cls, facts: VerityFacts) -> VerityInfo:
        """The manifest's verity facts from the verity step's (which has more)."""
        return cls(**{item.name: getattr(facts, item.name) for item in dataclasses.fields(cls)})

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PackageRef:
    """A .deb by name, version, architecture and sha256 (a tools package)."""

    name: str
    version: str
    architecture: str
    sha256: str


@dataclass(frozen=True)
class ManifestPackage:
    """A locked package as the manifest lists it, with the lock's sets it is in."""

    name: str
    version: str
    architecture: str
    sha256: str
    sets: tuple[str, ...]


@dataclass(frozen=True)
class StepRecord:
    """One step of the build: its id, its output's content digest, and what the id
    covers besides boothkey's source and the epoch (inputs' content digests, options)."""

    name: str
    id: str
    content_digest: str
    inputs: dict[str, str]
    options: dict[str, Any]


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
    # What the image was made from and how: compared by `rebuild`.
    boothkey: str
    code_sha256: str
    recipe_sha256: str
    overlays_sha256: str
    lock_sha256: str
    steps: tuple[StepRecord, ...]
    packages: tuple[ManifestPackage, ...]
    tools: tuple[PackageRef, ...]
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

    def count(container: Any, key: str, where: str) -> int:
        value = get(container, key, int, where)
        if value < 0:
            reader.error(where, f"{value} is negative")
        return value

    if not isinstance(raw, dict):
        raise InputError(f"{shown}: a manifest is a JSON object")
    if raw.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{shown}: manifest format {raw.get('format')!r} is not {MANIFEST_FORMAT}")
    image_raw = get(raw, "image", dict, "image")
    image = ImageInfo(
        file=get(image_raw, "file", str, "image.file"),
        size=count(image_raw, "size", "image.size"),
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
                offset=count(part, "offset", f"{where}.offset"),
                size=count(part, "size", f"{where}.size"),
                sha256=digest(part, "sha256", f"{where}.sha256"),
            )
        )
    uki = get(raw, "uki", dict, "uki")
    verity_raw = get(raw, "verity", dict, "verity")
    verity = VerityInfo(
        root_hash=digest(verity_raw, "root_hash", "verity.root_hash"),
        salt=get(verity_raw, "salt", str, "verity.salt"),
        data_blocks=count(verity_raw, "data_blocks", "verity.data_blocks"),
        data_block_size=count(verity_raw, "data_block_size", "verity.data_block_size"),
        hash_block_size=count(verity_raw, "hash_block_size", "verity.hash_block_size"),
        hash_algorithm=get(verity_raw, "hash_algorithm", str, "verity.hash_algorithm"),
    )
    recipe = get(raw, "recipe", dict, "recipe")

    def records(key: str, cls: type[T]) -> tuple[T, ...]:
        found = []
        for index, item in enumerate(get(raw, key, list, key)):
            try:
                found.append(from_json(cls, item, f"{key}[{index}]"))
            except TypedJsonError as exc:
                reader.error("", str(exc))
        return tuple(found)

    steps = records("steps", StepRecord)
    for step in steps:
        if not _STEP_DIGEST.match(step.content_digest):
            reader.error(f"steps: {step.name}", "content_digest is not sha256:<hex digest>")
    manifest = Manifest(
        name=get(raw, "name", str, "name"),
        version=get(raw, "version", str, "version"),
        image=image,
        partitions=tuple(partitions),
        uki_sha256=digest(uki, "sha256", "uki.sha256"),
        cmdline=get(uki, "cmdline", str, "uki.cmdline"),
        verity=verity,
        source_date_epoch=count(raw, "source_date_epoch", "source_date_epoch"),
        boothkey=get(raw, "boothkey", str, "boothkey"),
        code_sha256=digest(raw, "code_sha256", "code_sha256"),
        recipe_sha256=digest(recipe, "sha256", "recipe.sha256"),
        overlays_sha256=digest(raw, "overlays_sha256", "overlays_sha256"),
        lock_sha256=digest(raw, "lock_sha256", "lock_sha256"),
        steps=steps,
        packages=records("packages", ManifestPackage),
        tools=records("tools", PackageRef),
        raw=raw,
    )
    if reader.problems:
        raise ValidationErrors(reader.problems)
    return manifest


def layout_problems(manifest: Manifest, shown: str) -> list[str]:
    """Why the image and partition table `manifest` describes cannot exist ([] if they
    can): an image that is not a whole number of sectors with room for a GPT, or a
    partition that is empty, not on sector boundaries, outside the space between the
    GPT's two copies, overlapping another, listed twice, or without GUIDs."""
    reader = FieldReader(shown)
    size = manifest.image.size
    usable_end = size - _GPT_TAIL
    if size % SECTOR_SIZE or usable_end <= _GPT_HEAD:
        reader.error(
            "image.size",
            f"{size} bytes is not a GPT disk image (whole {SECTOR_SIZE}-byte sectors, "
            f"more than {_GPT_HEAD + _GPT_TAIL} bytes)",
        )
    if not manifest.partitions:
        reader.error("partitions", "none listed")
    names: set[str] = set()
    placed: list[tuple[int, int, int]] = []
    for index, part in enumerate(manifest.partitions):
        where = f"partitions[{index}]"
        if part.name in names:
            reader.error(f"{where}.name", f"{part.name!r} is listed twice")
        names.add(part.name)
        for key, value in (("type", part.type), ("uuid", part.uuid)):
            if not _GUID.match(value):
                reader.error(f"{where}.{key}", f"{value!r} is not a GUID")
        if part.size <= 0:
            reader.error(f"{where}.size", f"{part.size} bytes: a partition cannot be empty")
            continue
        if part.offset % SECTOR_SIZE or part.size % SECTOR_SIZE:
            reader.error(f"{where}.offset", f"not whole {SECTOR_SIZE}-byte sectors")
            continue
        end = part.offset + part.size
        if part.offset < _GPT_HEAD or end > usable_end:
            reader.error(
                where,
                f"bytes {part.offset}..{end} are not inside the image's usable space "
                f"{_GPT_HEAD}..{usable_end}",
            )
            continue
        placed.append((part.offset, end, index))
    reach, reaching = 0, -1  # the furthest end so far, and whose it is
    for start, end, index in sorted(placed):
        if start < reach:
            first, second = sorted((reaching, index))
            reader.error(f"partitions[{second}]", f"overlaps partitions[{first}]")
        if end > reach:
            reach, reaching = end, index
    return reader.problems


def check_layout(manifest: Manifest, shown: str) -> None:
    """`ValidationErrors` listing every `layout_problems`, else nothing."""
    problems = layout_problems(manifest, shown)
    if problems:
        raise ValidationErrors(problems)
