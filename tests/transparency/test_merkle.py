"""The Merkle tree against the RFC 6962 test vectors (the leaves, roots and proofs that
Certificate Transparency's and transparency-dev's test data use), plus every proof of
every small tree made here and checked by the RFC 9162 verification algorithms."""

from __future__ import annotations

import hashlib

import pytest

from builder.transparency.merkle import (
    ProofFailed,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
}
# (leaf index, tree size, audit path) and (old size, new size, proof) from RFC 6962's vectors
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a2", "5f08", "6b47"]),
    (5, 8, ["bc1a", "ca85", "d37e"]),
    (2, 3, ["fac5"]),
    (1, 5, ["6e34", "5f08", "bc1a"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a2", "5f08", "6b47"]),
    (6, 8, ["0ebc", "ca85", "d37e"]),
    (2, 5, ["5f08", "bc1a"]),
]
HASHES = [leaf_hash(leaf) for leaf in LEAVES]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root_hash([]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_are_rfc6962_vectors(size: int) -> None:
    assert root_hash(HASHES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_are_rfc6962_vectors(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(HASHES[:size], index)
    assert [p.hex() for p in proof] == [H[p] for p in path]
    verify_inclusion(index, size, HASHES[index], proof, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_are_rfc6962_vectors(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(HASHES[:new], old)
    assert [p.hex() for p in proof] == [H[p] for p in path]
    verify_consistency(
        old, new, proof, bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    )


def test_every_proof_of_every_small_tree_verifies_and_no_wrong_one_does() -> None:
    leaves = [leaf_hash(bytes([n])) for n in range(20)]
    for size in range(1, 21):
        root = root_hash(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(leaves[:size], index)
            verify_inclusion(index, size, leaves[index], proof, root)
            other = (index + 1) % size
            if other != index:
                with pytest.raises(ProofFailed):
                    verify_inclusion(other, size, leaves[index], proof, root)
        for old in range(0, size + 1):
            proof = consistency_proof(leaves[:size], old)
            verify_consistency(old, size, proof, root_hash(leaves[:old]), root)
            if 0 < old < size:
                forged = root_hash([*leaves[: old - 1], leaf_hash(b"forged")])
                with pytest.raises(ProofFailed):
                    verify_consistency(old, size, proof, forged, root)


def test_an_inclusion_proof_for_another_entry_fails_with_a_clear_message() -> None:
    proof = inclusion_proof(HASHES, 5)
    with pytest.raises(ProofFailed, match="not at index 5"):
        verify_inclusion(5, 8, HASHES[4], proof, bytes.fromhex(ROOTS[7]))


def test_truncated_and_extended_proofs_fail() -> None:
    proof = inclusion_proof(HASHES, 5)
    root = bytes.fromhex(ROOTS[7])
    with pytest.raises(ProofFailed, match="too short"):
        verify_inclusion(5, 8, HASHES[5], proof[:-1], root)
    with pytest.raises(ProofFailed, match="too long"):
        verify_inclusion(5, 8, HASHES[5], [*proof, proof[0]], root)
    with pytest.raises(ProofFailed, match="outside"):
        verify_inclusion(8, 8, HASHES[5], proof, root)


def test_a_fork_of_one_size_is_caught() -> None:
    with pytest.raises(ProofFailed, match="two different roots"):
        verify_consistency(8, 8, [], bytes.fromhex(ROOTS[7]), bytes.fromhex(ROOTS[6]))


def test_removed_and_reordered_entries_break_consistency() -> None:
    old_root = root_hash(HASHES[:6])
    reordered = [HASHES[1], HASHES[0], *HASHES[2:]]
    removed = [*HASHES[:2], *HASHES[3:], leaf_hash(b"x")]
    for history in (reordered, removed):
        proof = consistency_proof(history, 6)
        with pytest.raises(ProofFailed, match="does not begin with"):
            verify_consistency(6, 8, proof, old_root, root_hash(history))
