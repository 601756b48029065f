"""dm-verity hash trees recomputed in pure Python, as `veritysetup format` lays them out.

Format 1 (the kernel's current format): every block hash is
sha256(salt || block); hash blocks hold 4096/32 = 128 hashes, zero-padded; the
hash device starts with a 4096-byte block holding the 512-byte superblock,
then the tree levels, the level nearest the root first. The root hash is the
hash of the single top block (or of the only data block when there is one).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass
from typing import BinaryIO

BLOCK_SIZE = 4096
HASH_SIZE = 32
_SUPERBLOCK = struct.Struct("<8sII16s32sIIQH6s256s168s")
_SIGNATURE = b"verity\0\0"
_READ_BLOCKS = 1024  # 4 MiB reads: big enough that per-call overhead vanishes


@dataclass(frozen=True)
class VeritySuperblock:
    """The superblock veritysetup writes at the start of the hash device."""

    version: int
    hash_type: int
    uuid: str
    algorithm: str
    data_block_size: int
    hash_block_size: int
    data_blocks: int
    salt: bytes

    def to_bytes(self) -> bytes:
        """The 512-byte superblock (the hash device's first block is this, zero-padded)."""
        return _SUPERBLOCK.pack(
            _SIGNATURE,
            self.version,
            self.hash_type,
            uuid.UUID(self.uuid).bytes,
            self.algorithm.encode(),
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            len(self.salt),
            b"",
            self.salt,
            b"",
        )


def parse_superblock(block: bytes) -> VeritySuperblock:
    """Parse the first 512 bytes of a hash device; `ValueError` if it is not one."""
    if len(block) < _SUPERBLOCK.size:
        raise ValueError("too short for a verity superblock")
    (sig, version, hash_type, raw_uuid, algorithm, data_bs, hash_bs, data_blocks, salt_size, _p,
     salt, _p2) = _SUPERBLOCK.unpack_from(block)  # fmt: skip
    if sig != _SIGNATURE:
        raise ValueError("no verity superblock signature")
    if salt_size > 256:
        raise ValueError(f"salt size {salt_size} is larger than 256")
    return VeritySuperblock(
        version=version,
        hash_type=hash_type,
        uuid=str(uuid.UUID(bytes=raw_uuid)),
        algorithm=algorithm.rstrip(b"\0").decode(errors="replace"),
        data_block_size=data_bs,
        hash_block_size=hash_bs,
        data_blocks=data_blocks,
        salt=salt[:salt_size],
    )


@dataclass(frozen=True)
class VerityTree:
    root_hash: str  # hex
    levels: tuple[bytes, ...]  # hash blocks per level, the level nearest the root first

    @property
    def hash_area(self) -> bytes:
        """The bytes that follow the superblock block on the hash device."""
        return b"".join(self.levels)

    def hash_device_size(self) -> int:
        return BLOCK_SIZE + sum(len(level) for level in self.levels)


def _hash_blocks(template: hashlib._Hash, data: memoryview, out: bytearray) -> None:
    for start in range(0, len(data), BLOCK_SIZE):
        block_hash = template.copy()
        block_hash.update(data[start : start + BLOCK_SIZE])
        out += block_hash.digest()


def _pack_level(hashes: bytes) -> bytes:
    """Hashes packed into zero-padded hash blocks."""
    pad = -len(hashes) % BLOCK_SIZE
    return hashes + bytes(pad)


def compute_tree(data: BinaryIO, data_blocks: int, salt: bytes) -> VerityTree:
    """Recompute the tree over the first `data_blocks` 4096-byte blocks of `data`.

    Reads the stream once in big chunks; memory is 32 bytes per data block.
    Raises `ValueError` if the stream ends early.
    """
    if data_blocks < 1:
        raise ValueError("a verity device has at least one data block")
    template = hashlib.sha256(salt)
    hashes = bytearray()
    buffer = bytearray(_READ_BLOCKS * BLOCK_SIZE)
    view = memoryview(buffer)
    remaining = data_blocks
    while remaining:
        want = min(remaining, _READ_BLOCKS) * BLOCK_SIZE
        got = 0
        while got < want:
            count = data.readinto(view[got:want])  # type: ignore[attr-defined]
            if not count:
                raise ValueError(
                    f"data ends after {(data_blocks - remaining) * BLOCK_SIZE + got} bytes, "
                    f"{data_blocks * BLOCK_SIZE} expected"
                )
            got += count
        _hash_blocks(template, view[:want], hashes)
        remaining -= want // BLOCK_SIZE

    levels: list[bytes] = []
    while len(hashes) > HASH_SIZE:
        level = _pack_level(bytes(hashes))
        levels.append(level)
        hashes = bytearray()
        _hash_blocks(template, memoryview(level), hashes)
    return VerityTree(bytes(hashes).hex(), tuple(reversed(levels)))
