"""The RFC 6962 / RFC 9162 Merkle tree: leaf and node hashes, roots, and inclusion and
consistency proofs, made and verified.

Leaves are hashed as SHA-256(0x00 || entry), interior nodes as
SHA-256(0x01 || left || right); the tree over n leaves splits at the largest
power of two smaller than n (RFC 9162, section 2.1.1). Proofs are made as in
sections 2.1.3.1 and 2.1.4.1 and verified with the algorithms of sections
2.1.3.2 and 2.1.4.2, so any other RFC 9162 implementation checks ours and we
check theirs. Everything works on leaf hashes; an empty tree's root is
SHA-256 of nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from builder.core.errors import VerificationFailed

HASH_SIZE = 32


class ProofFailed(VerificationFailed):
    """An inclusion or consistency proof does not hold."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the leaf hashes `leaves`."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_hash(leaves[:k]), root_hash(leaves[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the audit path of leaf `index` in the tree over `leaves`."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(leaves[:k], index), root_hash(leaves[k:])]
    return [*inclusion_proof(leaves[k:], index - k), root_hash(leaves[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]): that the tree over `leaves[:old_size]` is a prefix of this one."""
    if not 0 <= old_size <= len(leaves):
        raise ValueError(f"size {old_size} is not a prefix of a tree of {len(leaves)} leaves")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(leaves, old_size, True)


def _subproof(leaves: Sequence[bytes], m: int, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves[:k], m, complete), root_hash(leaves[k:])]
    return [*_subproof(leaves[k:], m - k, False), root_hash(leaves[:k])]


def _check_hashes(proof: Sequence[bytes]) -> None:
    for number, item in enumerate(proof):
        if len(item) != HASH_SIZE:
            raise ProofFailed(f"proof hash {number} is {len(item)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: `leaf` is leaf `index` of the tree of `tree_size` with `root`.

    Raises `ProofFailed` saying why not.
    """
    _check_hashes(proof)
    if not 0 <= index < tree_size:
        raise ProofFailed(f"index {index} is outside a tree of {tree_size} entries")
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofFailed(f"the inclusion proof is too long for index {index}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofFailed(f"the inclusion proof is too short for index {index}")
    if r != root:
        raise ProofFailed(
            f"the entry is not at index {index} of the tree of {tree_size} entries "
            "(the inclusion proof leads to another root)"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """RFC 9162 2.1.4.2: the tree of `old_size` with `old_root` is a prefix of the tree of
    `new_size` with `new_root`. Raises `ProofFailed` saying why not."""
    _check_hashes(proof)
    if not 0 <= old_size <= new_size:
        raise ProofFailed(f"a tree of {new_size} entries cannot extend one of {old_size}")
    if old_size == new_size:
        if proof:
            raise ProofFailed("a proof between two trees of one size must be empty")
        if old_root != new_root:
            raise ProofFailed(f"two different roots for the same tree size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofFailed("a proof from the empty tree must be empty")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    if not path:
        raise ProofFailed("the consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofFailed("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofFailed("the consistency proof is too short")
    if fr != old_root:
        raise ProofFailed(
            f"the tree of {new_size} entries does not begin with the tree of {old_size} "
            "entries seen before (an entry was changed, removed or reordered)"
        )
    if sr != new_root:
        raise ProofFailed(f"the consistency proof does not lead to the root of size {new_size}")
