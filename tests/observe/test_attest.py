"""Observers' signed rebuild statements: `attest`, and `verify --observers K` counting them."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from image_factory import BuiltImage, copy_image, make_image

from builder.build.manifest import read_manifest
from builder.cli import main
from builder.core.canonical import canonical_json
from builder.core.errors import InputError, VerificationFailed
from builder.observe.attest import PREDICATE_TYPE, attest, check_observers, rebuild_statement
from builder.observe.report import Check
from builder.observe.verify import verify_files
from builder.release.sign import sign_manifest
from builder.trust.dsse import image_statement, parse_envelope
from builder.trust.keys import SigningKey, encrypt_private_key, generate_key, public_key_bytes

PASSPHRASE = "observer passphrase"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {name: generate_key(name) for name in ("release", "alice", "bob", "carol", "mallory")}


def _trust(directory: Path, *trusted: SigningKey) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key in trusted:
        (directory / f"{key.name}.pub.json").write_bytes(public_key_bytes(key.public))
    return directory


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, SigningKey]) -> BuiltImage:
    """A synthetic image, signed by the release key; treat as read-only."""
    built = make_image(tmp_path_factory.mktemp("published"), data_mib=1)
    sign_manifest(built.manifest_path, keys["release"])
    return built


@pytest.fixture
def release(tmp_path: Path, published: BuiltImage) -> BuiltImage:
    """A private copy of the published directory that a test may add statements to."""
    return copy_image(published, tmp_path / "release")


OBSERVER_TOOLS = [
    {
        "name": "squashfs-tools",
        "version": "1:4.5.1-1+observer",
        "architecture": "amd64",
        "sha256": "5" * 64,
    }
]


def _rebuilt_manifest(directory: Path, published: BuiltImage, **changes: Any) -> Path:
    """The observer's own manifest: the published one with their tools, maybe other digests."""
    raw = json.loads(published.manifest_path.read_bytes())
    raw["tools"] = OBSERVER_TOOLS
    raw["boothkey"] = "0.1.0"
    for dotted, value in changes.items():
        target = raw
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / published.manifest_path.name
    path.write_bytes(canonical_json(raw) + b"\n")
    return path


def _observe(release: BuiltImage, key: SigningKey, tmp_path: Path, **changes: Any) -> Path:
    rebuilt = _rebuilt_manifest(tmp_path / f"rebuild-{key.name}", release, **changes)
    path, _result = attest(release.manifest_path, key, rebuilt)
    return path


def _verify(release: BuiltImage, keys: dict[str, SigningKey], observer_dir: Path, k: int) -> Check:
    release_keys = _trust(release.directory.parent / "release-keys", keys["release"])
    report = verify_files(
        release.image, release.manifest_path, None, release_keys, 1,
        observer_keys=observer_dir, observers=k,
    )  # fmt: skip
    assert [c.name for c in report.checks if not c.ok] in ([], ["observers"])
    return report.checks[-1]


def test_same_rebuild_gives_a_signed_same_statement(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    path = _observe(release, keys["alice"], tmp_path)
    assert path.name == f"hello.rebuild.{keys['alice'].public.keyid[:16]}.dsse.json"
    envelope = parse_envelope(path.read_bytes(), str(path))
    assert [s.keyid for s in envelope.signatures] == [keys["alice"].public.keyid]
    statement = envelope.statement()
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"] == image_statement(release.manifest)["subject"]
    predicate = statement["predicate"]
    assert predicate["result"] == "same"
    assert predicate["compared_by"] == "boothkey"
    assert predicate["rebuild"]["tools"] == OBSERVER_TOOLS
    assert {item["item"] for item in predicate["comparison"]} >= {
        "image", "partition esp", "partition root", "partition root-verity", "UKI",
    }  # fmt: skip
    assert all(item["same"] for item in predicate["comparison"] if item["decides_result"])


def test_k_observers_met_and_not_met(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    observers = _trust(tmp_path / "observers", keys["alice"], keys["bob"], keys["carol"])
    _observe(release, keys["alice"], tmp_path)
    _observe(release, keys["bob"], tmp_path)
    met = _verify(release, keys, observers, 2)
    assert met.ok, met
    assert met.summary.startswith("2 distinct trusted observer(s)")
    not_met = _verify(release, keys, observers, 3)
    assert not not_met.ok
    # The same observer attesting twice still counts once.
    _observe(release, keys["alice"], tmp_path / "again")
    assert not _verify(release, keys, observers, 3).ok


def test_an_observer_saying_different_is_not_counted_and_is_reported(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    observers = _trust(tmp_path / "observers", keys["alice"], keys["bob"])
    _observe(release, keys["alice"], tmp_path)
    root = release.manifest["partitions"][1]
    assert root["name"] == "root"
    path = _observe(release, keys["bob"], tmp_path, partitions__1__sha256="0" * 64)
    predicate = parse_envelope(path.read_bytes(), "bob").statement()["predicate"]
    assert predicate["result"] == "different"
    assert [i["item"] for i in predicate["comparison"] if not i["same"]] == ["partition root"]
    check = _verify(release, keys, observers, 2)
    assert not check.ok
    assert "DIFFERENT" in check.summary and "bob" in check.summary
    assert _verify(release, keys, observers, 1).ok


def test_an_untrusted_observer_does_not_count(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    observers = _trust(tmp_path / "observers", keys["alice"], keys["bob"])
    _observe(release, keys["alice"], tmp_path)
    _observe(release, keys["mallory"], tmp_path)
    check = _verify(release, keys, observers, 2)
    assert not check.ok
    assert any("no valid signature by a trusted observer key" in d for d in check.details)


def test_a_statement_for_another_image_does_not_count(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    other = make_image(tmp_path / "other", seed="another build", data_mib=1)
    rebuilt = _rebuilt_manifest(tmp_path / "rebuild-other", other)
    path, result = attest(other.manifest_path, keys["bob"], rebuilt)
    assert result == "same"
    shutil.copy(path, release.directory / path.name)  # same NAME, wrong digests
    _observe(release, keys["alice"], tmp_path)
    observers = _trust(tmp_path / "observers", keys["alice"], keys["bob"])
    check = _verify(release, keys, observers, 2)
    assert not check.ok
    assert any("about another image" in d for d in check.details)


def test_an_altered_statement_does_not_count(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    path = _observe(release, keys["alice"], tmp_path, image__sha256="0" * 64)
    raw = json.loads(path.read_bytes())
    statement = json.loads(base64.b64decode(raw["payload"]))
    assert statement["predicate"]["result"] == "different"
    statement["predicate"]["result"] = "same"  # turn "different" into "same" after signing
    raw["payload"] = base64.b64encode(canonical_json(statement)).decode()
    path.write_text(json.dumps(raw))
    observers = _trust(tmp_path / "observers", keys["alice"])
    check = _verify(release, keys, observers, 1)
    assert not check.ok


def test_result_claimed_against_the_comparison_is_refused(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    rebuilt = _rebuilt_manifest(tmp_path / "r", release, uki__sha256="1" * 64)
    with pytest.raises(InputError, match="differs: UKI"):
        attest(release.manifest_path, keys["alice"], rebuilt, result="same")
    with pytest.raises(InputError, match="--rebuilt-manifest"):
        rebuild_statement(read_manifest(release.manifest_path), None, None)
    assert not list(release.directory.glob("*.rebuild.*"))


def test_a_rebuilt_manifest_that_contradicts_its_image_is_refused(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    rebuilt = _rebuilt_manifest(tmp_path / "r", release, image__sha256="2" * 64)
    shutil.copy(release.image, rebuilt.parent / release.image.name)
    with pytest.raises(VerificationFailed, match="does not describe the rebuilt image"):
        attest(release.manifest_path, keys["alice"], rebuilt)


def test_observer_word_without_a_rebuilt_manifest(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    path, result = attest(release.manifest_path, keys["carol"], None, "same")
    predicate = parse_envelope(path.read_bytes(), "carol").statement()["predicate"]
    assert (result, predicate["compared_by"], predicate["rebuild"]) == ("same", "observer", None)
    assert _verify(release, keys, _trust(tmp_path / "observers", keys["carol"]), 1).ok


def test_impossible_observer_settings_are_bad_input(
    release: BuiltImage, keys: dict[str, SigningKey]
) -> None:
    manifest = read_manifest(release.manifest_path)
    trusted = {keys["alice"].public.keyid: keys["alice"].public}
    with pytest.raises(InputError, match="at least one"):
        check_observers([], manifest, trusted, 0)
    with pytest.raises(InputError, match="can never be met"):
        check_observers([], manifest, trusted, 2)
    with pytest.raises(InputError, match="no trusted observer keys"):
        check_observers([], manifest, {}, 1)
    assert not check_observers([], manifest, trusted, 1).ok


def test_cli_attest_then_verify_with_observers(
    release: BuiltImage,
    keys: dict[str, SigningKey],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", PASSPHRASE)
    key_file = tmp_path / "alice.key"
    key_file.write_bytes(encrypt_private_key(keys["alice"], PASSPHRASE.encode()))
    rebuilt = _rebuilt_manifest(tmp_path / "rebuild", release)
    code = main(["attest", str(release.manifest_path), "--key", str(key_file),
                 "--rebuilt-manifest", str(rebuilt)])  # fmt: skip
    assert code == 0
    assert "rebuilt the same image" in capsys.readouterr().out
    release_keys = _trust(tmp_path / "release-keys", keys["release"])
    observers = _trust(tmp_path / "observers", keys["alice"], keys["bob"])
    base = ["verify", str(release.image), "--manifest", str(release.manifest_path),
            "--keys", str(release_keys), "--threshold", "1", "--observer-keys", str(observers)]  # fmt: skip
    assert main([*base, "--observers", "1"]) == 0
    assert "PASS  observers" in capsys.readouterr().out
    assert main([*base, "--observers", "2"]) == 3
    assert "FAIL  observers" in capsys.readouterr().out
    assert main([*base, "--observers", "3"]) == 2  # more than the trusted observers
    assert main(base) == 2  # --observer-keys without --observers
    assert main(["attest", str(release.manifest_path), "--key", str(key_file)]) == 2


def test_statements_published_in_another_directory(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    statements = tmp_path / "statements"
    rebuilt = _rebuilt_manifest(tmp_path / "rebuild", release)
    path, _result = attest(release.manifest_path, keys["alice"], rebuilt, out_dir=statements)
    assert path.parent == statements
    observers = _trust(tmp_path / "observers", keys["alice"])
    release_keys = _trust(tmp_path / "release-keys", keys["release"])

    def observer_check(directory: Path | None) -> Check:
        report = verify_files(
            release.image, release.manifest_path, None, release_keys, 1,
            observer_keys=observers, observers=1, observer_statements=directory,
        )  # fmt: skip
        return report.checks[-1]

    assert observer_check(statements).ok
    assert not observer_check(None).ok  # none beside the manifest
    with pytest.raises(InputError, match="no such directory"):
        observer_check(tmp_path / "missing")


def test_an_observer_who_signed_both_results_is_not_counted(
    release: BuiltImage, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    different = _observe(release, keys["alice"], tmp_path / "d", uki__sha256="3" * 64)
    different.rename(release.directory / "hello.rebuild.alice-second-try.dsse.json")
    _observe(release, keys["alice"], tmp_path / "s")
    check = _verify(release, keys, _trust(tmp_path / "observers", keys["alice"]), 1)
    assert not check.ok
    assert check.summary.startswith("0 distinct trusted observer(s)")
