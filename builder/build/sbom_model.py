"""What boothkey's SBOMs say, once, for every format that writes it: the SPDX 2.3
(`builder.build.sbom`), SPDX 3.0.1 (`builder.build.spdx3`) and CycloneDX 1.6
(`builder.build.cyclonedx`) writers only format this model.

The model describes the image and every locked Debian package: name, version,
architecture, the .deb's pool path, sha256 and (when the .deb was at hand) sha512, a
package URL, the Debian maintainer who made the .deb, the licence its copyright file
declares (builder/build/copyright.py) with the LicenseRefs renamed where one name
stands for different texts, its copyright notices, and the relationships: the image
contains the "rootfs" and "boot" packages, the "tools" packages are build tools of it,
and each package depends on the locked packages its Depends and Pre-Depends name.

It is a pure function of the manifest data, the lock, the licences, the dependency
graph and the .debs' facts: no clock (the build's SOURCE_DATE_EPOCH), no random ids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from builder import __version__
from builder.build.copyright import NOASSERTION, PackageLicence
from builder.source.lockfile import Lock, LockedPackage
from builder.source.toolset import TOOLS_SET

IMAGE_KEY = "Image"
TOOL_NAME = f"boothkey-{__version__}"
DEBIAN = "Debian"
_CONCLUDED = (
    " Concluded licence: the declared one, taken from the copyright file; the files were"
    " not examined one by one."
)
_SET_MEANING = {
    "rootfs": "installed in the root filesystem",
    "boot": "files extracted into the UKI or initrd",
    TOOLS_SET: "ran in the tools tree to make the image's bytes; not in the image",
}
# "Name <address>" as Debian's Maintainer field writes it.
_MAINTAINER = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+@[^<>\s]+)>\s*$")


@dataclass(frozen=True)
class Maintainer:
    """Who made a .deb, from its Maintainer field: a person or a team."""

    name: str
    email: str


def parse_maintainer(field: str) -> Maintainer | None:
    """ "Jane Doe <jane@example.org>" -> Maintainer; anything else -> None."""
    found = _MAINTAINER.match(field)
    if found is None or not found.group("name"):
        return None
    return Maintainer(found.group("name"), found.group("email"))


@dataclass(frozen=True)
class DebFacts:
    """What the build reads from a verified .deb besides its licence: its sha512 and
    its Maintainer field (None when the field is missing or malformed)."""

    sha512: str
    maintainer: Maintainer | None


@dataclass(frozen=True)
class Component:
    """The image or one locked package. `key` is unique in the document and made of
    letters, digits, "." and "-"; `licence` and `copyright` may be NOASSERTION."""

    key: str
    name: str
    version: str
    file_name: str
    sha256: str
    sha512: str | None
    purl: str | None
    licence: str
    copyright: str
    comment: str
    maintainer: Maintainer | None = None
    architecture: str = ""


@dataclass(frozen=True)
class ExtractedLicence:
    """A LicenseRef: its unique id, the name the copyright file gives it, its text."""

    ref: str
    name: str
    text: str
    comment: str


@dataclass(frozen=True)
class SbomModel:
    name: str
    version: str
    epoch: int
    supplier: str | None  # the recipe's supplier: the image's supplier and the creator
    contact: str | None  # its e-mail address or http(s) URL
    image: Component
    image_size: int
    packages: tuple[Component, ...]  # sorted by name, then architecture
    contains: tuple[str, ...]  # keys of the packages the image contains
    build_tools: tuple[str, ...]  # keys of the packages that are build tools of it
    # (package key, keys of the packages it depends on), in the document's order; None
    # when the dependency graph was not read.
    depends: tuple[tuple[str, tuple[str, ...]], ...] | None
    extracted: tuple[ExtractedLicence, ...]

    @property
    def tool(self) -> str:
        return TOOL_NAME


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


def package_key(pkg: LockedPackage) -> str:
    # SPDX ids allow letters, digits, "." and "-"; Debian names also use "+".
    safe = re.sub(r"[^A-Za-z0-9.-]", "-", f"{pkg.name}-{pkg.architecture}")
    return f"deb-{safe}"


def _package(
    pkg: LockedPackage,
    licence: PackageLicence | None,
    renamed: Mapping[tuple[str, str], str],
    facts: DebFacts | None,
) -> Component:
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
    return Component(
        key=package_key(pkg),
        name=pkg.name,
        version=pkg.version,
        file_name=pkg.filename,
        sha256=pkg.sha256,
        sha512=facts.sha512 if facts is not None else None,
        purl=purl(pkg),
        licence=spdx,
        copyright=licence.notices if licence is not None else NOASSERTION,
        comment=comment,
        maintainer=facts.maintainer if facts is not None else None,
        architecture=pkg.architecture,
    )


def _extracted_licences(
    packages: tuple[LockedPackage, ...], licences: Mapping[str, PackageLicence]
) -> tuple[tuple[ExtractedLicence, ...], dict[tuple[str, str], str]]:
    """The LicenseRefs with their texts, and those renamed because one name stands for
    different texts in different packages: {(package, ref): unique ref}."""
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
            users_list = ", ".join(sorted(set(names)))
            entries.append(
                ExtractedLicence(
                    ref=unique,
                    name=ref.removeprefix("LicenseRef-"),
                    text=text
                    or f"(the copyright files of {users_list} name this licence without "
                    "giving its text)",
                    comment=f"Text from /usr/share/doc/PACKAGE/copyright of: {users_list}",
                )
            )
    return tuple(sorted(entries, key=lambda entry: entry.ref)), renamed


def make_model(
    manifest: Mapping[str, Any],
    lock: Lock,
    licences: Mapping[str, PackageLicence],
    dependencies: Mapping[str, tuple[str, ...]] | None = None,
    debs: Mapping[str, DebFacts] | None = None,
    image_sha512: str | None = None,
) -> SbomModel:
    """The SBOM model of the image `manifest` describes (its own digest is not needed).

    `licences` maps package names to their declared licences (a package missing from
    it is NOASSERTION); `dependencies` maps package names to the names of the locked
    packages each depends on; `debs` maps .deb sha256s to what was read from them;
    `image_sha512` is the image's sha512 when the image was at hand.
    """
    name, version = str(manifest["name"]), str(manifest["version"])
    image = manifest["image"]
    packages = tuple(sorted(lock.packages, key=lambda p: (p.name, p.architecture)))
    supplier = manifest.get("supplier")
    contact = manifest.get("supplier_contact")
    image_component = Component(
        key=IMAGE_KEY,
        name=name,
        version=version,
        file_name=str(image["file"]),
        sha256=str(image["sha256"]),
        sha512=image_sha512,
        purl=None,
        # The recipe's own licence and copyright (of what it adds: its overlays).
        licence=str(manifest.get("licence") or NOASSERTION),
        copyright=str(manifest.get("copyright") or NOASSERTION),
        comment=(
            f"boothkey disk image ({image['size']} bytes); recipe {manifest['recipe']['file']} "
            f"sha256 {manifest['recipe']['sha256']}, lock sha256 {manifest['lock_sha256']}, "
            f"verity root hash {manifest['verity']['root_hash']}."
        ),
    )
    extracted, renamed = _extracted_licences(packages, licences)
    facts = debs or {}
    keys = {pkg.name: package_key(pkg) for pkg in reversed(packages)}
    depends = None
    if dependencies is not None:
        depends = tuple(
            (keys[pkg_name], tuple(keys[other] for other in needed if other in keys))
            for pkg_name, needed in sorted(dependencies.items())
            if pkg_name in keys
        )
    return SbomModel(
        name=name,
        version=version,
        epoch=int(manifest["source_date_epoch"]),
        supplier=str(supplier) if supplier else None,
        contact=str(contact) if supplier and contact else None,
        image=image_component,
        image_size=int(image["size"]),
        packages=tuple(
            _package(pkg, licences.get(pkg.name), renamed, facts.get(pkg.sha256))
            for pkg in packages
        ),
        contains=tuple(package_key(p) for p in packages if set(p.sets) - {TOOLS_SET}),
        build_tools=tuple(package_key(p) for p in packages if TOOLS_SET in p.sets),
        depends=depends,
        extracted=extracted,
    )
