"""SPDX SBOM: DEP-5 licence extraction from .debs, SPDX mapping, the real validator,
determinism, and the SBOM the real build writes beside the hello image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from archive_factory import FIXED_EPOCH, make_deb

from builder.canonical import pretty_json, sha256_file
from builder.copyright import (
    DEBIAN_TO_SPDX,
    NOASSERTION,
    PackageLicence,
    debian_to_spdx,
    main_licence,
    package_licences,
    read_doc_entry,
)
from builder.lockfile import ArchiveInfo, Lock, LockedPackage
from builder.manifest import read_manifest
from builder.sbom import make_sbom, purl

PYSPDXTOOLS = shutil.which("pyspdxtools") or str(
    Path(__file__).resolve().parent.parent / ".venv" / "bin" / "pyspdxtools"
)

DEP5_GPL = b"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: alpha

Files: *
Copyright: 2020 Someone
License: GPL-2+ or Artistic, and BSD-3-clause

Files: debian/*
Copyright: 2021 Someone Else
License: MIT

License: GPL-2+
 The GPL text.
"""
DEP5_HEADER_ONLY = b"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
License: Expat
"""
FREE_FORM = b"""This package was debianized by someone in 1999.
It is licensed under the GNU GPL; see /usr/share/common-licenses/GPL.
"""


def validate_spdx(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the SPDX project's own validator on a document."""
    return subprocess.run(
        [PYSPDXTOOLS, "-i", str(path)], capture_output=True, text=True, check=False
    )


def _deb_with_doc_link(directory: Path, name: str, target: str) -> Path:
    """A .deb whose /usr/share/doc/NAME is a symlink to TARGET (a shared doc directory)."""
    build = directory / f".build-{name}"
    (build / "DEBIAN").mkdir(parents=True)
    (build / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\n"
        "Maintainer: boothkey tests <tests@example.org>\nDescription: shares a doc dir\n"
    )
    (build / "usr" / "share" / "doc").mkdir(parents=True)
    os.symlink(target, build / "usr" / "share" / "doc" / name)
    deb = directory / f"{name}_1.0_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(build), str(deb)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": str(FIXED_EPOCH)},
    )
    shutil.rmtree(build)
    return deb


@dataclass(frozen=True)
class LockedDebs:
    lock: Lock
    debs: dict[str, Path]  # sha256 -> .deb

    def deb_path(self, pkg: LockedPackage) -> Path:
        return self.debs[pkg.sha256]


def make_locked_debs(directory: Path) -> LockedDebs:
    """Five small .debs covering the licence cases, and a lock pinning them."""
    doc = "/usr/share/doc"
    made = [
        (make_deb(directory, "alpha", "1:2.0+dfsg-1", files={f"{doc}/alpha/copyright": DEP5_GPL}), ("rootfs",)),
        (make_deb(directory, "beta", "3.1", files={f"{doc}/beta/copyright": DEP5_HEADER_ONLY}), ("rootfs", "boot")),
        (make_deb(directory, "gamma", "0.9", files={f"{doc}/gamma/copyright": FREE_FORM}), ("boot",)),
        (make_deb(directory, "nodoc", "1", files={"/usr/bin/nodoc": b"#!/bin/sh\n"}), ("boot",)),
    ]  # fmt: skip
    packages = [
        LockedPackage(
            deb.name,
            deb.version,
            deb.architecture,
            deb.size,
            deb.sha256,
            deb.pool_path(),
            sets,
            "bookworm",
        )
        for deb, sets in made
    ]
    debs = {deb.sha256: deb.path for deb, _sets in made}
    linked = _deb_with_doc_link(directory, "alpha-data", "alpha")
    linked_sha = sha256_file(linked)
    packages.append(
        LockedPackage(
            "alpha-data",
            "1.0",
            "amd64",
            linked.stat().st_size,
            linked_sha,
            "pool/main/a/alpha/alpha-data_1.0_amd64.deb",
            ("rootfs",),
            "bookworm-security",
        )
    )
    debs[linked_sha] = linked
    archive = ArchiveInfo("bookworm", "bookworm", "Sat, 01 Jan 2022 00:00:00 UTC", "0" * 64,
                          "F" * 40, "amd64", ("main",))  # fmt: skip
    security = ArchiveInfo("bookworm-security", "bookworm-security", "Sun, 02 Jan 2022 00:00:00 UTC",
                           "2" * 64, "E" * 40, "amd64", ("main",))  # fmt: skip
    lock = Lock("demo", "sha256:" + "1" * 64, archive, FIXED_EPOCH,
                tuple(sorted(packages, key=lambda p: (p.name, p.architecture))), (security,))  # fmt: skip
    return LockedDebs(lock, debs)


def demo_manifest(lock: Lock, image_sha256: str = "ab" * 32) -> dict[str, Any]:
    """Manifest data as `build` makes it, for a fictitious image of the demo lock."""
    return {
        "format": 1,
        "name": "demo",
        "version": "2030.1",
        "boothkey": "0.1.0",
        "recipe": {
            "file": "recipes/demo.yaml",
            "sha256": "cd" * 32,
            "package_set_digest": lock.package_set_digest,
        },
        "overlays_sha256": "ef" * 32,
        "lock_sha256": "12" * 32,
        "source_date_epoch": lock.source_date_epoch,
        "steps": [{"name": "rootfs", "id": "34" * 32, "content_digest": "56" * 32}],
        "image": {"file": "demo.img", "size": 4 << 20, "sha256": image_sha256},
        "partitions": [
            {
                "name": "esp",
                "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                "uuid": "00000000-0000-4000-8000-000000000001",
                "offset": 1 << 20,
                "size": 1 << 20,
                "sha256": "78" * 32,
            },
        ],
        "uki": {"sha256": "9a" * 32, "cmdline": "console=ttyS0", "kernel_version": "6.1.0"},
        "verity": {
            "root_hash": "bc" * 32,
            "salt": "de" * 32,
            "data_blocks": 1,
            "data_block_size": 4096,
            "hash_block_size": 4096,
            "hash_algorithm": "sha256",
        },
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "architecture": p.architecture,
                "sha256": p.sha256,
                "sets": list(p.sets),
            }
            for p in lock.packages
        ],
        "tools": {"squashfs-tools": "1:4.5.1-1", "dpkg": "1.21.22"},
        "secure_boot": None,
    }


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> LockedDebs:
    return make_locked_debs(tmp_path_factory.mktemp("debs"))


@pytest.mark.parametrize(
    ("debian", "spdx", "refs"),
    [
        ("GPL-2+", "GPL-2.0-or-later", ()),
        ("GPL-2", "GPL-2.0-only", ()),
        ("Expat", "MIT", ()),
        ("BSD-3-clause or GPL-2", "BSD-3-Clause OR GPL-2.0-only", ()),
        ("Sleepycat and BSD-3-clause", "LicenseRef-Sleepycat AND BSD-3-Clause", ("LicenseRef-Sleepycat",)),
        ("GPL-2+ or Artistic, and BSD-3-clause", "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND BSD-3-Clause", ()),
        ("LGPL-2.1+, or MIT", "LGPL-2.1-or-later OR MIT", ()),
        ("GPL-2+ with OpenSSL exception", "LicenseRef-GPL-2-or-later-with-OpenSSL-exception",
         ("LicenseRef-GPL-2-or-later-with-OpenSSL-exception",)),
        ("GFDL-NIV-1.3+", "LicenseRef-GFDL-NIV-1.3-or-later", ("LicenseRef-GFDL-NIV-1.3-or-later",)),
        ("MIT/X11", "LicenseRef-MIT-X11", ("LicenseRef-MIT-X11",)),
        ("Apache-2.0", "Apache-2.0", ()),
        ("", NOASSERTION, ()),
    ],
)  # fmt: skip
def test_debian_expressions_map_to_spdx(debian: str, spdx: str, refs: tuple[str, ...]) -> None:
    assert debian_to_spdx(debian) == (spdx, refs)


def test_plus_and_exact_versions_get_distinct_licence_refs() -> None:
    assert debian_to_spdx("Foo-2")[0] != debian_to_spdx("Foo-2+")[0]


def test_main_licence_reads_files_star_then_header_and_refuses_free_form() -> None:
    assert main_licence(DEP5_GPL.decode()) == "GPL-2+ or Artistic, and BSD-3-clause"
    assert main_licence(DEP5_HEADER_ONLY.decode()) == "Expat"
    assert main_licence(FREE_FORM.decode()) is None


def test_copyright_is_read_from_the_deb(locked: LockedDebs) -> None:
    alpha = locked.lock.package("alpha")
    entry = read_doc_entry(locked.deb_path(alpha), "alpha")
    assert entry.copyright == DEP5_GPL.decode()
    linked = read_doc_entry(locked.deb_path(locked.lock.package("alpha-data")), "alpha-data")
    assert (linked.copyright, linked.doc_link) == (None, "alpha")


def test_package_licences_cover_every_case(locked: LockedDebs, tmp_path: Path) -> None:
    licences = package_licences(locked.lock.packages, locked.deb_path, tmp_path / "cache")
    assert licences["alpha"].spdx == "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND BSD-3-Clause"
    assert licences["beta"].spdx == "MIT"
    assert licences["gamma"].spdx == NOASSERTION
    assert "not in the DEP-5 format" in licences["gamma"].origin
    assert licences["nodoc"].spdx == NOASSERTION
    assert licences["alpha-data"].spdx == licences["alpha"].spdx  # shared doc directory
    # The cache answers without the .debs, and gives the same result.
    again = package_licences(
        locked.lock.packages, lambda pkg: Path("/nonexistent"), tmp_path / "cache"
    )
    assert again == licences


def test_sbom_is_valid_spdx_and_byte_identical(locked: LockedDebs, tmp_path: Path) -> None:
    manifest = demo_manifest(locked.lock)
    first = pretty_json(
        make_sbom(manifest, locked.lock, package_licences(locked.lock.packages, locked.deb_path))
    )
    second = pretty_json(
        make_sbom(manifest, locked.lock, package_licences(locked.lock.packages, locked.deb_path))
    )
    assert first == second
    path = tmp_path / "demo.spdx.json"
    path.write_bytes(first)
    result = validate_spdx(path)
    assert result.returncode == 0, result.stderr

    document = json.loads(first)
    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["documentNamespace"].endswith("boothkey-demo-" + "ab" * 32)
    assert document["creationInfo"]["created"] == "2023-11-14T22:13:20Z"  # FIXED_EPOCH
    by_name = {p["name"]: p for p in document["packages"]}
    alpha = by_name["alpha"]
    assert alpha["checksums"] == [
        {"algorithm": "SHA256", "checksumValue": locked.lock.package("alpha").sha256}
    ]
    assert (
        alpha["externalRefs"][0]["referenceLocator"]
        == "pkg:deb/debian/alpha@1:2.0%2Bdfsg-1?arch=amd64"
    )
    assert alpha["downloadLocation"] == NOASSERTION
    assert alpha["packageFileName"].startswith("pool/main/")
    assert "boot" in by_name["gamma"]["comment"] and "rootfs" not in by_name["gamma"]["comment"]
    assert "from suite bookworm-security" in by_name["alpha-data"]["comment"]
    contains = {
        r["relatedSpdxElement"]
        for r in document["relationships"]
        if r["relationshipType"] == "CONTAINS"
    }
    assert len(contains) == len(locked.lock.packages)
    assert by_name["demo"]["checksums"][0]["checksumValue"] == "ab" * 32
    # Another image gives another namespace: documents never collide.
    other = make_sbom(demo_manifest(locked.lock, "cd" * 32), locked.lock, {})
    assert other["documentNamespace"] != document["documentNamespace"]


def test_every_mapped_licence_and_licence_ref_passes_the_validator(
    locked: LockedDebs, tmp_path: Path
) -> None:
    """Each SPDX id in the mapping table is a real one: the validator knows the list."""
    expressions = [
        *sorted(set(DEBIAN_TO_SPDX)),
        "Weird licence (v2)+",
        "A or B, and C with D exception",
    ]
    names = [p.name for p in locked.lock.packages]
    licences = {}
    for index, debian in enumerate(expressions):
        spdx, refs = debian_to_spdx(debian)
        name = names[index % len(names)]
        licences[name] = PackageLicence(name, debian, spdx, refs, "test")
        if index % len(names) == len(names) - 1 or index == len(expressions) - 1:
            path = tmp_path / f"sbom-{index}.spdx.json"
            path.write_bytes(
                pretty_json(make_sbom(demo_manifest(locked.lock), locked.lock, licences))
            )
            result = validate_spdx(path)
            assert result.returncode == 0, (licences, result.stderr)
            licences = {}


def test_validator_rejects_an_unknown_licence_id(locked: LockedDebs, tmp_path: Path) -> None:
    """The validator is not a rubber stamp: a made-up id without a LicenseRef fails."""
    licence = PackageLicence("alpha", "Bogus", "Bogus-1.0", (), "test")
    path = tmp_path / "bad.spdx.json"
    path.write_bytes(
        pretty_json(make_sbom(demo_manifest(locked.lock), locked.lock, {"alpha": licence}))
    )
    result = validate_spdx(path)
    assert result.returncode != 0
    assert "Bogus-1.0" in result.stderr + result.stdout


def test_purl_keeps_the_epoch_colon_and_encodes_plus() -> None:
    pkg = LockedPackage("libstdc++6", "1:12.2+x", "amd64", 1, "0" * 64, "pool/x.deb", ("rootfs",))
    assert purl(pkg) == "pkg:deb/debian/libstdc%2B%2B6@1:12.2%2Bx?arch=amd64"


@pytest.mark.slow
def test_build_writes_a_valid_sbom_beside_the_hello_image(
    built_hello_image: tuple[Path, Path],
) -> None:
    _image, manifest_path = built_hello_image
    manifest = read_manifest(manifest_path).raw
    sbom_path = manifest_path.parent / manifest["sbom"]["file"]
    assert sha256_file(sbom_path) == manifest["sbom"]["sha256"]
    result = validate_spdx(sbom_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(sbom_path.read_bytes())
    by_name = {p["name"]: p for p in document["packages"]}
    assert {p["name"] for p in manifest["packages"]} <= set(by_name)
    for pkg in manifest["packages"]:
        assert by_name[pkg["name"]]["checksums"][0]["checksumValue"] == pkg["sha256"]
    kernel = next(p for p in manifest["packages"] if p["name"].startswith("linux-image-6"))
    assert by_name[kernel["name"]]["licenseDeclared"] == "GPL-2.0-only"
    assert by_name["systemd-boot-efi"]["licenseDeclared"] == "LGPL-2.1-or-later"
    assert by_name["hello"]["checksums"][0]["checksumValue"] == manifest["image"]["sha256"]


@pytest.mark.slow
def test_booth_image_sbom_is_valid_spdx(built_booth_image: tuple[Path, Path]) -> None:
    """The booth image's packages carry the widest mix of licences; all pass the validator."""
    _image, manifest_path = built_booth_image
    manifest = read_manifest(manifest_path).raw
    sbom_path = manifest_path.parent / manifest["sbom"]["file"]
    assert sha256_file(sbom_path) == manifest["sbom"]["sha256"]
    result = validate_spdx(sbom_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(sbom_path.read_bytes())
    declared = {p["name"]: p["licenseDeclared"] for p in document["packages"]}
    assert declared["bash"] == "GPL-3.0-or-later"
    assert declared["libzstd1"] == "BSD-3-Clause OR GPL-2.0-only"
    assert any(value.startswith("LicenseRef-") for value in declared.values())
