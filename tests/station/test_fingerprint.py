"""Fingerprints from images and manifests (builder/station/fingerprint.py, `build.py fingerprint`),
checked against the booth's own implementation run by the image's Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from image_factory import BuiltImage, make_image

from builder.cli import main
from builder.core.errors import InputError, VerificationFailed
from builder.station.fingerprint import (
    election_fingerprint,
    read_station_data,
    root_hash_from_image,
    software_fingerprint,
)
from builder.station.stations import make_stations, open_software_image, write_data_partition

sys.path.insert(0, str(Path(__file__).parent / "booth"))
from booth_helpers import (
    BOOTH_LIB,
    booth_python,
    example_definition,
    example_envelope,
    signing_key,
)


@pytest.fixture
def software(tmp_path: Path) -> BuiltImage:
    return make_image(tmp_path / "built", name="booth", data_mib=1, root_blocks=700)


@pytest.fixture
def station_image(software: BuiltImage, tmp_path: Path) -> Path:
    definition = example_definition()
    results = make_stations(
        definition,
        [definition.station("0002")],
        [signing_key()],
        tmp_path / "stations",
        data_size=None,
        software=open_software_image(software.image, software.manifest_path),
    )
    assert results[0].image is not None
    return results[0].image


def _booth_says(root_hash: str, payload_file: Path) -> tuple[str, str]:
    """The booth's fingerprints, computed by the booth's code under the image's Python."""
    script = (
        "import sys; from pathlib import Path; from booth import fingerprint as f; "
        "print(f.software_fingerprint(sys.argv[1])); "
        "print(f.election_fingerprint(Path(sys.argv[2]).read_bytes()))"
    )
    result = subprocess.run(
        [booth_python(), "-E", "-s", "-B", "-c", script, root_hash, str(payload_file)],
        cwd=BOOTH_LIB,
        capture_output=True,
        text=True,
        check=True,
    )
    software, election = result.stdout.split()
    return software, election


def test_image_manifest_and_booth_agree(
    software: BuiltImage, station_image: Path, tmp_path: Path
) -> None:
    root_hash = software.manifest["verity"]["root_hash"]
    assert root_hash_from_image(software.image) == root_hash
    assert root_hash_from_image(station_image) == root_hash
    data = read_station_data(station_image)
    payload_file = tmp_path / "payload.json"
    payload_file.write_bytes(data.payload)
    assert _booth_says(root_hash, payload_file) == (
        software_fingerprint(root_hash),
        election_fingerprint(data.payload),
    )


def test_fingerprint_of_a_key_larger_than_the_image(
    station_image: Path, software: BuiltImage, tmp_path: Path
) -> None:
    # A USB key holds the image followed by whatever was there before.
    key = tmp_path / "usb-key.bin"
    key.write_bytes(station_image.read_bytes() + b"\xff" * (3 * 2**20))
    assert root_hash_from_image(key) == software.manifest["verity"]["root_hash"]
    assert read_station_data(key).payload == read_station_data(station_image).payload


def test_relabelled_gpt_is_caught(software: BuiltImage) -> None:
    forged = "00000000-1111-2222-3333-444444444444"
    subprocess.run(
        [
            "sfdisk",
            "--no-reread",
            "--no-tell-kernel",
            "-q",
            "--part-uuid",
            str(software.image),
            "2",
            forged,
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(VerificationFailed, match="hash partition gives"):
        root_hash_from_image(software.image)


def test_damaged_hash_partition_is_caught(software: BuiltImage) -> None:
    verity = next(p for p in software.manifest["partitions"] if p["name"] == "root-verity")
    with open(software.image, "r+b") as stream:
        stream.seek(verity["offset"] + 4096 + 7)
        byte = stream.read(1)
        stream.seek(-1, 1)
        stream.write(bytes([byte[0] ^ 1]))
    with pytest.raises(VerificationFailed, match="hash partition gives"):
        root_hash_from_image(software.image)


def test_station_data_from_envelope_partition_or_image(station_image: Path, tmp_path: Path) -> None:
    envelope = example_envelope("0002")
    envelope_file = tmp_path / "0002.election.json"
    envelope_file.write_bytes(envelope)
    partition = tmp_path / "0002.data"
    write_data_partition(partition, envelope, 1024 * 1024)
    found = {read_station_data(path).envelope for path in (envelope_file, partition, station_image)}
    assert found == {envelope}
    assert read_station_data(partition).summary()["station"] == {
        "id": "0002",
        "name": "Bibliotheek Noord",
    }


def test_software_image_has_no_station_data(software: BuiltImage) -> None:
    with pytest.raises(InputError, match="no election data"):
        read_station_data(software.image)


def test_cli_prints_fingerprints(
    software: BuiltImage, station_image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root_hash = software.manifest["verity"]["root_hash"]
    assert main(["fingerprint", str(software.manifest_path)]) == 0
    out = capsys.readouterr().out
    assert f"software fingerprint  {software_fingerprint(root_hash)}" in out
    assert "election" not in out
    assert main(["fingerprint", str(software.image), "--station-data", str(station_image)]) == 0
    out = capsys.readouterr().out
    assert software_fingerprint(root_hash) in out
    assert "station               0002 Bibliotheek Noord" in out
    assert main(["fingerprint", "--json", str(station_image)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["root_hash"] == root_hash
    assert result["election_fingerprint"] == read_station_data(station_image).fingerprint


def test_cli_refuses_a_forged_image(
    software: BuiltImage, capsys: pytest.CaptureFixture[str]
) -> None:
    verity = next(p for p in software.manifest["partitions"] if p["name"] == "root-verity")
    with open(software.image, "r+b") as stream:
        stream.seek(verity["offset"] + 4096)
        stream.write(bytes(32))
    assert main(["fingerprint", str(software.image)]) == 3
    assert "hash partition gives" in capsys.readouterr().err
