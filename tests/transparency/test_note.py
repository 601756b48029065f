"""Signed notes, checkpoints and cosignatures against the C2SP specifications' own
examples and Go's golang.org/x/mod/sumdb/note test vector (Ed25519 is deterministic, so
our signature of the same text with the same key must be the same bytes)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from builder.core.errors import InputError
from builder.transparency.checkpoint import Checkpoint, parse_checkpoint
from builder.transparency.cosignature import (
    cosign,
    signed_message,
    timestamp_of,
    verify_cosignature,
)
from builder.transparency.note import (
    SIG_COSIGNATURE,
    NoteFailed,
    NoteKey,
    note_key_of,
    parse_note,
    parse_vkey,
    sign_note,
    verify_note,
)
from builder.trust.keys import SigningKey, generate_key

# golang.org/x/mod/sumdb/note, note_test.go
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
    "qfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature, the example checkpoint
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URY"
    "N7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
# c2sp.org/signed-note, the example note (signature only parsed: its key is not published)
SPEC_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \u00e8 subito sera.\n"
    "\n"
    "\u2014 quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKON"
    "rMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)


def go_signing_key() -> SigningKey:
    blob = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert blob[0] == 1
    return SigningKey("peterneumann", Ed25519PrivateKey.from_private_bytes(blob[1:]))


def test_go_verifier_key_parses_and_its_key_id_is_recomputed() -> None:
    key = parse_vkey(GO_VKEY, "vkey")
    assert key.name == "PeterNeumann"
    assert key.key_id.hex() == "c74f20a3"
    assert key.vkey() == GO_VKEY
    assert note_key_of(go_signing_key(), "PeterNeumann").vkey() == GO_VKEY


def test_signing_go_text_gives_go_signature_byte_for_byte() -> None:
    note = sign_note(GO_TEXT, "PeterNeumann", go_signing_key())
    assert note.to_text() == GO_TEXT + "\n" + GO_SIGNATURE
    parsed = parse_note((GO_TEXT + "\n" + GO_SIGNATURE).encode(), "go note")
    verify_note(parsed, parse_vkey(GO_VKEY, "vkey"), "go note")


def test_a_changed_text_fails_and_an_unknown_key_is_not_enough() -> None:
    note = parse_note((GO_TEXT.replace("answer", "Answer") + "\n" + GO_SIGNATURE).encode(), "n")
    with pytest.raises(NoteFailed, match="does not verify"):
        verify_note(note, parse_vkey(GO_VKEY, "vkey"), "n")
    other = note_key_of(generate_key("other"), "PeterNeumann")
    with pytest.raises(NoteFailed, match="not signed by PeterNeumann"):
        verify_note(parse_note((GO_TEXT + "\n" + GO_SIGNATURE).encode(), "n"), other, "n")


@pytest.mark.parametrize(
    "mangled",
    [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("+A", "+B", 1),
        GO_VKEY[:-2],
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        GO_VKEY + "+x",
    ],
)
def test_mangled_verifier_keys_are_refused(mangled: str) -> None:
    with pytest.raises(InputError):
        parse_vkey(mangled, "vkey")


def test_spec_note_with_blank_lines_in_its_text_parses() -> None:
    note = parse_note(SPEC_NOTE.encode(), "spec")
    assert note.text.endswith("ed \u00e8 subito sera.\n")
    assert "\n\n" in note.text
    assert [s.name for s in note.signatures] == ["quasimodo.example/salvatore"]
    assert note.to_text() == SPEC_NOTE


def test_spec_checkpoint_and_cosignature_parse() -> None:
    note = parse_note(SPEC_CHECKPOINT.encode(), "spec")
    checkpoint = parse_checkpoint(note.text, "spec")
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.body() == note.text
    witness = note.signatures[1]
    assert witness.name == "witness.example.com/w1"
    # the timestamp the specification's signed-message example shows
    assert timestamp_of(witness) == 1679315147
    assert signed_message(note.text, 1679315147).decode() == (
        "cosignature/v1\ntime 1679315147\n" + note.text
    )
    assert note.to_text() == SPEC_CHECKPOINT


@pytest.mark.parametrize(
    "text",
    [
        "origin\n020\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n20\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n",
        "origin\n20\n",
        "\n20\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n20\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\nx\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_checkpoint(text, "cp")


def test_cosignature_round_trip_and_key_type() -> None:
    key = generate_key("alice")
    body = Checkpoint("example.org/log", 3, bytes(32), ("ext",)).body()
    line = cosign(body, "example.org/alice", key, 1700000000)
    witness = NoteKey("example.org/alice", SIG_COSIGNATURE, key.public.raw)
    assert line.key_id == witness.key_id
    assert witness.key_id != note_key_of(key, "example.org/alice").key_id
    cosigned = verify_cosignature(body, line, witness)
    assert cosigned is not None and cosigned.timestamp == 1700000000
    assert verify_cosignature(body.replace("3", "4", 1), line, witness) is None
    assert parse_vkey(witness.vkey(), "vkey") == witness


def test_notes_with_control_characters_or_no_signature_are_refused() -> None:
    for bad in (b"text\n\n", b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAA=\n", b"no blank line\n"):
        with pytest.raises(InputError):
            parse_note(bad, "bad")


def test_a_verifier_key_whose_base64_holds_plus_signs_round_trips() -> None:
    key = NoteKey("example.org/w", SIG_COSIGNATURE, bytes([62]) * 32)
    assert "+" in key.vkey().split("+", 2)[2]
    assert parse_vkey(key.vkey(), "vkey") == key
