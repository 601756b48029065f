"""Helpers for the booth tests and the station tests: signed election data made by the
builder, the booth program run over a pty, and a small synthetic GPT image whose
root/root-verity/booth-data partitions are laid out as the lead's disk step lays them.

Plain functions, not fixtures, so that tests/booth/, tests/ and bench/ can share them.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect

from builder.canonical import canonical_json, derive_hex, derive_uuid, pretty_json, sha256_file
from builder.election import (
    ElectionDefinition,
    envelope_bytes,
    load_election,
    sign_payload,
    station_payload,
)
from builder.fingerprint import read_gpt
from builder.keys import SigningKey, load_private_key

REPO = Path(__file__).resolve().parents[2]
BOOTH_LIB = REPO / "overlays" / "booth" / "usr" / "lib" / "booth"
KEYS = Path(__file__).resolve().parent / "keys"
EXAMPLE = REPO / "examples" / "election"
TEST_PASSPHRASE = b"boothkey-test"
ROOT_HASH = "5a" * 32
MIB = 1024 * 1024

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
    from builder.stations import write_data_partition

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
) -> BoothRun:
    """The booth, as booth-init starts it (`python3 -E -s -B -m booth`), on a pty."""
    cmdline = tmp / "cmdline"
    words = ["console=ttyS0", "quiet"]
    if root_hash is not None:
        words.append(f"boothkey.roothash={root_hash}")
    cmdline.write_text(" ".join(words) + "\n")
    key_dir = tmp / "authority-keys"
    key_dir.mkdir(exist_ok=True)
    for name in keys:
        shutil.copy(KEYS / f"{name}.pub.json", key_dir)
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
    ]
    if data is not None:
        args += ["--data", str(data)]
    child = pexpect.spawn(
        booth_python(),
        args,
        cwd=str(BOOTH_LIB),
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "dumb"},
        encoding="utf-8",
        timeout=20,
        dimensions=(50, 200),
    )
    return BoothRun(child, printer_path)


@dataclass(frozen=True)
class SyntheticImage:
    image: Path
    manifest: Path
    root_hash: str
    manifest_data: Mapping[str, Any]


def _pattern(size: int, seed: str) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_software_image(
    directory: Path, *, root_mib: int = 2, data_mib: int = 1, name: str = "booth"
) -> SyntheticImage:
    """A GPT image with esp, root (+ real verity), root-verity and a zero booth-data
    partition, UUIDs from the root hash as the interfaces say, and a manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    work = directory / f".{name}-parts"
    work.mkdir(exist_ok=True)
    root = work / "root.img"
    root.write_bytes(_pattern(root_mib * MIB, f"{name}-root"))
    verity = work / "verity.img"
    salt = derive_hex(64, name, "salt")
    result = subprocess.run(
        [
            "veritysetup",
            "format",
            "--format=1",
            "--hash=sha256",
            "--data-block-size=4096",
            "--hash-block-size=4096",
            f"--salt={salt}",
            f"--uuid={derive_uuid(name, 'verity')}",
            str(root),
            str(verity),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    root_hash = next(
        line.split(":", 1)[1].strip()
        for line in result.stdout.splitlines()
        if line.startswith("Root hash:")
    )
    verity_size = -(-verity.stat().st_size // MIB) * MIB
    esp = _pattern(MIB, f"{name}-esp")
    sizes = {
        "esp": MIB,
        "root": root_mib * MIB,
        "root-verity": verity_size,
        "booth-data": data_mib * MIB,
    }
    uuids = {
        "esp": derive_uuid(name, "esp"),
        "root": _uuid_of(root_hash[:32]),
        "root-verity": _uuid_of(root_hash[32:]),
        "booth-data": derive_uuid(root_hash, "booth-data"),
    }
    types = {
        "esp": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "root": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "root-verity": "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5",
        "booth-data": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    }
    image = directory / f"{name}.img"
    total = MIB + sum(sizes.values()) + MIB
    with open(image, "wb") as stream:
        stream.truncate(total)
    script = ["label: gpt", f"label-id: {derive_uuid(name, 'disk')}", "first-lba: 2048"]
    for part in ("esp", "root", "root-verity", "booth-data"):
        script.append(
            f"size={sizes[part] // 512}, type={types[part]}, uuid={uuids[part]}, name={part}"
        )
    subprocess.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(image)],
        input="\n".join(script) + "\n",
        text=True,
        capture_output=True,
        check=True,
    )
    partitions = {p.name: p for p in read_gpt(image)}
    contents = {"esp": esp, "root": root.read_bytes(), "root-verity": verity.read_bytes()}
    with open(image, "r+b") as stream:
        for part, data in contents.items():
            stream.seek(partitions[part].offset)
            stream.write(data)
    shutil.rmtree(work)
    manifest_data: dict[str, Any] = {
        "format": 1,
        "name": name,
        "image": {"file": image.name, "size": total, "sha256": sha256_file(image)},
        "partitions": [
            {
                "name": p.name,
                "type": p.type,
                "uuid": p.uuid,
                "offset": p.offset,
                "size": p.size,
                "sha256": range_sha256(image, p.offset, p.size),
            }
            for p in partitions.values()
        ],
        "verity": {"root_hash": root_hash, "salt": salt},
    }
    manifest = directory / f"{name}.manifest.json"
    manifest.write_bytes(pretty_json(manifest_data))
    return SyntheticImage(image, manifest, root_hash, manifest_data)


def _uuid_of(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def range_sha256(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        stream.seek(offset)
        remaining = size
        while remaining:
            chunk = stream.read(min(remaining, 4 * MIB))
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()
