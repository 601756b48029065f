"""Signing keys: Ed25519, a passphrase-encrypted private key and a public key file.

Public key file `keys/NAME.pub.json` (pretty JSON, sorted keys)::

    {"algorithm": "ed25519",
     "keyid": "<sha256 hex of the raw 32-byte public key>",
     "name": "NAME",
     "public": "<base64 of the raw 32-byte public key>"}

The key id is a pure function of the key bytes, so anyone can recompute it.
The private key is PKCS#8 PEM, encrypted with the signer's passphrase, kept
outside the repository with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from builder.core.canonical import pretty_json
from builder.core.errors import InputError

ALGORITHM = "ed25519"
PASSPHRASE_ENV = "BOOTHKEY_PASSPHRASE"
KEY_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class PublicKey:
    """A trusted (or to-be-trusted) Ed25519 public key."""

    name: str
    raw: bytes  # the 32-byte Ed25519 public key

    @property
    def keyid(self) -> str:
        """sha256 hex of the raw public key: the id used in DSSE signatures."""
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def minisign_keynum(self) -> bytes:
        """The 8-byte key number minisign shows and stores: first 8 bytes of the key id."""
        return hashlib.sha256(self.raw).digest()[:8]

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when `signature` is this key's valid Ed25519 signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "keyid": self.keyid,
            "name": self.name,
            "public": base64.b64encode(self.raw).decode(),
        }


@dataclass(frozen=True)
class SigningKey:
    """A decrypted private key, held only while signing."""

    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return PublicKey(self.name, raw)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def check_key_name(name: str) -> str:
    if not KEY_NAME_RE.match(name):
        raise InputError(
            f"key name {name!r}: use lower-case letters, digits, '.', '_' and '-' (at most 64)"
        )
    return name


def default_private_dir() -> Path:
    """`$XDG_CONFIG_HOME/boothkey/keys`, else `~/.config/boothkey/keys`."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "boothkey" / "keys"


def generate_key(name: str) -> SigningKey:
    return SigningKey(check_key_name(name), Ed25519PrivateKey.generate())


def encrypt_private_key(key: SigningKey, passphrase: bytes) -> bytes:
    """PKCS#8 PEM of the private key, encrypted with `passphrase` (refused when empty)."""
    if not passphrase:
        raise InputError("an empty passphrase is not allowed")
    return key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def load_private_key(path: Path, name: str, passphrase: bytes) -> SigningKey:
    """Decrypt the private key at `path`; `InputError` if unreadable or the passphrase is wrong."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read private key: {exc.strerror}") from exc
    try:
        private = serialization.load_pem_private_key(pem, password=passphrase or None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: wrong passphrase, or not a boothkey private key") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 private key")
    return SigningKey(name, private)


def parse_public_key(raw: Any, shown: str) -> PublicKey:
    """Parse a `NAME.pub.json` object; the stored key id must match the key."""
    if not isinstance(raw, Mapping):
        raise InputError(f"{shown}: a public key file is a JSON object")
    unknown = sorted(set(raw) - {"algorithm", "keyid", "name", "public"})
    if unknown:
        raise InputError(f"{shown}: unknown keys {', '.join(unknown)}")
    if raw.get("algorithm") != ALGORITHM:
        raise InputError(f"{shown}: algorithm: {raw.get('algorithm')!r} is not {ALGORITHM!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not KEY_NAME_RE.match(name):
        raise InputError(f"{shown}: name: missing or not a valid key name")
    try:
        public = base64.b64decode(str(raw.get("public", "")), validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: public: not base64") from exc
    if len(public) != 32:
        raise InputError(f"{shown}: public: an Ed25519 key is 32 bytes, got {len(public)}")
    key = PublicKey(name, public)
    if raw.get("keyid") != key.keyid:
        raise InputError(f"{shown}: keyid does not match the key (expected {key.keyid})")
    return key


def read_public_key(path: Path) -> PublicKey:
    try:
        raw = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read public key: {exc.strerror}") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not JSON: {exc}") from exc
    return parse_public_key(raw, str(path))


def public_key_bytes(key: PublicKey) -> bytes:
    return pretty_json(key.to_json())


def load_trusted_keys(directory: Path) -> dict[str, PublicKey]:
    """Every `*.pub.json` in `directory`, by key id. A key listed twice counts once."""
    if not directory.is_dir():
        raise InputError(f"{directory}: no such key directory")
    keys: dict[str, PublicKey] = {}
    for path in sorted(directory.glob("*.pub.json")):
        key = read_public_key(path)
        keys.setdefault(key.keyid, key)
    return keys


def read_passphrase(prompt: str, confirm: bool = False) -> bytes:
    """The passphrase from $BOOTHKEY_PASSPHRASE, else asked on the terminal. Never empty."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is not None:
        if not from_env:
            raise InputError(f"${PASSPHRASE_ENV} is set but empty; an empty passphrase is refused")
        return from_env.encode()
    first = getpass.getpass(prompt)
    if not first:
        raise InputError("an empty passphrase is not allowed")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise InputError("the two passphrases differ")
    return first.encode()


def resolve_private_key(key: str, private_dir: Path | None) -> tuple[Path, str]:
    """(path, key name) for `--key`: an existing file, else NAME in the private key directory."""
    candidate = Path(key)
    if candidate.is_file():
        name = candidate.name.removesuffix(".key")
        return candidate, name
    path = (private_dir or default_private_dir()) / f"{key}.key"
    if not path.is_file():
        raise InputError(
            f"--key {key}: no such key file {path} (create one with `build.py keygen`)"
        )
    return path, key


REVOKED_FILE = "revoked.json"
_KEYID_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Revocation:
    """A key the authority withdrew: its signatures make a verification fail."""

    keyid: str
    name: str
    reason: str


def load_revoked(directory: Path) -> dict[str, Revocation]:
    """The revoked keys listed in `directory/revoked.json` (none when the file is absent)::

    {"revoked": [{"keyid": "<sha256 hex>", "name": "release-2030", "reason": "lost"}]}
    """
    path = directory / REVOKED_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) != {"revoked"} or not isinstance(raw["revoked"], list):
        raise InputError(f'{path}: expected {{"revoked": [...]}}')
    revoked: dict[str, Revocation] = {}
    for index, entry in enumerate(raw["revoked"]):
        where = f"{path}: revoked[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"keyid", "name", "reason"}:
            raise InputError(f"{where}: expected exactly keyid, name and reason")
        keyid, name, reason = entry["keyid"], entry["name"], entry["reason"]
        if not isinstance(keyid, str) or not _KEYID_RE.match(keyid):
            raise InputError(f"{where}.keyid: expected 64 lower-case hex digits")
        if not isinstance(name, str) or not KEY_NAME_RE.match(name):
            raise InputError(f"{where}.name: not a valid key name")
        if not isinstance(reason, str) or not reason or "\n" in reason:
            raise InputError(f"{where}.reason: one line of text")
        revoked[keyid] = Revocation(keyid, name, reason)
    return revoked
