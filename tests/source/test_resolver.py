"""Dependency resolution on hand-made package records (no archive, no network)."""

from __future__ import annotations

import hashlib
import random

import pytest

from builder.core.errors import ValidationErrors
from builder.source.archive import PackageRecord
from builder.source.resolver import (
    PackageUniverse,
    Root,
    parse_relations,
    resolve,
    version_satisfies,
)


def rec(
    name: str, version: str = "1.0", arch: str = "amd64", **fields: str | bool
) -> PackageRecord:
    return PackageRecord(
        name=name,
        version=version,
        architecture=arch,
        size=100,
        sha256=hashlib.sha256(f"{name} {version} {arch}".encode()).hexdigest(),
        filename=f"pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb",
        **fields,  # type: ignore[arg-type]
    )


def chosen(records: list[PackageRecord], *roots: str, **kwargs: object) -> dict[str, str]:
    universe = PackageUniverse(records)
    result = resolve(universe, [Root(r, f"recipe: packages[{i}]") for i, r in enumerate(roots)])
    return {name: record.version for name, record in result.chosen.items()}


def problems(records: list[PackageRecord], *roots: str) -> list[str]:
    with pytest.raises(ValidationErrors) as info:
        chosen(records, *roots)
    return info.value.problems


def test_pre_depends_and_depends_closure() -> None:
    records = [
        rec("app", depends="libfoo (>= 1), tool", pre_depends="libc6"),
        rec("libfoo", "1.2", depends="libc6"),
        rec("tool", "3", arch="all"),
        rec("libc6", "2.36"),
        rec("unrelated"),
    ]
    assert chosen(records, "app") == {"app": "1.0", "libc6": "2.36", "libfoo": "1.2", "tool": "3"}


def test_alternatives_take_the_first_satisfiable_in_order() -> None:
    records = [
        rec("app", depends="missing | second | third"),
        rec("second"),
        rec("third"),
    ]
    assert set(chosen(records, "app")) == {"app", "second"}


def test_alternatives_prefer_an_already_chosen_package() -> None:
    records = [
        rec("app", depends="first | second"),
        rec("first"),
        rec("second"),
    ]
    # "second" is a root, so app's "first | second" is already satisfied by it.
    assert set(chosen(records, "second", "app")) == {"app", "second"}


def test_virtual_packages_via_provides() -> None:
    records = [
        rec("app", depends="mail-transport-agent"),
        rec("postfix", provides="mail-transport-agent", priority="optional"),
        rec("exim4-daemon-light", provides="mail-transport-agent", priority="standard"),
    ]
    # Several providers: the higher Priority wins, deterministically.
    assert set(chosen(records, "app")) == {"app", "exim4-daemon-light"}


def test_versioned_provides_satisfy_versioned_dependencies_only_when_they_fit() -> None:
    records = [
        rec("app", depends="booth-ui (>= 2)"),
        rec("ui-old", provides="booth-ui (= 1.0)"),
        rec("ui-unversioned", provides="booth-ui"),
        rec("ui-new", provides="booth-ui (= 2.1)"),
    ]
    assert set(chosen(records, "app")) == {"app", "ui-new"}
    records = [rec("app", depends="booth-ui (>= 2)"), rec("ui-unversioned", provides="booth-ui")]
    assert problems(records, "app") == ["app -> booth-ui (>= 2): no version satisfies"]


def test_newest_version_wins_unless_a_constraint_pins_an_older_one() -> None:
    records = [rec("lib", "1:0.9"), rec("lib", "2.0"), rec("lib", "1:1.0~rc1")]
    assert chosen(records, "lib") == {"lib": "1:1.0~rc1"}
    records = [rec("app", depends="lib (<< 1:1.0~)"), *records]
    assert chosen(records, "app") == {"app": "1.0", "lib": "1:0.9"}


def test_unsatisfiable_version_shows_the_chain() -> None:
    records = [
        rec("booth", depends="python3"),
        rec("python3", depends="libpython3.11 (>= 3.11.2)"),
        rec("libpython3.11", "3.11.1-1"),
    ]
    assert problems(records, "booth") == [
        "booth -> python3 -> libpython3.11 (>= 3.11.2): no version satisfies"
    ]


def test_missing_dependency_and_unknown_root_are_all_reported() -> None:
    records = [rec("python3", depends="libgone"), rec("python3-minimal")]
    found = problems(records, "pyhton3", "python3")
    assert found == [
        "recipe: packages[0]: unknown package 'pyhton3' (did you mean python3?)",
        "python3 -> libgone: no such package in the archive",
    ]


def test_dependency_cycles_terminate() -> None:
    records = [rec("a", depends="b"), rec("b", pre_depends="c"), rec("c", depends="a (>= 1)")]
    assert set(chosen(records, "a")) == {"a", "b", "c"}


def test_conflicting_chosen_packages_are_reported() -> None:
    records = [rec("initramfs-tools"), rec("dracut", conflicts="initramfs-tools")]
    found = problems(records, "initramfs-tools", "dracut")
    assert found == [
        "conflict: dracut 1.0 conflicts with initramfs-tools (initramfs-tools 1.0 is chosen); "
        "pulled in by dracut and initramfs-tools"
    ]


def test_a_dependency_that_conflicts_with_the_chosen_set_is_reported_with_its_chain() -> None:
    records = [
        rec("app", depends="initramfs-tools, dracut"),
        rec("initramfs-tools"),
        rec("dracut", conflicts="initramfs-tools"),
    ]
    assert problems(records, "app") == [
        "app -> dracut: conflict: dracut 1.0 conflicts with initramfs-tools (initramfs-tools 1.0)"
    ]


def test_breaks_with_versions_are_reported() -> None:
    records = [rec("a", breaks="b (<< 2)"), rec("b", "1.5")]
    assert problems(records, "a", "b")[0].startswith("conflict: a 1.0 breaks b (<< 2)")
    assert set(chosen([rec("a", breaks="b (<< 2)"), rec("b", "2.0")], "a", "b")) == {"a", "b"}


def test_an_alternative_that_would_conflict_is_skipped() -> None:
    records = [
        rec("app", depends="initramfs-tools, linux-initramfs-tool"),
        rec("initramfs-tools", provides="linux-initramfs-tool"),
        rec("dracut", provides="linux-initramfs-tool", conflicts="initramfs-tools"),
        rec("kernel", depends="dracut | initramfs-tools"),
    ]
    # kernel would take dracut first, but dracut conflicts with the chosen initramfs-tools.
    assert set(chosen(records, "app", "kernel")) == {"app", "initramfs-tools", "kernel"}


def test_a_package_may_conflict_with_what_it_provides_itself() -> None:
    records = [rec("app", depends="mta"), rec("exim", provides="mta", conflicts="mta")]
    assert set(chosen(records, "app")) == {"app", "exim"}


def test_essential_packages_are_listed_from_the_index() -> None:
    records = [
        rec("bash", essential=True),
        rec("dpkg", essential=True),
        rec("vim"),
        rec("oldie", "1", essential=True),
        rec("oldie", "2"),  # the newest version is not Essential any more
    ]
    assert PackageUniverse(records).essential() == ["bash", "dpkg"]


def test_architecture_qualifiers_and_restrictions() -> None:
    records = [
        rec("app", depends="python3:any (>= 3.11), winonly [i386], amdonly [amd64]"),
        rec("python3", "3.11.2"),
        rec("amdonly", arch="all"),
        rec("foreign", arch="i386"),
    ]
    assert set(chosen(records, "app")) == {"app", "python3", "amdonly"}
    assert problems(records, "foreign") == ["recipe: packages[0]: unknown package 'foreign'"]


def test_virtual_root_with_several_providers_must_be_named() -> None:
    records = [rec("a", provides="editor"), rec("b", provides="editor")]
    assert problems(records, "editor") == [
        "recipe: packages[0]: 'editor' is a virtual package; name one of: a, b"
    ]
    assert set(chosen([rec("a", provides="editor")], "editor")) == {"a"}


def test_prefer_reuses_packages_of_another_set() -> None:
    records = [rec("kernel", depends="tool-a | tool-b"), rec("tool-a"), rec("tool-b")]
    universe = PackageUniverse(records)
    rootfs = resolve(universe, [Root("tool-b", "x")])
    boot = resolve(universe, [Root("kernel", "y")], prefer=rootfs.chosen)
    assert set(boot.chosen) == {"kernel", "tool-b"}
    assert boot.chosen["tool-b"] is rootfs.chosen["tool-b"]


def test_same_inputs_in_any_order_give_the_same_set() -> None:
    records = [
        rec("app", depends="x | y, virt, lib (>= 2)"),
        rec("x", depends="lib"),
        rec("y"),
        rec("lib", "1"),
        rec("lib", "2"),
        rec("lib", "3"),
        rec("p1", provides="virt"),
        rec("p2", provides="virt"),
    ]
    expected = chosen(records, "app")
    shuffler = random.Random(7)
    for _ in range(10):
        shuffled = list(records)
        shuffler.shuffle(shuffled)
        assert chosen(shuffled, "app") == expected
    assert expected == {"app": "1.0", "x": "1.0", "lib": "3", "p1": "1.0"}


def test_version_operators() -> None:
    assert version_satisfies("1.0", None, None)
    assert version_satisfies("1.0-1", "<<", "1.0-2")
    assert not version_satisfies("1.0-2", "<<", "1.0-2")
    assert version_satisfies("1.0~rc1", "<=", "1.0")
    assert version_satisfies("2:1", ">>", "1:9")
    assert version_satisfies("1.0", "=", "1.0")
    assert not version_satisfies("1.0", "=", "1.0-0.1")
    assert version_satisfies("1.0", ">=", "1.0")


def test_parse_relations_keeps_alternatives_and_drops_other_architectures() -> None:
    groups = parse_relations("a (>= 1) | b, c [!amd64], d:any")
    assert [[str(r) for r in group] for group in groups] == [["a (>= 1)", "b"], ["d"]]
    assert parse_relations("") == ()


def test_parse_provides() -> None:
    from builder.source.resolver import parse_provides

    assert parse_provides("") == []
    assert parse_provides("a, b (= 1:2.0-1),c(=3)") == [("a", None), ("b", "1:2.0-1"), ("c", "3")]


def test_candidates_come_from_every_suite_highest_fitting_version_wins() -> None:
    base = [
        rec("app", "1.0", depends="lib (>= 1.0)", suite="bookworm"),
        rec("lib", "1.0", suite="bookworm"),
        rec("old", "1.0", depends="lib (<< 1.0+deb12u1)", suite="bookworm"),
        rec("tool", "3.0", suite="bookworm"),
    ]
    security = [
        rec("lib", "1.0+deb12u1", suite="bookworm-security"),
        rec("tool", "2.9+deb12u1", suite="bookworm-security"),
    ]
    universe = PackageUniverse([*base, *security])
    result = resolve(universe, [Root("app", "r"), Root("tool", "r")])
    assert {n: (r.version, r.suite) for n, r in result.chosen.items()} == {
        "app": ("1.0", "bookworm"),
        "lib": ("1.0+deb12u1", "bookworm-security"),
        # A lower version in the update suite does not win over the base suite's.
        "tool": ("3.0", "bookworm"),
    }
    # A constraint only the base suite's version fits takes that one.
    result = resolve(universe, [Root("old", "r")])
    assert (result.chosen["lib"].version, result.chosen["lib"].suite) == ("1.0", "bookworm")
