"""At boot: was this software published in the release log? (README, "The release log")

The key carries a proof bundle (``boothkey-log-proof/v1``) in the last 64 KiB of
its booth-data partition: magic ``BKPROOF1``, the length (unsigned 64-bit
big-endian), the bundle's JSON, zeros. The booth checks it offline against what
its recipe baked into the verified root (``/usr/share/booth/release-log.json``,
rendered from the recipe variable ``release_log``):

- the checkpoint (a C2SP signed note) carries a valid signature by the log's key;
- the bundle's entry is at its index in the tree the checkpoint describes
  (RFC 9162 inclusion proof);
- the entry is a release whose verity root hash is the one this booth was started
  with (``boothkey.roothash=`` on the kernel command line, which the signed boot
  program carries), and whose name and version are this image's own;
- at least ``threshold`` of the trusted witnesses cosigned the checkpoint
  (C2SP tlog-cosignature, ``cosignature/v1``).

The root hash covers the whole root file system, this code and the keys above
included. What the booth cannot check about itself is left to `build.py verify`:
the image's sha256 and the manifest's (the booth would have to trust the disk it
reads them from) and the boot program's sha256.

``missing_proof: refuse`` (the booth recipe's default) refuses the vote when the
proof is missing or fails; ``warn`` shows why and lets the vote open. Settings
that cannot be understood always refuse. Same formats and algorithms as the
builder's ``builder/transparency/``, written again here: the booth cannot import
the builder.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .datapart import DataRefused, find_data_partition

SETTINGS = Path("/usr/share/booth/release-log.json")
PROOF_MAGIC = b"BKPROOF1"
PROOF_SLOT_SIZE = 64 * 1024
BUNDLE_FORMAT = "boothkey-log-proof/v1"
SIG_ED25519 = 0x01
SIG_COSIGNATURE = 0x04
MODES = ("refuse", "warn")
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")
_NAME_BAD = re.compile(r"[\s+]")


@dataclass(frozen=True)
class NoteKey:
    name: str
    sig_type: int
    raw: bytes

    @property
    def key_id(self) -> bytes:
        material = self.name.encode() + b"\n" + bytes([self.sig_type]) + self.raw
        return hashlib.sha256(material).digest()[:4]

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class LogSettings:
    """The recipe's ``release_log``, as baked into this image."""

    name: str  # this image's recipe name and version
    version: str
    log_key: NoteKey
    witnesses: tuple[NoteKey, ...]
    threshold: int
    refuse: bool


@dataclass(frozen=True)
class Published:
    index: int
    cosigners: tuple[str, ...]
    witnesses_total: int

    def summary(self) -> str:
        return (
            f"published in the release log at index {self.index}, cosigned by "
            f"{len(self.cosigners)} of {self.witnesses_total} witnesses"
        )


@dataclass(frozen=True)
class ReleaseStatus:
    """What to show (None: this image checks no release log) and, when the vote must
    not open, why."""

    line: str | None
    refusal: DataRefused | None = None


def _settings_error(message: str) -> DataRefused:
    return DataRefused("log-settings", f"the release log settings of this software: {message}")


def parse_vkey(text: object, sig_type: int, shown: str) -> NoteKey:
    """A C2SP verifier key ``NAME+KEYID+base64(type || key)`` of the given type."""
    if not isinstance(text, str):
        raise _settings_error(f"{shown}: a verifier key text expected")
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not parts[0] or _NAME_BAD.search(parts[0]):
        raise _settings_error(f"{shown}: not a verifier key NAME+KEYID+KEY")
    name, hex_id, material = parts
    try:
        decoded = base64.b64decode(material, validate=True)
    except binascii.Error as exc:
        raise _settings_error(f"{shown}: the key is not base64") from exc
    if len(decoded) != 33 or decoded[0] != sig_type:
        raise _settings_error(f"{shown}: not an Ed25519 key of type 0x{sig_type:02x}")
    key = NoteKey(name, sig_type, decoded[1:])
    if key.key_id.hex() != hex_id:
        raise _settings_error(f"{shown}: the key id does not match the key")
    return key


def load_settings(path: Path) -> LogSettings | None:
    """The baked-in settings; None when the recipe sets no ``release_log``."""
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _settings_error(f"{path} cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise _settings_error(f"{path} is not a JSON object")
    log = raw.get("release_log")
    if log is None:
        return None
    if not isinstance(log, dict):
        raise _settings_error("release_log is not a mapping")
    unknown = sorted(set(log) - {"key", "witnesses", "threshold", "missing_proof"})
    if unknown:
        raise _settings_error(f"release_log: unknown fields {', '.join(unknown)}")
    mode = log.get("missing_proof", "refuse")
    if mode not in MODES:
        raise _settings_error(f"release_log.missing_proof: {mode!r} is not refuse or warn")
    key_text = log.get("key")
    if not key_text:
        raise DataRefused(
            "log-settings",
            "this software holds no release log key (release_log.key in its recipe)",
        )
    log_key = parse_vkey(key_text, SIG_ED25519, "release_log.key")
    listed = log.get("witnesses", [])
    if not isinstance(listed, list):
        raise _settings_error("release_log.witnesses is not a list of verifier keys")
    witnesses: dict[tuple[str, bytes], NoteKey] = {}
    for number, text in enumerate(listed):
        key = parse_vkey(text, SIG_COSIGNATURE, f"release_log.witnesses[{number}]")
        witnesses.setdefault((key.name, key.key_id), key)
    threshold = log.get("threshold", len(witnesses))
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        raise _settings_error("release_log.threshold is not a number of witnesses")
    if threshold < 1:
        raise _settings_error("release_log.threshold: at least one witness must be required")
    if threshold > len(witnesses):
        raise _settings_error(
            f"release_log.threshold {threshold} can never be met with {len(witnesses)} witnesses"
        )
    name, version = raw.get("name"), raw.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise _settings_error(f"{path}: the image's name and version are missing")
    return LogSettings(
        name, version, log_key, tuple(witnesses.values()), threshold, mode == "refuse"
    )


def read_proof_slot(device: Path) -> bytes | None:
    """The bundle in the last PROOF_SLOT_SIZE bytes of `device`; None if the slot is empty."""
    try:
        with open(device, "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            if size < PROOF_SLOT_SIZE:
                return None
            stream.seek(size - PROOF_SLOT_SIZE)
            slot = stream.read(PROOF_SLOT_SIZE)
    except OSError as exc:
        raise DataRefused("no-proof", f"cannot read the proof slot: {exc.strerror}") from exc
    if not slot.strip(b"\0"):
        return None
    if len(slot) != PROOF_SLOT_SIZE or slot[:8] != PROOF_MAGIC:
        raise DataRefused("log-unverified", "the proof slot does not hold a proof bundle")
    length = int.from_bytes(slot[8:16], "big")
    if 16 + length > PROOF_SLOT_SIZE:
        raise DataRefused("log-unverified", "the proof slot's length is impossible")
    return slot[16 : 16 + length]


def _failed(message: str) -> DataRefused:
    return DataRefused("log-unverified", message)


@dataclass(frozen=True)
class _Bundle:
    index: int
    entry: bytes
    proof: tuple[bytes, ...]
    text: str  # the checkpoint note's text
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (name, key id, signature)


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _failed(f"the proof bundle's {what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise _failed(f"the proof bundle's {what} is not base64") from exc


def parse_bundle(data: bytes) -> _Bundle:
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise _failed(f"the proof bundle is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != BUNDLE_FORMAT:
        raise _failed(f"the proof slot does not hold a {BUNDLE_FORMAT} bundle")
    index = raw.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise _failed("the proof bundle's index is not a number")
    hashes = raw.get("inclusion_proof")
    if not isinstance(hashes, list):
        raise _failed("the proof bundle's inclusion proof is not a list")
    proof = tuple(_b64(item, "inclusion proof") for item in hashes)
    checkpoint = raw.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise _failed("the proof bundle holds no checkpoint")
    text, signatures = _parse_note(checkpoint)
    return _Bundle(index, _b64(raw.get("entry"), "entry"), proof, text, signatures)


def _parse_note(note: str) -> tuple[str, tuple[tuple[str, bytes, bytes], ...]]:
    """A C2SP signed note: (text, signature lines as (name, key id, signature))."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise _failed("the checkpoint is not a signed note")
    text, block = note[: split + 1], note[split + 2 : -1]
    signatures = []
    for line in block.split("\n"):
        name, _, blob = line.removeprefix("\u2014 ").partition(" ")
        if not line.startswith("\u2014 ") or not name:
            raise _failed("the checkpoint has a damaged signature line")
        raw = _b64(blob, "checkpoint signature")
        if len(raw) < 5:
            raise _failed("the checkpoint has a damaged signature line")
        signatures.append((name, raw[:4], raw[4:]))
    return text, tuple(signatures)


def _parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """(origin, tree size, root hash) of a C2SP tlog-checkpoint body."""
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0] or not _SIZE_RE.fullmatch(lines[1]):
        raise _failed("the checkpoint is not a tlog checkpoint")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise _failed("the checkpoint's root hash is not base64") from exc
    if len(root) != 32:
        raise _failed("the checkpoint's root hash is not 32 bytes")
    return lines[0], int(lines[1]), root


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_holds(
    index: int, size: int, entry: bytes, proof: tuple[bytes, ...], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: `entry` is leaf `index` of the tree of `size` with `root`."""
    if not 0 <= index < size or any(len(item) != 32 for item in proof):
        return False
    fn, sn, r = index, size - 1, hashlib.sha256(b"\x00" + entry).digest()
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def _cosigned(text: str, signature: bytes, witness: NoteKey) -> bool:
    if len(signature) != 8 + 64:
        return False
    timestamp = int.from_bytes(signature[:8], "big")
    message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
    return timestamp < 2**63 and witness.verifies(signature[8:], message)


def verify_bundle(data: bytes, settings: LogSettings, root_hash: str) -> Published:
    """Every check of the module docstring, or `DataRefused` saying which one failed."""
    log_key = settings.log_key
    bundle = parse_bundle(data)
    mine = [
        sig
        for name, key_id, sig in bundle.signatures
        if (name, key_id) == (log_key.name, log_key.key_id)
    ]
    if not mine:
        raise _failed(f"the checkpoint is not signed by the release log {log_key.name}")
    if not all(log_key.verifies(sig, bundle.text.encode()) for sig in mine):
        raise _failed(f"the signature of the release log {log_key.name} does not verify")
    origin, size, root = _parse_checkpoint(bundle.text)
    if origin != log_key.name:
        raise _failed(f"the checkpoint is of log {origin}, not {log_key.name}")
    if not inclusion_holds(bundle.index, size, bundle.entry, bundle.proof, root):
        raise _failed(
            f"the entry is not at index {bundle.index} of the log's tree of {size} entries"
        )
    try:
        entry = json.loads(bundle.entry)
    except ValueError as exc:
        raise _failed("the log entry is not JSON") from exc
    if not isinstance(entry, dict) or entry.get("kind") != "release":
        raise _failed(f"log entry {bundle.index} is not a release")
    if entry.get("root_hash") != root_hash:
        raise _failed(
            f"log entry {bundle.index} is about other software "
            f"({entry.get('name')} {entry.get('version')}, root hash {entry.get('root_hash')})"
        )
    if (entry.get("name"), entry.get("version")) != (settings.name, settings.version):
        raise _failed(
            f"log entry {bundle.index} names {entry.get('name')} {entry.get('version')}, "
            f"not {settings.name} {settings.version}"
        )
    cosigners = sorted(
        {
            witness.name
            for witness in settings.witnesses
            for name, key_id, sig in bundle.signatures
            if (name, key_id) == (witness.name, witness.key_id)
            and _cosigned(bundle.text, sig, witness)
        }
    )
    if len(cosigners) < settings.threshold:
        raise _failed(
            f"the checkpoint is cosigned by {len(cosigners)} of {len(settings.witnesses)} "
            f"trusted witnesses, {settings.threshold} required"
        )
    return Published(bundle.index, tuple(cosigners), len(settings.witnesses))


def check_release_log(
    data: Path | None, root_hash: str, settings_path: Path | None = None
) -> ReleaseStatus:
    """The booth's whole check: `data` is the booth-data partition (None: find it),
    `root_hash` this booth's own. Never raises `DataRefused`: it lands in the status."""
    if settings_path is None:
        settings_path = Path(os.environ.get("BOOTH_RELEASE_LOG", str(SETTINGS)))
    try:
        settings = load_settings(settings_path)
    except DataRefused as refused:
        return ReleaseStatus(f"RELEASE LOG: NOT VERIFIED: {refused.message}", refused)
    if settings is None:
        return ReleaseStatus(None)
    try:
        bundle = read_proof_slot(data if data is not None else find_data_partition())
        if bundle is None:
            raise DataRefused("no-proof", "this key carries no release log proof")
        published = verify_bundle(bundle, settings, root_hash)
    except DataRefused as refused:
        if refused.reason == "log-settings" or settings.refuse:
            return ReleaseStatus(f"RELEASE LOG: NOT VERIFIED: {refused.message}", refused)
        return ReleaseStatus(
            f"RELEASE LOG: NOT VERIFIED: {refused.message} (warning only: this software's "
            "recipe lets the vote open)"
        )
    return ReleaseStatus(f"RELEASE LOG: {published.summary()}")
