"""DSSE envelopes and the in-toto statement."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from builder.core.errors import InputError
from builder.trust.dsse import (
    PAYLOAD_TYPE,
    Envelope,
    Signature,
    image_statement,
    new_envelope,
    pae,
    parse_envelope,
)
from builder.trust.keys import generate_key


def _manifest() -> dict[str, Any]:
    return {
        "name": "hello",
        "image": {"file": "hello.img", "size": 4096, "sha256": "a" * 64},
        "partitions": [
            {"name": "esp", "sha256": "b" * 64},
            {"name": "root", "sha256": "c" * 64},
        ],
        "uki": {"sha256": "d" * 64},
    }


def test_pae_matches_the_dsse_specification_example() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_statement_subjects_are_image_partitions_and_uki() -> None:
    statement = image_statement(_manifest())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicate"] == _manifest()
    assert [(s["name"], s["digest"]["sha256"]) for s in statement["subject"]] == [
        ("hello.img", "a" * 64),
        ("hello.img#esp", "b" * 64),
        ("hello.img#root", "c" * 64),
        ("hello.img#esp/EFI/BOOT/BOOTX64.EFI", "d" * 64),
    ]
    with pytest.raises(InputError, match="uki"):
        image_statement({k: v for k, v in _manifest().items() if k != "uki"})


def test_envelope_round_trips_and_payload_is_canonical() -> None:
    alice = generate_key("alice")
    envelope = new_envelope(image_statement(_manifest())).add_signature(alice)
    raw = json.loads(envelope.to_bytes())
    assert raw["payloadType"] == PAYLOAD_TYPE
    payload = base64.b64decode(raw["payload"])
    assert (
        payload
        == json.dumps(image_statement(_manifest()), sort_keys=True, separators=(",", ":")).encode()
    )
    assert parse_envelope(envelope.to_bytes(), "e") == envelope
    assert raw["signatures"][0]["keyid"] == alice.public.keyid


def test_signing_twice_with_one_key_adds_nothing() -> None:
    alice = generate_key("alice")
    once = new_envelope(image_statement(_manifest())).add_signature(alice)
    assert once.add_signature(alice) is once


def test_trusted_signers_counts_distinct_valid_trusted_keys() -> None:
    alice, bob, mallory = generate_key("alice"), generate_key("bob"), generate_key("mallory")
    envelope = (
        new_envelope(image_statement(_manifest()))
        .add_signature(alice)
        .add_signature(bob)
        .add_signature(mallory)
    )
    trusted = {k.public.keyid: k.public for k in (alice, bob)}
    assert {k.name for k in envelope.trusted_signers(trusted)} == {"alice", "bob"}

    duplicated = Envelope(
        envelope.payload_type, envelope.payload, (*envelope.signatures, envelope.signatures[0])
    )
    assert len(duplicated.trusted_signers(trusted)) == 2

    forged = Envelope(
        envelope.payload_type,
        envelope.payload,
        (Signature(alice.public.keyid, mallory.sign(pae(PAYLOAD_TYPE, envelope.payload))),),
    )
    assert forged.trusted_signers(trusted) == []

    altered = Envelope(envelope.payload_type, envelope.payload + b" ", envelope.signatures)
    assert altered.trusted_signers(trusted) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"payloadType": "x", "payload": "", "signatures": []}', "payloadType"),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "@@", "signatures": []}',
            "base64",
        ),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": [1]}',
            "signatures\\[0\\]",
        ),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "",'
            b' "signatures": [{"keyid": "ab"}]}',
            "signatures\\[0\\]: needs keyid and sig",
        ),
        (b'{"payload": ""}', "exactly"),
    ],
)
def test_malformed_envelopes_are_bad_input(text: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_envelope(text, "hello.dsse.json")
