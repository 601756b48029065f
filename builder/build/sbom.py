"""SPDX 2.3 JSON software bill of materials for a built image.

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

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from builder import __version__
from builder.build.copyright import NOASSERTION, PackageLicence
from builder.source.lockfile import Lock, LockedPackage
from builder.source.toolset import TOOLS_SET

SPDX_VERSION = "SPDX-2.3"
NAMESPACE_BASE = "https://spdx.org/spdxdocs/"
IMAGE_SPDXID = "SPDXRef-Image"
_CONCLUDED = (
    " Concluded licence: the declared one, taken from the copyright file; the files were"
    " not examined one by one."
)
_SET_MEANING = {
    "rootfs": "installed in the root filesystem",
    "boot": "files extracted into the UKI or initrd",
    TOOLS_SET: "ran in the tools tree to make the image's bytes; not in the image",
}


def iso_time(epoch: int) -> str:
    """SPDX's creation-time format (UTC, seconds) for a Unix time."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def purl(pkg: LockedPackage) -> str:
    """The package URL of a Debian binary package: pkg:deb/debian/NAME@VERSION?arch=ARCH."""
    # Percent-encoded as the purl reference library does: "+" becomes %2B, ":" stays.
    return (
        f"pkg:deb/debian/{quote(pkg.name, safe='.-_~:')}@{quote(pkg.version, safe='.-_~:')}"
        f"?arch={quote(pkg.architecture, safe='')}"
    )


def package_spdxid(pkg: LockedPackage) -> str:
    # SPDX ids allow letters, digits, "." and "-"; Debian names also use "+".
    safe = re.sub(r"[^A-Za-z0-9.-]", "-", f"{pkg.name}-{pkg.architecture}")
    return f"SPDXRef-deb-{safe}"


def _package_entry(
    pkg: LockedPackage, licence: PackageLicence | None, renamed: Mapping[tuple[str, str], str]
) -> dict[str, Any]:
    sets = ", ".join(f"{name} ({_SET_MEANING.get(name, name)})" for name in pkg.sets)
    origin = f" from suite {pkg.suite}" if pkg.suite else ""
    comment = f"Debian package{origin}; boothkey sets: {sets or 'none'}."
    spdx = NOASSERTION
    if licence is not None:
        spdx = licence.spdx
        for ref in licence.refs:
            unique = renamed.get((pkg.name, ref), ref)
            spdx = re.sub(rf"{re.escape(ref)}(?![A-Za-z0-9.-])", unique, spdx)
        comment += f" Licence from: {licence.origin}."
        if licence.debian:
            comment += f" Declared as: {licence.debian}."
        if spdx != NOASSERTION:
            comment += _CONCLUDED
    return {
        "SPDXID": package_spdxid(pkg),
        "name": pkg.name,
        "versionInfo": pkg.version,
        "packageFileName": pkg.filename,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": pkg.sha256}],
        "supplier": "Organization: Debian",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(pkg),
            }
        ],
        "licenseConcluded": spdx,
        "licenseDeclared": spdx,
        "copyrightText": licence.notices if licence is not None else NOASSERTION,
        "comment": comment,
    }


def _extracted_licences(
    packages: tuple[LockedPackage, ...], licences: Mapping[str, PackageLicence]
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], str]]:
    """hasExtractedLicensingInfos, and the LicenseRefs renamed because one name stands
    for different texts in different packages: {(package, ref): unique ref}."""
    users: dict[str, dict[str, list[str]]] = {}  # ref -> text -> packages
    for pkg in packages:
        licence = licences.get(pkg.name)
        texts = dict(licence.texts) if licence is not None else {}
        for ref in licence.refs if licence is not None else ():
            text = texts.get(ref, "")
            users.setdefault(ref, {}).setdefault(text, []).append(pkg.name)
    renamed: dict[tuple[str, str], str] = {}
    entries = []
    for ref, by_text in sorted(users.items()):
        for text, names in sorted(by_text.items()):
            unique = ref
            if len(by_text) > 1:  # the text's digest tells the variants apart
                unique = f"{ref}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
                renamed.update({(name, ref): unique for name in names})
            entries.append(
                {
                    "licenseId": unique,
                    "name": ref.removeprefix("LicenseRef-"),
                    "extractedText": text
                    or f"(the copyright files of {', '.join(sorted(set(names)))} name this "
                    "licence without giving its text)",
                    "comment": "Text from /usr/share/doc/PACKAGE/copyright of: "
                    + ", ".join(sorted(set(names))),
                }
            )
    return sorted(entries, key=lambda entry: str(entry["licenseId"])), renamed


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
    name, version = str(manifest["name"]), str(manifest["version"])
    supplier = manifest.get("supplier")
    contact = manifest.get("supplier_contact")
    # SPDX 2.3 writes an organisation's contact in parentheses after its name.
    organisation = f"Organization: {supplier}" + (f" ({contact})" if contact else "")
    image = manifest["image"]
    packages = tuple(sorted(lock.packages, key=lambda p: (p.name, p.architecture)))
    image_entry = {
        "SPDXID": IMAGE_SPDXID,
        "name": name,
        "versionInfo": version,
        "packageFileName": image["file"],
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": image["sha256"]}],
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        # The recipe's supplier: the authority that publishes the image.
        "supplier": organisation if supplier else NOASSERTION,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "comment": (
            f"boothkey disk image ({image['size']} bytes); recipe {manifest['recipe']['file']} "
            f"sha256 {manifest['recipe']['sha256']}, lock sha256 {manifest['lock_sha256']}, "
            f"verity root hash {manifest['verity']['root_hash']}."
        ),
    }
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": IMAGE_SPDXID,
        }
    ]
    for pkg in packages:
        if set(pkg.sets) - {TOOLS_SET}:
            relationships.append(
                {
                    "spdxElementId": IMAGE_SPDXID,
                    "relationshipType": "CONTAINS",
                    "relatedSpdxElement": package_spdxid(pkg),
                }
            )
        if TOOLS_SET in pkg.sets:
            relationships.append(
                {
                    "spdxElementId": package_spdxid(pkg),
                    "relationshipType": "BUILD_TOOL_OF",
                    "relatedSpdxElement": IMAGE_SPDXID,
                }
            )
    spdxids = {pkg.name: package_spdxid(pkg) for pkg in reversed(packages)}
    for pkg_name, needed in sorted((dependencies or {}).items()):
        relationships += [
            {
                "spdxElementId": spdxids[pkg_name],
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": spdxids[other],
            }
            for other in needed
            if pkg_name in spdxids and other in spdxids
        ]
    extracted, renamed = _extracted_licences(packages, licences)
    document: dict[str, Any] = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"boothkey-{name}-{version}",
        "documentNamespace": f"{NAMESPACE_BASE}boothkey-{name}-{image['sha256']}",
        "creationInfo": {
            "created": iso_time(int(manifest["source_date_epoch"])),
            "creators": [
                *([organisation] if supplier else []),
                f"Tool: boothkey-{__version__}",
            ],
            "comment": "created time is the build's SOURCE_DATE_EPOCH, not the wall clock",
        },
        "packages": [
            image_entry,
            *(_package_entry(pkg, licences.get(pkg.name), renamed) for pkg in packages),
        ],
        "relationships": relationships,
    }
    if extracted:
        document["hasExtractedLicensingInfos"] = extracted
    return document
