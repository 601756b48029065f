"""One-bit pictures for the printed ballot: text in a PSF console font, QR codes, and
the PBM (P4) file a printer or an image viewer reads.

The font is Debian's GNU Unifont APL 8x16 (package psf-unifont, in the booth's
recipe): Latin-1, Latin Extended-A in part, Greek and APL, enough for Dutch, French
and German names. A character it lacks is drawn as a box, never dropped, so a
printed name never silently loses a letter. Text is written at whole-number scales:
a picture is a pure function of its content, with nothing taken from the machine.
"""

from __future__ import annotations

import gzip
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

FONT = Path("/usr/share/consolefonts/Unifont-APL8x16.psf.gz")
_PSF1_MAGIC = b"\x36\x04"
_PSF2_MAGIC = b"\x72\xb5\x4a\x86"
_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


class FontError(ValueError):
    """The font file is missing or not a PSF font."""


@dataclass(frozen=True)
class Font:
    width: int
    height: int
    glyphs: dict[str, bytes]  # character -> rows, each ceil(width / 8) bytes
    box: bytes  # drawn for a character the font lacks

    def glyph(self, char: str) -> bytes:
        found = self.glyphs.get(char)
        if found is None:
            # A precomposed form (a letter + combining accent typed as two characters).
            found = self.glyphs.get(unicodedata.normalize("NFC", char))
        return self.box if found is None else found


def load_font(path: Path = FONT) -> Font:
    """A PSF 1 or 2 console font with its Unicode table."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise FontError(f"{path}: cannot read the font: {exc}") from exc
    if data[:2] == _PSF1_MAGIC:
        mode, height = data[2], data[3]
        count, width, size, start = (512 if mode & 1 else 256), 8, height, 4
        table = _psf1_table(data[start + count * size :], count)
    elif data[:4] == _PSF2_MAGIC:
        _magic, _version, start, flags, count, size, height, width = struct.unpack_from("<8I", data)
        table = _psf2_table(data[start + count * size :], count) if flags & 1 else {}
    else:
        raise FontError(f"{path}: not a PSF font")
    glyphs = {char: data[start + index * size : start + (index + 1) * size]
              for char, index in table.items()}  # fmt: skip
    row = (width + 7) // 8
    edge = bytes([0xFF] * row)
    side = int("1" + "0" * (width - 2) + "1", 2) << (row * 8 - width)
    middle = side.to_bytes(row, "big")
    box = edge + middle * (height - 2) + edge
    return Font(width, height, glyphs, box)


def _psf1_table(table: bytes, count: int) -> dict[str, int]:
    found: dict[str, int] = {}
    values = struct.unpack_from(f"<{len(table) // 2}H", table)
    glyph, in_sequence = 0, False
    for value in values:
        if glyph >= count:
            break
        if value == 0xFFFF:
            glyph, in_sequence = glyph + 1, False
        elif value == 0xFFFE:
            in_sequence = True
        elif not in_sequence:
            found.setdefault(chr(value), glyph)
    return found


def _psf2_table(table: bytes, count: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for glyph, entry in enumerate(table.split(b"\xff")[:count]):
        single = entry.split(b"\xfe")[0]
        for char in single.decode("utf-8", errors="ignore"):
            found.setdefault(char, glyph)
    return found


class Bitmap:
    """A picture of `width` x `height` pixels, True for black (ink)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.rows = [bytearray(width) for _ in range(height)]

    def fill(self, x: int, y: int, width: int, height: int, ink: bool = True) -> None:
        value = 1 if ink else 0
        for row in self.rows[max(y, 0) : max(min(y + height, self.height), 0)]:
            start, end = max(x, 0), max(min(x + width, self.width), 0)
            row[start:end] = bytes([value]) * (end - start)

    def text(self, x: int, y: int, text: str, font: Font, scale: int = 1) -> int:
        """Draw one line of text; returns the x after it."""
        row_bytes = (font.width + 7) // 8
        for char in unicodedata.normalize("NFC", text):
            glyph = font.glyph(char)
            for gy in range(font.height):
                bits = int.from_bytes(glyph[gy * row_bytes : (gy + 1) * row_bytes], "big")
                for gx in range(font.width):
                    if bits >> (row_bytes * 8 - 1 - gx) & 1:
                        self.fill(x + gx * scale, y + gy * scale, scale, scale)
            x += font.width * scale
        return x

    def modules(self, x: int, y: int, grid: list[list[bool]], scale: int) -> None:
        """A QR code's modules, each `scale` pixels square, top left at (x, y)."""
        for gy, line in enumerate(grid):
            for gx, dark in enumerate(line):
                if dark:
                    self.fill(x + gx * scale, y + gy * scale, scale, scale)

    def pbm(self) -> bytes:
        """The picture as a binary PBM (P4): header, then rows packed 8 pixels a byte."""
        out = bytearray(f"P4\n{self.width} {self.height}\n".encode("ascii"))
        padding = bytes(-self.width % 8)
        size = (self.width + 7) // 8
        for row in self.rows:
            # One pixel a byte (0 or 1) into ASCII digits, read as one binary number.
            digits = bytes(row + padding).translate(_DIGITS)
            out += int(digits, 2).to_bytes(size, "big")
        return bytes(out)


def wrap(text: str, columns: int) -> list[str]:
    """`text` in lines of at most `columns` characters, broken at spaces where possible."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        while len(word) > columns:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:columns])
            word = word[columns:]
        candidate = f"{line} {word}" if line else word
        if len(candidate) > columns:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    return lines
