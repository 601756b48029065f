"""Reading a built image (a file or a block device) without mounting anything.

The GPT is read with `builder.formats.gpt.read_primary_gpt`; the UKI is copied out of
the ESP's FAT filesystem with mtools (`mcopy -i IMAGE@@OFFSET`), which reads the
FAT straight from the image file or device; its `.cmdline` section is read with
`builder.formats.pe`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from builder.core.errors import BoothkeyError, VerificationFailed
from builder.core.tools import run_tool
from builder.formats.pe import parse_pe_headers

ESP_UKI_PATH = "EFI/BOOT/BOOTX64.EFI"


def read_range(stream: BinaryIO, offset: int, size: int, chunk: int = 8 << 20) -> Iterator[bytes]:
    """Stream `size` bytes from `offset`; `VerificationFailed` if the image ends early."""
    stream.seek(offset)
    remaining = size
    while remaining:
        data = stream.read(min(chunk, remaining))
        if not data:
            raise VerificationFailed(
                f"image ends {remaining} bytes before the end of the range at {offset}+{size}"
            )
        remaining -= len(data)
        yield data


def extract_esp_file(image: Path, esp_offset: int, path: str = ESP_UKI_PATH) -> bytes:
    """Copy one file out of the FAT filesystem starting `esp_offset` bytes into `image`."""
    with tempfile.TemporaryDirectory(prefix="boothkey-esp-") as scratch:
        target = Path(scratch) / "file"
        try:
            run_tool(
                ["mcopy", "-n", "-i", f"{image}@@{esp_offset}", f"::/{path}", target],
                env={"MTOOLS_SKIP_CHECK": "1"},
            )
        except BoothkeyError as exc:
            raise VerificationFailed(f"cannot read {path} from the ESP: {exc.message}") from exc
        return target.read_bytes()


def uki_cmdline(uki: bytes, shown: str = ESP_UKI_PATH) -> str:
    """The kernel command line held in a UKI's `.cmdline` section (NULs and ends stripped)."""
    try:
        headers = parse_pe_headers(uki[: 64 * 1024], shown)
    except BoothkeyError as exc:
        raise VerificationFailed(exc.message) from exc
    section = headers.section(".cmdline")
    if section is None:
        raise VerificationFailed(f"{shown}: has no .cmdline section")
    length = min(section.virtual_size, section.raw_size) or section.raw_size
    data = uki[section.raw_offset : section.raw_offset + length]
    if len(data) != length:
        raise VerificationFailed(f"{shown}: .cmdline section runs past the end of the file")
    return data.rstrip(b"\0").decode(errors="replace").strip()


def cmdline_params(cmdline: str) -> dict[str, str]:
    """`key=value` arguments of a command line (the last one wins, as in the kernel)."""
    params: dict[str, str] = {}
    for arg in cmdline.split():
        key, sep, value = arg.partition("=")
        if sep:
            params[key] = value
    return params
