"""The proof bundle that travels on a key, and its offline verification.

`NAME.log-proof.json` (pretty JSON)::

    {"format": "boothkey-log-proof/v1",
     "index": N,                          # the entry's index in the log
     "entry": "<base64 of the entry's exact bytes>",
     "inclusion_proof": ["<base64 hash>", ...],   # RFC 9162 audit path
     "checkpoint": "<the signed checkpoint note, with the witnesses' cosignatures>"}

`verify_bundle` is pure: bundle, the log's verifier key, trusted witness keys
and a threshold in, a `ProofResult` out, or `VerificationFailed` naming what
did not hold. The booth carries its own reader of the same format
(overlays/booth/usr/lib/booth/booth/release_log.py).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from builder.core.canonical import pretty_json
from builder.core.errors import InputError, VerificationFailed
from builder.transparency.checkpoint import Checkpoint, parse_checkpoint
from builder.transparency.merkle import leaf_hash, verify_inclusion
from builder.transparency.note import Note, NoteKey, parse_note, verify_note
from builder.transparency.witnesses import WitnessKeys, count_cosignatures

FORMAT = "boothkey-log-proof/v1"
_FIELDS = {"format", "index", "entry", "inclusion_proof", "checkpoint"}


@dataclass(frozen=True)
class ProofBundle:
    index: int
    entry: bytes
    inclusion_proof: tuple[bytes, ...]
    checkpoint: Note

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "index": self.index,
            "entry": base64.b64encode(self.entry).decode(),
            "inclusion_proof": [base64.b64encode(h).decode() for h in self.inclusion_proof],
            "checkpoint": self.checkpoint.to_text(),
        }

    def to_bytes(self) -> bytes:
        return pretty_json(self.to_json())


def _b64(value: Any, shown: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"{shown}: base64 text expected")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: not base64") from exc


def parse_bundle(data: bytes, shown: str) -> ProofBundle:
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{shown}: a proof bundle is JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InputError(f"{shown}: not a {FORMAT} proof bundle")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise InputError(f"{shown}: unknown fields {', '.join(unknown)}")
    index = raw.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InputError(f"{shown}: index: a non-negative integer expected")
    proof = raw.get("inclusion_proof")
    if not isinstance(proof, list):
        raise InputError(f"{shown}: inclusion_proof: a list of base64 hashes expected")
    hashes = tuple(_b64(item, f"{shown}: inclusion_proof[{n}]") for n, item in enumerate(proof))
    checkpoint = raw.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise InputError(f"{shown}: checkpoint: the signed checkpoint note expected")
    note = parse_note(checkpoint.encode(), f"{shown}: checkpoint")
    return ProofBundle(index, _b64(raw.get("entry"), f"{shown}: entry"), hashes, note)


@dataclass(frozen=True)
class ProofResult:
    index: int
    checkpoint: Checkpoint
    entry: bytes
    cosigners: tuple[str, ...]  # names of the distinct trusted witnesses that cosigned
    witnesses_total: int
    threshold: int
    details: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"published in the release log at index {self.index}, cosigned by "
            f"{len(self.cosigners)} of {self.witnesses_total} witnesses"
        )


def verify_bundle(
    bundle: ProofBundle,
    log_key: NoteKey,
    witnesses: WitnessKeys,
    threshold: int,
    shown: str,
) -> ProofResult:
    """The entry is in the log the checkpoint describes, the log signed the checkpoint,
    and at least `threshold` trusted witnesses cosigned it."""
    verify_note(bundle.checkpoint, log_key, f"{shown}: checkpoint")
    checkpoint = parse_checkpoint(bundle.checkpoint.text, f"{shown}: checkpoint")
    if checkpoint.origin != log_key.name:
        raise VerificationFailed(
            f"{shown}: the checkpoint is of log {checkpoint.origin!r}, not {log_key.name!r}"
        )
    try:
        verify_inclusion(
            bundle.index,
            checkpoint.size,
            leaf_hash(bundle.entry),
            bundle.inclusion_proof,
            checkpoint.root_hash,
        )
    except VerificationFailed as exc:
        raise VerificationFailed(f"{shown}: {exc.message}") from exc
    count = count_cosignatures(bundle.checkpoint, witnesses, log_key)
    names = tuple(sorted(c.witness.name for c in count.cosigned))
    if len(names) < threshold:
        raise VerificationFailed(
            f"{shown}: the checkpoint (size {checkpoint.size}) is cosigned by {len(names)} of "
            f"{len(witnesses)} trusted witnesses, {threshold} required"
            + (f" ({'; '.join(count.details)})" if count.details else "")
        )
    return ProofResult(
        bundle.index,
        checkpoint,
        bundle.entry,
        names,
        len(witnesses),
        threshold,
        count.details,
    )


# On a key the bundle sits in the last PROOF_SLOT_SIZE bytes of the "booth-data"
# partition, apart from the election data at its start: magic, length (u64 big-endian),
# the bundle's bytes, zeros.
PROOF_MAGIC = b"BKPROOF1"
PROOF_SLOT_SIZE = 64 * 1024
_HEADER_SIZE = 16


def proof_slot(bundle: bytes) -> bytes:
    """The proof slot's bytes (exactly PROOF_SLOT_SIZE) holding `bundle`."""
    if _HEADER_SIZE + len(bundle) > PROOF_SLOT_SIZE:
        raise InputError(
            f"the proof bundle ({len(bundle)} bytes) does not fit the {PROOF_SLOT_SIZE}-byte slot"
        )
    record = PROOF_MAGIC + len(bundle).to_bytes(8, "big") + bundle
    return record + bytes(PROOF_SLOT_SIZE - len(record))


def bundle_from_slot(slot: bytes, shown: str) -> bytes | None:
    """The bundle a proof slot holds; None for an empty (all-zero) slot."""
    if not slot.strip(b"\0"):
        return None
    if len(slot) != PROOF_SLOT_SIZE or slot[:8] != PROOF_MAGIC:
        raise InputError(f"{shown}: the proof slot holds something that is not a proof bundle")
    length = int.from_bytes(slot[8:16], "big")
    if _HEADER_SIZE + length > PROOF_SLOT_SIZE:
        raise InputError(f"{shown}: the proof slot's length field is too large")
    return slot[_HEADER_SIZE : _HEADER_SIZE + length]
