"""The graphical booth's screen: the Linux framebuffer (/dev/fb0), no X server.

The kernel gives /dev/fb0 from the firmware's framebuffer (efifb, built into Debian's
kernel) or from a DRM driver's fbdev emulation. The booth draws one-bit pictures
(`booth.raster.Bitmap`: black text on white, the highest contrast) and copies them
whole to the framebuffer; the console's text is switched off meanwhile (KD_GRAPHICS)
so that nothing else draws on the screen.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from pathlib import Path

from .raster import Bitmap

KDSETMODE = 0x4B3A
KD_TEXT = 0x00
KD_GRAPHICS = 0x01
_INK = bytes.maketrans(b"\x00\x01", b"WB")


class ScreenError(OSError):
    """No usable framebuffer."""


class Framebuffer:
    """/dev/fbN with 32 or 16 bits per pixel, as the kernel describes it in sysfs."""

    def __init__(self, device: Path = Path("/dev/fb0"), sysfs: Path | None = None) -> None:
        info = sysfs or Path("/sys/class/graphics") / device.name
        try:
            self.width, self.height = (
                int(n) for n in (info / "virtual_size").read_text().strip().split(",")
            )
            self.depth = int((info / "bits_per_pixel").read_text())
            self.stride = int((info / "stride").read_text())
        except (OSError, ValueError) as exc:
            raise ScreenError(f"{device}: no framebuffer description in {info}") from exc
        if self.depth not in (16, 32):
            raise ScreenError(f"{device}: {self.depth} bits per pixel is not supported")
        self._white = b"\xff" * (self.depth // 8)
        self._black = b"\x00" * (self.depth // 8)
        self._fd = os.open(device, os.O_RDWR)
        self._map = mmap.mmap(self._fd, self.stride * self.height)

    def show(self, picture: Bitmap) -> None:
        """Copy a picture of the screen's size (larger is cut, smaller padded white)."""
        blank = self._white * self.width
        for y in range(self.height):
            if y < picture.height:
                row = bytes(picture.rows[y][: self.width]).translate(_INK)
                pixels = row.replace(b"B", self._black).replace(b"W", self._white)
                pixels += self._white * (self.width - len(row))
            else:
                pixels = blank
            self._map[y * self.stride : y * self.stride + len(pixels)] = pixels

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


def console_graphics(terminal: int, on: bool) -> None:
    """Stop (or restart) the kernel's text console drawing on the screen."""
    # Not a virtual console (a test's pty): nothing draws there anyway.
    with contextlib.suppress(OSError):
        fcntl.ioctl(terminal, KDSETMODE, KD_GRAPHICS if on else KD_TEXT)
