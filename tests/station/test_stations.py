"""Per-station data partitions and images from one software image (builder/station/stations.py)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from image_factory import BuiltImage, make_image

from builder.core.canonical import sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.formats.gpt import read_gpt
from builder.station.election import MAGIC, Station, envelope_from_partition
from builder.station.stations import make_stations, open_software_image, write_data_partition

sys.path.insert(0, str(Path(__file__).parent / "booth"))
from booth_helpers import example_definition, example_envelope, signing_key

MIB = 1024 * 1024


@pytest.fixture
def software(tmp_path: Path) -> BuiltImage:
    return make_image(tmp_path / "built", name="booth", data_mib=2)


def _read(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as stream:
        stream.seek(offset)
        return stream.read(size)


def test_data_partition_layout(tmp_path: Path) -> None:
    envelope = example_envelope()
    path = tmp_path / "station.data"
    write_data_partition(path, envelope, 3 * MIB)
    raw = path.read_bytes()
    assert len(raw) == 3 * MIB
    assert raw[:8] == MAGIC == b"BKDATA01"
    assert int.from_bytes(raw[8:16], "big") == len(envelope)
    assert raw[16 : 16 + len(envelope)] == envelope
    assert raw[16 + len(envelope) :] == bytes(3 * MIB - 16 - len(envelope))
    assert envelope_from_partition(raw, str(path)) == envelope


def test_data_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not fit"):
        write_data_partition(tmp_path / "small.data", example_envelope(), 100)
    assert not (tmp_path / "small.data").exists()


def test_station_images_differ_only_inside_the_data_partition(
    software: BuiltImage, tmp_path: Path
) -> None:
    definition = example_definition()
    opened = open_software_image(software.image, software.manifest_path)
    out = tmp_path / "stations"
    results = make_stations(
        definition,
        definition.stations,
        [signing_key()],
        out,
        data_size=opened.data_size,
        software=opened,
        jobs=3,
    )
    assert [r.station.id for r in results] == ["0001", "0002", "0003"]
    data = next(p for p in software.manifest["partitions"] if p["name"] == "booth-data")
    offset, size = data["offset"], data["size"]
    total = software.manifest["image"]["size"]
    before = hashlib.sha256(_read(software.image, 0, offset)).hexdigest()
    after = hashlib.sha256(_read(software.image, offset + size, total - offset - size)).hexdigest()
    gpt = read_gpt(software.image)
    for result in results:
        assert result.image is not None and result.data is not None
        image = result.image
        assert image.stat().st_size == total
        # GPT, ESP, root and root-verity are byte-identical to the software image's.
        assert hashlib.sha256(_read(image, 0, offset)).hexdigest() == before
        assert (
            hashlib.sha256(_read(image, offset + size, total - offset - size)).hexdigest() == after
        )
        assert read_gpt(image) == gpt
        # The data partition is exactly the station's data partition file.
        assert _read(image, offset, size) == result.data.read_bytes()
        envelope = result.envelope.read_bytes()
        assert envelope_from_partition(_read(image, offset, size), "image") == envelope
        # The digest computed from the shared prefix state is the real one.
        assert result.image_sha256 == sha256_file(image)
    assert len({r.image_sha256 for r in results}) == 3
    summary = json.loads((out / "stations.json").read_text())
    assert [s["image_sha256"] for s in summary["stations"]] == [r.image_sha256 for r in results]
    assert summary["stations"][0]["election_fingerprint"] == results[0].election_fingerprint


def test_station_images_are_reproducible(software: BuiltImage, tmp_path: Path) -> None:
    definition = example_definition()
    opened = open_software_image(software.image, software.manifest_path)
    digests = []
    for run in ("a", "b"):
        results = make_stations(
            definition,
            definition.stations[:1],
            [signing_key()],
            tmp_path / run,
            data_size=None,
            software=opened,
            jobs=1,
        )
        digests.append(results[0].image_sha256)
        assert results[0].data is None
    assert digests[0] == digests[1]  # Ed25519 signatures are deterministic


def test_software_image_must_match_its_manifest(software: BuiltImage) -> None:
    with open(software.image, "r+b") as stream:
        stream.seek(2 * MIB + 100)
        stream.write(b"X")
    with pytest.raises(VerificationFailed, match="sha256"):
        open_software_image(software.image, software.manifest_path)


def test_station_image_cannot_be_the_source(software: BuiltImage, tmp_path: Path) -> None:
    definition = example_definition()
    opened = open_software_image(software.image, software.manifest_path)
    results = make_stations(
        definition,
        definition.stations[:1],
        [signing_key()],
        tmp_path / "out",
        data_size=None,
        software=opened,
    )
    station_image = results[0].image
    assert station_image is not None
    manifest = json.loads(software.manifest_path.read_text())
    manifest["image"]["sha256"] = sha256_file(station_image)
    fake_manifest = tmp_path / "station.manifest.json"
    fake_manifest.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="not empty"):
        open_software_image(station_image, fake_manifest)


def test_image_without_a_data_partition_is_refused(tmp_path: Path) -> None:
    built = make_image(tmp_path, name="nodata", data_mib=None)
    with pytest.raises(InputError, match="data_partition"):
        open_software_image(built.image, built.manifest_path)


def test_no_stations_is_an_error(tmp_path: Path) -> None:
    definition = example_definition()
    with pytest.raises(InputError, match="no stations"):
        make_stations(definition, (), [signing_key()], tmp_path, data_size=MIB)


def test_a_data_partition_outside_the_image_is_refused_before_reading(
    software: BuiltImage, tmp_path: Path
) -> None:
    manifest = json.loads(software.manifest_path.read_text())
    data = next(p for p in manifest["partitions"] if p["name"] == "booth-data")
    data["offset"] = manifest["image"]["size"]  # the station data would go past the end
    absurd = tmp_path / "absurd.manifest.json"
    absurd.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"partitions\[3\]: bytes \d+\.\.\d+ are not inside"):
        open_software_image(software.image, absurd)


def test_station_data_with_hidden_text_is_never_signed(tmp_path: Path) -> None:
    definition = example_definition()
    station = definition.stations[0]
    hidden = Station(station.id, "Stadhuis\x1b[2J", station.races)
    with pytest.raises(InputError, match=r"station\.name: contains a control character"):
        make_stations(definition, [hidden], [signing_key()], tmp_path / "out", data_size=MIB)
    assert not (tmp_path / "out" / f"{station.id}.election.json").exists()
