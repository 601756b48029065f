"""SPDX 3.0.1 JSON-LD software bill of materials, written from the SBOM model
(builder/build/sbom_model.py): the same facts as the SPDX 2.3 document, in SPDX 3's
element graph.

- An `SpdxDocument` whose root is a `software_Sbom` of type "build", whose root is the
  image (a `software_Package`, supplied and created by the recipe's supplier, an
  `Organization` with its e-mail or URL as an external identifier).
- Every locked .deb is a `software_Package` (supplied by Debian, created by its
  Maintainer, a Person or a team Organization with an e-mail identifier; package URL;
  copyright notices) with its distribution artifact, a `software_File` named by its pool
  path with sha256 and sha512, marked "archive" and, as BSI TR-03183-2 asks of a
  structured component, "container". The image's own file carries its sha256 and,
  when the build had it, sha512.
- Licences are `simplelicensing_LicenseExpression`s (declared and concluded), the
  LicenseRefs `simplelicensing_SimpleLicensingText`s with their text; NOASSERTION is
  written as the absence of the relationship, as SPDX 3 prescribes.
- Relationships: the image `contains` the rootfs and boot packages (completeness
  "incomplete": the recipe's overlay files are in the image without being packages);
  it `usesTool` the tools packages; each package `dependsOn` the locked packages its
  Depends and Pre-Depends name (completeness "complete": the lock was resolved with
  them); a package that depends on nothing has no such relationship (ntia-conformance-
  checker takes a relationship to NoneElement for a broken link).

Ids are IRIs under the document's namespace (derived from the image's sha256) and the
creation time is SOURCE_DATE_EPOCH: two builds of the same image give the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from builder.build.copyright import NOASSERTION
from builder.build.sbom_model import DEBIAN, Component, Maintainer, SbomModel, iso_time

CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
NAMESPACE_BASE = "https://spdx.org/spdxdocs/"
SPEC_VERSION = "3.0.1"
CREATION_INFO = "_:creationinfo"
# A Maintainer field naming one of these words names a team, not a person.
_TEAM = re.compile(r"\b(team|maintainers|developers|group|project|packagers)\b", re.IGNORECASE)
_LICENCE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")


def _digest_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Graph:
    """The document's elements, each added once, in a fixed order."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.elements: dict[str, dict[str, Any]] = {}
        self.relationship_count = 0

    def iri(self, local: str) -> str:
        return f"{self.base}/{local}"

    def add(self, kind: str, local: str, **fields: Any) -> str:
        spdx_id = self.iri(local)
        if spdx_id not in self.elements:
            self.elements[spdx_id] = {
                "type": kind,
                "spdxId": spdx_id,
                "creationInfo": CREATION_INFO,
                **fields,
            }
        return spdx_id

    def relate(
        self, source: str, kind: str, targets: list[str], completeness: str | None = None
    ) -> None:
        self.relationship_count += 1
        extra = {"completeness": completeness} if completeness else {}
        self.add(
            "Relationship",
            f"relationship-{self.relationship_count}",
            **{"from": source, "relationshipType": kind, "to": targets},
            **extra,
        )


def _hashes(component: Component) -> list[dict[str, str]]:
    hashes = [{"type": "Hash", "algorithm": "sha256", "hashValue": component.sha256}]
    if component.sha512:
        hashes.append({"type": "Hash", "algorithm": "sha512", "hashValue": component.sha512})
    return hashes


def _agent(graph: _Graph, who: Maintainer) -> str:
    kind = "Organization" if _TEAM.search(who.name) else "Person"
    identifier = {"type": "ExternalIdentifier", "externalIdentifierType": "email"}
    return graph.add(
        kind,
        f"agent-{_digest_id(f'{who.name} <{who.email}>')}",
        name=who.name,
        externalIdentifier=[{**identifier, "identifier": who.email}],
    )


def _licence(graph: _Graph, expression: str, texts: dict[str, str]) -> str | None:
    if expression == NOASSERTION:
        return None
    refs = sorted(set(_LICENCE_REF.findall(expression)))
    fields: dict[str, Any] = {"simplelicensing_licenseExpression": expression}
    if refs:
        fields["simplelicensing_customIdToUri"] = [
            {"type": "DictionaryEntry", "key": ref, "value": texts[ref]}
            for ref in refs
            if ref in texts
        ]
    return graph.add(
        "simplelicensing_LicenseExpression", f"licence-{_digest_id(expression)}", **fields
    )


def _distribution(graph: _Graph, component: Component, purpose: str) -> None:
    source = graph.iri(component.key)
    artifact = graph.add(
        "software_File",
        f"{component.key}-file",
        name=component.file_name,
        verifiedUsing=_hashes(component),
        software_primaryPurpose=purpose,
        # BSI TR-03183-2's "structured" property: the file's contents are listed.
        software_additionalPurpose=["container"],
    )
    graph.relate(source, "hasDistributionArtifact", [artifact], "complete")


def _package(
    graph: _Graph, component: Component, supplier: str | None, texts: dict[str, str]
) -> str:
    fields: dict[str, Any] = {
        "name": component.name,
        "software_packageVersion": component.version,
        "comment": component.comment,
    }
    if supplier:
        fields["suppliedBy"] = supplier
    if component.maintainer is not None:
        fields["originatedBy"] = [_agent(graph, component.maintainer)]
    if component.copyright != NOASSERTION:
        fields["software_copyrightText"] = component.copyright
    if component.purl:
        fields["software_packageUrl"] = component.purl
        fields["externalIdentifier"] = [
            {
                "type": "ExternalIdentifier",
                "externalIdentifierType": "packageUrl",
                "identifier": component.purl,
            }
        ]
    spdx_id = graph.add("software_Package", component.key, **fields)
    _licensed(graph, spdx_id, component.licence, texts)
    return spdx_id


def _licensed(graph: _Graph, spdx_id: str, expression: str, texts: dict[str, str]) -> None:
    """`spdx_id` declared and concluded under `expression` (nothing for NOASSERTION)."""
    licence = _licence(graph, expression, texts)
    if licence is not None:
        graph.relate(spdx_id, "hasDeclaredLicense", [licence])
        graph.relate(spdx_id, "hasConcludedLicense", [licence])


def write_spdx3(model: SbomModel) -> dict[str, Any]:
    """The SPDX 3.0.1 JSON-LD document (a JSON-able dict) of `model`."""
    graph = _Graph(f"{NAMESPACE_BASE}boothkey-{model.name}-{model.image.sha256}")
    tool = graph.add("Tool", "tool", name=model.tool)
    creator: str
    supplier = None
    if model.supplier:
        identifiers = []
        if model.contact:
            kind = "email" if "@" in model.contact else "urlScheme"
            identifiers.append(
                {
                    "type": "ExternalIdentifier",
                    "externalIdentifierType": kind,
                    "identifier": model.contact,
                }
            )
        supplier = graph.add(
            "Organization",
            "supplier",
            name=model.supplier,
            **({"externalIdentifier": identifiers} if identifiers else {}),
        )
        creator = supplier
    else:
        creator = graph.add("SoftwareAgent", "boothkey", name=model.tool)
    debian = graph.add("Organization", "debian", name=DEBIAN)
    texts = {entry.ref: graph.iri(entry.ref) for entry in model.extracted}
    for entry in model.extracted:
        graph.add(
            "simplelicensing_SimpleLicensingText",
            entry.ref,
            name=entry.name,
            simplelicensing_licenseText=entry.text,
            comment=entry.comment,
        )
    image = model.image
    image_fields: dict[str, Any] = {
        "name": image.name,
        "software_packageVersion": image.version,
        "software_primaryPurpose": "operatingSystem",
        "comment": image.comment,
    }
    if supplier:
        image_fields.update(suppliedBy=supplier, originatedBy=[supplier])
    if image.copyright != NOASSERTION:
        image_fields["software_copyrightText"] = image.copyright
    image_id = graph.add("software_Package", image.key, **image_fields)
    _licensed(graph, image_id, image.licence, texts)
    _distribution(graph, image, "diskImage")
    for component in model.packages:
        _package(graph, component, debian, texts)
        _distribution(graph, component, "archive")
    if model.contains:
        graph.relate(image_id, "contains", [graph.iri(k) for k in model.contains], "incomplete")
    if model.build_tools:
        graph.relate(image_id, "usesTool", [graph.iri(k) for k in model.build_tools])
    for key, needed in model.depends or ():
        if needed:
            targets = [graph.iri(other) for other in needed]
            graph.relate(graph.iri(key), "dependsOn", targets, "complete")
    sbom_elements = sorted(graph.elements)
    sbom = graph.add(
        "software_Sbom",
        "sbom",
        name=f"boothkey-{model.name}-{model.version}",
        software_sbomType=["build"],
        rootElement=[image_id],
        element=sbom_elements,
    )
    data_licence = graph.add(
        "simplelicensing_LicenseExpression",
        "data-licence",
        simplelicensing_licenseExpression="CC0-1.0",
    )
    document = graph.add(
        "SpdxDocument",
        "document",
        name=f"boothkey-{model.name}-{model.version}",
        profileConformance=["core", "software", "simpleLicensing"],
        dataLicense=data_licence,
        rootElement=[sbom],
        element=sorted([*sbom_elements, sbom, data_licence]),
    )
    creation_info = {
        "type": "CreationInfo",
        "@id": CREATION_INFO,
        "specVersion": SPEC_VERSION,
        "created": iso_time(model.epoch),
        "createdBy": [creator],
        "createdUsing": [tool],
        "comment": "created time is the build's SOURCE_DATE_EPOCH, not the wall clock",
    }
    ordered = [graph.elements[document], graph.elements[sbom]]
    ordered += [graph.elements[k] for k in sorted(graph.elements) if k not in {document, sbom}]
    return {"@context": CONTEXT, "@graph": [creation_info, *ordered]}
