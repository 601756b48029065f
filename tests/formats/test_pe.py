"""PE/COFF headers: section table, CheckSum, TimeDateStamp normalisation."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest
from image_factory import make_pe

from builder.core.errors import BuildError
from builder.core.tools import faketime_env
from builder.formats.pe import normalise_pe, pe_checksum, pe_checksum_bytes, read_pe, read_section

EPOCH = 1_700_000_000


def reference_checksum(data: bytes, checksum_offset: int) -> int:
    """The PE checksum written the slow, obvious way, to check the streaming one."""
    buf = bytearray(data)
    buf[checksum_offset : checksum_offset + 4] = bytes(4)
    if len(buf) % 2:
        buf += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("<H", buf):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return (total + len(data)) & 0xFFFFFFFF


@pytest.fixture
def pe_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.efi"
    path.write_bytes(
        make_pe(
            [(".text", b"\xc3" * 100), (".data", b"hello world")],
            12345,
            spare_headers=8,
            checksum=0xDEAD,
        )
    )
    return path


def test_reads_sections_and_layout(pe_file: Path) -> None:
    image = read_pe(pe_file)
    assert [s.name for s in image.sections] == [".text", ".data"]
    assert image.section(".data") is not None
    assert image.section(".linux") is None
    assert image.timestamp == 12345
    assert image.section_alignment == 0x1000
    assert image.end_of_image == 0x3000
    assert not image.is_signed
    assert read_section(pe_file, ".data") == b"hello world"


def test_checksum_matches_reference(pe_file: Path, tmp_path: Path) -> None:
    image = read_pe(pe_file)
    data = pe_file.read_bytes()
    assert pe_checksum(pe_file, image.checksum_offset) == reference_checksum(
        data, image.checksum_offset
    )
    odd = tmp_path / "odd.efi"
    odd.write_bytes(data + b"\x07")  # an odd length pads with a zero byte
    assert pe_checksum(odd, image.checksum_offset) == reference_checksum(
        odd.read_bytes(), image.checksum_offset
    )


def test_checksum_of_bytes_matches_reference(pe_file: Path) -> None:
    image = read_pe(pe_file)
    data = pe_file.read_bytes()
    # a file larger than one read chunk, with the field not at the start of a chunk
    big = data + bytes(range(256)) * 5000 + b"\x09"
    for blob in (data, data + b"\x07", big):
        assert pe_checksum_bytes(blob, image.checksum_offset) == reference_checksum(
            blob, image.checksum_offset
        )


def test_normalise_sets_timestamp_and_checksum_and_is_idempotent(pe_file: Path) -> None:
    image = normalise_pe(pe_file, EPOCH)
    assert image.timestamp == EPOCH
    assert image.checksum == reference_checksum(pe_file.read_bytes(), image.checksum_offset)
    once = pe_file.read_bytes()
    normalise_pe(pe_file, EPOCH)
    assert pe_file.read_bytes() == once


def test_normalise_changes_only_the_two_fields(pe_file: Path) -> None:
    before = pe_file.read_bytes()
    image = normalise_pe(pe_file, EPOCH)
    after = pe_file.read_bytes()
    changed = {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
    allowed = set(range(image.timestamp_offset, image.timestamp_offset + 4))
    allowed |= set(range(image.checksum_offset, image.checksum_offset + 4))
    assert changed and changed <= allowed


def test_not_a_pe_file_is_an_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.efi"
    bogus.write_bytes(b"\x7fELF" + bytes(200))
    with pytest.raises(BuildError, match="not a PE/COFF"):
        read_pe(bogus)
    truncated = tmp_path / "short.efi"
    truncated.write_bytes(b"MZ")
    with pytest.raises(BuildError, match="truncated"):
        read_pe(truncated)


def test_two_objcopy_runs_at_different_times_normalise_to_the_same_bytes(
    pe_file: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.txt"
    payload.write_bytes(b"boothkey")
    outputs = []
    for index, when in enumerate(("2021-03-04 05:06:07", "2029-12-31 23:59:59")):
        out = tmp_path / f"out{index}.efi"
        subprocess.run(
            ["objcopy", "--add-section", f".osrel={payload}",
             "--change-section-vma", ".osrel=0x10000", pe_file, out],
            check=True,
            env={**os.environ, **faketime_env(when)},
        )  # fmt: skip
        outputs.append(out)
    raw = [p.read_bytes() for p in outputs]
    assert raw[0] != raw[1], "objcopy no longer stamps the time: this test lost its point"
    for out in outputs:
        normalise_pe(out, EPOCH)
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert read_section(outputs[0], ".osrel") == b"boothkey"
