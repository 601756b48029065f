"""Canonical JSON and digests: the bytes that are hashed, compared and signed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CHUNK_SIZE = 4 * 1024 * 1024


def canonical_json(value: Any) -> bytes:
    """Serialise `value` as canonical JSON: sorted keys, compact, UTF-8, no floats needed.

    The result round-trips: `json.loads(canonical_json(v)) == v` is checked.
    """
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if json.loads(data) != value:
        raise ValueError("value does not round-trip through canonical JSON")
    return data


def pretty_json(value: Any) -> bytes:
    """Stable, human-readable JSON (sorted keys, 2-space indent, trailing newline)."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    """sha256 hex digest of the canonical JSON of `value`."""
    return sha256_bytes(canonical_json(value))


def sha256_file(path: Path, length: int | None = None) -> str:
    """sha256 of a file (or of its first `length` bytes), streamed in bounded memory."""
    digest = hashlib.sha256()
    remaining = length
    with open(path, "rb", buffering=0) as stream:
        while remaining is None or remaining > 0:
            want = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
            chunk = stream.read(want)
            if not chunk:
                break
            digest.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    if remaining:
        raise ValueError(f"{path}: shorter than the {length} bytes expected")
    return digest.hexdigest()


def update_zeros(digest: Any, count: int) -> None:
    """Feed `count` zero bytes to a hashlib object, CHUNK_SIZE at a time (a partition
    left as a hole in the image, or the unused part of one, reads back as zeros)."""
    zeros = bytes(min(CHUNK_SIZE, count))
    while count > 0:
        take = min(len(zeros), count)
        digest.update(zeros[:take])
        count -= take


def derive_uuid(*parts: str) -> str:
    """A version-4-shaped UUID derived from content, never random."""
    raw = bytearray(hashlib.sha256("\0".join(("boothkey-uuid", *parts)).encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    hexed = raw.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def derive_hex(length: int, *parts: str) -> str:
    """`length` hex digits derived from content (salts, volume ids, serials)."""
    seed = "\0".join(("boothkey-derive", *parts)).encode()
    out = b""
    counter = 0
    while len(out) * 2 < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out.hex()[:length]
