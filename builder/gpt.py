"""GUID Partition Tables, written and read in pure Python (512-byte sectors).

`layout_disk` places partitions 1 MiB-aligned, each exactly as large as asked;
`gpt_structures` renders the protective MBR, the primary header and entry
array, and the backup entry array and header, with their CRC32s; `read_gpt`
parses and checks a disk image's tables (both copies). GUIDs are given and
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

from .errors import VerificationFailed

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
    """Parse and check the GPT of a disk image; both copies must be intact and agree.

    Raises `VerificationFailed` naming the file and what is wrong.
    """
    size = path.stat().st_size
    if size % SECTOR_SIZE or size < (2 * ENTRY_SECTORS + 3) * SECTOR_SIZE:
        raise VerificationFailed(f"{path}: {size} bytes is too small or not whole sectors")
    total = size // SECTOR_SIZE
    with open(path, "rb") as stream:
        head = stream.read(FIRST_USABLE_LBA * SECTOR_SIZE)
        stream.seek((total - 1 - ENTRY_SECTORS) * SECTOR_SIZE)
        tail = stream.read((ENTRY_SECTORS + 1) * SECTOR_SIZE)
    if head[510:512] != b"\x55\xaa" or head[450] != 0xEE:
        raise VerificationFailed(f"{path}: no protective MBR")
    primary = _parse_header(path, "primary", head[SECTOR_SIZE : 2 * SECTOR_SIZE], 1, total)
    backup = _parse_header(path, "backup", tail[-SECTOR_SIZE:], total - 1, total)
    primary_entries = head[2 * SECTOR_SIZE :]
    backup_entries = tail[:-SECTOR_SIZE]
    if primary.entries_lba != 2 or backup.entries_lba != total - 1 - ENTRY_SECTORS:
        raise VerificationFailed(f"{path}: unexpected partition entry array location")
    for which, header, entries in (
        ("primary", primary, primary_entries),
        ("backup", backup, backup_entries),
    ):
        if zlib.crc32(entries) != header.entries_crc:
            raise VerificationFailed(f"{path}: {which} partition entry array CRC32 mismatch")
    if primary_entries != backup_entries:
        raise VerificationFailed(f"{path}: primary and backup partition entries differ")
    if (primary.disk_guid, primary.first_usable, primary.last_usable) != (
        backup.disk_guid,
        backup.first_usable,
        backup.last_usable,
    ):
        raise VerificationFailed(f"{path}: primary and backup GPT headers disagree")
    partitions = []
    for index in range(ENTRY_COUNT):
        raw = primary_entries[index * ENTRY_SIZE : (index + 1) * ENTRY_SIZE]
        type_raw, uuid_raw, first, last, attributes, name_raw = struct.unpack(_ENTRY_FORMAT, raw)
        if type_raw == bytes(16):
            continue
        name = name_raw.decode("utf-16-le").split("\0", 1)[0]
        partitions.append(
            GptPartition(name, _guid_str(type_raw), _guid_str(uuid_raw), first, last, attributes)
        )
    return GptDisk(primary.disk_guid, total, tuple(partitions))


@dataclass(frozen=True)
class _Header:
    disk_guid: str
    first_usable: int
    last_usable: int
    entries_lba: int
    entries_crc: int


def _parse_header(path: Path, which: str, sector: bytes, my_lba: int, total: int) -> _Header:
    fields = struct.unpack_from(_HEADER_FORMAT, sector)
    (signature, revision, header_size, header_crc, _reserved, mine, alternate, first_usable,
     last_usable, disk_guid, entries_lba, entry_count, entry_size, entries_crc) = fields  # fmt: skip
    if signature != _SIGNATURE:
        raise VerificationFailed(f"{path}: no {which} GPT header")
    if header_size != HEADER_SIZE or revision != _REVISION:
        raise VerificationFailed(f"{path}: unsupported {which} GPT header (size {header_size})")
    check = bytearray(sector[:HEADER_SIZE])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != header_crc:
        raise VerificationFailed(f"{path}: {which} GPT header CRC32 mismatch")
    expected_alternate = total - 1 if my_lba == 1 else 1
    if mine != my_lba or alternate != expected_alternate:
        raise VerificationFailed(f"{path}: {which} GPT header is not where it says it is")
    if entry_count != ENTRY_COUNT or entry_size != ENTRY_SIZE:
        raise VerificationFailed(
            f"{path}: {which} GPT has {entry_count} entries of {entry_size} bytes; "
            f"boothkey writes {ENTRY_COUNT} of {ENTRY_SIZE}"
        )
    return _Header(_guid_str(disk_guid), first_usable, last_usable, entries_lba, entries_crc)
