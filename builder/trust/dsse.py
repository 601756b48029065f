"""DSSE envelopes holding an in-toto Statement v1 about a boothkey image.

Envelope file `NAME.dsse.json`::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": "<base64 of the canonical JSON statement>",
     "signatures": [{"keyid": "<sha256 hex of the signer's raw public key>",
                     "sig": "<base64 Ed25519 signature over PAE(payloadType, payload)>"}]}

Every signer signs the same payload bytes; co-signers add their entry to the
list. The statement's predicate is the manifest itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from builder.core.canonical import canonical_json, pretty_json
from builder.core.errors import InputError
from builder.trust.keys import PublicKey
from builder.trust.signer import Signer

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:boothkey:manifest:v1"
UKI_PATH = "EFI/BOOT/BOOTX64.EFI"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: the exact bytes every signature covers."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }

    def to_bytes(self) -> bytes:
        return pretty_json(self.to_json())

    def signed_by(self, keyid: str) -> bool:
        return any(s.keyid == keyid for s in self.signatures)

    def add_signature(self, key: Signer) -> Envelope:
        """A copy with `key`'s signature appended (unchanged if it already signed)."""
        keyid = key.public.keyid
        if self.signed_by(keyid):
            return self
        signature = Signature(keyid, key.sign(pae(self.payload_type, self.payload)))
        return replace(self, signatures=(*self.signatures, signature))

    def check_each(
        self, trusted: Mapping[str, PublicKey]
    ) -> list[tuple[Signature, PublicKey | None, bool]]:
        """Each signature with its trusted key (None if unknown) and whether it is valid."""
        message = pae(self.payload_type, self.payload)
        results: list[tuple[Signature, PublicKey | None, bool]] = []
        for signature in self.signatures:
            key = trusted.get(signature.keyid)
            results.append((signature, key, key is not None and key.verify(signature.sig, message)))
        return results

    def trusted_signers(self, trusted: Mapping[str, PublicKey]) -> list[PublicKey]:
        """The distinct trusted keys with a valid signature; a key signing twice counts once."""
        found: dict[str, PublicKey] = {}
        for _signature, key, valid in self.check_each(trusted):
            if key is not None and valid:
                found.setdefault(key.keyid, key)
        return list(found.values())

    def statement(self) -> dict[str, Any]:
        try:
            value = json.loads(self.payload)
        except ValueError as exc:
            raise InputError(f"envelope payload is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise InputError("envelope payload is not a JSON object")
        return value


def new_envelope(statement: Mapping[str, Any], payload_type: str = PAYLOAD_TYPE) -> Envelope:
    """An unsigned envelope over the canonical JSON of `statement`."""
    return Envelope(payload_type, canonical_json(dict(statement)), ())


def parse_envelope(data: bytes, shown: str, payload_type: str = PAYLOAD_TYPE) -> Envelope:
    """Parse an envelope file of `payload_type`; every structural problem is an
    `InputError` naming `shown`. Every signature needs a string keyid and a base64 sig."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{shown}: not JSON: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) != {"payloadType", "payload", "signatures"}:
        raise InputError(f"{shown}: expected exactly payloadType, payload and signatures")
    if raw["payloadType"] != payload_type:
        raise InputError(f"{shown}: payloadType {raw['payloadType']!r} is not {payload_type}")
    try:
        payload = base64.b64decode(str(raw["payload"]), validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: payload is not base64") from exc
    if not isinstance(raw["signatures"], list):
        raise InputError(f"{shown}: signatures is not a list")
    signatures: list[Signature] = []
    for index, entry in enumerate(raw["signatures"]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("keyid"), str)
            or "sig" not in entry
        ):
            raise InputError(f"{shown}: signatures[{index}]: needs keyid and sig")
        try:
            sig = base64.b64decode(str(entry["sig"]), validate=True)
        except binascii.Error as exc:
            raise InputError(f"{shown}: signatures[{index}].sig is not base64") from exc
        signatures.append(Signature(entry["keyid"], sig))
    return Envelope(payload_type, payload, tuple(signatures))


def image_statement(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 for a manifest: subjects are the image, each partition
    (`NAME.img#<partition>`) and the UKI (`NAME.img#esp/EFI/BOOT/BOOTX64.EFI`)."""
    try:
        image_file = manifest["image"]["file"]
        subjects = [{"name": image_file, "digest": {"sha256": manifest["image"]["sha256"]}}]
        for partition in manifest["partitions"]:
            subjects.append(
                {
                    "name": f"{image_file}#{partition['name']}",
                    "digest": {"sha256": partition["sha256"]},
                }
            )
        subjects.append(
            {
                "name": f"{image_file}#esp/{UKI_PATH}",
                "digest": {"sha256": manifest["uki"]["sha256"]},
            }
        )
    except (KeyError, TypeError) as exc:
        raise InputError(f"manifest lacks field {exc} needed for signing") from exc
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(manifest),
    }
