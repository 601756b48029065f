"""Comparing a rebuild with a published build, and saying what differs in plain words.

Two inputs are compared: the two manifests (image, partitions, boot and
verity facts, packages, sources, and every step's content digest, in pipeline
order; typed `Manifest`s, so nothing is missing) and the two root filesystem file lists (`NAME.files.json`, written by
`build` beside the manifest: the `tree_listing` of the overlay step's tree,
with mtimes). Comparison is pure: manifests and file lists in, a `Comparison` out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.build.manifest import Manifest, ManifestPackage, PartitionInfo, StepRecord
from builder.core.canonical import canonical_json

# How many differing files the text report names before summarising the rest.
SHOWN_FILES = 40
_ENTRY_KEYS = ("type", "mode", "uid", "gid", "size", "sha256", "target", "device", "mtime")


@dataclass(frozen=True)
class ComparedValue:
    """One compared fact. `ok` False means the rebuild differs (or could not be checked)."""

    name: str
    ok: bool
    published: str = ""
    rebuilt: str = ""
    note: str = ""

    def line(self) -> str:
        if self.ok:
            shown = f" ({self.note})" if self.note else ""
            return f"  same       {self.name}: {_short(self.published)}{shown}"
        if self.note and not (self.published or self.rebuilt):
            return f"  DIFFERENT  {self.name}: {self.note}"
        extra = f"; {self.note}" if self.note else ""
        return (
            f"  DIFFERENT  {self.name}: published {_short(self.published)}, "
            f"rebuilt {_short(self.rebuilt)}{extra}"
        )


@dataclass(frozen=True)
class FileDifference:
    """One root filesystem entry that differs: `kind` is "only-published",
    "only-rebuilt" or "changed" (then `fields` maps key -> (published, rebuilt))."""

    path: str
    kind: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "only-published":
            return f"/{self._shown()}: only in the published image"
        if self.kind == "only-rebuilt":
            return f"/{self._shown()}: only in the rebuilt image"
        parts = [
            f"{key} {_value(key, a)} -> {_value(key, b)}" for key, (a, b) in self.fields.items()
        ]
        return f"/{self._shown()}: " + ", ".join(parts)

    def _shown(self) -> str:
        return "" if self.path == "." else self.path

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "fields": {key: list(pair) for key, pair in self.fields.items()},
        }


@dataclass(frozen=True)
class StepDivergence:
    """The first step whose output differs, and what differs among what decides it
    (its inputs' content digests, its options, the tools packages, boothkey's source)."""

    name: str
    published: str
    rebuilt: str
    causes: tuple[str, ...] = ()


@dataclass
class Comparison:
    """The whole result. `ok` is True only if every check passed."""

    name: str
    version: str
    checks: list[ComparedValue] = field(default_factory=list)
    first_diverging_step: StepDivergence | None = None
    file_differences: list[FileDifference] | None = None  # None: lists not compared
    notes: list[str] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)  # diffoscope reports written

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and not self.file_differences

    def to_text(self) -> str:
        lines = [f"Rebuild of {self.name} {self.version} compared with the published build:"]
        lines += [check.line() for check in self.checks]
        step = self.first_diverging_step
        if step is not None:
            lines.append("")
            lines.append(
                f"First diverging step: {step.name} (content digest published "
                f"{_short(step.published)}, rebuilt {_short(step.rebuilt)}); "
                "every step before it gave the same output."
            )
            lines.append(f"What differs among what decides the {step.name} step's output:")
            lines += [f"  {cause}" for cause in step.causes]
        if self.file_differences:
            differences = self.file_differences
            lines.append("")
            lines.append(f"Files that differ in the root filesystem ({len(differences)}):")
            lines += [f"  {d.describe()}" for d in differences[:SHOWN_FILES]]
            if len(differences) > SHOWN_FILES:
                lines.append(f"  ... and {len(differences) - SHOWN_FILES} more (see report.json)")
        elif self.file_differences == [] and not self.ok:
            lines.append("")
            lines.append(
                "The root filesystem's files are the same (path, type, mode, owner, size, content, link, time)."
            )
        if self.notes:
            lines.append("")
            lines += [f"Note: {note}" for note in self.notes]
        if self.reports:
            lines.append("")
            lines += [f"diffoscope report: {path}" for path in self.reports]
        lines.append("")
        if self.ok:
            lines.append("Result: SAME. The rebuilt image is bit-for-bit the published image.")
        else:
            lines.append("Result: DIFFERENT. The rebuilt image does not match the published build.")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        step = self.first_diverging_step
        return {
            "name": self.name,
            "version": self.version,
            "same": self.ok,
            "checks": [
                {
                    "name": c.name,
                    "ok": c.ok,
                    "published": c.published,
                    "rebuilt": c.rebuilt,
                    "note": c.note,
                }
                for c in self.checks
            ],
            "first_diverging_step": None
            if step is None
            else {
                "name": step.name,
                "published": step.published,
                "rebuilt": step.rebuilt,
                "causes": list(step.causes),
            },
            "file_differences": None
            if self.file_differences is None
            else [d.to_json() for d in self.file_differences],
            "notes": list(self.notes),
            "reports": [str(path) for path in self.reports],
        }


def compare_manifests(published: Manifest, rebuilt: Manifest) -> Comparison:
    """Compare two manifests: everything that decides or describes the image bytes.

    boothkey's version and source, step ids, and the "bundle" and "files" entries
    are not differences of the image; the first diverging step is explained by
    what differs among its own inputs, options and tools.
    """
    result = Comparison(published.name, published.version)
    checks = result.checks
    image_a, image_b = published.image, rebuilt.image
    checks.append(
        _check(
            "image",
            image_a.sha256,
            image_b.sha256,
            f"{image_a.size} bytes"
            if image_a.size == image_b.size
            else f"size {image_a.size} -> {image_b.size} bytes",
        )
    )
    checks += _partition_checks(published.partitions, rebuilt.partitions)
    checks.append(_check("UKI sha256", published.uki_sha256, rebuilt.uki_sha256))
    checks.append(_check("UKI cmdline", published.cmdline, rebuilt.cmdline))
    checks.append(_check("verity root hash", published.verity.root_hash, rebuilt.verity.root_hash))
    others = ("salt", "data_blocks", "data_block_size", "hash_block_size", "hash_algorithm")
    checks.append(
        _check(
            "verity parameters",
            _text({k: getattr(published.verity, k) for k in others}),
            _text({k: getattr(rebuilt.verity, k) for k in others}),
        )
    )
    checks += _source_checks(published, rebuilt)
    result.first_diverging_step = _step_checks(published, rebuilt, result)
    result.notes += _version_notes(published, rebuilt)
    return result


def compare_file_lists(
    published: list[dict[str, Any]], rebuilt: list[dict[str, Any]]
) -> list[FileDifference]:
    """Every entry that differs between two file lists, in path order."""
    left = {str(entry.get("path")): entry for entry in published}
    right = {str(entry.get("path")): entry for entry in rebuilt}
    differences = []
    for path in sorted(left.keys() | right.keys(), key=lambda p: p.encode()):
        a, b = left.get(path), right.get(path)
        if b is None:
            differences.append(FileDifference(path, "only-published"))
        elif a is None:
            differences.append(FileDifference(path, "only-rebuilt"))
        else:
            fields = {
                key: (a.get(key), b.get(key)) for key in _ENTRY_KEYS if a.get(key) != b.get(key)
            }
            if fields:
                differences.append(FileDifference(path, "changed", fields))
    return differences


def _check(name: str, published: str, rebuilt: str, note: str = "") -> ComparedValue:
    return ComparedValue(name, published == rebuilt, published, rebuilt, note)


_PLACEMENT = ("type", "uuid", "offset", "size")


def _partition_checks(
    published: tuple[PartitionInfo, ...], rebuilt: tuple[PartitionInfo, ...]
) -> list[ComparedValue]:
    checks = []
    theirs = {p.name: p for p in rebuilt}
    names = {p.name for p in published}
    for part in published:
        other = theirs.get(part.name)
        name = f"partition {part.name}"
        if other is None:
            checks.append(ComparedValue(name, False, note="not in the rebuilt image"))
            continue
        moved = [
            f"{key} {getattr(part, key)} -> {getattr(other, key)}"
            for key in _PLACEMENT
            if getattr(part, key) != getattr(other, key)
        ]
        note = "placement differs: " + ", ".join(moved) if moved else ""
        same = part.sha256 == other.sha256 and not moved
        checks.append(ComparedValue(name, same, part.sha256, other.sha256, note))
    for extra in theirs:
        if extra not in names:
            checks.append(
                ComparedValue(f"partition {extra}", False, note="only in the rebuilt image")
            )
    return checks


def _source_checks(published: Manifest, rebuilt: Manifest) -> list[ComparedValue]:
    """What the build was made from: if these differ, the rebuild used other sources."""
    packages_a = [_package(p) for p in published.packages]
    packages_b = [_package(p) for p in rebuilt.packages]
    changed = sorted(set(packages_a) ^ set(packages_b))
    return [
        _check("recipe file", published.recipe_sha256, rebuilt.recipe_sha256),
        _check("overlays", published.overlays_sha256, rebuilt.overlays_sha256),
        _check("lock file", published.lock_sha256, rebuilt.lock_sha256),
        _check(
            "SOURCE_DATE_EPOCH", str(published.source_date_epoch), str(rebuilt.source_date_epoch)
        ),
        ComparedValue(
            "packages",
            not changed,
            f"{len(packages_a)} packages",
            f"{len(packages_b)} packages",
            "" if not changed else "differing: " + ", ".join(changed[:10]),
        ),
    ]


def _package(package: ManifestPackage) -> str:
    return f"{package.name} {package.version} {package.architecture} {package.sha256[:12]}"


def _step_checks(
    published: Manifest, rebuilt: Manifest, result: Comparison
) -> StepDivergence | None:
    theirs = {step.name: step for step in rebuilt.steps}
    first: StepDivergence | None = None
    ids_differ = []
    for step in published.steps:
        other = theirs.get(step.name)
        a = step.content_digest
        b = other.content_digest if other is not None else ""
        same = a == b
        result.checks.append(
            ComparedValue(
                f"step {step.name}", same, a, b, "" if other is not None else "step did not run"
            )
        )
        if not same and first is None:
            causes = (
                step_causes(step, other, published, rebuilt)
                if other is not None
                else ["the rebuild did not run this step"]
            )
            first = StepDivergence(step.name, a, b, tuple(causes))
        if other is not None and step.id != other.id:
            ids_differ.append(step.name)
    if ids_differ and not _same_source(published, rebuilt):
        result.notes.append(
            "step ids differ for " + ", ".join(ids_differ) + ": a step id also covers "
            "boothkey's own source, and the rebuild ran another boothkey source; "
            "only the content digests above must match"
        )
    return first


def step_causes(
    step: StepRecord, other: StepRecord, published: Manifest, rebuilt: Manifest
) -> list[str]:
    """Plain-words reasons why one step's output differs between two builds: which of
    its inputs (by content digest; for the tools tree, which packages), which options,
    or else boothkey's source, or else the step itself is not deterministic."""
    causes: list[str] = []
    for name in sorted(step.inputs.keys() | other.inputs.keys()):
        a, b = step.inputs.get(name), other.inputs.get(name)
        if a == b:
            continue
        causes.append(
            f"input {name}: content digest published {_short(a or '')}, rebuilt {_short(b or '')}"
        )
        if name == "tools":
            causes += [f"  tools {line}" for line in _tools_differences(published, rebuilt)]
    for key in sorted(step.options.keys() | other.options.keys()):
        if step.options.get(key) != other.options.get(key):
            causes.append(
                f"option {key}: published {_brief(step.options.get(key))}, "
                f"rebuilt {_brief(other.options.get(key))}"
            )
    if causes:
        return causes
    if not _same_source(published, rebuilt):
        return [
            "its inputs, options and tools are the same, but another boothkey source ran it "
            f"(code digest published {_short(published.code_sha256)}, "
            f"rebuilt {_short(rebuilt.code_sha256)})"
        ]
    return [
        "its inputs, options, tools and boothkey source are all the same: the step itself "
        "is not deterministic on one of the two machines (please report this)"
    ]


def _tools_differences(published: Manifest, rebuilt: Manifest) -> list[str]:
    """Tools packages that differ between two manifests, e.g. "libzstd1 1.5.4 -> 1.5.7"."""
    tools_a = {tool.name: tool for tool in published.tools}
    tools_b = {tool.name: tool for tool in rebuilt.tools}
    lines = []
    for name in sorted(tools_a.keys() | tools_b.keys()):
        a, b = tools_a.get(name), tools_b.get(name)
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"{name}: only in the {'rebuilt' if a is None else 'published'} build")
        elif a.version != b.version:
            lines.append(f"{name}: {a.version} -> {b.version}")
        else:
            lines.append(f"{name} {a.version}: another .deb (sha256 differs)")
    return lines or ["(the manifests list the same tools packages)"]


def _same_source(published: Manifest, rebuilt: Manifest) -> bool:
    return published.code_sha256 == rebuilt.code_sha256


def _version_notes(published: Manifest, rebuilt: Manifest) -> list[str]:
    """What ran differently without being a difference by itself: another boothkey
    version, other tools packages (they matter only where an output differs)."""
    notes = []
    if published.boothkey != rebuilt.boothkey:
        notes.append(
            f"boothkey version differs: published {published.boothkey}, rebuilt {rebuilt.boothkey}"
        )
    if published.tools != rebuilt.tools:
        notes.append(
            "the tools packages differ ("
            + "; ".join(_tools_differences(published, rebuilt))
            + "); only the outputs above decide whether the builds are the same"
        )
    return notes


def _brief(value: Any, limit: int = 200) -> str:
    text = _text(value) if value is not None else "(none)"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return canonical_json(value).decode()


def _short(value: str) -> str:
    # Digests are shown in full: an observer compares them with other people's.
    return value if value else "(none)"


def _value(key: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if key == "mode" and isinstance(value, int):
        return oct(value)
    return str(value)
