"""The SBOM against ntia-conformance-checker's three profiles (NTIA minimum elements, CISA
FSCT3 minimum, BSI TR-03183-2), run as the independent tool itself, on a fixture SBOM
and (slow) on the real booth build's.

An SPDX 2.3 document meets NTIA. For the other two the checker reads some requirements
only from SPDX 3 documents (the SBOM type; BSI's creator contact and dependency
completeness), so those rows stay False for any SPDX 2.3 document; the tests require
that those, and the image's own licence and copyright (which no recipe states), are the
only gaps: every component row of every package in the image is met.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sbom_factory import (
    PROFILES,
    Conformance,
    LockedDebs,
    check_conformance,
    demo_manifest,
    make_locked_debs,
)

from builder.build.copyright import package_licences
from builder.build.manifest import read_manifest
from builder.build.sbom import make_sbom
from builder.core.canonical import pretty_json

# Rows the checker can only answer from an SPDX 3 document (ntia-conformance-checker
# 6.0: Spdx2Adapter.get_sbom_types returns [], BSIChecker's creator and dependency
# completeness checks require an SPDX 3 object set).
SPDX3_ONLY_ROWS = {
    "ntia": set(),
    "fsct3-min": {"SBOM generation context (SBOM type) provided?"},
    "bsi": {"Creator of the SBOM", "Dependency Completeness"},
}


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> LockedDebs:
    return make_locked_debs(tmp_path_factory.mktemp("debs"))


@pytest.fixture(scope="module")
def fixture_sbom(locked: LockedDebs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest = demo_manifest(locked.lock)
    manifest["supplier"] = "Example Election Authority"
    manifest["supplier_contact"] = "sbom@example.org"
    licences = package_licences(locked.lock.packages, locked.deb_path)
    path = tmp_path_factory.mktemp("sbom") / "demo.spdx.json"
    path.write_bytes(pretty_json(make_sbom(manifest, locked.lock, licences)))
    return path


def failing_rows(result: Conformance) -> set[str]:
    return {row for row, met in result.rows.items() if not met}


def test_the_installed_checker_has_the_three_profiles(fixture_sbom: Path) -> None:
    for profile in PROFILES:
        result = check_conformance(fixture_sbom, profile)
        assert result.rows, result.report  # it ran and printed its table


def test_fixture_sbom_meets_ntia(fixture_sbom: Path) -> None:
    result = check_conformance(fixture_sbom, "ntia")
    assert result.conformant, result.report
    assert failing_rows(result) == set()


def test_fixture_sbom_meets_fsct3_min_but_for_what_its_data_lacks(fixture_sbom: Path) -> None:
    result = check_conformance(fixture_sbom, "fsct3-min")
    assert not result.conformant
    assert failing_rows(result) == SPDX3_ONLY_ROWS["fsct3-min"] | {
        "All component concluded license provided?",
        "All component copyright notice provided?",
    }, result.report
    # Who misses what, exactly: the image (no recipe states its own licence and
    # copyright); gamma, whose free-form copyright file has no reviewed reading (its
    # notice is found); beta, whose DEP-5 file has no Copyright field.
    assert result.missing["componentConcludedLicenses"] == ["demo", "gamma"]
    assert result.missing["componentCopyrightTexts"] == ["beta", "demo"]


def test_fixture_sbom_meets_bsi_but_for_the_spdx3_only_rows(fixture_sbom: Path) -> None:
    result = check_conformance(fixture_sbom, "bsi")
    assert not result.conformant
    assert failing_rows(result) == SPDX3_ONLY_ROWS["bsi"], result.report


def test_the_checker_sees_a_missing_supplier(locked: LockedDebs, tmp_path: Path) -> None:
    """The profiles are not rubber stamps: without the recipe's supplier all three fail
    on it."""
    path = tmp_path / "nosupplier.spdx.json"
    path.write_bytes(pretty_json(make_sbom(demo_manifest(locked.lock), locked.lock, {})))
    for profile in ("ntia", "fsct3-min"):
        result = check_conformance(path, profile)
        assert not result.conformant
        assert result.rows["All component suppliers provided?"] is False


@pytest.mark.slow
def test_booth_sbom_against_the_three_profiles(built_booth_image: tuple[Path, Path]) -> None:
    manifest_path = built_booth_image[1]
    manifest = read_manifest(manifest_path).raw
    sbom = manifest_path.parent / manifest["sbom"]["file"]
    ntia = check_conformance(sbom, "ntia")
    assert ntia.conformant, ntia.report
    fsct = check_conformance(sbom, "fsct3-min")
    # Every package in the image has a concluded licence and copyright notices (the
    # reviewed table covers the booth's free-form copyright files), and so does the
    # image (the recipe's licence and copyright): only the SPDX-3-only rows remain.
    assert failing_rows(fsct) == SPDX3_ONLY_ROWS["fsct3-min"], fsct.report
    bsi = check_conformance(sbom, "bsi")
    assert failing_rows(bsi) == SPDX3_ONLY_ROWS["bsi"], bsi.report
