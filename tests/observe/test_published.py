"""`verify` checks offline that a release is in the release log, cosigned by enough
trusted witnesses, from a proof bundle file or from the proof slot on a station's key;
each way a proof can fail is caught with a clear message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from image_factory import BuiltImage, make_image
from log_factory import ORIGIN, fake_manifest, fixed_key

from builder.cli import main
from builder.core.errors import InputError
from builder.observe.verify import LogTrust, verify_files
from builder.observe.witness import witness
from builder.release.log import add_cosignatures, append, init_log, make_checkpoint, prove
from builder.release.sign import sign_manifest
from builder.station.stations import open_software_image, write_station_image
from builder.transparency.note import SIG_COSIGNATURE, note_key_of
from builder.trust.keys import public_key_bytes

T0 = 1767225600
WITNESSES = ("alice", "bob")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    built = make_image(tmp_path_factory.mktemp("published"), name="booth", data_mib=1)
    sign_manifest(built.manifest_path, fixed_key("release"))
    return built


def _log(tmp_path: Path, published: BuiltImage, cosigners: tuple[str, ...]) -> Path:
    """A log with another release, then `published`, cosigned by `cosigners`."""
    log = tmp_path / "log"
    authority = fixed_key("authority")
    init_log(log, authority, ORIGIN)
    append(log, fake_manifest(tmp_path, "booth", "2029.1"))
    append(log, published.manifest_path)
    make_checkpoint(log, authority)
    vkey = (log / "log.vkey").read_text()
    for name in cosigners:
        state = tmp_path / f"{name}.state.json"
        cosigned, _, _ = witness(str(log), fixed_key(name), name, state, T0, vkey)
        (tmp_path / f"{name}.cosigned").write_bytes(cosigned.to_bytes())
        add_cosignatures(log, [tmp_path / f"{name}.cosigned"])
    return log


def _trust(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "trust"
    directory.mkdir(exist_ok=True)
    (directory / "release.pub.json").write_bytes(public_key_bytes(fixed_key("release").public))
    witnesses = tmp_path / "witnesses"
    witnesses.mkdir(exist_ok=True)
    for name in names:
        key = note_key_of(fixed_key(name), name, SIG_COSIGNATURE)
        (witnesses / f"{name}.vkey").write_text(key.vkey() + "\n")
    return directory


def _verify(
    tmp_path: Path, image: Path, published: BuiltImage, proof: Path | None, threshold: int
) -> tuple[bool, str]:
    report = verify_files(
        image,
        published.manifest_path,
        None,
        tmp_path / "trust",
        1,
        log=LogTrust(tmp_path / "log" / "log.vkey", tmp_path / "witnesses", threshold, proof),
    )
    check = report.checks[-1]
    assert check.name == "release log"
    return check.ok, "\n".join((check.summary, *check.details))


def _bundle(tmp_path: Path, published: BuiltImage, index: int | None = None) -> Path:
    manifest = published.manifest_path if index is None else None
    path = tmp_path / f"proof{index}.json"
    path.write_bytes(prove(tmp_path / "log", index, manifest).to_bytes())
    return path


def test_a_published_and_cosigned_release_verifies(tmp_path: Path, published: BuiltImage) -> None:
    _log(tmp_path, published, WITNESSES)
    _trust(tmp_path, *WITNESSES)
    ok, text = _verify(tmp_path, published.image, published, _bundle(tmp_path, published), 2)
    assert ok, text
    assert "published in the release log at index 1, cosigned by 2 of 2 witnesses" in text


def test_the_threshold_not_met_is_caught(tmp_path: Path, published: BuiltImage) -> None:
    _log(tmp_path, published, ("alice",))
    _trust(tmp_path, *WITNESSES)
    ok, text = _verify(tmp_path, published.image, published, _bundle(tmp_path, published), 2)
    assert not ok
    assert "cosigned by 1 of 2 trusted witnesses, 2 required" in text


def test_a_cosignature_from_an_unknown_witness_does_not_count(
    tmp_path: Path, published: BuiltImage
) -> None:
    _log(tmp_path, published, ("mallory",))
    _trust(tmp_path, *WITNESSES)
    ok, text = _verify(tmp_path, published.image, published, _bundle(tmp_path, published), 1)
    assert not ok
    assert "cosignature by mallory" in text and "not a trusted witness" in text


def test_a_proof_for_another_entry_is_caught(tmp_path: Path, published: BuiltImage) -> None:
    _log(tmp_path, published, WITNESSES)
    _trust(tmp_path, *WITNESSES)
    ok, text = _verify(tmp_path, published.image, published, _bundle(tmp_path, published, 0), 2)
    assert not ok
    assert "log entry 0 is about another release (booth 2029.1" in text
    # the right entry with the other entry's position claimed
    moved = _bundle(tmp_path, published)
    raw = json.loads(moved.read_text())
    raw["index"] = 0
    moved.write_text(json.dumps(raw))
    ok, text = _verify(tmp_path, published.image, published, moved, 2)
    assert not ok
    assert "not at index 0" in text


def test_a_checkpoint_from_another_log_key_is_caught(tmp_path: Path, published: BuiltImage) -> None:
    _log(tmp_path, published, WITNESSES)
    _trust(tmp_path, *WITNESSES)
    bundle = _bundle(tmp_path, published)
    mallory = note_key_of(fixed_key("mallory"), ORIGIN)
    (tmp_path / "log" / "log.vkey").write_text(mallory.vkey() + "\n")
    ok, text = _verify(tmp_path, published.image, published, bundle, 2)
    assert not ok
    assert f"not signed by {ORIGIN}" in text


def test_a_station_key_carries_its_proof(tmp_path: Path, published: BuiltImage) -> None:
    _log(tmp_path, published, WITNESSES)
    _trust(tmp_path, *WITNESSES)
    bundle = _bundle(tmp_path, published).read_bytes()
    software = open_software_image(published.image, published.manifest_path)
    station = tmp_path / "booth-0001.img"
    write_station_image(software, b'{"payload":"x"}', station, bundle)
    ok, text = _verify(tmp_path, station, published, None, 2)
    assert ok, text
    # the software image alone carries no proof
    ok, text = _verify(tmp_path, published.image, published, None, 2)
    assert not ok and "holds none" in text


def test_the_verify_command_reports_the_log_check(
    tmp_path: Path, published: BuiltImage, capsys: pytest.CaptureFixture[str]
) -> None:
    _log(tmp_path, published, WITNESSES)
    _trust(tmp_path, *WITNESSES)
    proof = _bundle(tmp_path, published)
    argv = [
        "verify", str(published.image), "--manifest", str(published.manifest_path),
        "--keys", str(tmp_path / "trust"), "--threshold", "1",
        "--log-key", str(tmp_path / "log" / "log.vkey"), "--witnesses",
        str(tmp_path / "witnesses"), "--witness-threshold", "2", "--log-proof", str(proof),
    ]  # fmt: skip
    assert main(argv) == 0
    assert "PASS  release log: published in the release log at index 1" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "witnesses")
    (tmp_path / "witnesses").mkdir()
    with pytest.raises(InputError, match="no trusted witness keys"):
        verify_files(
            published.image,
            published.manifest_path,
            None,
            tmp_path / "trust",
            1,
            log=LogTrust(tmp_path / "log" / "log.vkey", tmp_path / "witnesses", 1, proof),
        )
    assert main([*argv[:8], "--witness-threshold", "2"]) == 2


def test_election_data_and_the_proof_slot_must_fit_together(tmp_path: Path) -> None:
    from builder.station.stations import write_data_partition
    from builder.transparency.proof import PROOF_SLOT_SIZE, bundle_from_slot

    path = tmp_path / "data"
    write_data_partition(path, b"{}", PROOF_SLOT_SIZE + 1024, b'{"format": 1}')
    data = path.read_bytes()
    assert len(data) == PROOF_SLOT_SIZE + 1024
    assert bundle_from_slot(data[-PROOF_SLOT_SIZE:], "slot") == b'{"format": 1}'
    with pytest.raises(InputError, match="with the release log proof slot"):
        write_data_partition(path, b"x" * 2048, PROOF_SLOT_SIZE + 1024, b"{}")


def test_a_key_flashed_with_the_proof_verifies_without_a_proof_file(
    tmp_path: Path, published: BuiltImage
) -> None:
    _log(tmp_path, published, WITNESSES)
    _trust(tmp_path, *WITNESSES)
    proof = _bundle(tmp_path, published)
    key = tmp_path / "key.img"
    flash = ["flash", str(published.image), str(key), "--manifest", str(published.manifest_path)]
    assert main([*flash, "--log-proof", str(proof)]) == 0
    ok, text = _verify(tmp_path, key, published, None, 2)
    assert ok, text
    assert "published in the release log at index 1, cosigned by 2 of 2 witnesses" in text
    report = verify_files(key, published.manifest_path, None, tmp_path / "trust", 1)
    assert report.ok, report  # the software checks read the data partition as zeros
