"""The real booth image booted in QEMU (slow): booth-init runs the booth on the serial
console once Enter is pressed there, the fingerprints match the builder's, a vote is cast, and bad election data
is refused. Needs the `built_booth_image` fixture (tests/conftest.py): skipped only
when that fixture does not exist.

The image that trusts the test authority key is built from a scratch project holding
copies of only what the recipe reads (recipe, lock, overlay), into that project's
out/ and the session's cache: never the checkout's out/ or the user's cache."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from log_factory import ORIGIN, cosigned_bundle, fixed_key, witness_vkey

from builder.build.manifest import read_manifest
from builder.core.canonical import canonical_json
from builder.observe.qemu import QemuBoot
from builder.release.log import append, init_log, make_checkpoint
from builder.station.election import envelope_bytes, sign_payload, station_payload
from builder.station.fingerprint import election_fingerprint, software_fingerprint
from builder.station.stations import make_stations, open_software_image
from builder.transparency.note import note_key_of

sys.path.insert(0, str(Path(__file__).parent / "booth"))
from booth_helpers import (
    KEYS,
    altered_envelope,
    booth_module,
    example_definition,
    signing_key,
)

PROJECT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 400.0
WITNESSES = ["witness-alice", "witness-bob", "witness-carol"]


def trusting_project(project: Path) -> Path:
    """A scratch project in `project`: recipes/booth.yaml with the test authority key in
    `authority_keys` and the test release log (its key, three witnesses, two needed, the
    recipe's missing_proof: refuse) in `release_log`, its lock, and a copy of
    overlays/booth. Returns the recipe."""
    (project / "recipes").mkdir(parents=True)
    recipe = yaml.safe_load((PROJECT / "recipes" / "booth.yaml").read_text())
    variables = dict(recipe.get("variables") or {})
    variables["authority_keys"] = [json.loads((KEYS / "test-authority.pub.json").read_text())]
    variables["release_log"] = {
        **variables["release_log"],
        "key": note_key_of(fixed_key("authority"), ORIGIN).vkey(),
        "witnesses": [witness_vkey(name) for name in WITNESSES],
        "threshold": 2,
    }
    recipe["variables"] = variables
    (project / "recipes" / "booth.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    shutil.copy(PROJECT / "recipes" / "booth.lock.json", project / "recipes")
    for overlay in recipe["overlays"]:
        shutil.copytree(PROJECT / overlay, project / overlay, symlinks=True)
    return project / "recipes" / "booth.yaml"


def test_the_scratch_project_shares_nothing_with_the_checkout(tmp_path: Path) -> None:
    """Its out/ is its own (a link to the checkout's out/ once let a test run replace
    the release engineer's out/booth.img), and nothing in it leads into the checkout."""
    project = tmp_path / "project"
    trusting_project(project)
    assert not (project / "out").exists()
    for path in project.rglob("*"):
        if path.is_symlink():
            assert not path.resolve().is_relative_to(PROJECT), path
        assert path.resolve().is_relative_to(project.resolve()), path


@pytest.fixture(scope="module")
def booth_image(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(image, manifest) of recipes/booth.yaml, from the lead's fixture."""
    try:
        built: tuple[Path, Path] = request.getfixturevalue("built_booth_image")
    except pytest.FixtureLookupError:
        pytest.skip("fixture built_booth_image is not defined (tests/conftest.py)")
    return built


@pytest.fixture(scope="module")
def test_trusting_image(
    booth_image: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, boothkey_cache: Path
) -> tuple[Path, Path]:
    """recipes/booth.yaml rebuilt with the test authority key in `authority_keys`: the
    same packages and lock, in the session's cache that built `booth_image`, so only the
    overlay step and those after it rebuild."""
    project = tmp_path_factory.mktemp("booth-test-project")
    recipe = trusting_project(project)
    out = project / "out"
    subprocess.run(
        [sys.executable, str(PROJECT / "build.py"), "build", "--quiet", "--out", str(out),
         "--cache-dir", str(boothkey_cache), str(recipe)],
        cwd=project,
        check=True,
    )  # fmt: skip
    return out / "booth.img", out / "booth.manifest.json"


def _log_proof(manifest: Path, folder: Path) -> bytes:
    """The proof bundle of `manifest`'s release in a test log,
    cosigned by two of the three witnesses the test image trusts."""
    log = folder / "log"
    init_log(log, fixed_key("authority"), ORIGIN)
    index, _ = append(log, manifest)
    make_checkpoint(log, fixed_key("authority"))
    return cosigned_bundle(log, index, WITNESSES[1:]).to_bytes()


def _station_image(
    image: Path, manifest: Path, out: Path, station: str = "0001", log_proof: bytes | None = None
) -> Path:
    definition = example_definition()
    results = make_stations(
        definition,
        [definition.station(station)],
        [signing_key()],
        out,
        data_size=None,
        software=open_software_image(image, manifest),
        log_proof=log_proof,
    )
    assert results[0].image is not None
    return results[0].image


def _last(boot: QemuBoot, pattern: str) -> str:
    """The first group of the last match of `pattern` in the console log so far."""
    matches = re.findall(pattern, boot.log())
    assert matches, f"{pattern!r} not in the console log"
    return str(matches[-1])


def _expect_fingerprints(boot: QemuBoot, manifest: Path) -> None:
    root_hash = read_manifest(manifest).verity.root_hash
    # booth-init offers the booth on the screen and the serial port: claim the serial port.
    boot.expect("BOOTH: press Enter on this screen", timeout=BOOT_TIMEOUT)
    boot.send("\r")
    boot.expect(r"SOFTWARE FINGERPRINT: \S+\s", timeout=BOOT_TIMEOUT)
    assert _last(boot, r"SOFTWARE FINGERPRINT: (\S+)") == software_fingerprint(root_hash)


@pytest.mark.slow
def test_software_image_boots_into_the_booth_and_refuses_without_data(
    booth_image: tuple[Path, Path],
) -> None:
    image, manifest = booth_image
    with QemuBoot(image, usb=False) as boot:
        _expect_fingerprints(boot, manifest)
        boot.expect(r"REFUSED: [^\r\n]*\[missing\]")
        boot.send("\r")
        boot.send("sh\r")
        boot.expect(r"REFUSED: ")
        assert "login:" not in boot.log()
        assert "READY" not in boot.log()


@pytest.mark.slow
def test_untrusted_station_data_is_refused(booth_image: tuple[Path, Path], tmp_path: Path) -> None:
    image, manifest = booth_image
    station = _station_image(image, manifest, tmp_path)
    with QemuBoot(station, usb=False) as boot:
        _expect_fingerprints(boot, manifest)
        boot.expect(r"REFUSED: [^\r\n]*\[(unknown-key|no-keys)\]")


@pytest.mark.slow
def test_vote_over_usb_on_a_station_image(
    test_trusting_image: tuple[Path, Path], tmp_path: Path
) -> None:
    image, manifest = test_trusting_image
    proof = _log_proof(manifest, tmp_path)
    station = _station_image(image, manifest, tmp_path, log_proof=proof)
    definition = example_definition()
    payload = canonical_json(station_payload(definition, definition.station("0001")))
    expected_election = election_fingerprint(payload)
    with QemuBoot(station, usb=True) as boot:
        _expect_fingerprints(boot, manifest)
        boot.expect(
            "RELEASE LOG: published in the release log at index 0, cosigned by 2 of 3 witnesses"
        )
        boot.expect(r"ELECTION FINGERPRINT: \S+\s")
        assert _last(boot, r"ELECTION FINGERPRINT: (\S+)") == expected_election
        boot.expect("READY: press Enter")
        boot.send("\r")
        boot.expect("RACE 1/2")
        boot.expect("CHOICE> ")
        boot.send("2 3\r")
        boot.expect("RACE 2/2")
        boot.expect("CHOICE> ")
        boot.send("1\r")
        boot.expect("CONFIRM> ")
        boot.send("YES\r")
        boot.expect(r"CODE: \S+\s")
        code = _last(boot, r"CODE: (\S+)")
        boot.expect("BALLOT CAST")
        boot.send("\r")
        boot.expect("READY: press Enter")
    prefix, races = booth_module("ballot").decode_ballot_code(code)
    assert races == [(2, 3), (1,)]
    assert prefix == expected_election.replace("-", "")[:8]


@pytest.mark.slow
def test_altered_station_data_is_refused(
    test_trusting_image: tuple[Path, Path], tmp_path: Path
) -> None:
    image, manifest = test_trusting_image
    station = _station_image(image, manifest, tmp_path)
    data = read_manifest(manifest).partition("booth-data")
    definition = example_definition()
    envelope = envelope_bytes(
        sign_payload(station_payload(definition, definition.station("0001")), [signing_key()])
    )
    altered = altered_envelope(envelope)
    with open(station, "r+b") as stream:
        stream.seek(data.offset)
        stream.write(b"BKDATA01" + len(altered).to_bytes(8, "big") + altered)
    with QemuBoot(station, usb=False) as boot:
        _expect_fingerprints(boot, manifest)
        boot.expect(r"REFUSED: [^\r\n]*\[altered\]")


@pytest.mark.slow
def test_a_station_without_a_release_log_proof_cannot_start_voting(
    test_trusting_image: tuple[Path, Path], tmp_path: Path
) -> None:
    """The booth recipe's missing_proof: refuse: good election data, no proof on the key."""
    image, manifest = test_trusting_image
    station = _station_image(image, manifest, tmp_path)
    with QemuBoot(station, usb=False) as boot:
        _expect_fingerprints(boot, manifest)
        boot.expect("RELEASE LOG: NOT VERIFIED: this key carries no release log proof")
        boot.expect(r"ELECTION FINGERPRINT: \S+\s")
        boot.expect(r"REFUSED: this key carries no release log proof \[no-proof\]")
        boot.expect("The vote cannot be opened. Call a poll worker.")
        assert "READY" not in boot.log()
