"""Reading a built image (a file or a block device) without mounting anything.

The GPT is parsed in Python (CRCs checked); the UKI is copied out of the ESP's
FAT filesystem with mtools (`mcopy -i IMAGE@@OFFSET`), which reads the FAT
straight from the image file or device; its `.cmdline` section is read with
`builder.pe`.
"""

from __future__ import annotations

import struct
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import BoothkeyError, VerificationFailed
from .pe import parse_pe_headers
from .tools import run_tool

SECTOR_SIZE = 512
ESP_UKI_PATH = "EFI/BOOT/BOOTX64.EFI"
_GPT_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_GPT_ENTRY = struct.Struct("<16s16sQQQ72s")


@dataclass(frozen=True)
class GptPartition:
    """One used GPT entry. Offsets and sizes are in bytes."""

    index: int
    name: str
    type: str  # upper-case GUID, as the manifest writes it
    uuid: str
    offset: int
    size: int


@dataclass(frozen=True)
class GptTable:
    disk_guid: str
    partitions: tuple[GptPartition, ...]

    def find(self, name: str) -> GptPartition | None:
        for partition in self.partitions:
            if partition.name == name:
                return partition
        return None


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw)).upper()


def parse_gpt(header_sector: bytes, entries: bytes) -> GptTable:
    """Parse a primary GPT header (LBA 1) and its entry array; `VerificationFailed` if damaged."""
    if len(header_sector) < _GPT_HEADER.size or header_sector[:8] != b"EFI PART":
        raise VerificationFailed("no GPT partition table found (no 'EFI PART' at LBA 1)")
    (_sig, _rev, header_size, header_crc, _res, _cur, _backup, _first, _last, disk_guid,
     _entries_lba, count, entry_size, entries_crc) = _GPT_HEADER.unpack_from(header_sector)  # fmt: skip
    if not _GPT_HEADER.size <= header_size <= len(header_sector):
        raise VerificationFailed(f"GPT header size {header_size} is invalid")
    check = bytearray(header_sector[:header_size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != header_crc:
        raise VerificationFailed("GPT header checksum (CRC32) is wrong: the table was altered")
    if entry_size < _GPT_ENTRY.size or len(entries) < count * entry_size:
        raise VerificationFailed("GPT partition entry array is truncated")
    if zlib.crc32(entries[: count * entry_size]) != entries_crc:
        raise VerificationFailed("GPT partition entries checksum is wrong: the table was altered")
    partitions = []
    for index in range(count):
        type_raw, uuid_raw, first, last, _attrs, name_raw = _GPT_ENTRY.unpack_from(
            entries, index * entry_size
        )
        if type_raw == bytes(16):
            continue
        name = name_raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        partitions.append(
            GptPartition(
                index=index + 1,
                name=name,
                type=_guid(type_raw),
                uuid=_guid(uuid_raw),
                offset=first * SECTOR_SIZE,
                size=(last - first + 1) * SECTOR_SIZE,
            )
        )
    return GptTable(_guid(disk_guid), tuple(partitions))


def read_gpt(stream: BinaryIO) -> GptTable:
    """Read the primary GPT of an image or device opened for binary reading."""
    stream.seek(SECTOR_SIZE)
    header = stream.read(SECTOR_SIZE)
    if len(header) < _GPT_HEADER.size or header[:8] != b"EFI PART":
        raise VerificationFailed("no GPT partition table found (no 'EFI PART' at LBA 1)")
    entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
    if count > 1024 or entry_size > 4096:
        raise VerificationFailed("GPT header announces an implausible entry array")
    stream.seek(entries_lba * SECTOR_SIZE)
    return parse_gpt(header, stream.read(count * entry_size))


def read_range(stream: BinaryIO, offset: int, size: int, chunk: int = 8 << 20) -> Iterator[bytes]:
    """Stream `size` bytes from `offset`; `VerificationFailed` if the image ends early."""
    stream.seek(offset)
    remaining = size
    while remaining:
        data = stream.read(min(chunk, remaining))
        if not data:
            raise VerificationFailed(
                f"image ends {remaining} bytes before the end of the range at {offset}+{size}"
            )
        remaining -= len(data)
        yield data


def extract_esp_file(image: Path, esp_offset: int, path: str = ESP_UKI_PATH) -> bytes:
    """Copy one file out of the FAT filesystem starting `esp_offset` bytes into `image`."""
    with tempfile.TemporaryDirectory(prefix="boothkey-esp-") as scratch:
        target = Path(scratch) / "file"
        try:
            run_tool(
                ["mcopy", "-n", "-i", f"{image}@@{esp_offset}", f"::/{path}", target],
                env={"MTOOLS_SKIP_CHECK": "1"},
            )
        except BoothkeyError as exc:
            raise VerificationFailed(f"cannot read {path} from the ESP: {exc.message}") from exc
        return target.read_bytes()


def uki_cmdline(uki: bytes, shown: str = ESP_UKI_PATH) -> str:
    """The kernel command line held in a UKI's `.cmdline` section (NULs and ends stripped)."""
    try:
        headers = parse_pe_headers(uki[: 64 * 1024], shown)
    except BoothkeyError as exc:
        raise VerificationFailed(exc.message) from exc
    section = headers.section(".cmdline")
    if section is None:
        raise VerificationFailed(f"{shown}: has no .cmdline section")
    length = min(section.virtual_size, section.raw_size) or section.raw_size
    data = uki[section.raw_offset : section.raw_offset + length]
    if len(data) != length:
        raise VerificationFailed(f"{shown}: .cmdline section runs past the end of the file")
    return data.rstrip(b"\0").decode(errors="replace").strip()


def cmdline_params(cmdline: str) -> dict[str, str]:
    """`key=value` arguments of a command line (the last one wins, as in the kernel)."""
    params: dict[str, str] = {}
    for arg in cmdline.split():
        key, sep, value = arg.partition("=")
        if sep:
            params[key] = value
    return params
