"""The fingerprints the booth shows, computed by the builder from an image or a manifest.

Software fingerprint: the first 10 bytes of the dm-verity root hash in RFC
4648 base32, as four groups of four (``MFRG-GZDF-MZTW-Q2LK``). Election-data
fingerprint: the same short form of sha256(signed payload bytes). The booth
computes them independently (overlays/booth/usr/lib/booth/booth/fingerprint.py);
tests check that both agree.

From an image, the root hash is read from the GPT (the "root" partition's
UUID is its first 128 bits, "root-verity"'s UUID the last 128) and checked
against the hash partition: sha256(salt || top hash block) must equal it, so a
relabelled GPT cannot pass. This does not re-hash the data blocks: at boot
the kernel does that for every block it reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .election import HEADER, MAX_ENVELOPE, envelope_from_partition, parse_election_envelope
from .errors import InputError, VerificationFailed

SECTOR = 512
_GPT_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_VERITY_SUPERBLOCK = struct.Struct("<8sII16s32sIIQH6s256s")


@dataclass(frozen=True)
class GptPartition:
    name: str
    type: str
    uuid: str
    offset: int
    size: int


@dataclass(frozen=True)
class StationData:
    """Election data found in a file: its envelope and the signed payload inside."""

    envelope: bytes
    payload: bytes

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def fingerprint(self) -> str:
        return election_fingerprint(self.payload)

    def summary(self) -> dict[str, Any]:
        """Election and station named in the payload (unverified: see `election verify`)."""
        try:
            raw = json.loads(self.payload)
            return {"election": raw["election"], "station": raw["station"]}
        except (ValueError, KeyError, TypeError):
            return {}


def short_form(digest: bytes) -> str:
    """Four dash-separated groups of four base32 characters from the first 10 bytes."""
    if len(digest) < 10:
        raise ValueError("a digest of at least 10 bytes is needed")
    text = base64.b32encode(digest[:10]).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def software_fingerprint(root_hash: str) -> str:
    try:
        raw = bytes.fromhex(root_hash)
    except ValueError as exc:
        raise InputError(f"not a hex root hash: {root_hash!r}") from exc
    if len(raw) != 32:
        raise InputError(f"a sha256 root hash is 32 bytes, got {len(raw)}")
    return short_form(raw)


def election_fingerprint(payload: bytes) -> str:
    return short_form(hashlib.sha256(payload).digest())


def read_gpt(path: Path) -> list[GptPartition]:
    """The partitions of the primary GPT of a disk image (CRCs checked)."""
    try:
        with open(path, "rb") as stream:
            header = stream.read(2 * SECTOR)[SECTOR:]
            fields = _GPT_HEADER.unpack_from(header)
            signature, _rev, header_size = fields[0], fields[1], fields[2]
            if signature != b"EFI PART":
                raise InputError(f"{path}: no GPT found (not a disk image)")
            check = bytearray(header[:header_size])
            check[16:20] = b"\0\0\0\0"
            if zlib.crc32(check) != fields[3]:
                raise VerificationFailed(f"{path}: the GPT header checksum is wrong")
            entries_lba, count, entry_size, entries_crc = (
                fields[10],
                fields[11],
                fields[12],
                fields[13],
            )
            stream.seek(entries_lba * SECTOR)
            table = stream.read(count * entry_size)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    except struct.error as exc:
        raise InputError(f"{path}: too short for a disk image") from exc
    if zlib.crc32(table) != entries_crc:
        raise VerificationFailed(f"{path}: the GPT partition table checksum is wrong")
    partitions = []
    for index in range(count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if entry[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le").split("\0", 1)[0]
        partitions.append(
            GptPartition(
                name,
                str(uuid.UUID(bytes_le=entry[:16])).upper(),
                str(uuid.UUID(bytes_le=entry[16:32])),
                first * SECTOR,
                (last - first + 1) * SECTOR,
            )
        )
    return partitions


def _partition(partitions: list[GptPartition], name: str, path: Path) -> GptPartition:
    for partition in partitions:
        if partition.name == name:
            return partition
    raise InputError(f"{path}: no GPT partition named {name!r}")


def root_hash_from_image(path: Path) -> str:
    """The verity root hash of an image, from its GPT, checked against the hash partition."""
    partitions = read_gpt(path)
    root = _partition(partitions, "root", path)
    verity = _partition(partitions, "root-verity", path)
    root_hash = uuid.UUID(root.uuid).hex + uuid.UUID(verity.uuid).hex
    with open(path, "rb") as stream:
        stream.seek(verity.offset)
        superblock = stream.read(4096)
        top_block = stream.read(4096)
    fields = _VERITY_SUPERBLOCK.unpack_from(superblock)
    if fields[0] != b"verity\0\0" or fields[1] != 1 or fields[2] != 1:
        raise VerificationFailed(f"{path}: root-verity holds no verity superblock of format 1")
    algorithm = fields[4].rstrip(b"\0").decode(errors="replace")
    if algorithm != "sha256" or fields[5] != 4096 or fields[6] != 4096:
        raise VerificationFailed(f"{path}: verity uses {algorithm}/{fields[5]}, not sha256/4096")
    salt = fields[10][: fields[8]]
    # With one data block the root hash is that block's hash, not a hash block's.
    if fields[7] == 1:
        with open(path, "rb") as stream:
            stream.seek(root.offset)
            top_block = stream.read(4096)
    computed = hashlib.sha256(salt + top_block).hexdigest()
    if computed != root_hash:
        raise VerificationFailed(
            f"{path}: the GPT partition UUIDs give root hash {root_hash}, "
            f"but the hash partition gives {computed}"
        )
    return root_hash


def root_hash_from_manifest(manifest: dict[str, Any], shown: str) -> str:
    try:
        root_hash = manifest["verity"]["root_hash"]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{shown}: verity.root_hash is missing") from exc
    if not isinstance(root_hash, str):
        raise InputError(f"{shown}: verity.root_hash is not a string")
    return root_hash


def read_station_data(path: Path) -> StationData:
    """Election data from a data partition image, an envelope file, or a station image."""
    try:
        with open(path, "rb") as stream:
            start = stream.read(HEADER.size + MAX_ENVELOPE)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    if start[:1] == b"{":
        envelope = start.rstrip(b"\0\n ")
    elif start[SECTOR : SECTOR + 8] == b"EFI PART":
        data = _partition(read_gpt(path), "booth-data", path)
        with open(path, "rb") as stream:
            stream.seek(data.offset)
            start = stream.read(min(data.size, HEADER.size + MAX_ENVELOPE))
        envelope = envelope_from_partition(start, f"{path} (booth-data partition)")
    else:
        envelope = envelope_from_partition(start, str(path))
    parsed = parse_election_envelope(envelope, str(path))
    return StationData(envelope, parsed.payload)
