"""Trusted witness keys and counting their cosignatures on a checkpoint.

A directory of trusted witnesses holds `*.vkey` files (one C2SP verifier key
of signature type 0x04 each, as `build.py witness` prints it) and/or boothkey
public key files `*.pub.json` (the witness's cosignature name is then the
key's name). A witness counts once however often it signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import InputError
from builder.transparency.cosignature import Cosigned, verify_cosignature
from builder.transparency.note import SIG_COSIGNATURE, Note, NoteKey, parse_vkey
from builder.trust.keys import read_public_key

WitnessKeys = Mapping[tuple[str, bytes], NoteKey]  # by (name, key id)


def read_vkey_file(path: Path) -> NoteKey:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the verifier key: {exc}") from exc
    return parse_vkey(text, str(path))


def load_witness_keys(directory: Path) -> dict[tuple[str, bytes], NoteKey]:
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory of witness keys")
    keys: dict[tuple[str, bytes], NoteKey] = {}
    for path in sorted(directory.glob("*.vkey")):
        key = read_vkey_file(path)
        if key.sig_type != SIG_COSIGNATURE:
            raise InputError(f"{path}: not a witness cosignature key (type 0x04 expected)")
        keys.setdefault((key.name, key.key_id), key)
    for path in sorted(directory.glob("*.pub.json")):
        public = read_public_key(path)
        key = NoteKey(public.name, SIG_COSIGNATURE, public.raw)
        keys.setdefault((key.name, key.key_id), key)
    return keys


def check_witness_threshold(witnesses: WitnessKeys, threshold: int) -> None:
    """Refuse settings that could never mean anything."""
    if threshold < 1:
        raise InputError(f"--witness-threshold {threshold}: at least one witness must be required")
    if not witnesses:
        raise InputError("no trusted witness keys: the directory holds no *.vkey or *.pub.json")
    if threshold > len(witnesses):
        raise InputError(
            f"--witness-threshold {threshold} can never be met with {len(witnesses)} trusted "
            "witness key(s)"
        )


@dataclass(frozen=True)
class WitnessCount:
    cosigned: tuple[Cosigned, ...]  # distinct trusted witnesses whose cosignature verified
    details: tuple[str, ...]


def count_cosignatures(note: Note, witnesses: WitnessKeys, log_key: NoteKey) -> WitnessCount:
    """The trusted witnesses with a valid cosignature on `note`'s checkpoint text."""
    found: dict[tuple[str, bytes], Cosigned] = {}
    details: list[str] = []
    for signature in note.signatures:
        if signature.is_by(log_key):
            continue
        witness = witnesses.get((signature.name, signature.key_id))
        if witness is None:
            details.append(
                f"ignored: cosignature by {signature.name} (key id {signature.key_id.hex()}), "
                "not a trusted witness"
            )
            continue
        cosigned = verify_cosignature(note.text, signature, witness)
        if cosigned is None:
            details.append(f"INVALID cosignature claiming to be by witness {witness.name}")
        elif (witness.name, witness.key_id) in found:
            details.append(f"ignored: {witness.name} cosigned more than once (counted once)")
        else:
            found[(witness.name, witness.key_id)] = cosigned
            details.append(f"valid cosignature by {witness.name} (time {cosigned.timestamp})")
    return WitnessCount(tuple(found.values()), tuple(details))
