"""The one fake build manifest of the test suite.

`manifest()` returns a complete manifest (every field `build` writes) for a
fictitious image; tests pass what they care about (a lock, an image and its
partitions, steps) and change the rest of the returned dict as they need. The
defaults are the golden demo manifest's (tests/golden/generate.py).
"""

from __future__ import annotations

from typing import Any

from archive_factory import FIXED_EPOCH

from builder.build.manifest import MANIFEST_FORMAT, package_entry
from builder.source.lockfile import Lock

# The steps of a build without Secure Boot, in order.
STEPS = ("tools", "rootfs", "overlay", "rootimage", "verity", "initrd", "uki", "esp", "disk")
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
VERITY_TYPE = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
DATA_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
MIB = 1 << 20


def digest(seed: str) -> str:
    """A made-up sha256 hex digest: `seed` repeated."""
    return (seed * 64)[:64]


def step_records(names: tuple[str, ...] = ("tools", "rootfs", "overlay", "disk")) -> list[Any]:
    """The manifest's "steps": made-up ids and content digests, no inputs or options."""
    return [
        {
            "name": name,
            "id": digest(str(index)),
            "content_digest": "sha256:" + digest("abcdef"[index % 6]),
            "inputs": {},
            "options": {},
        }
        for index, name in enumerate(names)
    ]


def partition(
    name: str, offset: int, size: int, sha256: str, *, type: str = DATA_TYPE, uuid: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type,
        "uuid": uuid or f"00000000-0000-4000-8000-{offset:012x}",
        "offset": offset,
        "size": size,
        "sha256": sha256,
    }


def demo_partitions() -> list[dict[str, Any]]:
    """ESP, root, root-verity and booth-data of an 85 MiB image."""
    layout = [
        ("esp", ESP_TYPE, 1, 33, "a"),
        ("root", ROOT_TYPE, 34, 45, "b"),
        ("root-verity", VERITY_TYPE, 79, 1, "c"),
        ("booth-data", DATA_TYPE, 80, 4, "d"),
    ]
    return [
        partition(
            name,
            start * MIB,
            size * MIB,
            digest(seed),
            type=kind,
            uuid=f"00000000-0000-4000-8000-00000000000{index}",
        )
        for index, (name, kind, start, size, seed) in enumerate(layout)
    ]


def verity(
    root_hash: str = digest("3"), salt: str = digest("4"), data_blocks: int = 11520
) -> dict[str, Any]:
    return {
        "root_hash": root_hash,
        "salt": salt,
        "data_blocks": data_blocks,
        "data_block_size": 4096,
        "hash_block_size": 4096,
        "hash_algorithm": "sha256",
    }


def manifest(
    lock: Lock | None = None,
    *,
    name: str = "demo",
    version: str = "2026.1",
    supplier: str | None = None,
    supplier_contact: str | None = None,
    licence: str | None = None,
    copyright: str | None = None,
    epoch: int | None = None,
    image_file: str | None = None,
    image_size: int = 85 * MIB,
    image_sha256: str = digest("1"),
    partitions: list[dict[str, Any]] | None = None,
    uki_sha256: str = digest("2"),
    cmdline: str = "console=ttyS0 boothkey.roothash=" + digest("3"),
    kernel_version: str = "6.1.0-57-amd64",
    verity_info: dict[str, Any] | None = None,
    steps: list[Any] | None = None,
    packages: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    recipe_sha256: str = digest("f"),
    lock_sha256: str = digest("9"),
    overlays_sha256: str = digest("0"),
    code_sha256: str = digest("e"),
) -> dict[str, Any]:
    """A complete manifest of a fictitious image. Packages and tools come from `lock`
    (its packages; its tools set) unless given; without either, none."""
    if packages is None:
        packages = [package_entry(p) for p in lock.packages] if lock is not None else []
    if tools is None:
        tools = (
            [package_entry(p, sets=False) for p in lock.in_set("tools")] if lock is not None else []
        )
    if epoch is None:
        epoch = lock.source_date_epoch if lock is not None else FIXED_EPOCH
    return {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "boothkey": "0.1.0",
        "code_sha256": code_sha256,
        "supplier": supplier,
        "supplier_contact": supplier_contact,
        "licence": licence,
        "copyright": copyright,
        "recipe": {
            "file": f"recipes/{name}.yaml",
            "sha256": recipe_sha256,
            "package_set_digest": lock.package_set_digest if lock is not None else "sha256:0",
        },
        "overlays_sha256": overlays_sha256,
        "lock_sha256": lock_sha256,
        "source_date_epoch": epoch,
        "steps": step_records() if steps is None else steps,
        "image": {"file": image_file or f"{name}.img", "size": image_size, "sha256": image_sha256},
        "partitions": demo_partitions() if partitions is None else partitions,
        "uki": {"sha256": uki_sha256, "cmdline": cmdline, "kernel_version": kernel_version},
        "verity": verity() if verity_info is None else verity_info,
        "packages": packages,
        "tools": tools,
        "secure_boot": None,
    }
