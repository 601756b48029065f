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
import re
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.build.manifest import DATA_PARTITION
from builder.core.errors import InputError, VerificationFailed
from builder.formats.gpt import SECTOR_SIZE, GptPartition, read_primary_gpt
from builder.station.election import (
    HEADER,
    MAX_ENVELOPE,
    envelope_from_partition,
    parse_election_envelope,
)

_VERITY_SUPERBLOCK = struct.Struct("<8sII16s32sIIQH6s256s")


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


# The booth's fingerprint code (docs/fingerprint-code.md): the text its QR code holds.
CODE_PREFIX = "BOOTHKEY/1"
_SHORT_FORM = re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}")


@dataclass(frozen=True)
class FingerprintCode:
    """What a booth's fingerprint code says: its software fingerprint and its election
    fingerprint (None when the booth had no verified election data open)."""

    software: str
    election: str | None


def code_payload(software: str, election: str | None) -> str:
    """The text of the booth's fingerprint code, from the fingerprints it shows."""
    for shown in (software, election):
        if shown is not None and not _SHORT_FORM.fullmatch(shown):
            raise ValueError(f"not a short fingerprint: {shown!r}")
    return f"{CODE_PREFIX} SOFTWARE {software} ELECTION {election or 'NONE'}"


def parse_code_payload(text: str) -> FingerprintCode:
    """Read a fingerprint code's text (as a scanner gives it); `InputError` saying why not."""
    words = text.strip().split()
    if len(words) != 5 or words[0] != CODE_PREFIX or words[1:4:2] != ["SOFTWARE", "ELECTION"]:
        raise InputError(
            f"not a boothkey fingerprint code (expected '{CODE_PREFIX} SOFTWARE XXXX-XXXX-XXXX-XXXX "
            "ELECTION XXXX-XXXX-XXXX-XXXX|NONE')"
        )
    software, election = words[2], words[4]
    if not _SHORT_FORM.fullmatch(software):
        raise InputError(f"fingerprint code: software fingerprint {software!r} is malformed")
    if election != "NONE" and not _SHORT_FORM.fullmatch(election):
        raise InputError(f"fingerprint code: election fingerprint {election!r} is malformed")
    return FingerprintCode(software, None if election == "NONE" else election)


def _partition(path: Path, name: str) -> GptPartition:
    # The primary table only: `path` may be a USB key larger than the image, whose
    # backup table then sits mid-device (`build.py verify` checks both copies).
    with open(path, "rb") as stream:
        partition = read_primary_gpt(stream).find(name)
    if partition is None:
        raise InputError(f"{path}: no GPT partition named {name!r}")
    return partition


def root_hash_from_image(path: Path) -> str:
    """The verity root hash of an image, from its GPT, checked against the hash partition."""
    root = _partition(path, "root")
    verity = _partition(path, "root-verity")
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


def read_station_data(path: Path) -> StationData:
    """Election data from a data partition image, an envelope file, or a station image."""
    try:
        with open(path, "rb") as stream:
            start = stream.read(HEADER.size + MAX_ENVELOPE)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    if start[:1] == b"{":
        envelope = start.rstrip(b"\0\n ")
    elif start[SECTOR_SIZE : SECTOR_SIZE + 8] == b"EFI PART":
        data = _partition(path, DATA_PARTITION)
        with open(path, "rb") as stream:
            stream.seek(data.offset)
            start = stream.read(min(data.size, HEADER.size + MAX_ENVELOPE))
        envelope = envelope_from_partition(start, f"{path} ({DATA_PARTITION} partition)")
    else:
        envelope = envelope_from_partition(start, str(path))
    parsed = parse_election_envelope(envelope, str(path))
    return StationData(envelope, parsed.payload)
