"""Every signature of a release made through a PKCS#11 token (SoftHSM2) verifies exactly
as a file key's does: with the real `minisign`, with securesystemslib's independent DSSE
implementation, and with boothkey's own `verify`, `election verify` and observer count."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from image_factory import make_image
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey
from token_factory import SoftToken, make_soft_token, needs_softhsm

from builder.build.manifest import read_manifest
from builder.cli import main
from builder.observe.attest import check_observers, read_rebuild_statements
from builder.observe.verify import verify_files
from builder.station.election import parse_election_envelope, verify_election_envelope
from builder.trust.keys import PublicKey, load_trusted_keys, read_public_key
from builder.trust.minisign import public_key_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "booth"))
from booth_helpers import EXAMPLE, KEYS

pytestmark = [
    needs_softhsm,
    pytest.mark.skipif(shutil.which("minisign") is None, reason="minisign not installed"),
]


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "boothkey-test")  # the file keys in tests/booth
    return make_soft_token(tmp_path / "hsm", monkeypatch)


def _sslib_key(key: PublicKey) -> SSlibKey:
    return SSlibKey(key.keyid, "ed25519", "ed25519", {"public": key.raw.hex()})


def _sslib_verify(envelope_file: Path, keys: list[PublicKey], threshold: int) -> set[str]:
    """securesystemslib's DSSE check (its own PAE and Ed25519 verification)."""
    envelope = SslibEnvelope.from_dict(json.loads(envelope_file.read_bytes()))
    return set(envelope.verify([_sslib_key(key) for key in keys], threshold))


def _keygen(token: SoftToken, name: str, public_dir: Path) -> tuple[str, PublicKey]:
    uri = token.uri(name)
    assert main(["keygen", uri, "--public-dir", str(public_dir)]) == 0
    return uri, read_public_key(public_dir / f"{name}.pub.json")


def test_release_signed_by_a_token_and_a_file_key_verifies_everywhere(
    tmp_path: Path, token: SoftToken
) -> None:
    trusted = tmp_path / "keys"
    uri, token_key = _keygen(token, "release-2030", trusted)
    shutil.copy(KEYS / "test-authority.pub.json", trusted)
    file_key = read_public_key(KEYS / "test-authority.pub.json")
    built = make_image(tmp_path / "out", data_mib=1)

    assert main(["sign", str(built.manifest_path), "--key", uri]) == 0
    key_file = str(KEYS / "test-authority.key")
    assert main(["sign", str(built.manifest_path), "--key", key_file]) == 0

    # minisign, the real binary, for the token's and the file key's signature alike.
    (trusted / "test-authority.minisign.pub").write_bytes(public_key_file(file_key))
    for name in ("release-2030", "test-authority"):
        public = trusted / f"{name}.minisign.pub"
        signature = built.directory / f"{built.image.name}.{name}.minisig"
        result = subprocess.run(
            ["minisign", "-V", "-m", str(built.image), "-p", str(public), "-x", str(signature)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f"key:{name}" in result.stdout
    # The default NAME.img.minisig is the first signer's: the token's.
    result = subprocess.run(
        ["minisign", "-Vm", str(built.image), "-p", str(trusted / "release-2030.minisign.pub")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    # securesystemslib: both signatures over the same DSSE payload, threshold 2.
    envelope = built.directory / "hello.dsse.json"
    assert _sslib_verify(envelope, [token_key, file_key], 2) == {
        token_key.keyid,
        file_key.keyid,
    }
    # boothkey's own verify: 2 distinct trusted signers.
    report = verify_files(built.image, built.manifest_path, None, trusted, 2)
    assert all(check.ok for check in report.checks), report.checks
    signatures = next(check for check in report.checks if check.name == "signatures")
    assert "2 distinct trusted signer(s)" in signatures.summary


def test_observer_attests_with_a_token(tmp_path: Path, token: SoftToken) -> None:
    observers = tmp_path / "observers"
    uri, key = _keygen(token, "observer-alice", observers)
    built = make_image(tmp_path / "out")
    argv = ["attest", str(built.manifest_path), "--key", uri]
    assert main([*argv, "--rebuilt-manifest", str(built.manifest_path)]) == 0
    [(path, data)] = read_rebuild_statements(built.directory, "hello")
    assert _sslib_verify(Path(path), [key], 1) == {key.keyid}
    check = check_observers(
        [(path, data)], read_manifest(built.manifest_path), load_trusted_keys(observers), 1
    )
    assert check.ok, check


def test_election_signed_by_a_token_and_a_file_key(tmp_path: Path, token: SoftToken) -> None:
    trusted = tmp_path / "keys"
    uri, token_key = _keygen(token, "authority-2030", trusted)
    shutil.copy(KEYS / "test-authority.pub.json", trusted)
    envelope = tmp_path / "0001.election.json"
    definition = [str(EXAMPLE / "election.yaml"), "--stations", str(EXAMPLE / "stations.csv")]
    keys = ["--key", uri, "--key", str(KEYS / "test-authority.key")]
    assert (
        main(["election", "sign", *definition, "--station", "0001", *keys, "-o", str(envelope)])
        == 0
    )
    signers = verify_election_envelope(
        parse_election_envelope(envelope.read_bytes(), str(envelope)),
        load_trusted_keys(trusted),
        str(envelope),
    )
    assert sorted(signers) == ["authority-2030", "test-authority"]
    file_key = read_public_key(KEYS / "test-authority.pub.json")
    assert _sslib_verify(envelope, [token_key, file_key], 2) == {token_key.keyid, file_key.keyid}
    # A changed payload no longer verifies for the independent implementation either.
    raw = json.loads(envelope.read_bytes())
    raw["payload"] = base64.b64encode(base64.b64decode(raw["payload"]) + b" ").decode()
    envelope.write_text(json.dumps(raw))
    with pytest.raises(VerificationError):
        _sslib_verify(envelope, [token_key], 1)
