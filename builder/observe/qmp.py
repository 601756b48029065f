"""QEMU's machine protocol (QMP) over a unix socket: what tests use to act as a person
at a booth's screen: press keys, touch the screen (an absolute pointer, QEMU's
usb-tablet, as a touchscreen), and take screendumps (PPM pictures of the display).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from builder.core.errors import ToolError

ABS_MAX = 0x7FFF  # QEMU's absolute pointer axes run from 0 to this


class Qmp:
    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._socket.settimeout(timeout)
                self._socket.connect(str(path))
                break
            except OSError as exc:
                self._socket.close()
                if time.monotonic() > deadline:
                    raise ToolError(f"cannot reach QEMU's QMP socket {path}: {exc}") from exc
                time.sleep(0.2)
        self._stream = self._socket.makefile("rwb")
        self._read()  # the greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while True:
            line = self._stream.readline()
            if not line:
                raise ToolError("QEMU closed its QMP socket")
            message: dict[str, Any] = json.loads(line)
            if "event" not in message:
                return message

    def execute(self, command: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._stream.write(json.dumps(request).encode() + b"\n")
        self._stream.flush()
        reply = self._read()
        if "error" in reply:
            raise ToolError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def send_key(self, qcode: str) -> None:
        """Press and release one key, by QEMU's key name ("ret", "1", "esc", ...)."""
        self.execute("send-key", keys=[{"type": "qcode", "data": qcode}])

    def tap(self, x: int, y: int, width: int, height: int) -> None:
        """Touch the screen at pixel (x, y) of a `width` x `height` display and let go."""
        position = [
            {"type": "abs", "data": {"axis": "x", "value": x * ABS_MAX // max(width - 1, 1)}},
            {"type": "abs", "data": {"axis": "y", "value": y * ABS_MAX // max(height - 1, 1)}},
        ]
        self.execute("input-send-event", events=position)
        for down in (True, False):
            button = {"type": "btn", "data": {"down": down, "button": "left"}}
            self.execute("input-send-event", events=[button])
            time.sleep(0.1)

    def screendump(self, path: Path) -> None:
        """The display as a PPM picture in `path`."""
        self.execute("screendump", filename=str(path))

    def close(self) -> None:
        self._stream.close()
        self._socket.close()
