"""DEPENDS_ON for the SBOM: each locked package's relations resolved to locked packages."""

from __future__ import annotations

from pathlib import Path

import pytest
from archive_factory import FakeDeb, make_deb
from sbom_factory import LockedDebs, demo_manifest, make_locked_debs
from step_factory import locked_fake

from builder.build.dependencies import package_dependencies, relation_names
from builder.build.sbom import make_sbom, package_spdxid
from builder.source.lockfile import LockedPackage


def test_relation_names_drop_versions_and_qualifiers() -> None:
    assert relation_names("a (>= 1:2.0), b:any | c (<< 3) , d [amd64]") == [
        ["a"],
        ["b", "c"],
        ["d"],
    ]
    assert relation_names("") == []


def test_relations_resolve_to_locked_packages(tmp_path: Path) -> None:
    debs: list[FakeDeb] = [
        make_deb(tmp_path, "app", "1", pre_depends="libc6 (>= 2.36)",
                 depends="missing | awk-impl, libfoo (>= 1), app"),
        make_deb(tmp_path, "mawk", "1.3", provides="awk-impl"),
        make_deb(tmp_path, "libfoo", "1.0", depends="libc6"),
        make_deb(tmp_path, "libc6", "2.36"),
    ]  # fmt: skip
    locked: dict[LockedPackage, Path] = {locked_fake(deb): deb.path for deb in debs}
    found = package_dependencies(locked, lambda package: locked[package])
    assert found == {
        "app": ("libc6", "libfoo", "mawk"),  # an alternative met through Provides; not itself
        "libc6": (),
        "libfoo": ("libc6",),
        "mawk": (),
    }


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> LockedDebs:
    return make_locked_debs(tmp_path_factory.mktemp("debs"))


def test_sbom_lists_depends_on(locked: LockedDebs) -> None:
    by_name = {p.name: p for p in locked.lock.packages}
    document = make_sbom(
        demo_manifest(locked.lock), locked.lock, {}, {"alpha": ("beta",), "beta": ()}
    )
    depends = [r for r in document["relationships"] if r["relationshipType"] == "DEPENDS_ON"]
    assert depends == [
        {
            "spdxElementId": package_spdxid(by_name["alpha"]),
            "relationshipType": "DEPENDS_ON",
            "relatedSpdxElement": package_spdxid(by_name["beta"]),
        }
    ]
