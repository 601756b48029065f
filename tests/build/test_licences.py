"""Licences, copyright notices and licence texts for the SBOM: read from DEP-5 files, from
the reviewed table for free-form files (keyed by the file's sha256), and every SPDX id
boothkey writes checked against the SPDX licence list that license-expression ships."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from license_expression import get_spdx_licensing
from sbom_factory import (
    DEP5_CUSTOM,
    DEP5_GPL,
    FREE_FORM,
    LockedDebs,
    demo_manifest,
    make_locked_debs,
    validate_spdx,
)

from builder.build import licence_review
from builder.build.copyright import DEBIAN_TO_SPDX, NOASSERTION, package_licences
from builder.build.licence_review import REVIEWED, ReviewedLicence
from builder.build.notices import copyright_notices, licence_text
from builder.build.sbom import make_sbom
from builder.core.canonical import pretty_json

LICENSING = get_spdx_licensing()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> LockedDebs:
    return make_locked_debs(tmp_path_factory.mktemp("debs"))


def spdx_problems(expression: str) -> list[str]:
    """What license-expression's SPDX list finds wrong with an expression (LicenseRefs
    are the document's own and always allowed)."""
    info = LICENSING.validate(expression)
    unknown = [str(key) for key in info.invalid_symbols if not str(key).startswith("LicenseRef-")]
    errors = [error for error in info.errors if not error.startswith("Unknown license key")]
    return errors + unknown


@pytest.mark.parametrize("spdx", sorted(set(DEBIAN_TO_SPDX.values())))
def test_every_mapped_id_is_on_the_spdx_licence_list(spdx: str) -> None:
    assert spdx_problems(spdx) == [], spdx
    assert LICENSING.parse(spdx).render() == spdx  # the list's own spelling


@pytest.mark.parametrize("entry", REVIEWED, ids=lambda entry: entry.packages[0])
def test_every_reviewed_expression_is_spdx_and_keyed_by_a_digest(entry: ReviewedLicence) -> None:
    assert spdx_problems(entry.spdx) == [], entry
    assert len(entry.copyright_sha256) == 64 and int(entry.copyright_sha256, 16) >= 0
    assert entry.note.strip()


def test_reviewed_table_has_one_reading_per_package_and_file() -> None:
    keys = [(name, entry.copyright_sha256) for entry in REVIEWED for name in entry.packages]
    assert len(keys) == len(set(keys))


def test_a_mistyped_id_is_caught_by_the_list() -> None:
    """The check above is not a rubber stamp."""
    assert spdx_problems("GPL-2.0-or-later AND Sleepycat") == []
    assert spdx_problems("GPL-2.0-or-latr") != []


def test_notices_come_from_dep5_fields_and_from_free_form_lines() -> None:
    assert copyright_notices(DEP5_GPL.decode()) == "2020 Someone\n2021 Someone Else"
    assert copyright_notices(DEP5_CUSTOM.decode()) == "2019 Delta Makers\n2020 Another Delta Maker"
    assert (
        copyright_notices(FREE_FORM.decode())
        == "Copyright (C) 1999-2004 Someone <someone@example.org>"
    )
    # Licence prose that mentions copyright without a year is not a notice.
    assert copyright_notices("Redistributions must retain the above copyright notice.\n") is None


def test_licence_text_is_read_from_the_dep5_file() -> None:
    assert licence_text(DEP5_CUSTOM.decode(), "delta-licence") == (
        "Permission is granted to use delta for anything at all."
    )
    assert licence_text(DEP5_GPL.decode(), "GPL-2+") == "The GPL text."
    assert licence_text(FREE_FORM.decode(), "GPL") is None


def test_sbom_carries_notices_concluded_licences_and_licence_texts(
    locked: LockedDebs, tmp_path: Path
) -> None:
    licences = package_licences(locked.lock.packages, locked.deb_path)
    document = make_sbom(demo_manifest(locked.lock), locked.lock, licences)
    path = tmp_path / "demo.spdx.json"
    path.write_bytes(pretty_json(document))
    assert validate_spdx(path).returncode == 0
    by_name = {p["name"]: p for p in document["packages"]}
    assert by_name["delta"]["licenseDeclared"] == "LicenseRef-Delta-Licence"
    assert by_name["delta"]["licenseConcluded"] == "LicenseRef-Delta-Licence"
    assert by_name["delta"]["copyrightText"] == "2019 Delta Makers\n2020 Another Delta Maker"
    assert by_name["gamma"]["copyrightText"].startswith("Copyright (C) 1999-2004 Someone")
    assert by_name["gamma"]["licenseConcluded"] == NOASSERTION
    assert "reviewed table" in by_name["gamma"]["comment"]
    assert by_name["nodoc"]["copyrightText"] == NOASSERTION
    # The shared doc directory gives alpha-data alpha's notices too.
    assert by_name["alpha-data"]["copyrightText"] == by_name["alpha"]["copyrightText"]
    extracted = {e["licenseId"]: e for e in document["hasExtractedLicensingInfos"]}
    assert extracted["LicenseRef-Delta-Licence"]["extractedText"] == (
        "Permission is granted to use delta for anything at all."
    )
    assert not any("/usr/share" in e["extractedText"] for e in extracted.values())


def test_a_reviewed_reading_applies_only_to_the_exact_file(
    locked: LockedDebs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gamma's free-form file gets the table's reading while its sha256 matches; any
    other sha256 (the file changed) falls back to NOASSERTION, naming the new digest."""
    digest = hashlib.sha256(FREE_FORM).hexdigest()
    reading = ReviewedLicence(("gamma",), digest, "GPL-1.0-or-later", "'the GNU GPL', no version")
    monkeypatch.setitem(licence_review._BY_KEY, ("gamma", digest), reading)
    gamma = package_licences(locked.lock.packages, locked.deb_path)["gamma"]
    assert gamma.spdx == "GPL-1.0-or-later"
    assert digest in gamma.origin and "read by a person" in gamma.origin
    monkeypatch.delitem(licence_review._BY_KEY, ("gamma", digest))
    monkeypatch.setitem(licence_review._BY_KEY, ("gamma", "0" * 64), reading)
    gamma = package_licences(locked.lock.packages, locked.deb_path)["gamma"]
    assert gamma.spdx == NOASSERTION
    assert digest in gamma.origin


def test_one_licence_ref_with_two_texts_gets_two_ids(locked: LockedDebs, tmp_path: Path) -> None:
    licences = package_licences(locked.lock.packages, locked.deb_path)
    other = licences["delta"].__class__(
        "beta",
        "Delta-Licence",
        "LicenseRef-Delta-Licence",
        ("LicenseRef-Delta-Licence",),
        "test",
        "2022 Beta",
        (("LicenseRef-Delta-Licence", "Another text under the same name."),),
    )
    document = make_sbom(demo_manifest(locked.lock), locked.lock, {**licences, "beta": other})
    ids = [e["licenseId"] for e in document["hasExtractedLicensingInfos"]]
    delta_ids = [i for i in ids if i.startswith("LicenseRef-Delta-Licence")]
    assert len(delta_ids) == 2 and "LicenseRef-Delta-Licence" not in delta_ids
    by_name = {p["name"]: p for p in document["packages"]}
    assert {by_name["beta"]["licenseDeclared"], by_name["delta"]["licenseDeclared"]} == set(
        delta_ids
    )
    path = tmp_path / "two.spdx.json"
    path.write_text(json.dumps(document))
    assert validate_spdx(path).returncode == 0
