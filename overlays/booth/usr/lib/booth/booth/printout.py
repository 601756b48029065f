"""The printed ballot: the voter's choices in words and a QR code of the ballot code,
as a one-bit picture 576 pixels wide (a 72 mm receipt printer at 203 dpi), sent to the
printer as a binary PBM (P4).

How the booth prints (docs/printed-ballot.md): the printer is a serial (RS-232)
receipt printer on the booth's second serial port, ``/dev/ttyS1`` by default; the
booth sets the line to raw mode and writes the picture. Under QEMU the second
serial port is a file (``-serial file:ballots.pbm``), which any image viewer and
``build.py ballot decode`` read.
"""

from __future__ import annotations

import os
import termios
import tty
from dataclasses import dataclass
from pathlib import Path

from . import qr
from .raster import Bitmap, Font, wrap

WIDTH = 576
MARGIN = 16
QR_MODULE = 6  # pixels per module: 0.75 mm at 203 dpi
QR_QUIET = 4  # modules of white around the code


@dataclass(frozen=True)
class BallotPrint:
    """What a ballot says: a heading, lines about the election, each race with its
    choices in words, and the ballot code."""

    heading: str
    about: tuple[str, ...]
    races: tuple[tuple[str, tuple[str, ...]], ...]
    code: str


def render(ballot: BallotPrint, font: Font) -> Bitmap:
    """The ballot as a picture (the same content gives the same pixels)."""
    lines: list[tuple[str, int, int]] = []  # (text, scale, indent in pixels)
    big = (WIDTH - 2 * MARGIN) // (font.width * 2)
    lines += [(text, 3, 0) for text in wrap(ballot.heading, big * 2 // 3)]
    for text in ballot.about:
        lines += [(part, 2, 0) for part in wrap(text, big)]
    for race, choices in ballot.races:
        lines.append(("", 1, 0))
        lines += [(part, 2, 0) for part in wrap(race, big)]
        for choice in choices:
            lines += [(part, 2, font.width * 2) for part in wrap(choice, big - 1)]
    grid = qr.encode(ballot.code)
    qr_size = (len(grid) + 2 * QR_QUIET) * QR_MODULE
    height = MARGIN * 2 + sum(font.height * scale for _t, scale, _i in lines)
    height += qr_size + font.height * 2
    picture = Bitmap(WIDTH, height)
    y = MARGIN
    for text, scale, indent in lines:
        picture.text(MARGIN + indent, y, text, font, scale)
        y += font.height * scale
    left = (WIDTH - qr_size) // 2
    picture.modules(left + QR_QUIET * QR_MODULE, y + QR_QUIET * QR_MODULE, grid, QR_MODULE)
    y += qr_size
    code_width = len(ballot.code) * font.width
    picture.text(max((WIDTH - code_width) // 2, 0), y, ballot.code, font)
    return picture


def send_to_printer(printer: Path, picture: bytes) -> None:
    """Write the picture to the printer device; a terminal line is set raw first (no
    newline translation, no echo). `OSError` if the device cannot take it."""
    descriptor = os.open(printer, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY)
    try:
        if os.isatty(descriptor):
            tty.setraw(descriptor)
            attributes = termios.tcgetattr(descriptor)
            attributes[4] = attributes[5] = termios.B115200
            termios.tcsetattr(descriptor, termios.TCSANOW, attributes)
        view = memoryview(picture)
        while view:
            view = view[os.write(descriptor, view) :]
        if os.isatty(descriptor):
            termios.tcdrain(descriptor)
    finally:
        os.close(descriptor)
