"""Signing keys: key ids, public key files, encrypted private keys, the keygen command."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from builder.cli import main
from builder.core.errors import InputError
from builder.trust.keys import (
    PublicKey,
    encrypt_private_key,
    generate_key,
    load_private_key,
    load_trusted_keys,
    parse_public_key,
    public_key_bytes,
    read_passphrase,
    read_public_key,
)


def test_keyid_is_sha256_of_the_raw_public_key() -> None:
    key = generate_key("alice").public
    assert len(key.raw) == 32
    assert key.keyid == hashlib.sha256(key.raw).hexdigest()
    assert key.minisign_keynum == hashlib.sha256(key.raw).digest()[:8]


def test_public_key_file_round_trips_and_documents_its_fields(tmp_path: Path) -> None:
    key = generate_key("alice").public
    path = tmp_path / "alice.pub.json"
    path.write_bytes(public_key_bytes(key))
    raw = json.loads(path.read_bytes())
    assert raw == {
        "algorithm": "ed25519",
        "keyid": key.keyid,
        "name": "alice",
        "public": base64.b64encode(key.raw).decode(),
    }
    assert read_public_key(path) == key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keyid": "00" * 32}, "keyid does not match"),
        ({"algorithm": "rsa"}, "algorithm"),
        ({"public": "not base64!"}, "not base64"),
        ({"public": base64.b64encode(b"short").decode()}, "32 bytes"),
        ({"extra": 1}, "unknown keys extra"),
        ({"name": "Bad Name"}, "name"),
    ],
)
def test_public_key_file_problems_are_named(change: dict[str, object], message: str) -> None:
    raw = generate_key("alice").public.to_json() | change
    with pytest.raises(InputError, match=message):
        parse_public_key(raw, "keys/alice.pub.json")


def test_private_key_decrypts_only_with_its_passphrase(tmp_path: Path) -> None:
    key = generate_key("alice")
    path = tmp_path / "alice.key"
    path.write_bytes(encrypt_private_key(key, b"correct horse"))
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    loaded = load_private_key(path, "alice", b"correct horse")
    assert loaded.public == key.public
    with pytest.raises(InputError, match="wrong passphrase"):
        load_private_key(path, "alice", b"wrong")


def test_empty_passphrase_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="empty"):
        encrypt_private_key(generate_key("alice"), b"")
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "")
    with pytest.raises(InputError, match="empty"):
        read_passphrase("passphrase: ")


def test_signature_checks(tmp_path: Path) -> None:
    key = generate_key("alice")
    signature = key.sign(b"message")
    assert key.public.verify(signature, b"message")
    assert not key.public.verify(signature, b"messagf")
    assert not generate_key("bob").public.verify(signature, b"message")


def test_trusted_keys_by_keyid_and_a_key_listed_twice_counts_once(tmp_path: Path) -> None:
    alice, bob = generate_key("alice").public, generate_key("bob").public
    (tmp_path / "alice.pub.json").write_bytes(public_key_bytes(alice))
    (tmp_path / "alice-copy.pub.json").write_bytes(public_key_bytes(alice))
    (tmp_path / "bob.pub.json").write_bytes(public_key_bytes(bob))
    (tmp_path / "README").write_text("not a key")
    trusted = load_trusted_keys(tmp_path)
    assert set(trusted) == {alice.keyid, bob.keyid}
    with pytest.raises(InputError, match="no such key directory"):
        load_trusted_keys(tmp_path / "missing")


def _keygen(tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "keygen",
            "alice",
            "--private-dir",
            str(tmp_path / "private"),
            "--public-dir",
            str(tmp_path / "keys"),
            *extra,
        ]
    )


def test_keygen_writes_private_key_0600_and_both_public_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "secret")
    assert _keygen(tmp_path) == 0
    private = tmp_path / "private" / "alice.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    public = read_public_key(tmp_path / "keys" / "alice.pub.json")
    assert load_private_key(private, "alice", b"secret").public == public
    minisign_pub = (tmp_path / "keys" / "alice.minisign.pub").read_text().splitlines()
    assert minisign_pub[0].startswith("untrusted comment: minisign public key ")
    blob = base64.b64decode(minisign_pub[1])
    assert blob == b"Ed" + public.minisign_keynum + public.raw


def test_keygen_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "secret")
    assert _keygen(tmp_path) == 0
    before = (tmp_path / "private" / "alice.key").read_bytes()
    assert _keygen(tmp_path) == 2
    assert (tmp_path / "private" / "alice.key").read_bytes() == before


def test_keygen_refuses_a_private_dir_inside_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "secret")
    (tmp_path / ".git").mkdir()
    assert _keygen(tmp_path) == 2
    assert not (tmp_path / "private").exists()


def test_keygen_refuses_an_empty_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "")
    assert _keygen(tmp_path) == 2
    assert not (tmp_path / "keys" / "alice.pub.json").exists()


def test_public_key_equality_is_by_bytes() -> None:
    raw = generate_key("a").public.raw
    assert PublicKey("a", raw).keyid == PublicKey("b", raw).keyid
