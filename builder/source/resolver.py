"""Dependency resolution: which packages a set of roots needs, chosen deterministically.

The closure follows Pre-Depends and Depends. An alternative group (`a | b`) is
satisfied by a package already chosen if any alternative allows it, else by the
first alternative, in the order written, that some package satisfies (a real
package at its highest fitting version, or a provider of a virtual package,
versioned Provides included). Single architecture: `amd64` and `all` packages;
`:any`/`:native` qualifiers and `[arch]` restrictions are honoured for that.
Conflicts and Breaks between two chosen packages are reported, never ignored.

There is no backtracking: like apt's first guess, a choice once made stays. The
same index and roots always give the same set.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cmp_to_key

from debian.deb822 import PkgRelation
from debian.debian_support import version_compare

from builder.core.errors import ValidationErrors
from builder.source.archive import PackageRecord

_PRIORITY_RANK = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}


@dataclass(frozen=True)
class Relation:
    """One alternative of a relation field: `name[:archqual] (op version)`."""

    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


@dataclass(frozen=True)
class Root:
    """A package asked for by name, with where it was asked (for error messages)."""

    name: str
    origin: str  # e.g. "recipes/booth.yaml: packages[2]" or "Essential: yes"


@dataclass
class Resolution:
    """The chosen packages (by name) and, for each, the name that pulled it in."""

    chosen: dict[str, PackageRecord] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)

    def chain(self, name: str) -> list[str]:
        """Names from a root down to `name`."""
        names = [name]
        seen = {name}
        current = self.parent.get(name)
        while current is not None and current not in seen:
            names.append(current)
            seen.add(current)
            current = self.parent.get(current)
        return list(reversed(names))

    def packages(self) -> tuple[PackageRecord, ...]:
        return tuple(self.chosen[name] for name in sorted(self.chosen))


@cache
def parse_relations(text: str) -> tuple[tuple[Relation, ...], ...]:
    """Debian relation syntax -> groups of alternatives, keeping only those for `amd64`."""
    if not text.strip():
        return ()
    groups: list[tuple[Relation, ...]] = []
    for group in PkgRelation.parse_relations(text):
        alternatives = []
        for alt in group:
            if not _arch_applies(alt.get("arch")):
                continue
            version = alt.get("version")
            op, ver = (version[0], version[1]) if version else (None, None)
            alternatives.append(Relation(alt["name"], op, ver))
        if alternatives:
            groups.append(tuple(alternatives))
    return tuple(groups)


def parse_provides(text: str) -> list[tuple[str, str | None]]:
    """`Provides` -> [(virtual name, provided version or None)].

    Provides allows only `name` or `name (= version)`, so a split is enough; it runs
    over every package of the archive, where the general parser would dominate.
    """
    provided: list[tuple[str, str | None]] = []
    for item in text.split(","):
        name, _, rest = item.strip().partition("(")
        rest = rest.strip().rstrip(")").strip()
        version = rest[1:].strip() if rest.startswith("=") else None
        if name.strip():
            provided.append((name.strip(), version or None))
    return provided


def _arch_applies(restrictions: Sequence[object] | None, arch: str = "amd64") -> bool:
    if not restrictions:
        return True
    enabled = [r for r in restrictions if getattr(r, "enabled", True)]
    if enabled:
        return any(getattr(r, "arch", "") in (arch, "any") for r in enabled)
    return all(getattr(r, "arch", "") != arch for r in restrictions)


def version_satisfies(version: str, op: str | None, wanted: str | None) -> bool:
    """Does `version` satisfy `(op wanted)`? No constraint is always satisfied."""
    if op is None or wanted is None:
        return True
    cmp = version_compare(version, wanted)
    return {
        "<<": cmp < 0,
        "<=": cmp <= 0,
        "=": cmp == 0,
        ">=": cmp >= 0,
        ">>": cmp > 0,
        "<": cmp <= 0,  # obsolete spellings, kept by dpkg with these meanings
        ">": cmp >= 0,
    }.get(op, False)


class PackageUniverse:
    """An archive index, indexed for resolution: real packages and virtual providers."""

    def __init__(self, records: Iterable[PackageRecord], architecture: str = "amd64") -> None:
        self.architecture = architecture
        by_name: dict[str, list[PackageRecord]] = {}
        for record in records:
            if record.architecture in (architecture, "all"):
                by_name.setdefault(record.name, []).append(record)
        newest_first = cmp_to_key(_compare_records)
        for recs in by_name.values():
            if len(recs) > 1:
                recs.sort(key=newest_first)
        self.by_name = by_name
        # virtual name -> [(provider, provided version or None)], providers in name order.
        self.providers: dict[str, list[tuple[PackageRecord, str | None]]] = {}
        for name in sorted(self.by_name):
            for record in self.by_name[name]:
                if record.provides:
                    for provided, version in parse_provides(record.provides):
                        self.providers.setdefault(provided, []).append((record, version))

    def newest(self, name: str) -> PackageRecord | None:
        candidates = self.by_name.get(name)
        return candidates[0] if candidates else None

    def essential(self) -> list[str]:
        """Names of every Essential: yes package (at its newest version), sorted."""
        return sorted(name for name, recs in self.by_name.items() if recs[0].essential)

    def candidates(self, relation: Relation) -> list[PackageRecord]:
        """Packages that satisfy `relation`: real ones newest first, then providers."""
        real = [
            r
            for r in self.by_name.get(relation.name, [])
            if version_satisfies(r.version, relation.op, relation.version)
        ]
        provided = [
            record
            for record, version in self.providers.get(relation.name, [])
            if relation.op is None
            or (version is not None and version_satisfies(version, relation.op, relation.version))
        ]
        provided.sort(key=lambda r: (_PRIORITY_RANK.get(r.priority, 5), r.name))
        return real + [r for r in provided if r not in real]

    def satisfied_by(self, record: PackageRecord, relation: Relation) -> bool:
        """Does the chosen `record` satisfy `relation` (by name or by what it provides)?"""
        if record.name == relation.name:
            return version_satisfies(record.version, relation.op, relation.version)
        return any(
            provider is record
            and (
                relation.op is None
                or (
                    version is not None
                    and version_satisfies(version, relation.op, relation.version)
                )
            )
            for provider, version in self.providers.get(relation.name, [])
        )

    def close_names(self, name: str) -> list[str]:
        known = list(self.by_name) + list(self.providers)
        return difflib.get_close_matches(name, known, n=3, cutoff=0.75)


def _compare_records(a: PackageRecord, b: PackageRecord) -> int:
    # Newest version first; ties broken by architecture and pool path so the order is total.
    cmp = version_compare(b.version, a.version)
    if cmp:
        return cmp
    if (a.architecture, a.filename) == (b.architecture, b.filename):
        return 0
    return -1 if (a.architecture, a.filename) < (b.architecture, b.filename) else 1


def resolve(
    universe: PackageUniverse,
    roots: Sequence[Root],
    prefer: Mapping[str, PackageRecord] | None = None,
) -> Resolution:
    """The Pre-Depends + Depends closure of `roots`.

    `prefer` holds packages chosen elsewhere (the rootfs set when resolving the boot
    set): a dependency they satisfy reuses them. Raises `ValidationErrors` listing
    every unknown root, unsatisfiable dependency (with its chain) and conflict.
    """
    resolution = Resolution()
    problems: list[str] = []
    preferred = dict(prefer or {})
    queue: deque[str] = deque()

    def choose(record: PackageRecord, parent: str | None) -> None:
        if record.name not in resolution.chosen:
            resolution.chosen[record.name] = record
            resolution.parent[record.name] = parent
            queue.append(record.name)

    for root in roots:
        record = preferred.get(root.name) or universe.newest(root.name)
        if record is None:
            providers = universe.candidates(Relation(root.name))
            if len(providers) == 1:
                record = providers[0]
            elif providers:
                names = ", ".join(sorted({p.name for p in providers}))
                problems.append(
                    f"{root.origin}: {root.name!r} is a virtual package; name one of: {names}"
                )
                continue
            else:
                problems.append(_unknown(universe, root))
                continue
        choose(record, None)

    while queue:
        name = queue.popleft()
        record = resolution.chosen[name]
        for field_text in (record.pre_depends, record.depends):
            for group in parse_relations(field_text):
                problem = _satisfy(universe, resolution, preferred, name, group, choose)
                if problem:
                    problems.append(problem)

    problems.extend(_conflicts(universe, resolution))
    if problems:
        raise ValidationErrors(list(dict.fromkeys(problems)))
    return resolution


def _satisfy(
    universe: PackageUniverse,
    resolution: Resolution,
    preferred: Mapping[str, PackageRecord],
    name: str,
    group: tuple[Relation, ...],
    choose: Callable[[PackageRecord, str | None], None],
) -> str:
    """Choose a package for one alternative group of `name`; return a problem or ""."""
    chosen = resolution.chosen
    for relation in group:
        for record in _chosen_candidates(universe, chosen, relation):
            if universe.satisfied_by(record, relation):
                return ""
    for relation in group:
        for record in _chosen_candidates(universe, preferred, relation):
            if universe.satisfied_by(record, relation) and record.name not in chosen:
                choose(record, name)
                return ""
    blocked: list[str] = []
    for relation in group:
        for record in universe.candidates(relation):
            if record.name in chosen:
                # Another version of this name is already chosen and does not fit.
                blocked.append(f"{record.name} {chosen[record.name].version} is already chosen")
                continue
            clash = _clashes_with(universe, record, chosen.values())
            if clash:
                blocked.append(f"conflict: {clash}")
                continue
            choose(record, name)
            return ""
    chain = " -> ".join(resolution.chain(name))
    wanted = " | ".join(str(r) for r in group)
    if blocked:
        reason = "; ".join(dict.fromkeys(blocked))
    elif any(universe.by_name.get(r.name) or universe.providers.get(r.name) for r in group):
        reason = "no version satisfies"
    else:
        reason = "no such package in the archive"
    return f"{chain} -> {wanted}: {reason}"


def _chosen_candidates(
    universe: PackageUniverse, chosen: Mapping[str, PackageRecord], relation: Relation
) -> list[PackageRecord]:
    found = [chosen[relation.name]] if relation.name in chosen else []
    found.extend(
        chosen[provider.name]
        for provider, _version in universe.providers.get(relation.name, [])
        if provider.name in chosen and chosen[provider.name] is provider
    )
    return found


def _negative_relations(record: PackageRecord) -> list[tuple[str, Relation]]:
    out: list[tuple[str, Relation]] = []
    for kind, text in (("conflicts with", record.conflicts), ("breaks", record.breaks)):
        for group in parse_relations(text):
            out.extend((kind, relation) for relation in group)
    return out


def _clash(universe: PackageUniverse, a: PackageRecord, b: PackageRecord) -> str:
    """Why `a` and `b` cannot both be installed, or ""."""
    if a.name == b.name:
        return ""
    for first, second in ((a, b), (b, a)):
        for kind, relation in _negative_relations(first):
            if universe.satisfied_by(second, relation):
                return f"{first.name} {first.version} {kind} {relation} ({second.name} {second.version})"
    return ""


def _clashes_with(
    universe: PackageUniverse, record: PackageRecord, chosen: Iterable[PackageRecord]
) -> str:
    for other in chosen:
        clash = _clash(universe, record, other)
        if clash:
            return clash
    return ""


def _conflicts(universe: PackageUniverse, resolution: Resolution) -> list[str]:
    """Every Conflicts/Breaks that one chosen package declares against another."""
    chosen = resolution.chosen
    problems = []
    for name in sorted(chosen):
        record = chosen[name]
        for kind, relation in _negative_relations(record):
            targets = _chosen_candidates(universe, chosen, relation)
            for other in targets:
                if other is record or not universe.satisfied_by(other, relation):
                    continue
                chains = " and ".join(" -> ".join(resolution.chain(n)) for n in (name, other.name))
                problems.append(
                    f"conflict: {name} {record.version} {kind} {relation} "
                    f"({other.name} {other.version} is chosen); pulled in by {chains}"
                )
    return problems


def _unknown(universe: PackageUniverse, root: Root) -> str:
    close = universe.close_names(root.name)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{root.origin}: unknown package {root.name!r}{hint}"
