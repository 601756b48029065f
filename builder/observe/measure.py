"""Reading an image file or a USB key and measuring it: its digest over the
manifest's image size, each partition's digest, the GPT, the UKI's command line and
the root partition's hash tree recomputed; the judging is in `builder.observe.verify`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from builder.build.manifest import DATA_PARTITION, Manifest
from builder.core.canonical import sha256_bytes
from builder.core.errors import InputError, VerificationFailed
from builder.formats.fat_read import cmdline_params, extract_esp_file, read_range, uki_cmdline
from builder.formats.gpt import GptTable, read_primary_gpt
from builder.formats.verity_tree import (
    BLOCK_SIZE,
    VeritySuperblock,
    VerityTree,
    compute_tree,
    parse_superblock,
)

_CHUNK = 8 << 20


@dataclass(frozen=True)
class ImageMeasurement:
    """What was read from the image: its digest over manifest.image.size bytes."""

    available: int  # bytes the file or device holds
    is_device: bool
    sha256: str | None  # None when the image is too short to hash
    sha256_data_zeroed: str | None = None  # with the booth-data partition read as zeros


@dataclass(frozen=True)
class BootMeasurement:
    """The UKI read from the ESP, and the root partition's recomputed hash tree."""

    uki_sha256: str | None = None
    cmdline: str | None = None
    tree: VerityTree | None = None
    superblock: VeritySuperblock | None = None
    stored_tree_matches: bool = False
    problems: tuple[str, ...] = field(default=())


def _open_image(path: Path) -> tuple[BinaryIO, int, bool]:
    try:
        stream = open(path, "rb", buffering=0)  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from exc
    mode = stat.S_IFMT(os.fstat(stream.fileno()).st_mode)
    is_device = mode == stat.S_IFBLK
    if not is_device and mode != stat.S_IFREG:
        stream.close()
        raise InputError(f"{path}: neither an image file nor a block device")
    size = stream.seek(0, 2)
    stream.seek(0)
    return stream, size, is_device


@dataclass
class _Region:
    start: int
    end: int
    digest: Any


def digest_stream(
    stream: BinaryIO, size: int, regions: list[_Region], zero: _Region | None = None
) -> str:
    """sha256 of the first `size` bytes, feeding each region's hasher its slice on the way.

    With `zero`, a second whole-image hasher sees that region as zeros; its
    result is stored in `zero.digest` (a hashlib object). One pass, 8 MiB reads.
    """
    whole = hashlib.sha256()
    zeroed = hashlib.sha256() if zero is not None else None
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    offset = 0
    stream.seek(0)
    while offset < size:
        want = min(_CHUNK, size - offset)
        got = stream.readinto(view[:want])  # type: ignore[attr-defined]
        if not got:
            raise VerificationFailed(f"image ends at byte {offset}, {size} expected")
        chunk = view[:got]
        whole.update(chunk)
        end = offset + got
        for region in regions:
            lo, hi = max(region.start, offset), min(region.end, end)
            if lo < hi:
                region.digest.update(chunk[lo - offset : hi - offset])
        if zeroed is not None and zero is not None:
            lo, hi = max(zero.start, offset), min(zero.end, end)
            if lo < hi:
                zeroed.update(chunk[: lo - offset])
                zeroed.update(bytes(hi - lo))
                zeroed.update(chunk[hi - offset :])
            else:
                zeroed.update(chunk)
        offset = end
    if zero is not None:
        zero.digest = zeroed
    return whole.hexdigest()


def measure_image(
    path: Path, manifest: Manifest
) -> tuple[ImageMeasurement, GptTable | None, str, dict[str, str]]:
    """Digest of the image, its GPT, and each GPT partition's digest, in one read."""
    stream, available, is_device = _open_image(path)
    with stream:
        table: GptTable | None = None
        table_error = ""
        try:
            table = read_primary_gpt(stream)
        except VerificationFailed as exc:
            table_error = exc.message
        size = manifest.image.size
        if available < size:
            return ImageMeasurement(available, is_device, None), table, table_error, {}
        regions: dict[str, _Region] = {}
        if table is not None:
            for part in table.partitions:
                if part.offset + part.size <= size:
                    regions[part.name] = _Region(
                        part.offset, part.offset + part.size, hashlib.sha256()
                    )
        zero = None
        data = next((p for p in manifest.partitions if p.name == DATA_PARTITION), None)
        if data is not None:
            zero = _Region(data.offset, data.offset + data.size, None)
        sha = digest_stream(stream, size, list(regions.values()), zero)
    digests = {name: region.digest.hexdigest() for name, region in regions.items()}
    zeroed = zero.digest.hexdigest() if zero is not None and zero.digest is not None else None
    return ImageMeasurement(available, is_device, sha, zeroed), table, table_error, digests


def measure_boot(path: Path, manifest: Manifest, table: GptTable | None) -> BootMeasurement:
    """Read the UKI from the ESP and recompute the root partition's hash tree."""
    if table is None:
        return BootMeasurement(problems=("no readable partition table",))
    esp, root, hashes = table.find("esp"), table.find("root"), table.find("root-verity")
    missing = [n for n, p in (("esp", esp), ("root", root), ("root-verity", hashes)) if p is None]
    if missing or esp is None or root is None or hashes is None:
        return BootMeasurement(problems=(f"partition(s) {', '.join(missing)} not found",))
    try:
        uki = extract_esp_file(path, esp.offset)
        cmdline = uki_cmdline(uki)
    except VerificationFailed as exc:
        return BootMeasurement(problems=(exc.message,))
    params = cmdline_params(cmdline)
    problems: list[str] = []
    try:
        salt = bytes.fromhex(params.get("boothkey.salt", ""))
        data_blocks = int(params.get("boothkey.datablocks", ""))
    except ValueError:
        problems.append("the UKI's command line lacks a valid boothkey.salt or boothkey.datablocks")
        return BootMeasurement(sha256_bytes(uki), cmdline, problems=tuple(problems))
    if data_blocks * BLOCK_SIZE > root.size or data_blocks < 1:
        return BootMeasurement(
            sha256_bytes(uki),
            cmdline,
            problems=(f"boothkey.datablocks={data_blocks} does not fit the root partition",),
        )
    stream, _available, _is_device = _open_image(path)
    with stream:
        try:
            superblock = parse_superblock(b"".join(read_range(stream, hashes.offset, BLOCK_SIZE)))
        except (ValueError, VerificationFailed) as exc:
            problems.append(f"root-verity partition: {exc}")
            superblock = None
        stream.seek(root.offset)
        try:
            tree = compute_tree(stream, data_blocks, salt)
        except ValueError as exc:
            problems.append(f"root partition: {exc}")
            return BootMeasurement(
                sha256_bytes(uki), cmdline, superblock=superblock, problems=tuple(problems)
            )
        stored_size = len(tree.hash_area)
        stored = b""
        if BLOCK_SIZE + stored_size <= hashes.size:
            try:
                stored = b"".join(read_range(stream, hashes.offset + BLOCK_SIZE, stored_size))
            except VerificationFailed as exc:
                problems.append(f"root-verity partition: {exc.message}")
    return BootMeasurement(
        uki_sha256=sha256_bytes(uki),
        cmdline=cmdline,
        tree=tree,
        superblock=superblock,
        stored_tree_matches=stored == tree.hash_area,
        problems=tuple(problems),
    )
