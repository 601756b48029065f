"""Fixtures for SBOM and provenance tests: small .debs covering the licence cases
(DEP-5, header-only, a licence without SPDX id, free-form, none, a shared doc
directory), a lock pinning them
across two suites, manifest data for a fictitious image of it, the SPDX
project's own validator and ntia-conformance-checker's report."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive_factory import FIXED_EPOCH, make_deb
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation import make_schemabased_validator
from debian.copyright import Header
from lock_factory import archive, package_of
from lock_factory import lock as fake_lock
from manifest_factory import ESP_TYPE, manifest, partition, verity
from spdx_python_model.bindings import v3_0_1 as spdx3

from builder.build.copyright import package_licences
from builder.build.dependencies import deb_facts, package_dependencies
from builder.build.sbom_model import SbomModel, make_model
from builder.core.canonical import sha256_file
from builder.source.lockfile import Lock, LockedPackage

# Installed beside the Python running the tests (the checkout's .venv, or another).
PYSPDXTOOLS = shutil.which("pyspdxtools") or str(Path(sys.executable).with_name("pyspdxtools"))

# The DEP-5 Format line exactly as python-debian writes it for a new copyright header.
DEP5_FORMAT = f"Format: {Header().format}\n".encode()
DEP5_GPL = (
    DEP5_FORMAT
    + b"""Upstream-Name: alpha

Files: *
Copyright: 2020 Someone
License: GPL-2+ or Artistic, and BSD-3-clause

Files: debian/*
Copyright: 2021 Someone Else
License: MIT

License: GPL-2+
 The GPL text.
"""
)
DEP5_HEADER_ONLY = (
    DEP5_FORMAT
    + b"""License: Expat
"""
)
FREE_FORM = b"""This package was debianized by someone in 1999.
Copyright (C) 1999-2004 Someone <someone@example.org>
It is licensed under the GNU GPL; see /usr/share/common-licenses/GPL.
"""
# A DEP-5 file whose licence has no SPDX id: its text must reach the SBOM.
DEP5_CUSTOM = (
    DEP5_FORMAT
    + b"""Upstream-Name: delta

Files: *
Copyright: 2019 Delta Makers
 2020 Another Delta Maker
License: Delta-Licence
 Permission is granted to use delta for anything at all.
"""
)


def validate_spdx(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the SPDX project's own validator on a document."""
    return subprocess.run(
        [PYSPDXTOOLS, "-i", str(path)], capture_output=True, text=True, check=False
    )


def validate_spdx3(path: Path) -> list[str]:
    """The SPDX project's Python model (spdx-python-model, the bindings generated from
    the SPDX 3.0.1 SHACL model) on an SPDX 3 JSON-LD document: it must deserialize (every
    property and enumeration value known, every value of its type), link (no element
    missing) and serialize again (every required property present). The problems found,
    or []."""
    objects = spdx3.SHACLObjectSet()
    try:
        with path.open("rb") as stream:
            spdx3.JSONLDDeserializer().read(stream, objects)
        missing = objects.link()
        spdx3.JSONLDSerializer().write(objects, io.BytesIO())
    except (KeyError, TypeError, ValueError) as exc:
        return [f"{type(exc).__name__}: {exc}"]
    problems = [f"missing element {element}" for element in sorted(missing)]
    if len(list(objects.foreach_type(spdx3.SpdxDocument))) != 1:
        problems.append("not exactly one SpdxDocument")
    return problems


def validate_cyclonedx(path: Path) -> str | None:
    """cyclonedx-python-lib's JSON schema validator (CycloneDX 1.6, strict) on a
    document: the error it finds, or None."""
    validator = make_schemabased_validator(OutputFormat.JSON, SchemaVersion.V1_6)
    error = validator.validate_str(path.read_text())
    return None if error is None else str(error)


SBOMCHECK = shutil.which("sbomcheck") or str(Path(PYSPDXTOOLS).with_name("sbomcheck"))
# The profiles of the installed ntia-conformance-checker (`sbomcheck --help` lists them).
PROFILES = ("ntia", "fsct3-min", "bsi")


@dataclass(frozen=True)
class Conformance:
    """ntia-conformance-checker's verdict on one SBOM for one profile: whether it
    conforms, each requirement's row (True: met), and for the component rows the names
    of the components that miss it."""

    conformant: bool
    rows: dict[str, bool]
    missing: dict[str, list[str]]
    report: str


def check_conformance(path: Path, profile: str, spec: str = "spdx2") -> Conformance:
    """Run ntia-conformance-checker's `sbomcheck` on an SPDX document (`spec`: "spdx2"
    for SPDX 2.3, "spdx3" for SPDX 3.0.1)."""

    def run(*options: str) -> str:
        result = subprocess.run(
            [SBOMCHECK, "-s", spec, "-c", profile, *options, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout

    report = run()
    rows = {}
    for line in report.splitlines():
        name, bar, status = line.rpartition("|")
        if bar and status.strip() in {"True", "False"}:
            rows[name.strip()] = status.strip() == "True"
    data = json.loads(run("-r", "json"))
    missing = {
        key: sorted(value["nonconformantComponents"])
        for key, value in data.items()
        if isinstance(value, dict) and "nonconformantComponents" in value
    }
    conformant = "Conformant: True" in report
    assert conformant == data["isConformant"], report
    return Conformance(conformant, rows, missing, report)


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
    """Six small .debs covering the licence cases, and a lock pinning them."""
    doc = "/usr/share/doc"
    made = [
        (make_deb(directory, "alpha", "1:2.0+dfsg-1", files={f"{doc}/alpha/copyright": DEP5_GPL}), ("rootfs", "tools")),
        (make_deb(directory, "beta", "3.1", files={f"{doc}/beta/copyright": DEP5_HEADER_ONLY}), ("rootfs", "boot")),
        (make_deb(directory, "gamma", "0.9", files={f"{doc}/gamma/copyright": FREE_FORM}), ("boot",)),
        (make_deb(directory, "nodoc", "1", files={"/usr/bin/nodoc": b"#!/bin/sh\n"}), ("tools",)),
        (make_deb(directory, "delta", "4", files={f"{doc}/delta/copyright": DEP5_CUSTOM}), ("rootfs",)),
    ]  # fmt: skip
    packages = [package_of(deb, sets=sets, suite="bookworm") for deb, sets in made]
    debs = {deb.sha256: deb.path for deb, _sets in made}
    linked = _deb_with_doc_link(directory, "alpha-data", "alpha")
    packages.append(
        package_of(
            linked, name="alpha-data", version="1.0", sets=("rootfs",), suite="bookworm-security"
        )
    )
    debs[sha256_file(linked)] = linked
    security = archive(
        "bookworm-security",
        codename="bookworm-security",
        date="Sun, 02 Jan 2022 00:00:00 UTC",
        inrelease_sha256="2" * 64,
        signing_key="E" * 40,
    )
    lock = fake_lock(
        packages,
        package_set_digest="sha256:" + "1" * 64,
        base=archive(date="Sat, 01 Jan 2022 00:00:00 UTC"),
        updates=(security,),
    )
    return LockedDebs(lock, debs)


ESP_UUID = "00000000-0000-4000-8000-000000000001"


def demo_manifest(lock: Lock, image_sha256: str = "ab" * 32) -> dict[str, Any]:
    """Manifest data as `build` makes it, for a fictitious image of the demo lock."""
    return manifest(
        lock,
        version="2030.1",
        code_sha256="0f" * 32,
        recipe_sha256="cd" * 32,
        overlays_sha256="ef" * 32,
        lock_sha256="12" * 32,
        steps=[
            {
                "name": "rootfs",
                "id": "34" * 32,
                "content_digest": "sha256:" + "56" * 32,
                "inputs": {},
                "options": {},
            }
        ],
        image_size=4 << 20,
        image_sha256=image_sha256,
        partitions=[partition("esp", 1 << 20, 1 << 20, "78" * 32, type=ESP_TYPE, uuid=ESP_UUID)],
        uki_sha256="9a" * 32,
        cmdline="console=ttyS0",
        kernel_version="6.1.0",
        verity_info=verity("bc" * 32, "de" * 32, 1),
        tools=[
            {"name": n, "version": v, "architecture": "amd64", "sha256": d * 32}
            for n, v, d in (("squashfs-tools", "1:4.5.1-1", "5a"), ("zstd", "1.5.4", "7b"))
        ],
    )


def demo_model(locked: LockedDebs, image_sha256: str = "ab" * 32, facts: bool = True) -> SbomModel:
    """The SBOM model of the demo manifest with a supplier, its contact and the recipe's
    licence and copyright, every package's licence, dependencies and (`facts`) .deb facts."""
    manifest = demo_manifest(locked.lock, image_sha256)
    manifest["supplier"] = "Example Election Authority"
    manifest["supplier_contact"] = "sbom@example.org"
    manifest["licence"] = "EUPL-1.2"
    manifest["copyright"] = "2030 Example Election Authority"
    packages = locked.lock.packages
    return make_model(
        manifest,
        locked.lock,
        package_licences(packages, locked.deb_path),
        package_dependencies(packages, locked.deb_path),
        deb_facts(packages, locked.deb_path) if facts else None,
        "ee" * 64 if facts else None,
    )
