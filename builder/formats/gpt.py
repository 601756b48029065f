"""GUID Partition Tables, written and read in pure Python (512-byte sectors).

`layout_disk` places partitions 1 MiB-aligned, each exactly as large as asked;
`gpt_structures` renders the protective MBR, the primary header and entry
array, and the backup entry array and header, with their CRC32s; `read_gpt`
(a file) and `read_gpt_stream` (a stream and the disk's size) parse and check
both copies; `read_primary_gpt` reads only the primary table, for a device
that may be larger than the image written to it. GUIDs are given and
returned as canonical lower-case UUID strings and stored in GPT's mixed-endian
form, as every other GPT tool does.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder.core.errors import VerificationFailed

SECTOR_SIZE = 512
ALIGNMENT = 1024 * 1024
ENTRY_COUNT = 128
ENTRY_SIZE = 128
ENTRY_SECTORS = ENTRY_COUNT * ENTRY_SIZE // SECTOR_SIZE  # 32
HEADER_SIZE = 92
FIRST_USABLE_LBA = 2 + ENTRY_SECTORS  # 34: after the PMBR, the header and the entries
_SIGNATURE = b"EFI PART"
_REVISION = 0x00010000
_HEADER_FORMAT = "<8sIIIIQQQQ16sQIII"
_ENTRY_FORMAT = "<16s16sQQQ72s"
_NAME_CHARS = 36

# Partition type GUIDs (UEFI spec and the Discoverable Partitions Specification).
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
ROOT_X86_64_TYPE = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
ROOT_X86_64_VERITY_TYPE = "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5"
LINUX_DATA_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"


@dataclass(frozen=True)
class GptPartition:
    name: str
    type_guid: str
    uuid: str
    first_lba: int
    last_lba: int  # inclusive, as GPT stores it
    attributes: int = 0

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR_SIZE

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR_SIZE


@dataclass(frozen=True)
class GptDisk:
    disk_guid: str
    total_sectors: int
    partitions: tuple[GptPartition, ...]

    @property
    def size(self) -> int:
        return self.total_sectors * SECTOR_SIZE

    @property
    def last_usable_lba(self) -> int:
        return self.total_sectors - 2 - ENTRY_SECTORS


@dataclass(frozen=True)
class PartitionRequest:
    """A partition to place: its size in bytes must be a whole number of sectors."""

    name: str
    type_guid: str
    uuid: str
    size: int


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def layout_disk(disk_guid: str, requests: Sequence[PartitionRequest]) -> GptDisk:
    """Place `requests` in order, each starting on a 1 MiB boundary, in the smallest disk.

    The disk ends right after the last partition plus the backup table, rounded
    up to 4096 bytes.
    """
    partitions = []
    next_byte = ALIGNMENT
    for request in requests:
        if request.size <= 0 or request.size % SECTOR_SIZE:
            raise ValueError(
                f"partition {request.name!r}: size {request.size} is not whole sectors"
            )
        start = _align_up(next_byte, ALIGNMENT)
        first = start // SECTOR_SIZE
        last = first + request.size // SECTOR_SIZE - 1
        partitions.append(GptPartition(request.name, request.type_guid, request.uuid, first, last))
        next_byte = start + request.size
    end_sector = next_byte // SECTOR_SIZE + ENTRY_SECTORS + 1
    total = _align_up(end_sector, 4096 // SECTOR_SIZE)
    disk = GptDisk(_canonical_guid(disk_guid), total, tuple(partitions))
    _check_layout(disk)
    return disk


def _canonical_guid(value: str) -> str:
    return str(uuid.UUID(value))


def _guid_bytes(value: str) -> bytes:
    return uuid.UUID(value).bytes_le


def _guid_str(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def _check_layout(disk: GptDisk) -> None:
    if len(disk.partitions) > ENTRY_COUNT:
        raise ValueError(f"at most {ENTRY_COUNT} partitions")
    previous_last = FIRST_USABLE_LBA - 1
    for part in disk.partitions:
        if len(part.name) > _NAME_CHARS:
            raise ValueError(f"partition name {part.name!r} is longer than {_NAME_CHARS}")
        if part.first_lba <= previous_last or part.last_lba < part.first_lba:
            raise ValueError(f"partition {part.name!r} overlaps or is empty")
        previous_last = part.last_lba
    if previous_last > disk.last_usable_lba:
        raise ValueError("partitions run into the backup table")


def _entries(disk: GptDisk) -> bytes:
    array = bytearray(ENTRY_COUNT * ENTRY_SIZE)
    for index, part in enumerate(disk.partitions):
        struct.pack_into(
            _ENTRY_FORMAT,
            array,
            index * ENTRY_SIZE,
            _guid_bytes(part.type_guid),
            _guid_bytes(part.uuid),
            part.first_lba,
            part.last_lba,
            part.attributes,
            part.name.encode("utf-16-le"),
        )
    return bytes(array)


def _header(disk: GptDisk, my_lba: int, alternate_lba: int, entries_lba: int, crc: int) -> bytes:
    def pack(header_crc: int) -> bytes:
        return struct.pack(
            _HEADER_FORMAT,
            _SIGNATURE,
            _REVISION,
            HEADER_SIZE,
            header_crc,
            0,
            my_lba,
            alternate_lba,
            FIRST_USABLE_LBA,
            disk.last_usable_lba,
            _guid_bytes(disk.disk_guid),
            entries_lba,
            ENTRY_COUNT,
            ENTRY_SIZE,
            crc,
        )

    header = pack(zlib.crc32(pack(0)))
    return header + bytes(SECTOR_SIZE - len(header))


def _protective_mbr(disk: GptDisk) -> bytes:
    mbr = bytearray(SECTOR_SIZE)
    sectors = min(disk.total_sectors - 1, 0xFFFFFFFF)
    # status, CHS start (0/0/2), type 0xEE, CHS end (saturated), first LBA 1, size
    struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, sectors)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


@dataclass(frozen=True)
class GptStructures:
    """The bytes to write: `primary` at offset 0, `backup` at `backup_offset`."""

    primary: bytes  # protective MBR + primary header + entry array (LBA 0..33)
    backup: bytes  # entry array + backup header (the last 33 sectors)
    backup_offset: int


def gpt_structures(disk: GptDisk) -> GptStructures:
    _check_layout(disk)
    entries = _entries(disk)
    crc = zlib.crc32(entries)
    last_lba = disk.total_sectors - 1
    backup_entries_lba = last_lba - ENTRY_SECTORS
    primary = _protective_mbr(disk) + _header(disk, 1, last_lba, 2, crc) + entries
    backup = entries + _header(disk, last_lba, 1, backup_entries_lba, crc)
    return GptStructures(primary, backup, backup_entries_lba * SECTOR_SIZE)


def read_gpt(path: Path) -> GptDisk:
    """Parse and check the GPT of a disk image file; both copies must be intact and agree.

    The disk is the whole file: its backup table must end the file. Raises
    `VerificationFailed` naming the file and what is wrong.
    """
    with open(path, "rb") as stream:
        return read_gpt_stream(stream, path.stat().st_size, str(path))


def read_gpt_stream(stream: BinaryIO, size: int, shown: str) -> GptDisk:
    """Parse and check the GPT of a disk of `size` bytes read from `stream` (both copies).

    `size` is the disk's own size, which may be less than the stream's (an
    image written to a larger USB key): the backup table must end at `size`.
    Raises `VerificationFailed` naming `shown` and what is wrong.
    """
    if size % SECTOR_SIZE or size < (2 * ENTRY_SECTORS + 3) * SECTOR_SIZE:
        raise VerificationFailed(f"{shown}: {size} bytes is too small or not whole sectors")
    total = size // SECTOR_SIZE
    stream.seek(0)
    head = stream.read(FIRST_USABLE_LBA * SECTOR_SIZE)
    stream.seek((total - 1 - ENTRY_SECTORS) * SECTOR_SIZE)
    tail = stream.read((ENTRY_SECTORS + 1) * SECTOR_SIZE)
    if len(head) < FIRST_USABLE_LBA * SECTOR_SIZE or len(tail) < (ENTRY_SECTORS + 1) * SECTOR_SIZE:
        raise VerificationFailed(f"{shown}: ends before the {size} bytes its GPT needs")
    if head[510:512] != b"\x55\xaa" or head[450] != 0xEE:
        raise VerificationFailed(f"{shown}: no protective MBR")
    primary = _check_header(shown, "primary", head[SECTOR_SIZE : 2 * SECTOR_SIZE], 1, total)
    backup = _check_header(shown, "backup", tail[-SECTOR_SIZE:], total - 1, total)
    primary_entries = head[2 * SECTOR_SIZE :]
    backup_entries = tail[:-SECTOR_SIZE]
    if primary.entries_lba != 2 or backup.entries_lba != total - 1 - ENTRY_SECTORS:
        raise VerificationFailed(f"{shown}: unexpected partition entry array location")
    for which, header, entries in (
        ("primary", primary, primary_entries),
        ("backup", backup, backup_entries),
    ):
        if zlib.crc32(entries) != header.entries_crc:
            raise VerificationFailed(f"{shown}: {which} partition entry array CRC32 mismatch")
    if primary_entries != backup_entries:
        raise VerificationFailed(f"{shown}: primary and backup partition entries differ")
    if (primary.disk_guid, primary.first_usable, primary.last_usable) != (
        backup.disk_guid,
        backup.first_usable,
        backup.last_usable,
    ):
        raise VerificationFailed(f"{shown}: primary and backup GPT headers disagree")
    partitions = _parse_entries(primary_entries, ENTRY_COUNT, ENTRY_SIZE)
    return GptDisk(primary.disk_guid, total, partitions)


@dataclass(frozen=True)
class GptTable:
    """A disk's partitions as its primary GPT lists them (used entries only, in order)."""

    disk_guid: str
    partitions: tuple[GptPartition, ...]

    def find(self, name: str) -> GptPartition | None:
        for partition in self.partitions:
            if partition.name == name:
                return partition
        return None


# An entry array larger than this is damage, not a disk: never read it.
_MAX_ENTRY_COUNT = 1024
_MAX_ENTRY_SIZE = 4096


def read_primary_gpt(stream: BinaryIO) -> GptTable:
    """Read the primary GPT (LBA 1 and its entry array) of an image or device.

    Only the primary copy is read, so the disk may be larger than the image
    written to it. Header and entry CRC32s are checked; any entry count and
    size a valid header announces are accepted. Raises `VerificationFailed`.
    """
    stream.seek(SECTOR_SIZE)
    sector = stream.read(SECTOR_SIZE)
    header = _unpack_header(sector)
    if header is None:
        raise VerificationFailed("no GPT partition table found (no 'EFI PART' at LBA 1)")
    if header.entry_count > _MAX_ENTRY_COUNT or header.entry_size > _MAX_ENTRY_SIZE:
        raise VerificationFailed("GPT header announces an implausible entry array")
    stream.seek(header.entries_lba * SECTOR_SIZE)
    entries = stream.read(header.entry_count * header.entry_size)
    if not HEADER_SIZE <= header.header_size <= len(sector):
        raise VerificationFailed(f"GPT header size {header.header_size} is invalid")
    if not _header_crc_ok(sector, header):
        raise VerificationFailed("GPT header checksum (CRC32) is wrong: the table was altered")
    if header.entry_size < ENTRY_SIZE or len(entries) < header.entry_count * header.entry_size:
        raise VerificationFailed("GPT partition entry array is truncated")
    if zlib.crc32(entries) != header.entries_crc:
        raise VerificationFailed("GPT partition entries checksum is wrong: the table was altered")
    return GptTable(
        header.disk_guid, _parse_entries(entries, header.entry_count, header.entry_size)
    )


@dataclass(frozen=True)
class _Header:
    revision: int
    header_size: int
    header_crc: int
    my_lba: int
    alternate_lba: int
    disk_guid: str
    first_usable: int
    last_usable: int
    entries_lba: int
    entry_count: int
    entry_size: int
    entries_crc: int


def _unpack_header(sector: bytes) -> _Header | None:
    """The header's fields, or None if `sector` holds no GPT header signature."""
    if len(sector) < HEADER_SIZE or sector[:8] != _SIGNATURE:
        return None
    fields = struct.unpack_from(_HEADER_FORMAT, sector)
    (_signature, revision, header_size, header_crc, _reserved, my_lba, alternate_lba,
     first_usable, last_usable, disk_guid, entries_lba, entry_count, entry_size,
     entries_crc) = fields  # fmt: skip
    return _Header(
        revision,
        header_size,
        header_crc,
        my_lba,
        alternate_lba,
        _guid_str(disk_guid),
        first_usable,
        last_usable,
        entries_lba,
        entry_count,
        entry_size,
        entries_crc,
    )


def _header_crc_ok(sector: bytes, header: _Header) -> bool:
    check = bytearray(sector[: header.header_size])
    check[16:20] = bytes(4)
    return zlib.crc32(check) == header.header_crc


def _parse_entries(entries: bytes, count: int, entry_size: int) -> tuple[GptPartition, ...]:
    partitions = []
    for index in range(count):
        type_raw, uuid_raw, first, last, attributes, name_raw = struct.unpack_from(
            _ENTRY_FORMAT, entries, index * entry_size
        )
        if type_raw == bytes(16):
            continue
        name = name_raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        partitions.append(
            GptPartition(name, _guid_str(type_raw), _guid_str(uuid_raw), first, last, attributes)
        )
    return tuple(partitions)


def _check_header(shown: str, which: str, sector: bytes, my_lba: int, total: int) -> _Header:
    header = _unpack_header(sector)
    if header is None:
        raise VerificationFailed(f"{shown}: no {which} GPT header")
    if header.header_size != HEADER_SIZE or header.revision != _REVISION:
        raise VerificationFailed(
            f"{shown}: unsupported {which} GPT header (size {header.header_size})"
        )
    if not _header_crc_ok(sector, header):
        raise VerificationFailed(f"{shown}: {which} GPT header CRC32 mismatch")
    expected_alternate = total - 1 if my_lba == 1 else 1
    if header.my_lba != my_lba or header.alternate_lba != expected_alternate:
        raise VerificationFailed(f"{shown}: {which} GPT header is not where it says it is")
    if header.entry_count != ENTRY_COUNT or header.entry_size != ENTRY_SIZE:
        raise VerificationFailed(
            f"{shown}: {which} GPT has {header.entry_count} entries of {header.entry_size} "
            f"bytes; boothkey writes {ENTRY_COUNT} of {ENTRY_SIZE}"
        )
    return header
