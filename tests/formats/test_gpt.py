"""GPT writer/reader: layout, round trip, and agreement with util-linux (sfdisk, fdisk)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder.core.errors import VerificationFailed
from builder.formats.gpt import (
    ESP_TYPE,
    LINUX_DATA_TYPE,
    ROOT_X86_64_TYPE,
    ROOT_X86_64_VERITY_TYPE,
    SECTOR_SIZE,
    GptDisk,
    PartitionRequest,
    gpt_structures,
    layout_disk,
    read_gpt,
    read_gpt_stream,
    read_primary_gpt,
)

MIB = 1024 * 1024
DISK_GUID = "6e1f5a7c-0000-4000-8000-000000000001"
REQUESTS = [
    PartitionRequest("esp", ESP_TYPE, "6e1f5a7c-0000-4000-8000-0000000000e5", 3 * MIB),
    PartitionRequest("root", ROOT_X86_64_TYPE, "0123abcd-4567-89ab-cdef-0123456789ab", 5 * 4096),
    PartitionRequest(
        "root-verity", ROOT_X86_64_VERITY_TYPE, "fedcba98-7654-3210-fedc-ba9876543210", 4096
    ),
    PartitionRequest("booth-data", LINUX_DATA_TYPE, "6e1f5a7c-0000-4000-8000-0000000000da", MIB),
]


def write_image(disk: GptDisk, path: Path) -> None:
    structures = gpt_structures(disk)
    with open(path, "wb") as stream:
        stream.write(structures.primary)
        stream.seek(structures.backup_offset)
        stream.write(structures.backup)
        stream.truncate(disk.size)


@pytest.fixture
def image(tmp_path: Path) -> tuple[GptDisk, Path]:
    disk = layout_disk(DISK_GUID, REQUESTS)
    path = tmp_path / "disk.img"
    write_image(disk, path)
    return disk, path


def test_layout_is_aligned_exact_and_minimal() -> None:
    disk = layout_disk(DISK_GUID, REQUESTS)
    for part, request in zip(disk.partitions, REQUESTS, strict=True):
        assert part.offset % MIB == 0
        assert part.size == request.size
    last = disk.partitions[-1]
    # the backup table (33 sectors) follows; the total is rounded up to 4 KiB only
    assert disk.size % 4096 == 0
    assert 0 <= disk.size - (last.offset + last.size + 33 * SECTOR_SIZE) < 4096
    assert disk.last_usable_lba >= last.last_lba


def test_round_trip(image: tuple[GptDisk, Path]) -> None:
    disk, path = image
    assert read_gpt(path) == disk
    assert path.stat().st_size == disk.size


def test_util_linux_reads_the_same_table(image: tuple[GptDisk, Path]) -> None:
    disk, path = image
    verify = subprocess.run(["sfdisk", "--verify", path], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "No errors detected" in verify.stdout
    dumped = json.loads(
        subprocess.run(
            ["sfdisk", "--json", path], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    assert dumped["label"] == "gpt"
    assert dumped["id"].lower() == DISK_GUID
    assert dumped["firstlba"] == 34
    assert dumped["lastlba"] == disk.last_usable_lba
    rows = [
        (p["name"], p["type"].lower(), p["uuid"].lower(), p["start"], p["size"])
        for p in dumped["partitions"]
    ]
    assert rows == [
        (p.name, p.type_guid, p.uuid, p.first_lba, p.last_lba - p.first_lba + 1)
        for p in disk.partitions
    ]
    fdisk = subprocess.run(["fdisk", "-l", path], capture_output=True, text=True, check=True)
    assert "Disklabel type: gpt" in fdisk.stdout
    assert "EFI System" in fdisk.stdout
    assert "Linux root (x86-64)" in fdisk.stdout
    assert "Linux root verity (x86-64)" in fdisk.stdout
    assert "warning" not in (fdisk.stdout + fdisk.stderr).lower()


def test_protective_mbr(image: tuple[GptDisk, Path]) -> None:
    disk, path = image
    mbr = path.read_bytes()[:512]
    assert mbr[510:] == b"\x55\xaa"
    assert mbr[450] == 0xEE
    assert int.from_bytes(mbr[454:458], "little") == 1
    assert int.from_bytes(mbr[458:462], "little") == disk.total_sectors - 1


@pytest.mark.parametrize(
    ("offset_sector", "byte", "message"),
    [
        (1, 24, "primary GPT header CRC32"),  # MyLBA field
        (2, 40, "primary partition entry array CRC32"),
        (-1, 60, "backup GPT header CRC32"),
        (-2, 100, "backup partition entry array CRC32"),
    ],
)
def test_damage_is_detected(
    image: tuple[GptDisk, Path], offset_sector: int, byte: int, message: str
) -> None:
    disk, path = image
    sector = offset_sector if offset_sector >= 0 else disk.total_sectors + offset_sector
    with open(path, "r+b") as stream:
        stream.seek(sector * SECTOR_SIZE + byte)
        value = stream.read(1)[0]
        stream.seek(sector * SECTOR_SIZE + byte)
        stream.write(bytes([value ^ 0x01]))
    with pytest.raises(VerificationFailed, match=message):
        read_gpt(path)


def test_truncated_image_loses_backup(image: tuple[GptDisk, Path]) -> None:
    disk, path = image
    with open(path, "r+b") as stream:
        stream.truncate(disk.size - MIB // 2)
    with pytest.raises(VerificationFailed):
        read_gpt(path)


def test_image_on_a_larger_key(image: tuple[GptDisk, Path]) -> None:
    """On a USB key bigger than the image the backup table is not at the end of the device."""
    disk, path = image
    with open(path, "r+b") as stream:
        stream.truncate(disk.size + 8 * MIB)
    with pytest.raises(VerificationFailed, match="not where it says"):
        read_gpt(path)
    with open(path, "rb") as stream:
        assert read_gpt_stream(stream, disk.size, "key") == disk
        table = read_primary_gpt(stream)
    assert table.disk_guid == disk.disk_guid
    assert table.partitions == disk.partitions
    assert table.find("root") == disk.partitions[1]
    assert table.find("absent") is None


def test_stream_shorter_than_the_disk(image: tuple[GptDisk, Path]) -> None:
    disk, path = image
    with open(path, "rb") as stream, pytest.raises(VerificationFailed, match="ends before"):
        read_gpt_stream(stream, disk.size + MIB, "key")


@pytest.mark.parametrize(
    ("byte", "message"),
    [
        (SECTOR_SIZE + 0, "no GPT partition table found"),
        (SECTOR_SIZE + 24, "GPT header checksum"),
        (2 * SECTOR_SIZE + 40, "GPT partition entries checksum"),
    ],
)
def test_primary_damage_is_detected(image: tuple[GptDisk, Path], byte: int, message: str) -> None:
    _disk, path = image
    with open(path, "r+b") as stream:
        stream.seek(byte)
        value = stream.read(1)[0]
        stream.seek(byte)
        stream.write(bytes([value ^ 0x01]))
    with open(path, "rb") as stream, pytest.raises(VerificationFailed, match=message):
        read_primary_gpt(stream)


def test_primary_does_not_need_the_backup(image: tuple[GptDisk, Path]) -> None:
    disk, path = image
    with open(path, "r+b") as stream:
        stream.truncate(disk.partitions[-1].offset)
    with open(path, "rb") as stream:
        assert read_primary_gpt(stream).partitions == disk.partitions


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="whole sectors"):
        layout_disk(DISK_GUID, [PartitionRequest("x", LINUX_DATA_TYPE, DISK_GUID, 1000)])
    with pytest.raises(ValueError, match="longer than"):
        layout_disk(DISK_GUID, [PartitionRequest("n" * 37, LINUX_DATA_TYPE, DISK_GUID, 4096)])


def test_same_input_same_bytes(tmp_path: Path) -> None:
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.img"
        write_image(layout_disk(DISK_GUID, REQUESTS), path)
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
