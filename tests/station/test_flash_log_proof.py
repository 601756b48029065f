"""flash --log-proof: the release log's proof bundle goes into every key's proof slot,
the read-back covers it, and a bundle of another release is refused before anything is
written. Image files stand in for USB keys."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from log_factory import ORIGIN, cosigned_bundle, fixed_key, witness_vkey
from manifest_factory import manifest as fake_manifest
from manifest_factory import partition, verity

from builder.build.manifest import read_manifest
from builder.cli import main
from builder.core.canonical import sha256_bytes
from builder.core.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_VERIFICATION_FAILED, InputError
from builder.observe.log_proof import check_published, read_proof_slot
from builder.release.log import append, init_log, make_checkpoint
from builder.station.devices import HostView
from builder.station.flash import FlashHooks
from builder.station.write_keys import write_keys
from builder.transparency.note import note_key_of, parse_vkey
from builder.transparency.proof import PROOF_SLOT_SIZE, proof_slot

BLOCK = 65536
DATA_OFFSET, DATA_SIZE = 4 * BLOCK, 2 * BLOCK
IMAGE_SIZE = DATA_OFFSET + DATA_SIZE + 1536  # the backup GPT's place, unaligned
WITNESSES = ["witness-alice", "witness-bob"]


def _image(folder: Path, name: str = "booth", with_data: bool = True) -> tuple[Path, Path]:
    """An image whose booth-data partition is zeros, as `build` writes it, and its manifest."""
    blocks = (hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(IMAGE_SIZE // 32 + 1))
    data = bytearray(b"".join(blocks)[:IMAGE_SIZE])
    data[DATA_OFFSET : DATA_OFFSET + DATA_SIZE] = bytes(DATA_SIZE)
    image = folder / f"{name}.img"
    image.write_bytes(data)
    zero = "0" * 64
    partitions = [partition("root", BLOCK, 2 * BLOCK, zero, type="t", uuid="u")]
    if with_data:
        partitions.append(partition("booth-data", DATA_OFFSET, DATA_SIZE, zero, uuid="d"))
    raw = fake_manifest(
        name=name,
        version="2030.1",
        epoch=0,
        image_size=len(data),
        image_sha256=hashlib.sha256(data).hexdigest(),
        partitions=partitions,
        uki_sha256=zero,
        cmdline="quiet",
        verity_info=verity("ab" * 32, zero, 1),
    )
    manifest = folder / f"{name}.manifest.json"
    manifest.write_text(json.dumps(raw))
    return image, manifest


def _proof(folder: Path, manifest: Path) -> Path:
    """A log holding `manifest`'s release, cosigned by both test witnesses: its bundle file."""
    log = folder / "log"
    init_log(log, fixed_key("authority"), ORIGIN)
    index, _ = append(log, manifest)
    make_checkpoint(log, fixed_key("authority"))
    path = folder / "booth.log-proof.json"
    path.write_bytes(cosigned_bundle(log, index, WITNESSES).to_bytes())
    return path


def _run(image: Path, targets: list[Path], **options: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    host = HostView(mountinfo="", swaps="", sysfs=image.parent / "no-sysfs")
    code = write_keys(image, targets, out=out, err=err, progress_mode="quiet", host=host, **options)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def _expected(image: Path, proof: Path) -> bytes:
    data = bytearray(image.read_bytes())
    slot_at = DATA_OFFSET + DATA_SIZE - PROOF_SLOT_SIZE
    data[slot_at : slot_at + PROOF_SLOT_SIZE] = proof_slot(proof.read_bytes())
    return bytes(data)


def test_every_key_carries_the_proof_and_verify_finds_it(tmp_path: Path) -> None:
    image, manifest = _image(tmp_path)
    proof = _proof(tmp_path, manifest)
    targets = [tmp_path / "key1.img", tmp_path / "key2.img"]
    code, out, err = _run(image, targets, log_proof=proof)
    assert code == EXIT_OK, out + err
    expected = _expected(image, proof)
    sha = hashlib.sha256(expected).hexdigest()
    assert out.splitlines() == [f"{t}: OK (read back sha256 {sha})" for t in targets] + [
        "2 of 2 targets verified"
    ]
    assert f"written into the proof slot at byte {DATA_OFFSET + DATA_SIZE - PROOF_SLOT_SIZE}" in err
    parsed = read_manifest(manifest)
    witnesses = {}
    for name in WITNESSES:
        key = parse_vkey(witness_vkey(name), name)
        witnesses[(key.name, key.key_id)] = key
    for target in targets:
        assert target.read_bytes() == expected
        bundle = read_proof_slot(target, parsed)
        assert bundle == proof.read_bytes()
        check = check_published(
            bundle,
            str(target),
            parsed,
            sha256_bytes(manifest.read_bytes()),
            note_key_of(fixed_key("authority"), ORIGIN),
            witnesses,
            2,
        )
        assert check.ok, check.summary
        assert check.summary.startswith("published in the release log at index 0")


def test_the_read_back_covers_the_proof_slot(tmp_path: Path) -> None:
    image, manifest = _image(tmp_path)
    proof = _proof(tmp_path, manifest)
    good, bad = tmp_path / "good.img", tmp_path / "bad.img"
    where = DATA_OFFSET + DATA_SIZE - PROOF_SLOT_SIZE + 20  # inside the bundle's JSON

    def corrupt(target: Path) -> None:
        if target == bad:
            with open(target, "r+b") as stream:
                stream.seek(where)
                byte = stream.read(1)
                stream.seek(where)
                stream.write(bytes([byte[0] ^ 1]))

    code, out, _ = _run(image, [good, bad], log_proof=proof, hooks=FlashHooks(after_write=corrupt))
    assert code == EXIT_VERIFICATION_FAILED
    lines = out.splitlines()
    assert lines[0].startswith(f"{good}: OK")
    assert "(the manifest's image with the proof slot written)" in lines[1]
    assert lines[1].endswith(f"first difference at byte {where} (partition 'booth-data')")


def test_a_proof_of_another_release_is_refused_before_writing(tmp_path: Path) -> None:
    image, _ = _image(tmp_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    _, other_manifest = _image(other_dir, "other")
    proof = _proof(other_dir, other_manifest)
    target = tmp_path / "key.img"
    with pytest.raises(InputError, match="is not this release") as caught:
        _run(image, [target], log_proof=proof)
    assert "refusing to put another release's proof on the keys" in caught.value.message
    assert not target.exists()


def test_a_manifest_without_room_for_the_proof_is_refused(tmp_path: Path) -> None:
    image, manifest = _image(tmp_path, with_data=False)
    proof = _proof(tmp_path, manifest)
    with pytest.raises(InputError, match="no booth-data partition of at least 65536 bytes"):
        _run(image, [tmp_path / "key.img"], log_proof=proof)


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, manifest = _image(tmp_path)
    proof = _proof(tmp_path, manifest)
    target = tmp_path / "key.img"
    assert main(["flash", str(image), str(target), "--log-proof", str(proof)]) == EXIT_OK
    assert target.read_bytes() == _expected(image, proof)
    capsys.readouterr()
    proof.write_text('{"format": "not a proof"}')
    assert main(["flash", str(image), str(target), "--log-proof", str(proof)]) == EXIT_BAD_INPUT
    assert "not a boothkey-log-proof/v1 proof bundle" in capsys.readouterr().err
    missing = tmp_path / "missing.json"
    assert main(["flash", str(image), str(target), "--log-proof", str(missing)]) == EXIT_BAD_INPUT
    assert "cannot read the proof bundle" in capsys.readouterr().err
