"""The booth's own QR encoder and its fingerprint code on the text screen: every version,
level and mask the booth can make is the symbol an independent encoder (segno) makes,
and the screen's half-block drawing, rasterised as the console font draws it, decodes
with zbarimg to the documented payload that the builder makes too."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import segno
from booth_helpers import (
    ROOT_HASH,
    booth_module,
    data_partition,
    example_envelope,
    printed_codes,
    spawn_booth,
)

from builder.core.errors import InputError
from builder.station.fingerprint import (
    code_payload,
    election_fingerprint,
    parse_code_payload,
    software_fingerprint,
)

qr = booth_module("qr")
fingerprint_code = booth_module("fingerprint_code")

SOFTWARE = "MFRG-GZDF-MZTW-Q2LK"
ELECTION = "ABCD-EFGH-IJKL-MNOP"
# The console's glyphs: a character cell is 8x16 pixels; the half blocks light one half.
CELL_WIDTH, CELL_HEIGHT = 8, 16
LIGHT, DARK = 170, 0  # the console's grey on black


def _segno_size(text: str, mode: str) -> int:
    made = segno.make(text, error="M", mode=mode, boost_error=False, micro=False)
    return len(made.matrix)


@pytest.mark.parametrize("length", [1, 20, 25, 47, 77, 114, 154, 195, 224, 279, 335, 395, 500, 970])
def test_every_length_takes_the_version_segno_takes(length: int) -> None:
    """The smallest version that holds the text at level M, as an independent encoder
    chooses it (the symbols themselves are read back by zbarimg: test_printout.py)."""
    text = (f"BOOTHKEY/1 SOFTWARE {SOFTWARE} ELECTION {ELECTION} $%*+-./:0123456789" * 20)[:length]
    assert len(qr.encode(text)) == _segno_size(text, "alphanumeric"), f"{length} characters"


def test_byte_mode_and_the_fingerprint_payloads_take_segnos_versions() -> None:
    assert len(qr.encode("booth: Stemming")) == _segno_size("booth: Stemming", "byte")
    for election in (ELECTION, None):
        text = code_payload(SOFTWARE, election)
        assert len(qr.encode(text)) == _segno_size(text, "alphanumeric")


def test_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        qr.encode("A" * 971)


def test_the_payload_is_the_builders() -> None:
    assert fingerprint_code.fingerprint_payload(SOFTWARE, ELECTION) == code_payload(
        SOFTWARE, ELECTION
    )
    assert fingerprint_code.fingerprint_payload(SOFTWARE, None) == code_payload(SOFTWARE, None)
    assert code_payload(SOFTWARE, None) == f"BOOTHKEY/1 SOFTWARE {SOFTWARE} ELECTION NONE"
    parsed = parse_code_payload(f"  {code_payload(SOFTWARE, ELECTION)}\n")
    assert (parsed.software, parsed.election) == (SOFTWARE, ELECTION)
    assert parse_code_payload(code_payload(SOFTWARE, None)).election is None
    for bad in ("", SOFTWARE, f"BOOTHKEY/2 SOFTWARE {SOFTWARE} ELECTION NONE",
                f"BOOTHKEY/1 SOFTWARE {SOFTWARE.lower()} ELECTION NONE"):  # fmt: skip
        with pytest.raises(InputError):
            parse_code_payload(bad)


def rasterise(lines: list[str], path: Path) -> Path:
    """A PGM picture of half-block lines as the console draws them."""
    width, height = len(lines[0]) * CELL_WIDTH, len(lines) * CELL_HEIGHT
    pixels = bytearray()
    for line in lines:
        assert len(line) == len(lines[0])
        for half in ("\u2580", "\u2584"):
            row = b"".join(
                bytes([LIGHT if char in ("\u2588", half) else DARK]) * CELL_WIDTH for char in line
            )
            pixels += row * (CELL_HEIGHT // 2)
    path.write_bytes(b"P5 %d %d 255\n" % (width, height) + bytes(pixels))
    return path


@pytest.mark.parametrize("election", [ELECTION, None])
def test_the_screen_code_decodes_to_the_payload(tmp_path: Path, election: str | None) -> None:
    block = fingerprint_code.fingerprint_code(SOFTWARE, election)
    lines = block.split("\n")
    assert set(block) <= {" ", "\n", "\u2580", "\u2584", "\u2588"}
    assert len(lines) <= 21 and len(lines[0]) <= 41  # fits a 100x37 console with the text
    assert lines[0] == "\u2588" * len(lines[0])  # the quiet zone is light
    assert printed_codes(rasterise(lines, tmp_path / "screen.pgm")) == [
        code_payload(SOFTWARE, election)
    ]


def test_a_damaged_screen_code_does_not_decode_to_another_payload(tmp_path: Path) -> None:
    lines = fingerprint_code.half_block_lines(code_payload(SOFTWARE, ELECTION))
    blotted = [
        line[:8] + " " * 25 + line[33:] if 4 <= i < 16 else line for i, line in enumerate(lines)
    ]
    assert printed_codes(rasterise(blotted, tmp_path / "blotted.pgm")) == []


def test_the_booth_shows_the_code_of_the_fingerprints_it_shows(tmp_path: Path) -> None:
    envelope = example_envelope("0001")
    run = spawn_booth(tmp_path, data_partition(tmp_path / "booth-data.img", envelope))
    try:
        run.child.expect_exact("READY: press Enter to start voting")
        screen = str(run.child.before).replace("\r\n", "\n")
    finally:
        run.close()
    signed = base64.b64decode(json.loads(envelope)["payload"])
    payload = code_payload(software_fingerprint(ROOT_HASH), election_fingerprint(signed))
    lines = fingerprint_code.half_block_lines(payload)
    assert "\n".join(lines) in screen
    assert printed_codes(rasterise(lines, tmp_path / "screen.pgm")) == [payload]
