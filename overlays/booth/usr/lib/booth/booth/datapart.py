"""Reading and checking the signed election data on the "booth-data" partition.

Layout (docs/election-data.md): bytes 0-7 the magic ``BKDATA01``, bytes 8-15
the envelope length N (unsigned 64-bit big-endian), bytes 16..16+N the
envelope (DSSE JSON, UTF-8), then zeros to the end of the partition. A
partition that is all zeros holds no election data.

The booth only opens the vote when at least one signature is a valid
signature by a trusted authority key and no signature claiming a trusted key
fails: `check_data` raises `DataRefused` otherwise, with a reason a poll
worker can read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAGIC = b"BKDATA01"
HEADER = struct.Struct(">8sQ")
PAYLOAD_TYPE = "application/vnd.boothkey.election+json"
MAX_ENVELOPE = 16 * 1024 * 1024


class DataRefused(Exception):
    """The election data cannot be trusted; `reason` is a stable word, `message` is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TrustedKey:
    name: str
    keyid: str
    raw: bytes


@dataclass(frozen=True)
class CheckedData:
    """Election data whose signature verified: the exact signed payload and who signed it."""

    payload: bytes
    signers: tuple[str, ...]  # names of the trusted keys with a valid signature


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: the bytes each signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def parse_public_key(text: bytes, shown: str) -> TrustedKey:
    """A ``NAME.pub.json`` key file: {"algorithm":"ed25519","keyid","name","public":base64}."""
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("algorithm") != "ed25519":
            raise ValueError("not an ed25519 public key file")
        public = base64.b64decode(str(raw["public"]), validate=True)
        if len(public) != 32:
            raise ValueError("an Ed25519 key is 32 bytes")
        keyid = hashlib.sha256(public).hexdigest()
        if raw.get("keyid") != keyid:
            raise ValueError("keyid does not match the key")
        return TrustedKey(str(raw.get("name", shown)), keyid, public)
    except (ValueError, KeyError, binascii.Error) as exc:
        raise DataRefused("bad-key", f"authority key {shown} is damaged: {exc}") from exc


def load_trusted_keys(directory: Path, key_list: Path | None = None) -> dict[str, TrustedKey]:
    """Authority keys baked into the root: ``directory/*.pub.json`` and, if present,
    `key_list` (a JSON list of the same objects, rendered from a recipe variable)."""
    keys: dict[str, TrustedKey] = {}
    if directory.is_dir():
        for path in sorted(directory.glob("*.pub.json")):
            key = parse_public_key(path.read_bytes(), path.name)
            keys.setdefault(key.keyid, key)
    if key_list is not None and key_list.is_file():
        try:
            entries = json.loads(key_list.read_bytes())
        except ValueError as exc:
            raise DataRefused("bad-key", f"{key_list} is not JSON") from exc
        if not isinstance(entries, list):
            raise DataRefused("bad-key", f"{key_list} is not a list of keys")
        for index, entry in enumerate(entries):
            key = parse_public_key(json.dumps(entry).encode(), f"{key_list.name}[{index}]")
            keys.setdefault(key.keyid, key)
    return keys


def read_partition(path: Path) -> bytes:
    """The envelope bytes stored on a data partition (or a file with its layout)."""
    try:
        with open(path, "rb") as stream:
            header = stream.read(HEADER.size)
            magic, length = HEADER.unpack(header) if len(header) == HEADER.size else (b"", 0)
            if magic != MAGIC:
                if header.strip(b"\0") == b"":
                    raise DataRefused("missing", "no election data has been written to this key")
                raise DataRefused("damaged", "the data partition does not hold election data")
            if not 0 < length <= MAX_ENVELOPE:
                raise DataRefused("damaged", f"the election data length {length} is impossible")
            envelope = stream.read(length)
    except OSError as exc:
        raise DataRefused("missing", f"cannot read the election data: {exc.strerror}") from exc
    if len(envelope) != length:
        raise DataRefused("damaged", "the election data is cut short")
    return envelope


def check_envelope(envelope: bytes, trusted: Mapping[str, TrustedKey]) -> CheckedData:
    """Verify a DSSE envelope against trusted keys; return the signed payload or refuse."""
    if not trusted:
        raise DataRefused("no-keys", "no election authority key is installed in this software")
    try:
        raw = json.loads(envelope)
        if not isinstance(raw, dict) or raw.get("payloadType") != PAYLOAD_TYPE:
            raise ValueError("not a boothkey election envelope")
        payload = base64.b64decode(str(raw["payload"]), validate=True)
        signatures = raw.get("signatures")
        if not isinstance(signatures, list):
            raise ValueError("signatures is not a list")
        pairs = []
        for entry in signatures:
            if not isinstance(entry, dict):
                raise ValueError("a signature is not an object")
            pairs.append((str(entry["keyid"]), base64.b64decode(str(entry["sig"]), validate=True)))
    except (ValueError, KeyError, binascii.Error) as exc:
        raise DataRefused("damaged", f"the election data is damaged: {exc}") from exc
    if not pairs:
        raise DataRefused("unsigned", "the election data is not signed")
    message = pae(PAYLOAD_TYPE, payload)
    signers: list[str] = []
    for keyid, signature in pairs:
        key = trusted.get(keyid)
        if key is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.raw).verify(signature, message)
        except InvalidSignature as exc:
            raise DataRefused(
                "altered",
                f"the election data was altered: the signature of {key.name} does not match",
            ) from exc
        if key.name not in signers:
            signers.append(key.name)
    if not signers:
        raise DataRefused(
            "unknown-key", "the election data is signed by a key this software does not trust"
        )
    return CheckedData(payload, tuple(signers))


def find_data_partition(sysfs: Path = Path("/sys/class/block"), dev: Path = Path("/dev")) -> Path:
    """The device whose GPT partition name is "booth-data" (exactly one must exist)."""
    found: list[str] = []
    for uevent in sorted(sysfs.glob("*/uevent")):
        try:
            fields = dict(
                line.split("=", 1) for line in uevent.read_text().splitlines() if "=" in line
            )
        except OSError:
            continue
        if fields.get("PARTNAME") == "booth-data" and fields.get("DEVNAME"):
            found.append(fields["DEVNAME"])
    if not found:
        raise DataRefused("missing", "no booth-data partition found on this key")
    if len(found) > 1:
        raise DataRefused(
            "missing",
            f"several booth-data partitions found ({', '.join(found)}): remove other keys",
        )
    return dev / found[0]
