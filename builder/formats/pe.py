"""PE/COFF headers of EFI executables: read the section table, normalise the header.

Only what the UKI step needs: the layout of systemd's EFI stub (to place new
sections after it), the bytes of one section, and `normalise_pe`, which
overwrites the two header fields objcopy fills from the clock and from the
file's bytes: the COFF TimeDateStamp and the optional header's CheckSum.
Headers are read with bounded memory; section data is streamed.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder.core.errors import BuildError

_PE_SIGNATURE = b"PE\0\0"
_PE32_MAGIC = 0x10B
_PE32_PLUS_MAGIC = 0x20B
_SECTION_HEADER_SIZE = 40
_HEADER_READ_LIMIT = 64 * 1024
_CHUNK = 1024 * 1024  # even, so 16-bit words never straddle two chunks
SECURITY_DIRECTORY = 4  # index of the certificate table in the data directories


@dataclass(frozen=True)
class PeSection:
    name: str
    virtual_address: int  # RVA
    virtual_size: int
    raw_offset: int
    raw_size: int
    characteristics: int


@dataclass(frozen=True)
class PeImage:
    """The parts of a PE header boothkey reads. Offsets are file offsets."""

    machine: int
    image_base: int
    section_alignment: int
    file_alignment: int
    size_of_image: int
    size_of_headers: int
    timestamp: int
    checksum: int
    timestamp_offset: int
    checksum_offset: int
    data_directories: tuple[tuple[int, int], ...]  # (RVA, size) pairs
    sections: tuple[PeSection, ...]

    def section(self, name: str) -> PeSection | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None

    @property
    def end_of_image(self) -> int:
        """First RVA past every section and past SizeOfImage."""
        ends = [s.virtual_address + s.virtual_size for s in self.sections]
        return max([self.size_of_image, *ends])

    @property
    def is_signed(self) -> bool:
        """True if an Authenticode certificate table is present."""
        if len(self.data_directories) <= SECURITY_DIRECTORY:
            return False
        return self.data_directories[SECURITY_DIRECTORY][1] != 0


def read_pe(path: Path) -> PeImage:
    """Parse the headers of the PE file at `path`; raise `BuildError` if it is not one."""
    with open(path, "rb") as stream:
        head = stream.read(_HEADER_READ_LIMIT)
    return parse_pe_headers(head, str(path))


def parse_pe_headers(head: bytes, shown: str = "PE file") -> PeImage:
    """Parse PE headers from the first bytes of a file (the whole header must be there)."""

    def need(offset: int, size: int) -> None:
        if offset < 0 or offset + size > len(head):
            raise BuildError(f"{shown}: truncated or not a PE/COFF file")

    need(0, 0x40)
    if head[:2] != b"MZ":
        raise BuildError(f"{shown}: not a PE/COFF file (no MZ header)")
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    need(pe, 24)
    if head[pe : pe + 4] != _PE_SIGNATURE:
        raise BuildError(f"{shown}: not a PE/COFF file (no PE signature)")
    machine, section_count, timestamp, _symtab, _nsyms, optional_size, _chars = struct.unpack_from(
        "<HHIIIHH", head, pe + 4
    )
    optional = pe + 24
    need(optional, optional_size)
    magic = struct.unpack_from("<H", head, optional)[0]
    if magic == _PE32_PLUS_MAGIC:
        image_base = struct.unpack_from("<Q", head, optional + 24)[0]
        directories_at = optional + 112
    elif magic == _PE32_MAGIC:
        image_base = struct.unpack_from("<I", head, optional + 28)[0]
        directories_at = optional + 96
    else:
        raise BuildError(f"{shown}: unknown PE optional header magic {magic:#x}")
    section_alignment, file_alignment = struct.unpack_from("<II", head, optional + 32)
    size_of_image, size_of_headers, checksum = struct.unpack_from("<III", head, optional + 56)
    directory_count = struct.unpack_from("<I", head, directories_at - 4)[0]
    directory_count = min(directory_count, (optional + optional_size - directories_at) // 8)
    directories = tuple(
        struct.unpack_from("<II", head, directories_at + 8 * index)
        for index in range(directory_count)
    )
    table = optional + optional_size
    need(table, section_count * _SECTION_HEADER_SIZE)
    sections = []
    for index in range(section_count):
        at = table + index * _SECTION_HEADER_SIZE
        raw_name, vsize, vaddr, raw_size, raw_offset = struct.unpack_from("<8sIIII", head, at)
        characteristics = struct.unpack_from("<I", head, at + 36)[0]
        sections.append(
            PeSection(
                name=raw_name.rstrip(b"\0").decode("ascii", errors="replace"),
                virtual_address=vaddr,
                virtual_size=vsize,
                raw_offset=raw_offset,
                raw_size=raw_size,
                characteristics=characteristics,
            )
        )
    return PeImage(
        machine=machine,
        image_base=image_base,
        section_alignment=section_alignment,
        file_alignment=file_alignment,
        size_of_image=size_of_image,
        size_of_headers=size_of_headers,
        timestamp=timestamp,
        checksum=checksum,
        timestamp_offset=pe + 8,
        checksum_offset=optional + 64,
        data_directories=directories,
        sections=tuple(sections),
    )


def security_directory_entry(pe: bytes, shown: str = "PE file") -> tuple[int, int, int]:
    """(file offset of the security data directory entry, its address, its size): where a
    certificate table is (or would be) named in the header."""
    headers = parse_pe_headers(pe[:_HEADER_READ_LIMIT], shown)
    if len(headers.data_directories) <= SECURITY_DIRECTORY:
        raise BuildError(f"{shown}: PE header has no security data directory")
    pe_offset = struct.unpack_from("<I", pe, 0x3C)[0]
    optional = pe_offset + 24
    magic = struct.unpack_from("<H", pe, optional)[0]
    directories = optional + (112 if magic == 0x20B else 96)
    address, size = headers.data_directories[SECURITY_DIRECTORY]
    return directories + 8 * SECURITY_DIRECTORY, address, size


def read_section(path: Path, name: str) -> bytes:
    """The bytes of section `name` (its virtual size, not the file padding)."""
    image = read_pe(path)
    section = image.section(name)
    if section is None:
        raise BuildError(f"{path}: no section {name!r}")
    length = min(section.virtual_size, section.raw_size) or section.raw_size
    with open(path, "rb") as stream:
        stream.seek(section.raw_offset)
        data = stream.read(length)
    if len(data) != length:
        raise BuildError(f"{path}: section {name!r} runs past the end of the file")
    return data


def pe_checksum(path: Path, checksum_offset: int) -> int:
    """The PE optional-header CheckSum of a file (see `pe_checksum_stream`)."""
    with open(path, "rb") as stream:
        return pe_checksum_stream(stream, checksum_offset)


def pe_checksum_bytes(data: bytes, checksum_offset: int) -> int:
    """The PE optional-header CheckSum of a PE held in memory (see `pe_checksum_stream`)."""
    return pe_checksum_stream(io.BytesIO(data), checksum_offset)


def pe_checksum_stream(stream: BinaryIO, checksum_offset: int) -> int:
    """The PE optional-header CheckSum of what `stream` holds from its position to its end.

    Computed as the Windows loader does: 16-bit little-endian words summed with
    end-around carry, the CheckSum field itself counted as zero, plus the
    length. Reads in bounded chunks.
    """
    total = 0
    length = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        start = length
        length += len(chunk)
        if start <= checksum_offset < length or start < checksum_offset + 4 <= length:
            buf = bytearray(chunk)
            for position in range(checksum_offset, checksum_offset + 4):
                if start <= position < length:
                    buf[position - start] = 0
            chunk = bytes(buf)
        if len(chunk) % 2:
            chunk += b"\0"  # only the last chunk can be odd
        # Sum words as one big integer, then fold: same result as word-by-word carries.
        total += sum(struct.unpack(f"<{len(chunk) // 2}H", chunk))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (total + length) & 0xFFFFFFFF


def normalise_pe(path: Path, timestamp: int) -> PeImage:
    """Set the COFF TimeDateStamp to `timestamp` and recompute CheckSum, in place.

    Idempotent: normalising a normalised file changes nothing. Returns the new headers.
    """
    if not 0 <= timestamp < 2**32:
        raise ValueError(f"timestamp {timestamp} does not fit a PE TimeDateStamp")
    image = read_pe(path)
    with open(path, "r+b") as stream:
        stream.seek(image.timestamp_offset)
        stream.write(struct.pack("<I", timestamp))
        stream.flush()
        checksum = pe_checksum(path, image.checksum_offset)
        stream.seek(image.checksum_offset)
        stream.write(struct.pack("<I", checksum))
    return read_pe(path)
