"""The SPDX 3.0.1 SBOM: valid for the SPDX project's own Python model, deterministic,
the same facts as the SPDX 2.3 document, and checked with ntia-conformance-checker's
three profiles on a fixture SBOM and (slow) on the real booth build's.

What the profiles still miss, and only that: the image's own licence and copyright
(no recipe states them) and, in the fixture, gamma's licence (a free-form copyright
file nobody has read) and beta's notices (its DEP-5 file has no Copyright field).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sbom_factory import (
    Conformance,
    LockedDebs,
    check_conformance,
    demo_manifest,
    demo_model,
    make_locked_debs,
    validate_spdx3,
)

from builder.build.manifest import read_manifest
from builder.build.sbom import write_spdx2
from builder.build.sbom_model import make_model, parse_maintainer
from builder.build.spdx3 import write_spdx3
from builder.core.canonical import pretty_json

# BSI rows the checker reports as warnings or optional: not part of its verdict.
BSI_ADVISORY = {
    "Source Code URIs (Warning)",
    "Deployable Form URIs (Warning)",
    "Other Unique Identifiers (Warning)",
    "Original Licenses (Warning)",
    "Effective Licenses (Optional)",
    "Source Code Hashes (Optional)",
    "Security.txt URLs (Optional)",
    "BOM References (Optional)",
}
LICENCE_ROWS = {
    "All component concluded license provided?",
    "All component copyright notice provided?",
}


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> LockedDebs:
    return make_locked_debs(tmp_path_factory.mktemp("debs"))


@pytest.fixture(scope="module")
def fixture_sbom(locked: LockedDebs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sbom") / "demo.spdx3.json"
    path.write_bytes(pretty_json(write_spdx3(demo_model(locked))))
    return path


def failing(result: Conformance) -> set[str]:
    return {row for row, met in result.rows.items() if not met}


def test_fixture_sbom_is_valid_spdx3(fixture_sbom: Path) -> None:
    assert validate_spdx3(fixture_sbom) == []


def test_the_validator_rejects_what_spdx3_does_not_allow(
    fixture_sbom: Path, tmp_path: Path
) -> None:
    text = fixture_sbom.read_text()
    for wrong in (
        text.replace('"algorithm": "sha512"', '"algorithm": "sha513"', 1),
        text.replace('"hashValue"', '"hashvalue"', 1),
        text.replace('"relationshipType": "contains"', '"relationshipType": "holds"', 1),
    ):
        path = tmp_path / "wrong.spdx3.json"
        path.write_text(wrong)
        assert validate_spdx3(path) != []


def test_spdx3_is_deterministic_and_the_same_facts_as_spdx2(locked: LockedDebs) -> None:
    model = demo_model(locked)
    assert pretty_json(write_spdx3(model)) == pretty_json(write_spdx3(demo_model(locked)))
    spdx2 = write_spdx2(model)
    graph = write_spdx3(model)["@graph"]
    packages = {e["name"]: e for e in graph if e["type"] == "software_Package"}
    assert {p["name"]: p["versionInfo"] for p in spdx2["packages"]} == {
        name: p["software_packageVersion"] for name, p in packages.items()
    }
    expressions = {
        e["spdxId"]: e["simplelicensing_licenseExpression"]
        for e in graph
        if e["type"] == "simplelicensing_LicenseExpression"
    }
    concluded = {
        e["from"]: expressions[e["to"][0]]
        for e in graph
        if e.get("relationshipType") == "hasConcludedLicense"
    }
    for entry in spdx2["packages"][1:]:
        licence = concluded.get(packages[entry["name"]]["spdxId"], "NOASSERTION")
        assert licence == entry["licenseConcluded"], entry["name"]
    creation = graph[0]
    assert creation["created"] == spdx2["creationInfo"]["created"]
    assert "alpha" in json.dumps(graph)
    # Another image is another document namespace.
    other = demo_manifest(locked.lock, "ff" * 32)
    assert (
        write_spdx3(make_model(other, locked.lock, {}))["@graph"][1]["spdxId"] != graph[1]["spdxId"]
    )


def test_every_deb_carries_sha512_and_its_maintainer(locked: LockedDebs) -> None:
    graph = write_spdx3(demo_model(locked))["@graph"]
    files = [e for e in graph if e["type"] == "software_File"]
    assert len(files) == len(locked.lock.packages) + 1
    for entry in files:
        algorithms = [h["algorithm"] for h in entry["verifiedUsing"]]
        assert algorithms == ["sha256", "sha512"], entry["name"]
    people = [e for e in graph if e["type"] == "Person"]
    assert [p["externalIdentifier"][0]["identifier"] for p in people] == ["tests@example.org"]


def test_maintainer_field() -> None:
    assert parse_maintainer("Jane Doe <jane@example.org>") == parse_maintainer(
        "  Jane Doe   <jane@example.org> "
    )
    assert parse_maintainer("jane@example.org") is None
    assert parse_maintainer("<jane@example.org>") is None


def test_fixture_sbom_meets_ntia(fixture_sbom: Path) -> None:
    result = check_conformance(fixture_sbom, "ntia", "spdx3")
    assert result.conformant, result.report
    assert failing(result) == set()


def test_fixture_sbom_meets_fsct3_min_but_for_what_its_data_lacks(fixture_sbom: Path) -> None:
    result = check_conformance(fixture_sbom, "fsct3-min", "spdx3")
    assert failing(result) == LICENCE_ROWS, result.report
    assert result.rows["SBOM generation context (SBOM type) provided?"]
    # Only the fixture's packages without them: the image has the recipe's.
    assert result.missing["componentConcludedLicenses"] == ["gamma"]
    assert result.missing["componentCopyrightTexts"] == ["beta"]


def test_fixture_sbom_meets_bsi_but_for_what_its_data_lacks(fixture_sbom: Path) -> None:
    result = check_conformance(fixture_sbom, "bsi", "spdx3")
    assert not result.conformant
    assert failing(result) - BSI_ADVISORY == {"Distribution Licenses"}, result.report
    for row in ("Creator of the SBOM", "Dependency Completeness", "Component Creators",
                "Deployable Component Hashes", "Distribution Filenames",
                "Structured Properties"):  # fmt: skip
        assert result.rows[row], row


def test_the_checker_sees_missing_sha512_and_creators(locked: LockedDebs, tmp_path: Path) -> None:
    """The profiles are not rubber stamps: without the .debs' facts BSI fails on them."""
    path = tmp_path / "nofacts.spdx3.json"
    path.write_bytes(pretty_json(write_spdx3(demo_model(locked, facts=False))))
    assert validate_spdx3(path) == []
    result = check_conformance(path, "bsi", "spdx3")
    assert not result.rows["Deployable Component Hashes"]
    assert not result.rows["Component Creators"]


@pytest.mark.slow
def test_booth_spdx3_against_the_three_profiles(built_booth_image: tuple[Path, Path]) -> None:
    manifest_path = built_booth_image[1]
    manifest = read_manifest(manifest_path).raw
    sbom = manifest_path.parent / manifest["sbom_spdx3"]["file"]
    assert validate_spdx3(sbom) == []
    ntia = check_conformance(sbom, "ntia", "spdx3")
    assert ntia.conformant, ntia.report
    # Every component, the image included (the recipe's licence and copyright), has a
    # licence and copyright notices: all three profiles are met.
    fsct = check_conformance(sbom, "fsct3-min", "spdx3")
    assert fsct.conformant and failing(fsct) == set(), fsct.report
    bsi = check_conformance(sbom, "bsi", "spdx3")
    assert bsi.conformant and failing(bsi) <= BSI_ADVISORY, bsi.report


def test_without_a_supplier_boothkey_is_the_creator(locked: LockedDebs, tmp_path: Path) -> None:
    path = tmp_path / "nosupplier.spdx3.json"
    path.write_bytes(
        pretty_json(write_spdx3(make_model(demo_manifest(locked.lock), locked.lock, {})))
    )
    assert validate_spdx3(path) == []
    graph = json.loads(path.read_bytes())["@graph"]
    (agent,) = [e for e in graph if e["type"] == "SoftwareAgent"]
    assert graph[0]["createdBy"] == [agent["spdxId"]]
    assert not [e for e in graph if e["type"] == "Organization" and e["name"] != "Debian"]
    result = check_conformance(path, "ntia", "spdx3")
    assert not result.rows["All component suppliers provided?"]
