"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A signed note is UTF-8 text ending in a newline, a blank line, then one or
more signature lines ``— NAME base64(key id || signature)``. A key is
known by its name and 4-byte key id, the first bytes of
SHA-256(name || 0x0A || type || public key), where type is 0x01 for a plain
Ed25519 note signature and 0x04 for a timestamped witness cosignature
(c2sp.org/tlog-cosignature). A verifier key ("vkey") is the text
``NAME+HEX(key id)+base64(type || public key)``, the form Go's
golang.org/x/mod/sumdb/note and the transparency-dev witnesses read.

As the specification says: signatures by unknown keys are ignored, and a
known key's signature that fails to verify rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from builder.core.errors import InputError, VerificationFailed
from builder.trust.keys import SigningKey

SIG_ED25519 = 0x01
SIG_COSIGNATURE = 0x04
EM_DASH = "\u2014"
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1024 * 1024
_NAME_BAD = re.compile(r"[\s+]")


class NoteFailed(VerificationFailed):
    """A signed note does not carry a valid signature by the key that must sign it."""


def check_note_name(name: str, shown: str) -> str:
    """A key name: non-empty, no Unicode space and no '+' (as the specification asks)."""
    if not name or _NAME_BAD.search(name) or any(ord(c) < 0x20 for c in name):
        raise InputError(f"{shown}: key name {name!r} is empty or holds a space or '+'")
    return name


@dataclass(frozen=True)
class NoteKey:
    """A public key as signed notes know it: name, signature type and raw Ed25519 key."""

    name: str
    sig_type: int
    raw: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.raw)

    def vkey(self) -> str:
        material = base64.b64encode(bytes([self.sig_type]) + self.raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify_raw(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def key_id(name: str, sig_type: int, raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + raw).digest()[:4]


def parse_vkey(text: str, shown: str) -> NoteKey:
    """Parse a verifier key; its key id must be the one its name and key give."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise InputError(f"{shown}: a verifier key is NAME+KEYID+KEY, got {text.strip()!r}")
    name, hex_id, material = parts
    check_note_name(name, shown)
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise InputError(f"{shown}: key id {hex_id!r} is not 8 lower-case hex digits")
    try:
        decoded = base64.b64decode(material, validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: the key is not base64") from exc
    if len(decoded) != 33 or decoded[0] not in (SIG_ED25519, SIG_COSIGNATURE):
        raise InputError(
            f"{shown}: not an Ed25519 key (type 0x01 or 0x04 and 32 bytes of key expected)"
        )
    key = NoteKey(name, decoded[0], decoded[1:])
    if key.key_id.hex() != hex_id:
        raise InputError(f"{shown}: key id {hex_id} does not match the key ({key.key_id.hex()})")
    return key


def note_key_of(key: SigningKey, name: str, sig_type: int = SIG_ED25519) -> NoteKey:
    return NoteKey(check_note_name(name, "key name"), sig_type, key.public.raw)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: who (name, key id) and the signature bytes after the key id."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{EM_DASH} {self.name} {blob}\n"

    def is_by(self, key: NoteKey) -> bool:
        return self.name == key.name and self.key_id == key.key_id


@dataclass(frozen=True)
class Note:
    """A note's text (ending in a newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)

    def to_bytes(self) -> bytes:
        return self.to_text().encode()

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Note:
        """This note plus the lines of `extra` it does not hold yet (an exact repeat is
        dropped; another signature under a known name stays, for verifiers to judge)."""
        signatures = list(self.signatures)
        for sig in extra:
            if sig not in signatures:
                signatures.append(sig)
        return Note(self.text, tuple(signatures))


def check_note_text(text: str, shown: str) -> None:
    if not text.endswith("\n"):
        raise InputError(f"{shown}: a note's text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise InputError(f"{shown}: a note may hold no control character but newline")


def parse_note(data: bytes, shown: str) -> Note:
    """Split a signed note into text and signature lines (nothing verified yet)."""
    if len(data) > MAX_NOTE_SIZE:
        raise InputError(f"{shown}: a signed note of {len(data)} bytes is too large")
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{shown}: a signed note must be UTF-8") from exc
    split = whole.rfind("\n\n")
    if split < 0:
        raise InputError(f"{shown}: not a signed note (no blank line before the signatures)")
    text, block = whole[: split + 1], whole[split + 2 :]
    check_note_text(text, shown)
    if not block.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in block):
        raise InputError(f"{shown}: the signature lines must be newline-terminated text")
    signatures = []
    for number, line in enumerate(block[:-1].split("\n"), start=1):
        signatures.append(_parse_signature_line(line, f"{shown}: signature line {number}"))
    if not signatures:
        raise InputError(f"{shown}: a signed note needs at least one signature line")
    if len(signatures) > MAX_SIGNATURES:
        raise InputError(f"{shown}: more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(signatures))


def _parse_signature_line(line: str, shown: str) -> NoteSignature:
    prefix = f"{EM_DASH} "
    if not line.startswith(prefix):
        raise InputError(f"{shown}: does not start with an em dash and a space")
    name, _, blob = line[len(prefix) :].partition(" ")
    check_note_name(name, shown)
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: the signature is not base64") from exc
    if len(raw) < 5:
        raise InputError(f"{shown}: the signature is too short")
    return NoteSignature(name, raw[:4], raw[4:])


def sign_note(text: str, name: str, key: SigningKey) -> Note:
    """A note of `text` signed by `key` under `name` (signature type 0x01)."""
    check_note_text(text, "note")
    note_key = note_key_of(key, name)
    signature = key.sign(text.encode())
    return Note(text, (NoteSignature(name, note_key.key_id, signature),))


def verify_note(note: Note, key: NoteKey, shown: str) -> None:
    """The note carries a valid type-0x01 signature by `key` (`NoteFailed` otherwise)."""
    if key.sig_type != SIG_ED25519:
        raise ValueError("verify_note needs a note-signing key (type 0x01)")
    mine = [sig for sig in note.signatures if sig.is_by(key)]
    if not mine:
        raise NoteFailed(f"{shown}: not signed by {key.name} (key id {key.key_id.hex()})")
    for sig in mine:
        if not key.verify_raw(sig.signature, note.text.encode()):
            raise NoteFailed(f"{shown}: the signature by {key.name} does not verify")
