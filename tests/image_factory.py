"""Small synthetic images for signing and verification tests (no Debian archive needed).

`make_pe` writes a minimal valid PE32+ EFI application with given sections (a
stand-in UKI that sbsign accepts); `make_image` builds a GPT disk image
"NAME.img" laid out as boothkey's pipeline does (esp with the UKI, root with
dm-verity made by the real veritysetup, optional booth-data) plus a manifest
that `builder.build.manifest` reads.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manifest_factory import manifest as fake_manifest
from manifest_factory import verity

from builder.core.canonical import canonical_json, derive_hex, derive_uuid, sha256_file
from builder.formats.fat_read import extract_esp_file
from builder.formats.gpt import read_primary_gpt
from builder.formats.pe import SECURITY_DIRECTORY, normalise_pe, parse_pe_headers

ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
VERITY_TYPE = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
DATA_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
MIB = 1 << 20


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def make_pe(
    sections: list[tuple[str, bytes]],
    timestamp: int = 0,
    *,
    spare_headers: int = 0,
    checksum: int = 0,
) -> bytes:
    """A minimal PE32+ EFI application (x86-64) holding `sections` (not meant to run).

    `spare_headers` leaves room for that many more section headers, as real EFI
    stubs do; `checksum` is written as the header CheckSum as it is (not computed).
    """
    file_align, section_align = 0x200, 0x1000
    header_size = _align(0x40 + 24 + 240 + 40 * (len(sections) + spare_headers), file_align)
    raw_offset, virtual = header_size, section_align
    table = b""
    body = b""
    for name, data in sections:
        raw_size = _align(len(data), file_align)
        table += struct.pack(
            "<8sIIIIIIHHI",
            name.encode(),
            len(data),
            virtual,
            raw_size,
            raw_offset,
            0,
            0,
            0,
            0,
            0x40000040 if name != ".text" else 0x60000020,
        )
        body += data + bytes(raw_size - len(data))
        raw_offset += raw_size
        virtual += _align(len(data), section_align)
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, len(sections), timestamp, 0, 0, 240, 0x22)
    optional = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B, 2, 0, 0, len(body), 0, section_align, section_align, 0, section_align,
        file_align, 0, 0, 0, 0, 0, 0, 0, virtual, header_size, checksum, 10, 0,
        0x100000, 0x1000, 0x100000, 0x1000, 0, 16,
    )  # fmt: skip
    optional += bytes(16 * 8)
    header = dos + coff + optional + table
    return header + bytes(header_size - len(header)) + body


def write_pe(path: Path, sections: list[tuple[str, bytes]]) -> Path:
    path.write_bytes(make_pe(sections))
    normalise_pe(path, 0)
    return path


def run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv],
        check=True,
        stdout=subprocess.PIPE,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC", **(env or {})},
    )
    return result.stdout.decode()


@dataclass
class BuiltImage:
    directory: Path
    image: Path
    manifest_path: Path
    manifest: dict[str, Any]
    uki: Path
    root: Path


def copy_image(built: BuiltImage, directory: Path) -> BuiltImage:
    """A copy of `built`'s files (image, manifest, signatures...) in `directory`, to tamper
    with or add to; `uki` and `root` still name the original's build inputs."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in built.directory.iterdir():
        if path.is_file():
            shutil.copy2(path, directory / path.name)
    return BuiltImage(
        directory,
        directory / built.image.name,
        directory / built.manifest_path.name,
        built.manifest,
        built.uki,
        built.root,
    )


def make_image(
    directory: Path,
    name: str = "hello",
    root_blocks: int = 300,
    data_mib: int | None = None,
    seed: str = "seed",
    uki: Path | None = None,
) -> BuiltImage:
    """Build `directory/NAME.img` and `NAME.manifest.json` the way the pipeline lays them out."""
    work = directory / f".{name}-parts"
    work.mkdir(parents=True, exist_ok=True)
    root = work / "root.img"
    stream = hashlib.shake_256(seed.encode()).digest(root_blocks * 4096)
    root.write_bytes(stream)
    salt = derive_hex(64, "salt", seed)
    verity_img = work / "verity.img"
    output = run(
        "veritysetup", "format", root, verity_img, f"--salt={salt}",
        f"--uuid={derive_uuid('verity', seed)}", "--hash=sha256",
        "--data-block-size=4096", "--hash-block-size=4096",
    )  # fmt: skip
    root_hash = next(line.split()[-1] for line in output.splitlines() if "Root hash" in line)
    cmdline = (
        f"console=ttyS0 boothkey.roothash={root_hash} boothkey.salt={salt} "
        f"boothkey.datablocks={root_blocks} boothkey.fstype=squashfs boothkey.init=/sbin/init"
    )
    if uki is None:
        uki = write_pe(
            work / "BOOTX64.EFI",
            [(".text", b"\xc3" * 64), (".cmdline", cmdline.encode()), (".linux", b"kernel")],
        )
    esp = work / "esp.img"
    esp.unlink(missing_ok=True)
    run("mkfs.vfat", "-C", "--invariant", "-i", "12345678", "-F", "12", esp, "2048")
    run("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", env={"MTOOLS_SKIP_CHECK": "1"})
    run("mcopy", "-i", esp, uki, "::/EFI/BOOT/BOOTX64.EFI", env={"MTOOLS_SKIP_CHECK": "1"})

    parts: list[tuple[str, str, str, Path | None, int]] = [
        ("esp", ESP_TYPE, derive_uuid("esp", seed), esp, 2 * MIB),
        ("root", ROOT_TYPE, _uuid(root_hash[:32]), root, _align(root.stat().st_size, MIB)),
        (
            "root-verity",
            VERITY_TYPE,
            _uuid(root_hash[32:]),
            verity_img,
            _align(verity_img.stat().st_size, MIB),
        ),
    ]
    if data_mib is not None:
        parts.append(
            ("booth-data", DATA_TYPE, derive_uuid("data", root_hash), None, data_mib * MIB)
        )
    image = directory / f"{name}.img"
    offset = MIB
    script = ["label: gpt", f"label-id: {derive_uuid('disk', seed)}", "unit: sectors"]
    layout = []
    for part_name, ptype, puuid, _src, size in parts:
        script.append(
            f"start={offset // 512}, size={size // 512}, type={ptype}, uuid={puuid}, name={part_name}"
        )
        layout.append((offset, size))
        offset += size
    total = offset + MIB
    image.unlink(missing_ok=True)
    with open(image, "wb") as out:
        out.truncate(total)
    subprocess.run(
        ["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(image)],
        input="\n".join(script).encode(),
        check=True,
    )
    partitions = []
    with open(image, "r+b") as out:
        for (part_name, ptype, puuid, src, size), (start, _) in zip(parts, layout, strict=True):
            content = src.read_bytes() if src is not None else b""
            content += bytes(size - len(content))
            out.seek(start)
            out.write(content)
            partitions.append(
                {
                    "name": part_name,
                    "type": ptype,
                    "uuid": puuid.upper(),
                    "offset": start,
                    "size": size,
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
            )
    manifest = fake_manifest(
        name=name,
        version="1.0",
        epoch=1700000000,
        image_size=total,
        image_sha256=sha256_file(image),
        partitions=partitions,
        uki_sha256=sha256_file(uki),
        cmdline=cmdline,
        kernel_version="6.1.0-test",
        verity_info=verity(root_hash, salt, root_blocks),
    )
    manifest_path = directory / f"{name}.manifest.json"
    manifest_path.write_bytes(canonical_json(manifest) + b"\n")
    return BuiltImage(directory, image, manifest_path, manifest, uki, root)


def _uuid(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:32]}".upper()


def tampered_uki_copy(image: Path, target: Path, how: str) -> Path:
    """A copy of `image` whose UKI (stored contiguously in the ESP) is altered or unsigned."""
    data = bytearray(image.read_bytes())
    with open(image, "rb") as stream:
        esp = read_primary_gpt(stream).find("esp")
    assert esp is not None
    uki = extract_esp_file(image, esp.offset)
    at = data.find(uki[:65536], esp.offset)
    assert at >= 0 and data[at : at + len(uki)] == uki, "the UKI is not contiguous in the ESP"
    headers = parse_pe_headers(uki[:65536])
    if how == "altered":
        cmdline = headers.section(".cmdline")
        assert cmdline is not None
        index = at + cmdline.raw_offset + uki[cmdline.raw_offset :].index(b"quiet")
        data[index : index + 5] = b"QUIET"
    else:  # "unsigned": the security directory no longer points at the signature
        pe_offset = struct.unpack_from("<I", uki, 0x3C)[0]
        entry = at + pe_offset + 24 + 112 + 8 * SECURITY_DIRECTORY
        data[entry : entry + 8] = bytes(8)
    target.write_bytes(bytes(data))
    return target
