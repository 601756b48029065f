"""Helpers for the booth tests and the election/station tests: signed election data
made by the builder, and the booth program run over a pty.

Plain functions, not fixtures, so that tests/booth/, tests/ and bench/ can share them.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect

from builder.core.canonical import canonical_json
from builder.station.election import (
    PAYLOAD_TYPE,
    ElectionDefinition,
    envelope_bytes,
    load_election,
    sign_payload,
    station_payload,
)
from builder.trust.dsse import new_envelope
from builder.trust.keys import SigningKey, load_private_key

REPO = Path(__file__).resolve().parents[2]
BOOTH_LIB = REPO / "overlays" / "booth" / "usr" / "lib" / "booth"
KEYS = Path(__file__).resolve().parent / "keys"
EXAMPLE = REPO / "examples" / "election"
TEST_PASSPHRASE = b"boothkey-test"
ROOT_HASH = "5a" * 32
MIB = 1024 * 1024

# Texts the voter must never be shown (docs/election-data.md, "Text shown to the voter"),
# each standing for a kind of character, and texts that must stay allowed.
HIDDEN_TEXTS = {
    "escape sequences": "Stadhuis\x1b[2J\x1b]0;pwned\x07",
    "C1 control (CSI)": "Stad\x9b2Jhuis",
    "delete": "Stad\x7fhuis",
    "newline": "Stad\nhuis",
    "right-to-left override": "Stad\u202ehuis",
    "bidi isolate": "\u2066Stadhuis\u2069",
    "left-to-right mark": "Stadhuis\u200e",
    "Arabic letter mark": "Stadhuis\u061c",
    "zero-width space": "Stad\u200bhuis",
    "zero-width joiner": "Stad\u200dhuis",
    "word joiner": "Stad\u2060huis",
    "byte order mark": "\ufeffStadhuis",
    "line separator": "Stad\u2028huis",
    "paragraph separator": "Stad\u2029huis",
    "private use": "Stad\ue000huis",
    "unassigned": "Stad\u0378huis",
    "Hangul filler": "Stad\u3164huis",
    "variation selector": "Stad\ufe0fhuis",
    "201 characters": "x" * 201,
    "a megabyte": "x" * 1_000_000,
    "blank": "   ",
}
SHOWN_TEXTS = [
    "Stadhuis",
    "Zoë Müller-Łukasiewicz",
    "Ἀθῆναι",
    "Иванов, Иван",
    "李小龙",
    "محمد علي",
    "עברית",
    "Jose\u0301 (decomposed accent)",
    "O'Brien & Söhne (Partij A)",
    "non-breaking\u00a0space",
    "x" * 200,
]

if str(BOOTH_LIB) not in sys.path:
    # The booth package is not installed on the host; it is imported from the overlay.
    sys.path.insert(0, str(BOOTH_LIB))


def booth_module(name: str) -> Any:
    """A module of the booth package (imported by name: the booth is not a host package)."""
    return importlib.import_module(f"booth.{name}")


def signing_key(name: str = "test-authority") -> SigningKey:
    return load_private_key(KEYS / f"{name}.key", name, TEST_PASSPHRASE)


def example_definition() -> ElectionDefinition:
    return load_election(EXAMPLE / "election.yaml", EXAMPLE / "stations.csv")


def example_envelope(
    station: str = "0001", signers: tuple[str, ...] = ("test-authority",)
) -> bytes:
    definition = example_definition()
    payload = station_payload(definition, definition.station(station))
    return envelope_bytes(sign_payload(payload, [signing_key(name) for name in signers]))


BELGIAN_EXAMPLE = REPO / "examples" / "election-be" / "election.yaml"


def belgian_envelope(station: str = "0001") -> bytes:
    """The Belgian example's (format 2) envelope for one station, signed by the test
    authority."""
    definition = load_election(BELGIAN_EXAMPLE)
    payload = station_payload(definition, definition.station(station))
    return envelope_bytes(sign_payload(payload, [signing_key()]))


def example_payload(station: str = "0001") -> dict[str, Any]:
    """The example's payload for one station, as a plain (mutable) JSON object."""
    definition = example_definition()
    payload: dict[str, Any] = json.loads(
        canonical_json(station_payload(definition, definition.station(station)))
    )
    return payload


def sign_unchecked(
    payload: dict[str, Any], signers: tuple[str, ...] = ("test-authority",)
) -> bytes:
    """An envelope over any payload, signed by authority keys without the builder's
    checks (as an authority signing with its own tools could)."""
    envelope = new_envelope(payload, PAYLOAD_TYPE)
    for name in signers:
        envelope = envelope.add_signature(signing_key(name))
    return envelope_bytes(envelope)


def reenvelope(envelope: bytes, **changes: Any) -> bytes:
    """The envelope with top-level fields replaced (signatures kept unless replaced)."""
    raw = json.loads(envelope)
    raw.update(changes)
    return canonical_json(raw)


def altered_envelope(envelope: bytes) -> bytes:
    """Same signatures, payload changed by one station name character."""
    raw = json.loads(envelope)
    payload = json.loads(base64.b64decode(raw["payload"]))
    payload["station"]["name"] = payload["station"]["name"] + "."
    raw["payload"] = base64.b64encode(canonical_json(payload)).decode()
    return canonical_json(raw)


def data_partition(path: Path, envelope: bytes | None, size: int = MIB) -> Path:
    """A data partition file (all zeros when `envelope` is None)."""
    from builder.station.stations import write_data_partition

    if envelope is None:
        with open(path, "wb") as stream:
            stream.truncate(size)
    else:
        write_data_partition(path, envelope, size)
    return path


def booth_python() -> str:
    """Debian's python3 when it has cryptography (as inside the image), else this Python."""
    system = "/usr/bin/python3"
    if os.path.exists(system):
        probe = subprocess.run(
            [system, "-E", "-s", "-c", "import cryptography"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return system
    return sys.executable


def printed_codes(picture: Path) -> list[str]:
    """The QR codes zbarimg (Debian's zbar-tools) reads in a picture (a printed ballot,
    a screendump), in its order."""
    result = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(picture)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.splitlines()


def split_pbm(stream: bytes) -> list[bytes]:
    """The P4 pictures in a printer's output, one after the other. Bytes before the
    first picture are skipped: under QEMU the firmware (OVMF) writes its boot messages
    to every serial port, the printer's too, before the booth starts."""
    pictures = []
    start = stream.find(b"P4\n")
    stream = stream[start:] if start >= 0 else b""
    while stream:
        magic, size, rest = stream.split(b"\n", 2)
        assert magic == b"P4", magic
        width, height = (int(n) for n in size.split())
        length = (width + 7) // 8 * height
        pictures.append(b"%s\n%s\n%s" % (magic, size, rest[:length]))
        stream = rest[length:]
    return pictures


@dataclass
class BoothRun:
    child: pexpect.spawn
    printer: Path

    def close(self) -> None:
        self.child.close(force=True)


def spawn_booth(
    tmp: Path,
    data: Path | None,
    *,
    root_hash: str | None = ROOT_HASH,
    keys: tuple[str, ...] = ("test-authority",),
    printer: bool = True,
    release_log: Path | None = None,
) -> BoothRun:
    """The booth, as booth-init starts it (`python3 -E -s -B -m booth`), on a pty;
    `release_log` is the release-log.json it reads (default: none, no check)."""
    cmdline = tmp / "cmdline"
    words = ["console=ttyS0", "quiet"]
    if root_hash is not None:
        words.append(f"boothkey.roothash={root_hash}")
    cmdline.write_text(" ".join(words) + "\n")
    key_dir = tmp / "authority-keys"
    key_dir.mkdir(exist_ok=True)
    for name in keys:
        shutil.copy(KEYS / f"{name}.pub.json", key_dir)
    title = tmp / "title.txt"
    title.write_text("Stembureau\x1b[2J 12\n")
    printer_path = tmp / "lp0"
    if printer:
        printer_path.touch()
    args = [
        "-E",
        "-s",
        "-B",
        "-m",
        "booth",
        "--cmdline",
        str(cmdline),
        "--keys",
        str(key_dir),
        "--key-list",
        str(tmp / "no-key-list.json"),
        "--printer",
        str(printer_path),
        "--title-file",
        str(title),
    ]
    if data is not None:
        args += ["--data", str(data)]
    child = pexpect.spawn(
        booth_python(),
        args,
        cwd=str(BOOTH_LIB),
        env={
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "BOOTH_RELEASE_LOG": str(release_log or tmp / "no-release-log.json"),
        },
        encoding="utf-8",
        timeout=20,
        dimensions=(50, 200),
    )
    return BoothRun(child, printer_path)
