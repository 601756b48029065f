"""SPDX SBOM: DEP-5 licence extraction from .debs, SPDX mapping, the real validator,
determinism, and the SBOM the real build writes beside the hello image."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lock_factory import package
from sbom_factory import (
    DEP5_GPL,
    DEP5_HEADER_ONLY,
    FREE_FORM,
    LockedDebs,
    demo_manifest,
    make_locked_debs,
    validate_spdx,
)

from builder.build.copyright import (
    DEBIAN_TO_SPDX,
    NOASSERTION,
    PackageLicence,
    debian_to_spdx,
    main_licence,
    package_licences,
    read_doc_entry,
)
from builder.build.manifest import read_manifest
from builder.build.sbom import make_sbom, package_spdxid, purl
from builder.core.canonical import pretty_json, sha256_file


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
        ("Sleepycat and BSD-3-clause", "Sleepycat AND BSD-3-Clause", ()),
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
    tools = {
        r["spdxElementId"]
        for r in document["relationships"]
        if r["relationshipType"] == "BUILD_TOOL_OF" and r["relatedSpdxElement"] == "SPDXRef-Image"
    }
    # The image contains its rootfs and boot packages; the tools set only built it.
    in_image = [p for p in locked.lock.packages if set(p.sets) - {"tools"}]
    only_tools = [p for p in locked.lock.packages if set(p.sets) == {"tools"}]
    assert contains == {package_spdxid(p) for p in in_image}
    assert tools == {package_spdxid(p) for p in locked.lock.in_set("tools")}
    assert only_tools and not contains & {package_spdxid(p) for p in only_tools}
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
    pkg = package("libstdc++6", "1:12.2+x")
    assert purl(pkg) == "pkg:deb/debian/libstdc%2B%2B6@1:12.2%2Bx?arch=amd64"


def _checked_sbom(manifest_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, SBOM) of a built image; the SBOM is the one the manifest names, by
    digest, and passes the SPDX validator."""
    manifest = read_manifest(manifest_path).raw
    sbom_path = manifest_path.parent / manifest["sbom"]["file"]
    assert sha256_file(sbom_path) == manifest["sbom"]["sha256"]
    result = validate_spdx(sbom_path)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(sbom_path.read_bytes())
    return manifest, document


@pytest.mark.slow
def test_build_writes_a_valid_sbom_beside_the_hello_image(
    built_hello_image: tuple[Path, Path],
) -> None:
    manifest, document = _checked_sbom(built_hello_image[1])
    by_name = {p["name"]: p for p in document["packages"]}
    assert {p["name"] for p in manifest["packages"]} <= set(by_name)
    for pkg in manifest["packages"]:
        assert by_name[pkg["name"]]["checksums"][0]["checksumValue"] == pkg["sha256"]
    kernel = next(p for p in manifest["packages"] if p["name"].startswith("linux-image-6"))
    assert by_name[kernel["name"]]["licenseDeclared"] == "GPL-2.0-only"
    assert by_name["systemd-boot-efi"]["licenseDeclared"] == "LGPL-2.1-or-later"
    assert by_name["hello"]["checksums"][0]["checksumValue"] == manifest["image"]["sha256"]


def sbomcheck(path: Path, standard: str) -> str:
    """The report of ntia-conformance-checker (an independent checker) for `standard`."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("sbomcheck")), "-c", standard, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


def test_supplier_makes_the_sbom_meet_the_ntia_minimum_elements(
    locked: LockedDebs, tmp_path: Path
) -> None:
    manifest = demo_manifest(locked.lock)
    without = tmp_path / "without.spdx.json"
    without.write_bytes(pretty_json(make_sbom(manifest, locked.lock, {})))
    report = sbomcheck(without, "ntia")
    assert "Conformant: False" in report
    assert re.search(r"All component suppliers provided\?\s*\|\s*False", report), report
    manifest["supplier"] = "Example Election Authority"
    document = make_sbom(manifest, locked.lock, {})
    image = next(p for p in document["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert image["supplier"] == "Organization: Example Election Authority"
    assert document["creationInfo"]["creators"][0] == "Organization: Example Election Authority"
    with_supplier = tmp_path / "with.spdx.json"
    with_supplier.write_bytes(pretty_json(document))
    assert "Conformant: True" in sbomcheck(with_supplier, "ntia")


@pytest.mark.slow
def test_booth_image_sbom_is_valid_spdx(built_booth_image: tuple[Path, Path]) -> None:
    """The booth image's packages carry the widest mix of licences; all pass the validator."""
    manifest, document = _checked_sbom(built_booth_image[1])
    declared = {p["name"]: p["licenseDeclared"] for p in document["packages"]}
    assert declared["bash"] == "GPL-3.0-or-later"
    assert declared["libzstd1"] == "BSD-3-Clause OR GPL-2.0-only"
    assert any(value.startswith("LicenseRef-") for value in declared.values())
    # recipes/booth.yaml names its supplier: the SBOM meets the NTIA minimum elements.
    sbom = built_booth_image[1].parent / manifest["sbom"]["file"]
    assert "Conformant: True" in sbomcheck(sbom, "ntia")
