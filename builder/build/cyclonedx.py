"""CycloneDX 1.6 JSON software bill of materials, written from the SBOM model
(builder/build/sbom_model.py): the same facts as the SPDX documents.

- metadata: the creation time (SOURCE_DATE_EPOCH), boothkey as the tool, the recipe's
  supplier (with its e-mail or URL) and the image as the described component (an
  operating system, with sha256 and, when the build had it, sha512).
- components: every locked .deb, supplied by Debian and authored by its Maintainer,
  with package URL, sha256 and sha512, its licence as an SPDX expression (none when it
  is NOASSERTION), copyright notices, and a description saying which boothkey sets it
  is in. A package only of the tools set made the image without being in it: its
  scope is "excluded". The LicenseRefs' texts are in the SPDX documents, as CycloneDX
  cannot pair an expression with texts.
- dependencies: the image depends on the packages it contains, each package on the
  locked packages its Depends and Pre-Depends name; every component has an entry.

The serial number is a name-based UUID (version 5) of the document's own sha256 and
the timestamp is SOURCE_DATE_EPOCH: two builds of the same image give the same bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from builder import __version__
from builder.build.copyright import NOASSERTION
from builder.build.sbom_model import DEBIAN, Component, SbomModel, iso_time
from builder.core.canonical import canonical_json

SPEC_VERSION = "1.6"


def _hashes(component: Component) -> list[dict[str, str]]:
    hashes = [{"alg": "SHA-256", "content": component.sha256}]
    if component.sha512:
        hashes.append({"alg": "SHA-512", "content": component.sha512})
    return hashes


def _package(component: Component, excluded: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "library",
        "bom-ref": component.key,
        "supplier": {"name": DEBIAN},
    }
    if component.maintainer is not None:
        entry["authors"] = [
            {"name": component.maintainer.name, "email": component.maintainer.email}
        ]
    entry.update(
        name=component.name,
        version=component.version,
        description=component.comment,
        hashes=_hashes(component),
    )
    if excluded:
        entry["scope"] = "excluded"
    entry.update(_licence_fields(component))
    if component.purl:
        entry["purl"] = component.purl
    entry["properties"] = [
        {"name": "boothkey:deb:filename", "value": component.file_name},
        {"name": "boothkey:deb:architecture", "value": component.architecture},
    ]
    return entry


def _licence_fields(component: Component) -> dict[str, Any]:
    """A component's "licenses" and "copyright", where known."""
    fields: dict[str, Any] = {}
    if component.licence != NOASSERTION:
        fields["licenses"] = [{"expression": component.licence}]
    if component.copyright != NOASSERTION:
        fields["copyright"] = component.copyright
    return fields


def _supplier(model: SbomModel) -> dict[str, Any]:
    supplier: dict[str, Any] = {"name": model.supplier}
    if model.contact and "@" in model.contact and "://" not in model.contact:
        supplier["contact"] = [{"email": model.contact}]
    elif model.contact:
        supplier["url"] = [model.contact]
    return supplier


def write_cyclonedx(model: SbomModel) -> dict[str, Any]:
    """The CycloneDX 1.6 document (a JSON-able dict) of `model`."""
    image = model.image
    described: dict[str, Any] = {
        "type": "operating-system",
        "bom-ref": image.key,
        "name": image.name,
        "version": image.version,
        "description": image.comment,
        "hashes": _hashes(image),
        "properties": [{"name": "boothkey:image:file", "value": image.file_name}],
        **_licence_fields(image),
    }
    metadata: dict[str, Any] = {
        "timestamp": iso_time(model.epoch),
        "tools": {
            "components": [{"type": "application", "name": "boothkey", "version": __version__}]
        },
        "component": described,
    }
    if model.supplier:
        described["supplier"] = _supplier(model)
        metadata["supplier"] = _supplier(model)
    tools_only = set(model.build_tools) - set(model.contains)
    depends = dict(model.depends or ())
    dependencies = [{"ref": image.key, "dependsOn": list(model.contains)}]
    dependencies += [
        {"ref": component.key, "dependsOn": list(depends.get(component.key, ()))}
        for component in model.packages
    ]
    # bomFormat and specVersion identify the format; the optional "$schema" (a URL) is left out.
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": metadata,
        "components": [_package(c, c.key in tools_only) for c in model.packages],
        "dependencies": dependencies,
    }
    content = hashlib.sha256(canonical_json(document)).hexdigest()
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:sha256:{content}")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial.urn,
        **{k: v for k, v in document.items() if k not in {"bomFormat", "specVersion"}},
    }
