"""Write the golden files of the formats boothkey publishes, from fixed inputs.

    python3 tests/golden/generate.py [DIR]      (default: tests/golden/formats)

Fixed inputs only: a small lock written out here (made-up .deb digests), a manifest
for it, fixed licences, Ed25519 keys from fixed seeds (Ed25519 signatures are
deterministic) and the example election. So the files are the same on every host,
and a change to a format shows up as a diff of these files in review;
tests/test_golden_formats.py fails until they are regenerated and committed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "tests"))

from lock_factory import archive, lock, package  # noqa: E402
from manifest_factory import digest, manifest  # noqa: E402

from builder.build.copyright import PackageLicence  # noqa: E402
from builder.build.cyclonedx import write_cyclonedx  # noqa: E402
from builder.build.filelist import file_list_data  # noqa: E402
from builder.build.manifest import parse_manifest  # noqa: E402
from builder.build.provenance import make_provenance  # noqa: E402
from builder.build.sbom import make_sbom  # noqa: E402
from builder.build.sbom_model import DebFacts, Maintainer, make_model  # noqa: E402
from builder.build.spdx3 import write_spdx3  # noqa: E402
from builder.core.canonical import canonical_json, pretty_json  # noqa: E402
from builder.source.lockfile import Lock  # noqa: E402
from builder.station.election import (  # noqa: E402
    envelope_bytes,
    load_election,
    sign_payload,
    station_payload,
)
from builder.trust.dsse import image_statement, new_envelope  # noqa: E402
from builder.trust.keys import SigningKey  # noqa: E402

EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z
FILES = (
    "demo.lock.json",
    "demo.manifest.json",
    "demo.files.json",
    "demo.spdx.json",
    "demo.spdx3.json",
    "demo.cdx.json",
    "demo.provenance.json",
    "demo.dsse.json",
    "election.payload.json",
    "election.dsse.json",
    "election-be.payload.json",
    "election-be.dsse.json",
)


def fixed_key(name: str, seed: int) -> SigningKey:
    return SigningKey(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def demo_lock() -> Lock:
    base = archive(
        date="Sat, 10 Jun 2023 08:40:00 UTC", inrelease_sha256=digest("1"), signing_key="A" * 40
    )
    packages = (
        ("base-files", "12.4+deb12u5", "rootfs", "2"),
        ("busybox-static", "1:1.35.0-4+b3", "boot", "3"),
        ("libc6", "2.36-9+deb12u7", "rootfs tools", "4"),
        ("linux-image-6.1.0-57-amd64", "6.1.192-3", "boot", "5"),
        ("squashfs-tools", "1:4.5.1-1", "tools", "6"),
        ("systemd-boot-efi", "252.30-1~deb12u2", "boot", "7"),
    )
    return lock(
        (
            package(name, version, sets=tuple(sets.split()), size=1000 + index, sha256=digest(seed))
            for index, (name, version, sets, seed) in enumerate(packages)
        ),
        package_set_digest="sha256:" + digest("8"),
        epoch=EPOCH,
        base=base,
    )


def demo_manifest(lock: Lock) -> dict[str, Any]:
    return manifest(
        lock,
        version="2026.1",
        supplier="Example Election Authority",
        supplier_contact="sbom@example.org",
        licence="EUPL-1.2",
        copyright="2026 Example Election Authority",
        epoch=EPOCH,
    )


# A tree's listing as `tree_listing` gives it (owners and times as a build leaves them).
FILE_ENTRIES: list[dict[str, Any]] = [
    {"path": "bin", "type": "symlink", "mode": 0o777, "uid": 0, "gid": 0, "target": "usr/bin",
     "mtime": EPOCH},
    {"path": "etc", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime": EPOCH},
    {"path": "etc/hostname", "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "size": 6,
     "sha256": "0" * 64, "mtime": EPOCH},
    {"path": "usr", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime": EPOCH},
]  # fmt: skip

DEPENDENCIES = {"busybox-static": (), "libc6": (), "squashfs-tools": ("libc6",)}

LICENCES = {
    "base-files": PackageLicence(
        "base-files", "GPL-2+", "GPL-2.0-or-later", (), "copyright",
        "Copyright (C) 1995-2011 Software in the Public Interest.",
    ),
    "libc6": PackageLicence("libc6", "", "NOASSERTION", (), "no machine-readable copyright"),
    "systemd-boot-efi": PackageLicence(
        "systemd-boot-efi", "LGPL-2.1+ and public-domain",
        "LGPL-2.1-or-later AND LicenseRef-public-domain", ("LicenseRef-public-domain",),
        "DEP-5 /usr/share/doc/systemd-boot-efi/copyright", "2010-2022 systemd contributors",
        (("LicenseRef-public-domain", "The author disclaims copyright to this source code."),),
    ),
}  # fmt: skip


# What the build reads from each .deb besides its licence (made-up sha512s).
DEB_FACTS = {
    digest(seed): DebFacts(seed * 128, Maintainer(*who) if who else None)
    for seed, who in (
        ("2", ("Santiago Vila", "sanvila@debian.org")),
        ("3", ("Debian Busybox Team", "busybox@example.org")),
        ("4", ("GNU Libc Maintainers", "debian-glibc@example.org")),
        ("5", None),
    )
}
IMAGE_SHA512 = "9" * 128


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    lock = demo_lock()
    manifest = demo_manifest(lock)
    parse_manifest(manifest, "golden manifest")  # what build writes must read back
    authority = fixed_key("authority", 1)
    co_signer = fixed_key("co-signer", 2)
    envelope = new_envelope(image_statement(manifest)).add_signature(authority)
    envelope = envelope.add_signature(co_signer)
    election = load_election(
        PROJECT / "examples" / "election" / "election.yaml",
        PROJECT / "examples" / "election" / "stations.csv",
    )
    payload = station_payload(election, election.stations[0])
    belgian = load_election(PROJECT / "examples" / "election-be" / "election.yaml")
    belgian_payload = station_payload(belgian, belgian.stations[0])
    model = make_model(manifest, lock, LICENCES, DEPENDENCIES, DEB_FACTS, IMAGE_SHA512)
    written = {
        "demo.lock.json": lock.to_bytes(),
        "demo.manifest.json": canonical_json(manifest) + b"\n",
        "demo.files.json": file_list_data(FILE_ENTRIES),
        "demo.spdx.json": pretty_json(make_sbom(manifest, lock, LICENCES, DEPENDENCIES)),
        "demo.spdx3.json": pretty_json(write_spdx3(model)),
        "demo.cdx.json": pretty_json(write_cyclonedx(model)),
        "demo.provenance.json": pretty_json(make_provenance(manifest, lock)),
        "demo.dsse.json": envelope.to_bytes(),
        "election.payload.json": pretty_json(payload),
        "election.dsse.json": envelope_bytes(sign_payload(payload, [authority])),
        "election-be.payload.json": pretty_json(belgian_payload),
        "election-be.dsse.json": envelope_bytes(sign_payload(belgian_payload, [authority])),
    }
    paths = []
    for name in FILES:
        path = out / name
        path.write_bytes(written[name])
        paths.append(path)
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "formats"
    for path in generate(target):
        print(f"wrote {path}")
