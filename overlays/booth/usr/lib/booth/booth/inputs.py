"""Touch and keyboard for the graphical booth, read from the kernel's input devices
(/dev/input/event*, the evdev module, which the booth's initrd loads).

Each device gives `struct input_event`s; this module turns them into what the booth
needs: a key ("0"-"9", "enter", "back") or a tap at a screen position. A touchscreen or
an absolute pointer (QEMU's usb-tablet) reports positions between the axis' minimum
and maximum, which are scaled to the screen's pixels.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import time
from dataclasses import dataclass
from pathlib import Path

EVENT = struct.Struct("llHHi")
EV_KEY, EV_ABS = 0x01, 0x03
ABS_X, ABS_Y = 0x00, 0x01
BTN_LEFT, BTN_TOUCH = 0x110, 0x14A
_ABSINFO = struct.Struct("6i")
_EVIOCGABS = 0x80184540  # _IOR('E', 0x40 + axis, struct input_absinfo)
KEYS = {
    **{2 + i: str((i + 1) % 10) for i in range(10)},  # KEY_1..KEY_9, KEY_0
    **dict(zip((82, 79, 80, 81, 75, 76, 77, 71, 72, 73), "0123456789", strict=True)),  # keypad
    28: "enter",
    96: "enter",  # keypad Enter
    1: "back",  # Escape
    14: "back",  # Backspace
}


@dataclass(frozen=True)
class Press:
    """A key ("0"-"9", "enter", "back"), or a tap (key "tap") at (x, y) screen pixels."""

    key: str
    x: int = 0
    y: int = 0


class _Device:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.ranges = [self._range(axis) for axis in (ABS_X, ABS_Y)]
        self.position = [0, 0]

    def _range(self, axis: int) -> tuple[int, int]:
        try:
            info = fcntl.ioctl(self.fd, _EVIOCGABS + axis, bytes(_ABSINFO.size))
        except OSError:
            return (0, 0)
        _value, low, high, *_rest = _ABSINFO.unpack(info)
        return (low, high)


class Inputs:
    """Every input device: those present when made (opened at once, so that no touch
    on the first page is lost), and those plugged in later (looked for every second)."""

    def __init__(self, width: int, height: int, directory: Path = Path("/dev/input")) -> None:
        self.size = (width, height)
        self.directory = directory
        self.devices: list[_Device] = []
        self._opened: set[Path] = set()
        self._open_new()

    def _open_new(self) -> None:
        for path in sorted(self.directory.glob("event*")):
            if path in self._opened:
                continue
            try:
                self.devices.append(_Device(path))
            except OSError:
                continue
            self._opened.add(path)

    def next_press(self, timeout: float | None = None) -> Press | None:
        """The next key or tap; None when `timeout` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else min(max(deadline - time.monotonic(), 0), 1.0)
            ready, _w, _x = select.select([d.fd for d in self.devices], [], [], wait)
            for device in self.devices:
                if device.fd in ready:
                    press = self._read(device)
                    if press is not None:
                        return press
            if not ready:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                self._open_new()

    def _read(self, device: _Device) -> Press | None:
        try:
            data = os.read(device.fd, EVENT.size * 64)
        except OSError:
            return None
        found = None
        for offset in range(0, len(data) - EVENT.size + 1, EVENT.size):
            _sec, _usec, kind, code, value = EVENT.unpack_from(data, offset)
            if kind == EV_ABS and code in (ABS_X, ABS_Y):
                device.position[code] = value
            elif kind == EV_KEY and value == 1:
                if code in (BTN_LEFT, BTN_TOUCH):
                    found = self._tap(device)
                elif code in KEYS:
                    found = Press(KEYS[code])
        return found

    def _tap(self, device: _Device) -> Press:
        point = []
        for axis in (0, 1):
            low, high = device.ranges[axis]
            span = max(high - low, 1)
            point.append((device.position[axis] - low) * (self.size[axis] - 1) // span)
        return Press("tap", point[0], point[1])
