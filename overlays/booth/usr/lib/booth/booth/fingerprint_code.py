"""The fingerprints as a QR code on the text screen, for a phone to scan.

Payload (docs/fingerprint-code.md; QR alphanumeric mode, error correction M)::

    BOOTHKEY/1 SOFTWARE MFRG-GZDF-MZTW-Q2LK ELECTION ABCD-EFGH-IJKL-MNOP

the two fingerprints exactly as the booth shows them in text, ``ELECTION NONE``
when no verified election data is open. The code is drawn with Unicode half
blocks (two modules per character cell, square in the console's 8x16 font), light
modules lit, so that on the console's light-on-dark text it reads as dark modules
on a light background, with the four-module light quiet zone around it.
"""

from __future__ import annotations

from .qr import encode

PAYLOAD_PREFIX = "BOOTHKEY/1"
QUIET_ZONE = 4
# (upper module light, lower module light) -> character
_HALF_BLOCKS = {
    (False, False): " ",
    (True, False): "\u2580",  # upper half block
    (False, True): "\u2584",  # lower half block
    (True, True): "\u2588",  # full block
}


def fingerprint_payload(software: str, election: str | None) -> str:
    """The text the code holds, from the fingerprints the booth shows."""
    return f"{PAYLOAD_PREFIX} SOFTWARE {software} ELECTION {election or 'NONE'}"


def half_block_lines(payload: str) -> list[str]:
    """`payload`'s QR code as lines of half-block characters, quiet zone included."""
    matrix = encode(payload)
    width = len(matrix) + 2 * QUIET_ZONE
    light_rows = [[True] * width for _ in range(QUIET_ZONE)]
    light_rows += [
        [True] * QUIET_ZONE + [not dark for dark in row] + [True] * QUIET_ZONE for row in matrix
    ]
    light_rows += [[True] * width for _ in range(QUIET_ZONE + len(light_rows) % 2)]
    return [
        "".join(_HALF_BLOCKS[(upper, lower)] for upper, lower in zip(top, bottom, strict=True))
        for top, bottom in zip(light_rows[0::2], light_rows[1::2], strict=True)
    ]


def fingerprint_code(software: str, election: str | None) -> str:
    """The block of screen lines that shows both fingerprints as one QR code."""
    return "\n".join(half_block_lines(fingerprint_payload(software, election)))
