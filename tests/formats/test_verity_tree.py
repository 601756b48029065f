"""Pure-Python dm-verity hash trees against the real veritysetup."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import pytest

from builder.formats.verity_tree import BLOCK_SIZE, VeritySuperblock, compute_tree, parse_superblock

SALT = bytes.fromhex("5a" * 32)
UUID = "6e1f5a7c-0000-4000-8000-0000000000aa"


def _data(blocks: int) -> bytes:
    return hashlib.shake_256(b"verity %d" % blocks).digest(blocks * BLOCK_SIZE)


def _veritysetup_format(tmp_path: Path, data: bytes) -> tuple[Path, Path, str]:
    data_path, hash_path = tmp_path / "data.img", tmp_path / "hash.img"
    data_path.write_bytes(data)
    out = subprocess.run(
        [
            "veritysetup", "format", str(data_path), str(hash_path), f"--salt={SALT.hex()}",
            f"--uuid={UUID}", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
        ],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    root_hash = next(line.split()[-1] for line in out.splitlines() if line.startswith("Root hash"))
    return data_path, hash_path, root_hash


@pytest.mark.parametrize("blocks", [1, 2, 127, 128, 129, 300, 16385])
def test_tree_matches_veritysetup_byte_for_byte(tmp_path: Path, blocks: int) -> None:
    data = _data(blocks)
    _data_path, hash_path, root_hash = _veritysetup_format(tmp_path, data)
    tree = compute_tree(io.BytesIO(data), blocks, SALT)
    assert tree.root_hash == root_hash
    device = hash_path.read_bytes()
    assert device[BLOCK_SIZE : tree.hash_device_size()] == tree.hash_area
    assert device[tree.hash_device_size() :].strip(b"\0") == b""


def test_superblock_round_trips_as_veritysetup_writes_it(tmp_path: Path) -> None:
    _data_path, hash_path, _root = _veritysetup_format(tmp_path, _data(10))
    head = hash_path.read_bytes()[:512]
    superblock = parse_superblock(head)
    assert superblock == VeritySuperblock(1, 1, UUID, "sha256", 4096, 4096, 10, SALT)
    assert superblock.to_bytes() == head
    with pytest.raises(ValueError, match="signature"):
        parse_superblock(bytes(512))


def test_veritysetup_verify_accepts_a_hash_device_written_by_us(tmp_path: Path) -> None:
    data = _data(300)
    data_path = tmp_path / "data.img"
    data_path.write_bytes(data)
    tree = compute_tree(io.BytesIO(data), 300, SALT)
    superblock = VeritySuperblock(1, 1, UUID, "sha256", 4096, 4096, 300, SALT).to_bytes()
    hash_path = tmp_path / "hash.img"
    hash_path.write_bytes(superblock.ljust(BLOCK_SIZE, b"\0") + tree.hash_area)
    subprocess.run(
        ["veritysetup", "verify", str(data_path), str(hash_path), tree.root_hash],
        check=True,
        capture_output=True,
    )
    data_path.write_bytes(data[:5000] + bytes([data[5000] ^ 1]) + data[5001:])
    failed = subprocess.run(
        ["veritysetup", "verify", str(data_path), str(hash_path), tree.root_hash],
        capture_output=True,
        check=False,
    )
    assert failed.returncode != 0


def test_one_changed_bit_changes_the_root_hash() -> None:
    data = bytearray(_data(129))
    before = compute_tree(io.BytesIO(bytes(data)), 129, SALT).root_hash
    data[128 * BLOCK_SIZE + 7] ^= 0x80
    assert compute_tree(io.BytesIO(bytes(data)), 129, SALT).root_hash != before


def test_only_the_first_data_blocks_are_read_and_short_data_is_an_error() -> None:
    data = _data(3)
    assert (
        compute_tree(io.BytesIO(data + b"trailing"), 3, SALT).root_hash
        == compute_tree(io.BytesIO(data), 3, SALT).root_hash
    )
    with pytest.raises(ValueError, match="data ends after"):
        compute_tree(io.BytesIO(data[:-1]), 3, SALT)
    with pytest.raises(ValueError, match="at least one"):
        compute_tree(io.BytesIO(data), 0, SALT)
