"""The authority's release log: init, append (atomic, never rewriting an entry),
checkpoints with consistency proofs, proof bundles, and what a damaged log says."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path

import pytest
from log_factory import ORIGIN, fake_manifest, fixed_key, make_log, witness_vkey

from builder.core.errors import InputError, VerificationFailed
from builder.observe.attest import PREDICATE_TYPE
from builder.release import log as release_log
from builder.release.log import (
    REBUILD_PREDICATE,
    add_cosignatures,
    append,
    consistency,
    make_checkpoint,
    parse_proof,
    prove,
    read_log,
)
from builder.transparency.checkpoint import parse_checkpoint
from builder.transparency.cosignature import cosign
from builder.transparency.entries import parse_entry
from builder.transparency.merkle import leaf_hash, verify_consistency, verify_inclusion
from builder.transparency.note import parse_note, parse_vkey, verify_note
from builder.transparency.witnesses import load_witness_keys


def test_the_log_names_the_same_statement_type_as_attest() -> None:
    assert REBUILD_PREDICATE == PREDICATE_TYPE


def test_init_writes_a_verifier_key_and_a_signed_empty_checkpoint(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 0)
    key = parse_vkey((log / "log.vkey").read_text(), "vkey")
    assert key.name == ORIGIN
    note = parse_note((log / "checkpoint").read_bytes(), "cp")
    verify_note(note, key, "cp")
    assert parse_checkpoint(note.text, "cp").size == 0
    with pytest.raises(InputError, match="already holds a release log"):
        make_log(log, 0)


def test_releases_become_entries_and_checkpoints_cover_them(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 3)
    state = read_log(log)
    assert len(state.entries) == 3
    entry = parse_entry(state.entries[1], "entry 1")
    assert entry["kind"] == "release" and entry["version"] == "2030.1"
    newest = state.newest()
    assert newest is not None and newest.size == 3
    # every earlier checkpoint has a published consistency proof to the new one
    old = parse_checkpoint(parse_note((log / "checkpoints" / "0").read_bytes(), "0").text, "0")
    proof = parse_proof((log / "consistency" / "0-3").read_bytes(), "0-3")
    verify_consistency(0, 3, proof, old.root_hash, newest.root_hash)


def test_a_release_already_in_the_log_is_refused(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 1)
    manifest = fake_manifest(tmp_path, "booth", "2030.0")
    with pytest.raises(InputError, match="already in the log at index 0"):
        append(log, manifest)


def test_existing_entries_never_change_and_proofs_stay_valid(tmp_path: Path) -> None:
    key = fixed_key("authority")
    log = make_log(tmp_path / "log", 2)
    before = {p.name: p.read_bytes() for p in (log / "entries").iterdir()}
    old = read_log(log).newest()
    for number in range(2, 7):
        append(log, fake_manifest(tmp_path, "booth", f"2030.{number}"))
        make_checkpoint(log, key)
    after = {p.name: p.read_bytes() for p in (log / "entries").iterdir()}
    assert {name: after[name] for name in before} == before
    state = read_log(log)
    newest = state.newest()
    assert old is not None and newest is not None and newest.size == 7
    proof = parse_proof((log / "consistency" / f"2-{newest.size}").read_bytes(), "proof")
    verify_consistency(2, 7, proof, old.root_hash, newest.root_hash)
    assert consistency(log, 2, None) == proof
    for index in range(7):
        bundle = prove(log, index)
        verify_inclusion(
            index, 7, leaf_hash(bundle.entry), bundle.inclusion_proof, newest.root_hash
        )


def test_an_entry_file_is_never_replaced_even_by_a_racing_writer(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 1)
    entry = log / "entries" / "0000000000.json"
    original = entry.read_bytes()
    with pytest.raises(InputError, match="never rewrites"):
        release_log._write_new(entry, b"{}")
    assert entry.read_bytes() == original
    assert [p.name for p in (log / "entries").iterdir()] == [entry.name]


def test_a_crash_mid_append_leaves_the_log_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = fixed_key("authority")
    log = make_log(tmp_path / "log", 2)
    checkpoint = (log / "checkpoint").read_bytes()

    def crash(*args: object) -> None:
        raise OSError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(os, "link", crash)
        with pytest.raises(OSError, match="power cut"):
            append(log, fake_manifest(tmp_path, "booth", "2030.9"))
    # a temporary file from a crash that killed the process before cleaning up
    (log / "entries" / ".0000000002.json.x.tmp").write_bytes(b"half an ent")
    state = read_log(log)
    assert len(state.entries) == 2
    assert (log / "checkpoint").read_bytes() == checkpoint
    index, _ = append(log, fake_manifest(tmp_path, "booth", "2030.9"))
    assert index == 2
    # appended but crashed before the checkpoint: the next checkpoint covers it
    newest = make_checkpoint(log, key)
    assert newest.size == 3


def test_a_removed_entry_is_reported(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 3)
    (log / "entries" / "0000000001.json").unlink()
    with pytest.raises(VerificationFailed, match="entries 1 are missing"):
        read_log(log)


def test_the_log_refuses_to_sign_a_rewritten_history(tmp_path: Path) -> None:
    key = fixed_key("authority")
    log = make_log(tmp_path / "log", 3)
    first = log / "entries" / "0000000000.json"
    second = log / "entries" / "0000000001.json"
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)  # reordered
    with pytest.raises(VerificationFailed, match="rewritten history"):
        make_checkpoint(log, key)


def test_only_the_log_key_signs_checkpoints(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 1)
    with pytest.raises(InputError, match="not the key of log"):
        make_checkpoint(log, fixed_key("mallory"))


def test_prove_by_manifest_and_beyond_the_checkpoint(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 2)
    manifest = fake_manifest(tmp_path, "booth", "2030.1")
    assert prove(log, None, manifest).index == 1
    append(log, fake_manifest(tmp_path, "booth", "2030.5"))
    with pytest.raises(InputError, match="make a checkpoint first"):
        prove(log, 2)
    with pytest.raises(InputError, match="not in the log"):
        prove(log, None, fake_manifest(tmp_path, "booth", "2031.0"))


def test_cosignatures_are_merged_into_the_checkpoint(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 2)
    note = parse_note((log / "checkpoint").read_bytes(), "cp")
    line = cosign(note.text, "example.org/alice", fixed_key("alice"), 1767225600)
    cosigned = tmp_path / "alice.cosigned"
    cosigned.write_bytes(note.with_signatures([line]).to_bytes())
    assert add_cosignatures(log, [cosigned, cosigned]) == ["example.org/alice"]
    merged = parse_note((log / "checkpoint").read_bytes(), "cp")
    assert [s.name for s in merged.signatures] == [ORIGIN, "example.org/alice"]
    other = tmp_path / "other"
    other.write_text(note.text.replace("\n2\n", "\n1\n") + "\n" + line.line())
    with pytest.raises(InputError, match="cosigns another checkpoint"):
        add_cosignatures(log, [other])


def test_with_the_witnesses_keys_only_valid_cosignatures_are_merged(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 2)
    note = parse_note((log / "checkpoint").read_bytes(), "cp")
    keys = tmp_path / "witnesses"
    keys.mkdir()
    (keys / "alice.vkey").write_text(witness_vkey("alice") + "\n")
    good = cosign(note.text, "alice", fixed_key("alice"), 1767225600)
    forged = cosign(note.text, "alice", fixed_key("mallory"), 1767225600)
    stranger = cosign(note.text, "bob", fixed_key("bob"), 1767225600)
    witnesses = load_witness_keys(keys)
    for line, why in ((forged, "not one of the given witnesses"), (stranger, "not one of")):
        path = tmp_path / "bad.cosigned"
        path.write_bytes(note.with_signatures([line]).to_bytes())
        with pytest.raises(InputError, match=why):
            add_cosignatures(log, [path], witnesses)
    # A line with alice's key id but another signature: refused, and nothing merged.
    tampered = replace(good, signature=good.signature[:8] + bytes(64))
    path = tmp_path / "tampered.cosigned"
    path.write_bytes(note.with_signatures([tampered]).to_bytes())
    with pytest.raises(InputError, match="does not verify"):
        add_cosignatures(log, [path], witnesses)
    assert parse_note((log / "checkpoint").read_bytes(), "cp").signatures == note.signatures
    path.write_bytes(note.with_signatures([good]).to_bytes())
    assert add_cosignatures(log, [path], witnesses) == ["alice"]


def test_the_log_commands_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from builder.cli import main
    from builder.trust.keys import encrypt_private_key

    key_file = tmp_path / "authority.key"
    key_file.write_bytes(encrypt_private_key(fixed_key("authority"), b"pass"))
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "pass")
    log = str(tmp_path / "log")
    key = ["--key", str(key_file)]
    assert main(["log", "init", log, *key, "--origin", ORIGIN]) == 0
    for version in ("2030.1", "2030.2", "2030.3"):
        manifest = fake_manifest(tmp_path, "booth", version)
        assert main(["log", "append", log, str(manifest)]) == 0
    assert main(["log", "checkpoint", log, *key]) == 0
    out = tmp_path / "proof.json"
    assert main(["log", "prove", log, "--entry", "2", "--out", str(out)]) == 0
    assert main(["log", "consistency", log, "--from", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"log {ORIGIN} started" in printed
    assert "entry 2: release booth 2030.3" in printed
    assert f"checkpoint: {ORIGIN} size 3 root " in printed
    proof = consistency(tmp_path / "log", 1, None)
    assert printed.endswith("".join(base64.b64encode(h).decode() + "\n" for h in proof))
    assert main(["log", "append", log, str(manifest)]) == 2
    assert "already in the log at index 2" in capsys.readouterr().err
