"""The booth's QR encoder, font, pictures and printed ballot, read back with zbarimg
(Debian's zbar-tools) and the builder's PBM reading."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from booth_helpers import booth_module, printed_codes, split_pbm

qr = booth_module("qr")
raster = booth_module("raster")
printout = booth_module("printout")


def _write_grid(path: Path, grid: list[list[bool]], scale: int = 4) -> Path:
    picture = raster.Bitmap((len(grid) + 8) * scale, (len(grid) + 8) * scale)
    picture.modules(4 * scale, 4 * scale, grid, scale)
    path.write_bytes(picture.pbm())
    return path


@pytest.mark.parametrize("length", [1, 14, 26, 47, 90, 154, 213, 311, 395, 535, 970])
def test_qr_codes_of_every_size_read_back(tmp_path: Path, length: int) -> None:
    text = ("BK2:MFRGGZDFMZTWQ2LK:1/1.2.S3:B:" * 20)[:length]
    grid = qr.encode(text)
    assert len(grid) == len(grid[0]) and (len(grid) - 17) % 4 == 0
    assert printed_codes(_write_grid(tmp_path / "code.pbm", grid)) == [text]


def test_byte_mode_for_other_characters(tmp_path: Path) -> None:
    assert printed_codes(_write_grid(tmp_path / "code.pbm", qr.encode("ballot 7, lower"))) == [
        "ballot 7, lower"
    ]


def test_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        qr.encode("A" * 971)
    assert len(qr.encode("A" * 970)) == 97  # version 20


def test_encoding_is_deterministic() -> None:
    assert qr.encode("BK2:AAAA") == qr.encode("BK2:AAAA")


def test_pbm_packs_rows_msb_first() -> None:
    picture = raster.Bitmap(10, 2)
    picture.fill(0, 0, 1, 1)
    picture.fill(9, 1, 1, 1)
    assert picture.pbm() == b"P4\n10 2\n" + bytes([0x80, 0x00, 0x00, 0x40])


def test_psf2_fonts_and_missing_characters(tmp_path: Path) -> None:
    glyph = bytes([0x18] * 8)
    header = struct.pack("<8I", 0x864AB572, 0, 32, 1, 1, 8, 8, 8)
    path = tmp_path / "tiny.psf.gz"
    path.write_bytes(gzip.compress(header + glyph + "é".encode() + b"\xff", mtime=0))
    font = raster.load_font(path)
    assert (font.width, font.height) == (8, 8)
    assert font.glyph("é") == glyph
    assert font.glyph("e\u0301") == glyph  # decomposed: drawn as the precomposed letter
    assert font.glyph("Ж") == font.box != glyph
    (tmp_path / "bad.psf").write_bytes(b"nope")
    with pytest.raises(raster.FontError, match="not a PSF font"):
        raster.load_font(tmp_path / "bad.psf")
    with pytest.raises(raster.FontError, match="cannot read"):
        raster.load_font(tmp_path / "missing.psf.gz")


def test_the_debian_font_has_the_letters_of_nl_fr_de() -> None:
    font = raster.load_font()
    assert (font.width, font.height) == (8, 16)
    for char in "AZaz09éèêëàâçîïôûùüÿœæÉÈÀÇäöüßÄÖÜ€'-,./()":
        assert font.glyph(char) != font.box, char


def test_wrap() -> None:
    assert raster.wrap("Liberale Partij: Lambert, Chloé", 16) == [
        "Liberale Partij:",
        "Lambert, Chloé",
    ]
    assert raster.wrap("x" * 10, 4) == ["xxxx", "xxxx", "xx"]


def test_a_printed_ballot_reads_back_and_is_the_same_every_time(tmp_path: Path) -> None:
    ballot = printout.BallotPrint(
        "BULLETIN DE VOTE",
        ("Élections fédérales 2030 (exemple)", "0001 Gemeentehuis / Maison communale"),
        (("Chambre", ("Parti libéral: Lambert, Chloé", "Parti libéral: Wouters, Noël")),),
        "BK2:MFRGGZDFMZTWQ2LK:2/1.S1:M42V",
    )
    font = raster.load_font()
    picture = printout.render(ballot, font).pbm()
    assert picture == printout.render(ballot, font).pbm()
    assert picture.startswith(b"P4\n576 ")
    path = tmp_path / "ballot.pbm"
    path.write_bytes(picture)
    assert printed_codes(path) == [ballot.code]


def test_printing_to_a_file_appends_each_ballot(tmp_path: Path) -> None:
    printer = tmp_path / "printer"
    printer.touch()
    font = raster.load_font()
    pictures = []
    for code in ("BK2:MFRGGZDFMZTWQ2LK:1:AAAA", "BK2:MFRGGZDFMZTWQ2LK:B:BBBB"):
        picture = printout.render(printout.BallotPrint("B", (), (), code), font).pbm()
        printout.send_to_printer(printer, picture)
        pictures.append(picture)
    assert split_pbm(printer.read_bytes()) == pictures
