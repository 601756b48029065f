"""minisign-format public keys and signatures, so `minisign -V` can check an image.

Signatures are minisign's prehashed kind ("ED"): Ed25519 over the BLAKE2b-512
digest of the file, plus a global signature over (signature || trusted comment)
that binds the trusted comment. The 8-byte key number is the first 8 bytes of
sha256(public key) (see `keys.PublicKey.minisign_keynum`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from builder.core.errors import InputError, VerificationFailed
from builder.trust.keys import PublicKey
from builder.trust.signer import Signer

_PUBLIC_ALG = b"Ed"
_PREHASHED_ALG = b"ED"
_TRUSTED_PREFIX = "trusted comment: "
_UNTRUSTED_PREFIX = "untrusted comment: "


def keynum_text(keynum: bytes) -> str:
    """The key number as minisign prints it (a little-endian 64-bit number in hex)."""
    return keynum[::-1].hex().upper()


def public_key_file(key: PublicKey) -> bytes:
    """The content of `NAME.minisign.pub`, readable by `minisign -p`."""
    blob = base64.b64encode(_PUBLIC_ALG + key.minisign_keynum + key.raw).decode()
    return f"{_UNTRUSTED_PREFIX}minisign public key {keynum_text(key.minisign_keynum)}\n{blob}\n".encode()


def parse_public_key_file(data: bytes, shown: str, name: str = "minisign") -> PublicKey:
    lines = data.decode(errors="replace").splitlines()
    if len(lines) < 2:
        raise InputError(f"{shown}: not a minisign public key file")
    try:
        blob = base64.b64decode(lines[1].strip(), validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: line 2 is not base64") from exc
    if len(blob) != 42 or blob[:2] != _PUBLIC_ALG:
        raise InputError(f"{shown}: not an Ed25519 minisign public key")
    key = PublicKey(name, blob[10:])
    if key.minisign_keynum != blob[2:10]:
        raise InputError(f"{shown}: key number was not made by boothkey from this key")
    return key


def sign_digest(
    key: Signer, blake2b_digest: bytes, trusted_comment: str, untrusted_comment: str
) -> bytes:
    """A complete `.minisig` file for content whose BLAKE2b-512 is `blake2b_digest`."""
    for comment in (trusted_comment, untrusted_comment):
        if "\n" in comment or "\r" in comment:
            raise ValueError("minisign comments are single lines")
    signature = key.sign(blake2b_digest)
    global_signature = key.sign(signature + trusted_comment.encode())
    sig_line = base64.b64encode(_PREHASHED_ALG + key.public.minisign_keynum + signature).decode()
    return (
        f"{_UNTRUSTED_PREFIX}{untrusted_comment}\n{sig_line}\n"
        f"{_TRUSTED_PREFIX}{trusted_comment}\n{base64.b64encode(global_signature).decode()}\n"
    ).encode()


@dataclass(frozen=True)
class MinisignSignature:
    keynum: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes


def parse_signature(data: bytes, shown: str) -> MinisignSignature:
    lines = data.decode(errors="replace").splitlines()
    if len(lines) < 4 or not lines[2].startswith(_TRUSTED_PREFIX):
        raise InputError(f"{shown}: not a minisign signature file")
    try:
        blob = base64.b64decode(lines[1].strip(), validate=True)
        global_signature = base64.b64decode(lines[3].strip(), validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: signature lines are not base64") from exc
    if len(blob) != 74 or blob[:2] != _PREHASHED_ALG or len(global_signature) != 64:
        raise InputError(f"{shown}: not a prehashed (ED) minisign signature")
    return MinisignSignature(
        blob[2:10], blob[10:], lines[2][len(_TRUSTED_PREFIX) :], global_signature
    )


def verify_digest(signature: MinisignSignature, blake2b_digest: bytes, key: PublicKey) -> str:
    """Check a parsed signature against a digest and key; return the trusted comment."""
    if signature.keynum != key.minisign_keynum:
        raise VerificationFailed(
            f"minisign signature is by key {keynum_text(signature.keynum)}, "
            f"not {key.name} ({keynum_text(key.minisign_keynum)})"
        )
    if not key.verify(signature.signature, blake2b_digest):
        raise VerificationFailed("minisign signature does not match the file")
    if not key.verify(
        signature.global_signature, signature.signature + signature.trusted_comment.encode()
    ):
        raise VerificationFailed("minisign trusted comment was altered")
    return signature.trusted_comment
