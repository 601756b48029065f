"""C2SP tlog-cosignature, Ed25519 kind (c2sp.org/tlog-cosignature, "cosignature/v1").

A witness cosigns a checkpoint by adding one note signature line. Its key id
uses signature type 0x04; the signature is an 8-byte big-endian POSIX
timestamp followed by the Ed25519 signature of

    cosignature/v1\\n
    time <timestamp>\\n
    <the checkpoint's note text>

By signing, a witness states that, as of that time, this is the largest tree
it has seen of the log named by the origin line, consistent with all before.
The timestamp is an explicit argument here: the witness command takes it from
its `--time` option or, by the specification's meaning, from the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.transparency.note import SIG_COSIGNATURE, NoteKey, NoteSignature, note_key_of
from builder.trust.keys import SigningKey

HEADER = "cosignature/v1"
MAX_TIMESTAMP = 2**63 - 1


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp {timestamp} is out of range")
    return f"{HEADER}\ntime {timestamp}\n{checkpoint_text}".encode()


def cosign(checkpoint_text: str, name: str, key: SigningKey, timestamp: int) -> NoteSignature:
    """The cosignature line of witness `key`, named `name`, at `timestamp`."""
    witness = note_key_of(key, name, SIG_COSIGNATURE)
    signature = key.sign(signed_message(checkpoint_text, timestamp))
    return NoteSignature(name, witness.key_id, timestamp.to_bytes(8, "big") + signature)


@dataclass(frozen=True)
class Cosigned:
    witness: NoteKey
    timestamp: int


def verify_cosignature(
    checkpoint_text: str, signature: NoteSignature, witness: NoteKey
) -> Cosigned | None:
    """The verified cosignature, or None when `signature` is not a valid one by `witness`."""
    if witness.sig_type != SIG_COSIGNATURE or not signature.is_by(witness):
        return None
    if len(signature.signature) != 8 + 64:
        return None
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        return None
    message = signed_message(checkpoint_text, timestamp)
    if not witness.verify_raw(signature.signature[8:], message):
        return None
    return Cosigned(witness, timestamp)


def timestamp_of(signature: NoteSignature) -> int | None:
    """The timestamp a cosignature line claims (unverified), None if it has none."""
    if len(signature.signature) != 8 + 64:
        return None
    return int.from_bytes(signature.signature[:8], "big")
