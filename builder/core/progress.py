"""A small progress display for downloads, on stderr, with no dependencies.

On a terminal one status line is redrawn in place (packages done/total, bytes
done/total, counting the growing temp files of downloads in flight); anywhere
else each finished download is one plain line, so logs stay readable. A quiet
display prints nothing. Nothing here reaches a build output: it is only for
the person watching.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import TextIO

_REDRAW_SECONDS = 0.2
_BAR_WIDTH = 24


def format_size(size: int) -> str:
    """`size` bytes as a short human figure: `512 B`, `3.4 kB`, `12.0 MB`, `1.25 GB`."""
    if size < 1000:
        return f"{size} B"
    if size < 1000**2:
        return f"{size / 1000:.1f} kB"
    if size < 1000**3:
        return f"{size / 1000**2:.1f} MB"
    return f"{size / 1000**3:.2f} GB"


class Progress:
    """Counts packages and bytes towards known totals; safe to call from worker threads.

    Use as a context manager (or call `close`) so a terminal line is finished
    cleanly. `mode` is "tty", "lines" or "quiet"; by default "tty" when `stream`
    is a terminal, else "lines".
    """

    def __init__(
        self,
        total_packages: int,
        total_bytes: int,
        *,
        stream: TextIO | None = None,
        mode: str | None = None,
        verb: str = "fetched",
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode is None:
            mode = "tty" if _is_terminal(self.stream) else "lines"
        if mode not in ("tty", "lines", "quiet"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.verb = verb
        self.total_packages = total_packages
        self.total_bytes = total_bytes
        self.packages_done = 0
        self.bytes_done = 0
        self._in_flight: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._width = 0
        self._ticker: threading.Thread | None = None
        if self.mode == "tty":
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    @classmethod
    def quiet(cls) -> Progress:
        """A display that prints nothing (counters still work)."""
        return cls(0, 0, mode="quiet")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def watch(self, path: Path) -> None:
        """Count the growing size of `path` (a download in flight) until `unwatch`."""
        with self._lock:
            self._in_flight.add(path)

    def unwatch(self, path: Path) -> None:
        with self._lock:
            self._in_flight.discard(path)

    def done(self, label: str, size: int, fetched: bool) -> None:
        """One package finished: `fetched` now (shown), or found already present."""
        with self._lock:
            self.packages_done += 1
            self.bytes_done += size
            line = (
                f"{self.verb} {self.packages_done}/{self.total_packages}: "
                f"{label} ({format_size(size)})"
            )
        if fetched and self.mode == "lines":
            self._write(line + "\n")
        elif self.mode == "tty":
            self._redraw()

    def note(self, message: str) -> None:
        """A line of its own (a warning, a retry), printed unless quiet."""
        if self.mode == "quiet":
            return
        if self.mode == "tty":
            self._write("\r" + " " * self._width + "\r" + message + "\n")
            self._redraw()
        else:
            self._write(message + "\n")

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
            self._redraw()
            self._write("\n")

    def status_line(self) -> str:
        """The current one-line summary (what a terminal shows)."""
        with self._lock:
            in_flight = list(self._in_flight)
            done_bytes = self.bytes_done
            done_packages = self.packages_done
        for path in in_flight:
            # A file renamed into the cache or removed since is counted by done() instead.
            with contextlib.suppress(OSError):
                done_bytes += path.stat().st_size
        fraction = min(1.0, done_bytes / self.total_bytes) if self.total_bytes else 1.0
        filled = int(fraction * _BAR_WIDTH)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        return (
            f"[{bar}] {done_packages}/{self.total_packages} packages, "
            f"{format_size(min(done_bytes, self.total_bytes))} of {format_size(self.total_bytes)}"
        )

    def _tick(self) -> None:
        while not self._stop.wait(_REDRAW_SECONDS):
            self._redraw()

    def _redraw(self) -> None:
        line = self.status_line()
        with self._lock:
            pad = max(0, self._width - len(line))
            self._width = len(line)
        self._write("\r" + line + " " * pad)

    def _write(self, text: str) -> None:
        # A closed or broken stderr must not fail a download.
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
