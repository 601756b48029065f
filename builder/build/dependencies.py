"""Which locked package depends on which, read offline from the verified .debs, and
the other facts the SBOMs take from them (sha512, Maintainer).

For the SBOM's DEPENDS_ON relationships: each package's Pre-Depends and Depends,
each relation resolved to the locked package that satisfies it (the first
alternative that is locked by name, else one that a locked package Provides).
Version constraints are not re-checked here: the lock was resolved with them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from builder.build.sbom_model import DebFacts, parse_maintainer
from builder.formats.debarchive import read_control
from builder.source.lockfile import LockedPackage

_NAME = re.compile(r"^\s*([a-z0-9][a-z0-9.+-]*)")


def relation_names(field: str) -> list[list[str]]:
    """ "a (>= 1) | b:any, c" -> [["a", "b"], ["c"]]: each relation's alternatives by name."""
    relations = []
    for relation in field.split(","):
        names = []
        for alternative in relation.split("|"):
            found = _NAME.match(alternative)
            if found:
                names.append(found.group(1))
        if names:
            relations.append(names)
    return relations


def package_dependencies(
    packages: Iterable[LockedPackage], deb_path: Callable[[LockedPackage], Path]
) -> dict[str, tuple[str, ...]]:
    """{package name: sorted names of the locked packages it depends on}."""
    controls = {pkg.name: read_control(deb_path(pkg)) for pkg in packages}
    provided: dict[str, str] = {}
    for name in sorted(controls):
        for alternatives in relation_names(controls[name].get("Provides", "")):
            provided.setdefault(alternatives[0], name)
    result: dict[str, tuple[str, ...]] = {}
    for name, control in sorted(controls.items()):
        wanted = relation_names(control.get("Pre-Depends", ""))
        wanted += relation_names(control.get("Depends", ""))
        found: set[str] = set()
        for alternatives in wanted:
            match = next((a for a in alternatives if a in controls), None)
            if match is None:
                match = next((provided[a] for a in alternatives if a in provided), None)
            if match is not None and match != name:
                found.add(match)
        result[name] = tuple(sorted(found))
    return result


def deb_facts(
    packages: Iterable[LockedPackage], deb_path: Callable[[LockedPackage], Path]
) -> dict[str, DebFacts]:
    """{.deb sha256: its sha512 and Maintainer} for the SBOMs (BSI TR-03183-2 wants a
    SHA-512 of each component and its creator's e-mail address)."""
    facts = {}
    for pkg in packages:
        path = deb_path(pkg)
        digest = hashlib.sha512()
        with path.open("rb") as deb:
            while chunk := deb.read(1 << 20):
                digest.update(chunk)
        maintainer = parse_maintainer(read_control(path).get("Maintainer", ""))
        facts[pkg.sha256] = DebFacts(digest.hexdigest(), maintainer)
    return facts
