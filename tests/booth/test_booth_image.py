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
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from log_factory import ORIGIN, cosigned_bundle, fixed_key, witness_vkey

from builder.build.manifest import read_manifest
from builder.core.canonical import canonical_json
from builder.observe.qemu import QemuBoot
from builder.release.log import append, init_log, make_checkpoint
from builder.station.ballot import ballot_election, decode_ballot
from builder.station.election import (
    ElectionDefinition,
    envelope_bytes,
    load_election,
    sign_payload,
    station_payload,
)
from builder.station.fingerprint import election_fingerprint, software_fingerprint
from builder.station.stations import make_stations, open_software_image
from builder.transparency.note import note_key_of

sys.path.insert(0, str(Path(__file__).parent / "booth"))
from booth_helpers import (
    BELGIAN_EXAMPLE,
    KEYS,
    altered_envelope,
    booth_module,
    example_definition,
    printed_codes,
    signing_key,
    split_pbm,
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
    image: Path,
    manifest: Path,
    out: Path,
    station: str = "0001",
    definition: ElectionDefinition | None = None,
    log_proof: bytes | None = None,
) -> Path:
    definition = definition or example_definition()
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
def test_belgian_vote_in_french_prints_a_ballot_whose_qr_code_is_the_vote(
    test_trusting_image: tuple[Path, Path], tmp_path: Path
) -> None:
    """Format 2 on the booted image: the language first, a mix of lists refused, then
    preference votes and a list vote; the ballot printed on the second serial port
    (a file here) carries a QR code that zbarimg reads and the builder decodes to the
    vote cast."""
    image, manifest = test_trusting_image
    definition = load_election(BELGIAN_EXAMPLE)
    proof = _log_proof(manifest, tmp_path)
    station = _station_image(image, manifest, tmp_path, "0001", definition, proof)
    payload = canonical_json(station_payload(definition, definition.station("0001")))
    printer = tmp_path / "printer.pbm"
    with QemuBoot(station, usb=False, printer=printer) as boot:
        _expect_fingerprints(boot, manifest)
        boot.expect("READY: press Enter")
        boot.send("\r")
        boot.expect("LANGUAGE> ")
        boot.send("2\r")
        boot.expect("RACE 1/2: Chambre")
        boot.expect("CHOICE> ")
        boot.send("1.1 2.1\r")
        boot.expect("INVALID: vous ne pouvez voter que pour une liste ou pour des candidats")
        boot.send("2.S1 2.1\r")
        boot.expect("RACE 2/2: Parlement")
        boot.expect("CHOICE> ")
        boot.send("1\r")
        boot.expect("CONFIRM> ")
        boot.send("OUI\r")
        boot.expect(r"CODE: \S+\s")
        code = _last(boot, r"CODE: (\S+)")
        boot.expect("PRINTER: ballot printed")
        boot.expect("BALLOT CAST")
    pictures = split_pbm(printer.read_bytes())
    assert len(pictures) == 1
    picture = tmp_path / "ballot.pbm"
    picture.write_bytes(pictures[0])
    assert printed_codes(picture) == [code]
    election = ballot_election(payload, election_fingerprint(payload), "station 0001")
    assert [vote.to_json() for vote in decode_ballot(code, election)] == [
        {"list": "2", "candidates": ["2-1", "2-S1"]},
        {"list": "1"},
    ]


def _screen_bytes(picture: Any) -> bytes:
    """A one-bit page as the 24-bit pixels of QEMU's screendump (black ink on white)."""
    rows = (bytes(row).translate(bytes.maketrans(b"\x00\x01", b"WB")) for row in picture.rows)
    return b"".join(row.replace(b"B", b"\0\0\0").replace(b"W", b"\xff\xff\xff") for row in rows)


def _screendump(boot: QemuBoot, path: Path) -> tuple[int, int, bytes]:
    boot.qmp().screendump(path)
    magic, size, _depth, pixels = path.read_bytes().split(b"\n", 3)
    assert magic == b"P6"
    width, height = (int(n) for n in size.split())
    return width, height, pixels


def _wait_for_page(boot: QemuBoot, page: Any, font: Any, tmp: Path, timeout: float = 120) -> None:
    """Wait until the screen shows exactly `page` as the booth draws it (pixel for pixel)."""
    deadline = time.monotonic() + timeout
    while True:
        width, height, pixels = _screendump(boot, tmp / "screen.ppm")
        if pixels == _screen_bytes(page.render(width, height, font)):
            return
        if time.monotonic() > deadline:
            shutil.copy(tmp / "screen.ppm", tmp / "last-screen.ppm")
            raise AssertionError(f"the screen does not show {page}; see {tmp}/last-screen.ppm")
        time.sleep(1)


def _touch(boot: QemuBoot, page: Any, action: str, font: Any, tmp: Path) -> None:
    """Wait for `page`, then touch the middle of its button doing `action`."""
    _wait_for_page(boot, page, font, tmp)
    width, height, _pixels = _screendump(boot, tmp / "screen.ppm")
    for button, x, y, w, h in page.layout(width, height, font):
        if button.action == action:
            boot.qmp().tap(x + w // 2, y + h // 2, width, height)
            return
    raise AssertionError(f"no button {action} on {page}")


@pytest.mark.slow
def test_graphical_booth_votes_by_touch_in_three_languages(
    test_trusting_image: tuple[Path, Path], tmp_path: Path
) -> None:
    """The framebuffer booth on tty1 with a USB keyboard and touchscreen (QEMU's
    usb-tablet): the poll worker's page shows both fingerprints, then three voters vote
    by touch in Dutch, French and German; a mix of lists is refused on the screen; each
    printed ballot's QR code decodes to the vote cast. Every page is compared, pixel for
    pixel, with the page the booth's own code draws for that state."""
    gui = booth_module("gui")
    font = booth_module("raster").load_font()
    image, manifest = test_trusting_image
    definition = load_election(BELGIAN_EXAMPLE)
    proof = _log_proof(manifest, tmp_path)
    station = _station_image(image, manifest, tmp_path, "0001", definition, proof)
    payload = canonical_json(station_payload(definition, definition.station("0001")))
    fingerprint = election_fingerprint(payload)
    software = software_fingerprint(read_manifest(manifest).verity.root_hash)
    races = booth_module("election").parse_payload(payload).races
    start = gui.poll_worker_page(
        "Stembureau",
        software,
        fingerprint,
        "0001 Gemeentehuis / Maison communale",
        "RELEASE LOG: published in the release log at index 0, cosigned by 2 of 3 witnesses",
    )
    printer = tmp_path / "printer.pbm"
    # (language, touches on each race's pages, the vote expected)
    voters = [
        ("nl", [["list:1", "mark:candidate:1-3", "mark:candidate:1-S1", "next"], ["list:2",
         "mark:list:2", "next"]], [{"list": "1", "candidates": ["1-3", "1-S1"]}, {"list": "2"}]),
        ("fr", [["blank"], ["list:1", "mark:list:1", "next"]], [{"blank": True}, {"list": "1"}]),
        ("de", [["list:3", "mark:list:3", "next"], ["list:2", "mark:candidate:2-2", "next"]],
         [{"list": "3"}, {"list": "2", "candidates": ["2-2"]}]),
    ]  # fmt: skip
    with QemuBoot(station, usb=False, printer=printer, touch=True) as boot:
        boot.expect("BOOTH: press Enter on this screen", timeout=BOOT_TIMEOUT)
        boot.qmp().send_key("ret")  # the poll worker claims the screen (tty1)
        for language, touches, _expected in voters:
            voter = gui.Voter(races, ("nl", "fr", "de"))
            _touch(boot, start, "start", font, tmp_path)
            _touch(boot, voter.page(), f"lang:{language}", font, tmp_path)
            voter.press(voter.page().press_key(str(voter.languages.index(language) + 1)))
            if language == "de":
                # A mark on list 1, then one on list 2: refused, in German, on the screen.
                for action in ("list:1", "mark:candidate:1-1", "back", "list:2",
                               "mark:candidate:2-1", "next"):  # fmt: skip
                    _touch(boot, voter.page(), action, font, tmp_path)
                    voter.press(next(b for b in voter.page().buttons if b.action == action))
                assert voter.page().message.startswith("Sie dürfen nur für eine Liste")
                for action in ("mark:candidate:2-1", "back", "list:1", "mark:candidate:1-1",
                               "back"):  # fmt: skip
                    _touch(boot, voter.page(), action, font, tmp_path)
                    voter.press(next(b for b in voter.page().buttons if b.action == action))
            for race_touches in touches:
                for action in race_touches:
                    _touch(boot, voter.page(), action, font, tmp_path)
                    voter.press(next(b for b in voter.page().buttons if b.action == action))
            _touch(boot, voter.page(), "yes", font, tmp_path)
            _wait_for_page(boot, gui.thanks_page(language), font, tmp_path)
        _wait_for_page(boot, start, font, tmp_path)
    codes = []
    for index, picture in enumerate(split_pbm(printer.read_bytes())):
        path = tmp_path / f"ballot-{index}.pbm"
        path.write_bytes(picture)
        codes += printed_codes(path)
    election = ballot_election(payload, fingerprint, "station 0001")
    assert [[v.to_json() for v in decode_ballot(code, election)] for code in codes] == [
        expected for _language, _touches, expected in voters
    ]


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
