"""The CycloneDX 1.6 SBOM: valid for cyclonedx-python-lib's strict JSON schema
validator, deterministic (serial number from the content, time from the epoch), with
components (purl, hashes, licences), dependencies and the supplier."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sbom_factory import LockedDebs, demo_model, make_locked_debs, validate_cyclonedx

from builder.build.cyclonedx import write_cyclonedx
from builder.build.sbom_model import iso_time
from builder.core.canonical import pretty_json


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> LockedDebs:
    return make_locked_debs(tmp_path_factory.mktemp("debs"))


def test_cyclonedx_is_valid_and_the_validator_is_strict(locked: LockedDebs, tmp_path: Path) -> None:
    path = tmp_path / "demo.cdx.json"
    path.write_bytes(pretty_json(write_cyclonedx(demo_model(locked))))
    assert validate_cyclonedx(path) is None
    document = json.loads(path.read_bytes())
    document["components"][0]["hashes"][0]["alg"] = "SHA-257"
    path.write_text(json.dumps(document))
    assert validate_cyclonedx(path) is not None


def test_cyclonedx_is_deterministic_with_a_serial_from_the_content(locked: LockedDebs) -> None:
    first = write_cyclonedx(demo_model(locked))
    assert pretty_json(first) == pretty_json(write_cyclonedx(demo_model(locked)))
    serial = uuid.UUID(first["serialNumber"].removeprefix("urn:uuid:"))
    assert serial.version == 5 and first["serialNumber"].startswith("urn:uuid:")
    other = write_cyclonedx(demo_model(locked, "ff" * 32))
    assert other["serialNumber"] != first["serialNumber"]
    assert first["metadata"]["timestamp"] == iso_time(demo_model(locked).epoch)


def test_cyclonedx_components_dependencies_and_supplier(locked: LockedDebs) -> None:
    document = write_cyclonedx(demo_model(locked))
    metadata = document["metadata"]
    assert metadata["supplier"] == {
        "name": "Example Election Authority",
        "contact": [{"email": "sbom@example.org"}],
    }
    assert metadata["component"]["bom-ref"] == "Image"
    assert [h["alg"] for h in metadata["component"]["hashes"]] == ["SHA-256", "SHA-512"]
    components = {c["name"]: c for c in document["components"]}
    assert set(components) == {p.name for p in locked.lock.packages}
    alpha = components["alpha"]
    assert alpha["purl"] == "pkg:deb/debian/alpha@1:2.0%2Bdfsg-1?arch=amd64"
    assert [h["alg"] for h in alpha["hashes"]] == ["SHA-256", "SHA-512"]
    licence = "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND BSD-3-Clause"
    assert alpha["licenses"] == [{"expression": licence}]
    assert alpha["supplier"] == {"name": "Debian"}
    assert alpha["authors"] == [{"name": "boothkey tests", "email": "tests@example.org"}]
    assert "licenses" not in components["gamma"]  # NOASSERTION: no reviewed reading
    assert components["nodoc"]["scope"] == "excluded"  # tools only: not in the image
    assert "scope" not in alpha  # rootfs and tools: in the image
    refs = {c["bom-ref"] for c in document["components"]} | {"Image"}
    dependencies = {d["ref"]: d["dependsOn"] for d in document["dependencies"]}
    assert set(dependencies) == refs
    assert all(set(targets) <= refs for targets in dependencies.values())
    assert components["nodoc"]["bom-ref"] not in dependencies["Image"]
