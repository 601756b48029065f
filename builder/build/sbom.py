"""SPDX 2.3 JSON software bill of materials for a built image, written from the SBOM
model (builder/build/sbom_model.py).

The document describes the image (its file name, size and sha256) and every
locked Debian package: name, version, architecture, the .deb's sha256, its
pool path, a package URL, the licence its copyright file declares (DEP-5, else a
person's recorded reading: builder/build/copyright.py), stated as both declared and
concluded, and the copyright notices of that file.
The image CONTAINS every package of the "rootfs" set (installed in the root
filesystem) and of the "boot" set (extracted into the UKI and initrd); a package
of the "tools" set made the image's bytes without being in it, so it is a
BUILD_TOOL_OF the image (a package in both is both). Each package's comment names
its sets.

It is a pure function of the manifest data, the lock and the licences: the
namespace is derived from the image digest, the creation time is
SOURCE_DATE_EPOCH, so two builds of the same image give identical bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builder.build.copyright import NOASSERTION, PackageLicence
from builder.build.sbom_model import (
    Component,
    SbomModel,
    iso_time,
    make_model,
    package_key,
    purl,
)
from builder.source.lockfile import Lock, LockedPackage

__all__ = ["iso_time", "make_sbom", "package_spdxid", "purl", "write_spdx2"]

SPDX_VERSION = "SPDX-2.3"
NAMESPACE_BASE = "https://spdx.org/spdxdocs/"
IMAGE_SPDXID = "SPDXRef-Image"


def package_spdxid(pkg: LockedPackage) -> str:
    return f"SPDXRef-{package_key(pkg)}"


def _spdxid(key: str) -> str:
    return f"SPDXRef-{key}"


def _organisation(model: SbomModel) -> str:
    # SPDX 2.3 writes an organisation's contact in parentheses after its name.
    contact = f" ({model.contact})" if model.contact else ""
    return f"Organization: {model.supplier}{contact}"


def _package_entry(component: Component) -> dict[str, Any]:
    return {
        "SPDXID": _spdxid(component.key),
        "name": component.name,
        "versionInfo": component.version,
        "packageFileName": component.file_name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": component.sha256}],
        "supplier": "Organization: Debian",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": component.purl,
            }
        ],
        "licenseConcluded": component.licence,
        "licenseDeclared": component.licence,
        "copyrightText": component.copyright,
        "comment": component.comment,
    }


def _relationship(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def write_spdx2(model: SbomModel) -> dict[str, Any]:
    """The SPDX 2.3 document (a JSON-able dict) of `model`."""
    image = model.image
    image_entry = {
        "SPDXID": IMAGE_SPDXID,
        "name": image.name,
        "versionInfo": image.version,
        "packageFileName": image.file_name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": image.sha256}],
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        # The recipe's supplier: the authority that publishes the image.
        "supplier": _organisation(model) if model.supplier else NOASSERTION,
        "licenseConcluded": image.licence,
        "licenseDeclared": image.licence,
        "copyrightText": image.copyright,
        "comment": image.comment,
    }
    relationships = [_relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_SPDXID)]
    contained, tools = set(model.contains), set(model.build_tools)
    for component in model.packages:
        if component.key in contained:
            relationships.append(_relationship(IMAGE_SPDXID, "CONTAINS", _spdxid(component.key)))
        if component.key in tools:
            relationships.append(
                _relationship(_spdxid(component.key), "BUILD_TOOL_OF", IMAGE_SPDXID)
            )
    for key, needed in model.depends or ():
        relationships += [
            _relationship(_spdxid(key), "DEPENDS_ON", _spdxid(other)) for other in needed
        ]
    document: dict[str, Any] = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"boothkey-{model.name}-{model.version}",
        "documentNamespace": f"{NAMESPACE_BASE}boothkey-{model.name}-{image.sha256}",
        "creationInfo": {
            "created": iso_time(model.epoch),
            "creators": [
                *([_organisation(model)] if model.supplier else []),
                f"Tool: {model.tool}",
            ],
            "comment": "created time is the build's SOURCE_DATE_EPOCH, not the wall clock",
        },
        "packages": [image_entry, *(_package_entry(c) for c in model.packages)],
        "relationships": relationships,
    }
    if model.extracted:
        document["hasExtractedLicensingInfos"] = [
            {
                "licenseId": entry.ref,
                "name": entry.name,
                "extractedText": entry.text,
                "comment": entry.comment,
            }
            for entry in model.extracted
        ]
    return document


def make_sbom(
    manifest: Mapping[str, Any],
    lock: Lock,
    licences: Mapping[str, PackageLicence],
    dependencies: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """The SPDX 2.3 document (a JSON-able dict) for the image `manifest` describes.

    `manifest` is the build's manifest data (its own digest is not needed);
    `licences` maps package names to their declared licences, and a package
    missing from it is NOASSERTION; `dependencies` maps package names to the names
    of the locked packages each depends on (DEPENDS_ON relationships).
    """
    return write_spdx2(make_model(manifest, lock, licences, dependencies))
