"""Signing and verifying a synthetic image end to end, tamper cases, and the outside tools."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from image_factory import BuiltImage, copy_image, make_image

from builder.build.manifest import read_manifest
from builder.cli import main
from builder.core.errors import InputError
from builder.observe.measure import ImageMeasurement
from builder.observe.report import VerifyReport
from builder.observe.verify import check_image_digest, verify_files
from builder.release.sign import sign_manifest
from builder.trust.keys import SigningKey, generate_key, public_key_bytes
from builder.trust.minisign import public_key_file


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {name: generate_key(name) for name in ("alice", "bob", "mallory")}


def _trust(directory: Path, *trusted: SigningKey) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key in trusted:
        (directory / f"{key.name}.pub.json").write_bytes(public_key_bytes(key.public))
        (directory / f"{key.name}.minisign.pub").write_bytes(public_key_file(key.public))
    return directory


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, SigningKey]) -> BuiltImage:
    built = make_image(tmp_path_factory.mktemp("pristine"), data_mib=1)
    sign_manifest(built.manifest_path, keys["alice"])
    sign_manifest(built.manifest_path, keys["bob"])
    return built


@pytest.fixture
def signed(tmp_path: Path, pristine: BuiltImage) -> BuiltImage:
    """A private copy of the signed image that a test may tamper with."""
    return copy_image(pristine, tmp_path)


def _verify(built: BuiltImage, keys_dir: Path, threshold: int = 1) -> VerifyReport:
    return verify_files(built.image, built.manifest_path, None, keys_dir, threshold)


def _failed(report: VerifyReport) -> set[str]:
    return {check.name for check in report.checks if not check.ok}


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0x01]))


def _partition(built: BuiltImage, name: str) -> dict[str, int]:
    part: dict[str, int] = next(p for p in built.manifest["partitions"] if p["name"] == name)
    return part


def test_signed_image_verifies(
    tmp_path: Path, signed: BuiltImage, keys: dict[str, SigningKey]
) -> None:
    trusted = _trust(tmp_path / "trusted", keys["alice"], keys["bob"])
    report = _verify(signed, trusted, threshold=2)
    assert report.ok, report.to_text()
    assert [c.name for c in report.checks] == [
        "image digest",
        "signatures",
        "partitions",
        "root hash tree",
    ]
    assert "VERIFIED: 4 of 4" in report.to_text()


def test_outside_tools_accept_the_published_files(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    trusted = _trust(tmp_path / "trusted", keys["alice"], keys["bob"])
    directory = signed.directory
    sums = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sums.returncode == 0, sums.stdout + sums.stderr
    assert "hello.img: OK" in sums.stdout and "hello.manifest.json: OK" in sums.stdout
    for signature, key in (
        ("hello.img.minisig", "alice"),
        ("hello.img.alice.minisig", "alice"),
        ("hello.img.bob.minisig", "bob"),
    ):
        result = subprocess.run(
            ["minisign", "-V", "-m", "hello.img", "-x", signature, "-p", str(trusted / f"{key}.minisign.pub")],
            cwd=directory, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"key:{key}" in result.stdout


def test_one_byte_changed_in_the_root_partition(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    _flip(signed.image, _partition(signed, "root")["offset"] + 5000)
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert _failed(report) == {"image digest", "partitions", "root hash tree"}
    text = report.to_text()
    assert "root: content differs" in text
    assert "the root filesystem was altered" in text


def test_one_byte_changed_in_the_hash_partition(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    _flip(signed.image, _partition(signed, "root-verity")["offset"] + 4096 + 10)
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert _failed(report) == {"image digest", "partitions", "root hash tree"}
    assert "stored tree differs" in report.to_text()


def test_gpt_altered(signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    _flip(signed.image, 1024 + 56)  # first byte of the first entry's name
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert {"image digest", "partitions"} <= _failed(report)
    assert "checksum" in report.to_text()


def test_station_data_does_not_fail_the_software_checks(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    data = _partition(signed, "booth-data")
    with open(signed.image, "r+b") as stream:
        stream.seek(data["offset"])
        stream.write(b"station 0042 configuration")
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert report.ok, report.to_text()
    assert "read as zeros" in report.to_text()
    assert "booth-data: holds station data (not compared)" in report.to_text()


def test_manifest_altered(signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    raw = json.loads(signed.manifest_path.read_bytes())
    raw["version"] = "1.1"
    signed.manifest_path.write_text(json.dumps(raw))
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert _failed(report) == {"signatures"}
    assert "does not describe this manifest" in report.to_text()


def _envelope(built: BuiltImage) -> tuple[Path, dict[str, object]]:
    path = built.directory / "hello.dsse.json"
    return path, json.loads(path.read_bytes())


def test_envelope_payload_altered(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    path, raw = _envelope(signed)
    payload = bytearray(base64.b64decode(str(raw["payload"])))
    payload[payload.index(b'"version":"1.0"') + 12] = ord("9")
    raw["payload"] = base64.b64encode(bytes(payload)).decode()
    path.write_text(json.dumps(raw))
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert _failed(report) == {"signatures"}


def test_signature_altered(signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    path, raw = _envelope(signed)
    signatures = raw["signatures"]
    assert isinstance(signatures, list)
    sig = bytearray(base64.b64decode(signatures[0]["sig"]))
    sig[10] ^= 1
    signatures[0]["sig"] = base64.b64encode(bytes(sig)).decode()
    path.write_text(json.dumps(raw))
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert _failed(report) == {"signatures"}
    assert "INVALID signature claiming to be by alice" in report.to_text()


def test_wrong_key(signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    report = _verify(signed, _trust(tmp_path / "t", keys["mallory"]))
    assert _failed(report) == {"signatures"}
    assert "0 distinct trusted signer(s)" in report.to_text()
    assert "not in the trusted set" in report.to_text()


def test_threshold_not_met(signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    trusted = _trust(tmp_path / "t", keys["alice"], keys["mallory"])
    assert _verify(signed, trusted, threshold=1).ok
    report = _verify(signed, trusted, threshold=2)
    assert _failed(report) == {"signatures"}
    assert "1 distinct trusted signer(s), 2 required" in report.to_text()


def test_a_key_signing_twice_counts_once(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    built = make_image(tmp_path / "image")
    sign_manifest(built.manifest_path, keys["alice"])
    sign_manifest(built.manifest_path, keys["alice"])  # a repeat adds nothing
    path, raw = _envelope(built)
    signatures = raw["signatures"]
    assert isinstance(signatures, list) and len(signatures) == 1
    raw["signatures"] = [signatures[0], signatures[0]]  # forced duplicate
    path.write_text(json.dumps(raw))
    trusted = _trust(tmp_path / "t", keys["alice"], keys["bob"])
    report = _verify(built, trusted, threshold=2)
    assert _failed(report) == {"signatures"}
    assert "signed more than once (counted once)" in report.to_text()


def test_bad_verification_settings_are_bad_input(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    trusted = _trust(tmp_path / "t", keys["alice"])
    with pytest.raises(InputError, match="at least one"):
        _verify(signed, trusted, threshold=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no trusted keys"):
        _verify(signed, tmp_path / "empty")
    with pytest.raises(InputError, match="can never be met"):
        _verify(signed, trusted, threshold=2)


def test_cosigning_a_different_build_is_refused(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    built = make_image(tmp_path, seed="one")
    sign_manifest(built.manifest_path, keys["alice"])
    envelope = (tmp_path / "hello.dsse.json").read_bytes()
    make_image(tmp_path, seed="two")  # same name, other content, same directory
    with pytest.raises(InputError, match="different statement"):
        sign_manifest(built.manifest_path, keys["bob"])
    assert (tmp_path / "hello.dsse.json").read_bytes() == envelope


def test_signing_an_image_that_does_not_match_its_manifest_is_refused(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    built = make_image(tmp_path)
    _flip(built.image, 3 << 20)
    with pytest.raises(Exception, match="not signing"):
        sign_manifest(built.manifest_path, keys["alice"])
    assert not (tmp_path / "hello.dsse.json").exists()


def test_cli_exit_codes_and_json(
    signed: BuiltImage,
    tmp_path: Path,
    keys: dict[str, SigningKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    trusted = str(_trust(tmp_path / "t", keys["alice"], keys["bob"]))
    base = ["verify", str(signed.image), "--manifest", str(signed.manifest_path), "--keys", trusted]
    assert main([*base, "--threshold", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and len(report["checks"]) == 4
    assert main([*base, "--threshold", "0"]) == 2
    _flip(signed.image, _partition(signed, "esp")["offset"] + 100)
    assert main([*base, "--threshold", "2"]) == 3
    out = capsys.readouterr()
    assert "FAIL  image digest" in out.out
    assert "verification failed" in out.err


def test_cli_sign_and_keygen_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "pw")
    built = make_image(tmp_path / "out")
    for name in ("release", "observer"):
        assert (
            main(
                [
                    "keygen",
                    name,
                    "--private-dir",
                    str(tmp_path / "priv"),
                    "--public-dir",
                    str(tmp_path / "keys"),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "sign",
                    str(built.manifest_path),
                    "--key",
                    name,
                    "--private-dir",
                    str(tmp_path / "priv"),
                ]
            )
            == 0
        )
    assert main(["verify", str(built.image), "--manifest", str(built.manifest_path), "--keys", str(tmp_path / "keys"), "--threshold", "2"]) == 0  # fmt: skip
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "wrong")
    assert main(["sign", str(built.manifest_path), "--key", "release", "--private-dir", str(tmp_path / "priv")]) == 2  # fmt: skip


def test_a_device_may_be_larger_than_the_image_but_a_file_may_not(tmp_path: Path) -> None:
    manifest = read_manifest(make_image(tmp_path).manifest_path)
    size, digest = manifest.image.size, manifest.image.sha256
    assert check_image_digest(manifest, ImageMeasurement(size + 4096, True, digest)).ok
    assert not check_image_digest(manifest, ImageMeasurement(size + 4096, False, digest)).ok
    assert not check_image_digest(manifest, ImageMeasurement(size - 1, True, None)).ok


def test_an_image_file_with_trailing_bytes_fails_only_the_digest_check(
    tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    built = make_image(tmp_path)
    sign_manifest(built.manifest_path, keys["alice"])
    with open(built.image, "ab") as stream:
        stream.write(os.urandom(8192))
    report = _verify(built, _trust(tmp_path / "t", keys["alice"]))
    assert _failed(report) == {"image digest"}
    assert "the image file is" in report.to_text()


@pytest.mark.slow
def test_real_hello_image_signs_and_verifies_with_outside_tools(
    built_hello_image: tuple[Path, Path], tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    image, manifest_path = built_hello_image
    shutil.copyfile(image, tmp_path / image.name)
    shutil.copyfile(manifest_path, tmp_path / manifest_path.name)
    image, manifest_path = tmp_path / image.name, tmp_path / manifest_path.name
    sign_manifest(manifest_path, keys["alice"])
    trusted = _trust(tmp_path / "trusted", keys["alice"])
    report = verify_files(image, manifest_path, None, trusted, 1)
    assert report.ok, report.to_text()

    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path, check=True)
    subprocess.run(
        ["minisign", "-Vq", "-m", image.name, "-p", str(trusted / "alice.minisign.pub")],
        cwd=tmp_path,
        check=True,
    )
    # veritysetup, given the root hash from the manifest, agrees with the pure recomputation.
    manifest = read_manifest(manifest_path)
    data = image.read_bytes()
    for name in ("root", "root-verity"):
        part = manifest.partition(name)
        (tmp_path / f"{name}.part").write_bytes(data[part.offset : part.offset + part.size])
    subprocess.run(
        ["veritysetup", "verify", str(tmp_path / "root.part"), str(tmp_path / "root-verity.part"), manifest.verity.root_hash],
        check=True,
    )  # fmt: skip

    _flip(image, manifest.partition("root").offset + 4096 * 3 + 17)
    report = verify_files(image, manifest_path, None, trusted, 1)
    assert _failed(report) == {"image digest", "partitions", "root hash tree"}


def test_an_invalid_signature_beside_a_valid_one_by_the_same_key(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    path, raw = _envelope(signed)
    signatures = raw["signatures"]
    assert isinstance(signatures, list)
    alice = next(s for s in signatures if s["keyid"] == keys["alice"].public.keyid)
    forged = dict(alice, sig=base64.b64encode(bytes(64)).decode())
    raw["signatures"] = [forged, alice]
    path.write_text(json.dumps(raw))
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert report.ok
    text = report.to_text()
    assert "INVALID signature claiming to be by alice" in text
    assert "valid signature by alice" in text


def _partition_index(raw: dict[str, Any], name: str) -> int:
    return next(i for i, p in enumerate(raw["partitions"]) if p["name"] == name)


def _set_root(key: str, value: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw["partitions"][_partition_index(raw, "root")][key] = value(raw)

    return change


def _root(raw: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = raw["partitions"][_partition_index(raw, "root")]
    return part


# An absurd manifest (edited by hand or by an attacker) and the problem verify names.
ABSURD_MANIFESTS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "negative offset": (
        _set_root("offset", lambda raw: -_root(raw)["offset"]),
        "partitions[1].offset: -",
    ),
    "negative size": (_set_root("size", lambda raw: -4096), "partitions[1].size: -4096"),
    "empty partition": (_set_root("size", lambda raw: 0), "partitions[1].size: 0"),
    "beyond the image": (
        _set_root("offset", lambda raw: raw["image"]["size"]),
        "partitions[1]: bytes",
    ),
    "in the partition table": (_set_root("offset", lambda raw: 512), "partitions[1]: bytes"),
    "not whole sectors": (
        _set_root("offset", lambda raw: _root(raw)["offset"] + 1),
        "partitions[1].offset:",
    ),
    "overlapping": (
        _set_root("offset", lambda raw: raw["partitions"][0]["offset"]),
        "partitions[1]: overlaps partitions[0]",
    ),
    "sha256 not hex": (_set_root("sha256", lambda raw: "Z" * 64), "partitions[1].sha256:"),
    "sha256 with a newline": (
        _set_root("sha256", lambda raw: _root(raw)["sha256"] + "\n"),
        "partitions[1].sha256:",
    ),
    "uuid not a GUID": (_set_root("uuid", lambda raw: "root"), "partitions[1].uuid:"),
    "two partitions of one name": (
        _set_root("name", lambda raw: raw["partitions"][0]["name"]),
        "partitions[1].name: 'esp' is listed twice",
    ),
    "negative image size": (
        lambda raw: raw["image"].update(size=-raw["image"]["size"]),
        "image.size: -",
    ),
    "image sha256 in capitals": (
        lambda raw: raw["image"].update(sha256=raw["image"]["sha256"].upper()),
        "image.sha256: not a sha256 hex digest",
    ),
    "no partitions": (lambda raw: raw.update(partitions=[]), "partitions: none listed"),
}


@pytest.mark.parametrize("case", sorted(ABSURD_MANIFESTS))
def test_an_absurd_manifest_is_one_clear_input_error(
    case: str,
    signed: BuiltImage,
    tmp_path: Path,
    keys: dict[str, SigningKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    change, problem = ABSURD_MANIFESTS[case]
    raw = json.loads(signed.manifest_path.read_bytes())
    change(raw)
    signed.manifest_path.write_text(json.dumps(raw))
    trusted = str(_trust(tmp_path / "t", keys["alice"]))
    argv = ["verify", str(signed.image), "--manifest", str(signed.manifest_path)]
    assert main([*argv, "--keys", trusted, "--threshold", "1"]) == 2
    out = capsys.readouterr()
    assert f"{signed.manifest_path}: {problem}" in out.err
    # Never a mixed report: nothing passes, nothing "matches", no verdict on the image.
    assert out.out == ""
    assert "matches" not in out.err and "PASS" not in out.err and "VERIFIED" not in out.err


def test_a_moved_partition_is_reported_once_not_also_as_matching(
    signed: BuiltImage, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    """A sound manifest that places root one MiB later than the GPT does: root differs,
    and no line says root matches."""
    raw = json.loads(signed.manifest_path.read_bytes())
    root = _root(raw)
    root["offset"] += 1 << 20
    root["size"] -= 1 << 20
    signed.manifest_path.write_text(json.dumps(raw))
    report = _verify(signed, _trust(tmp_path / "t", keys["alice"]))
    assert not report.ok
    partitions = next(check for check in report.checks if check.name == "partitions")
    assert not partitions.ok
    root_lines = [line for line in partitions.details if line.startswith("root:")]
    assert root_lines and all("matches" not in line for line in root_lines)
    assert any("offset is" in line for line in root_lines)


def _revoke(directory: Path, key: SigningKey, reason: str = "token lost on 2030-02-01") -> None:
    entry = {"keyid": key.public.keyid, "name": key.name, "reason": reason}
    (directory / "revoked.json").write_text(json.dumps({"revoked": [entry]}))


def test_a_revoked_signer_fails_verification_by_name(
    tmp_path: Path, signed: BuiltImage, keys: dict[str, SigningKey]
) -> None:
    trusted = _trust(tmp_path / "trusted", keys["alice"], keys["bob"])
    assert _failed(_verify(signed, trusted, threshold=2)) == set()
    _revoke(trusted, keys["bob"])
    # alice alone would meet a threshold of 1, but bob's signature is on the release.
    report = _verify(signed, trusted, threshold=1)
    assert _failed(report) == {"signatures"}
    check = next(c for c in report.checks if c.name == "signatures")
    assert "signed by revoked key(s) bob" in check.summary
    assert any("REVOKED key bob" in line and "token lost" in line for line in check.details)
    # A revoked key no longer counts as trusted: 2 can never be met with alice alone.
    with pytest.raises(InputError, match="can never be met with 1 trusted key"):
        _verify(signed, trusted, threshold=2)
    # Even with its public key gone from the directory, the revocation names it.
    (trusted / "bob.pub.json").unlink()
    assert _failed(_verify(signed, trusted, threshold=1)) == {"signatures"}
    assert main(["verify", str(signed.image), "--manifest", str(signed.manifest_path),
                 "--keys", str(trusted), "--threshold", "1"]) == 3  # fmt: skip


def test_an_unrevoked_release_still_verifies_and_bad_revocation_lists_are_named(
    tmp_path: Path, signed: BuiltImage, keys: dict[str, SigningKey]
) -> None:
    trusted = _trust(tmp_path / "trusted", keys["alice"], keys["bob"])
    _revoke(trusted, keys["mallory"])
    assert _failed(_verify(signed, trusted, threshold=2)) == set()
    (trusted / "revoked.json").write_text(
        '{"revoked": [{"keyid": "abc", "name": "x", "reason": "r"}]}'
    )
    with pytest.raises(InputError, match=r"revoked\.json: revoked\[0\]\.keyid"):
        _verify(signed, trusted)
    (trusted / "revoked.json").write_text("[]")
    with pytest.raises(InputError, match=r"revoked\.json: expected"):
        _verify(signed, trusted)
