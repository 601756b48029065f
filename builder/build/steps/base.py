"""The one interface every pipeline step implements.

A step is a pure function of what it declares, in the way of osbuild's stages:

- `options(ctx, inputs)` gathers, from the recipe and the lock, everything the
  step will read besides its inputs, as a frozen dataclass (its *options*): the
  locked .debs it unpacks, the overlay trees and keys it reads (each with the
  digest of its content), the numbers it uses. It is the only method that sees
  the recipe and the lock.
- `run(options, inputs, env, out)` receives those options, the outputs of the
  earlier steps it `requires` (nothing else), and a `StepEnv` holding only what
  cannot change its output: a scratch directory, a progress line, the epoch, and
  a .deb store that hands out exactly the packages named in its options. It
  writes its files into `out` and returns its *facts*, a frozen dataclass.

The id, sha256 over canonical JSON of (name, version, options as JSON, input
content digests, SOURCE_DATE_EPOCH, boothkey's source), is therefore computed
from exactly what `run` receives. A field `run` reads but that is not itself in
the JSON (a path to an overlay, say) must say which field covers its content
(`covered_by`); `options_json` refuses anything else. A step that runs a program
requires "tools" and runs it from that tree through `tools_sandbox`, never from
the host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from builder.core.errors import BuildError
from builder.core.sandbox import Sandbox
from builder.core.typedjson import SKIP, TypedJsonError, from_json, to_json
from builder.source.lockfile import Lock, LockedPackage
from builder.source.recipe import Recipe

T = TypeVar("T")


@dataclass(frozen=True)
class BuildContext:
    """What a step's `options` may read: the whole build's inputs. Never the network."""

    recipe: Recipe
    lock: Lock
    source_date_epoch: int
    deb_path: Callable[[LockedPackage], Path]  # a verified .deb from the cache
    scratch: Path  # a private scratch directory, removed after the build
    report: Callable[[str], None]  # one line of progress for the user
    # An observer's rebuild without the private key: the published Secure Boot
    # signature (a PE certificate table) the sbsign step attaches instead of signing.
    secure_boot_signature: bytes | None = None


@dataclass(frozen=True)
class StepOutput:
    """A finished step: its files under `path`, and its facts as JSON in `info`."""

    name: str
    step_id: str
    path: Path
    info: Mapping[str, Any]
    content_digest: str  # sha256 over the listing of `path` (see stepcache.tree_digest)

    def facts(self, cls: type[T]) -> T:
        """`info` read back as the producing step's facts class."""
        try:
            return from_json(cls, dict(self.info), f"step {self.name} facts")
        except TypedJsonError as exc:
            raise BuildError(f"{exc} (cache entry {self.step_id})") from exc


class DebStore:
    """The verified .debs a step may read: exactly the packages its options name."""

    def __init__(
        self, step: str, declared: frozenset[LockedPackage], path: Callable[[LockedPackage], Path]
    ) -> None:
        self._step = step
        self._declared = declared
        self._path = path

    def __call__(self, package: LockedPackage) -> Path:
        if package not in self._declared:
            raise BuildError(
                f"step {self._step}: reads {package.name} {package.version}, "
                "which its options do not name (so its id would not cover it)"
            )
        return self._path(package)


@dataclass(frozen=True)
class StepEnv:
    """What `run` gets besides its options and inputs: nothing that decides the output
    but the epoch, which every id covers."""

    step: str
    source_date_epoch: int
    scratch: Path  # a private scratch directory, removed after the build
    report: Callable[[str], None]
    deb_path: DebStore


def covered_by(digest_field: str) -> Any:
    """A dataclass field `run` reads that stays out of the id's JSON because the field
    `digest_field` (in the same options) covers its content."""
    return field(metadata={SKIP: digest_field})


def options_json(options: Any) -> dict[str, Any]:
    """A step's options as the JSON its id covers. Every field is in it, but those
    marked `covered_by` an existing field; a value that is not plain data (a Path,
    bytes) outside such a field is a programming error."""
    for value in _nested(options):
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            continue
        names = {f.name for f in dataclasses.fields(value)}
        for item in dataclasses.fields(value):
            cover = item.metadata.get(SKIP)
            if cover is not None and (cover not in names or cover == item.name):
                raise TypeError(
                    f"{type(value).__name__}.{item.name}: covered by {cover!r}, not a field"
                )
    encoded = to_json(options)
    if not isinstance(encoded, dict):
        raise TypeError(f"step options must be a dataclass, not {type(options).__name__}")
    return encoded


def declared_packages(options: Any) -> frozenset[LockedPackage]:
    """Every locked .deb named anywhere in `options`."""
    return frozenset(value for value in _nested(options) if isinstance(value, LockedPackage))


def _nested(value: Any) -> Iterator[Any]:
    """`value`, then everything inside it: dataclass fields, tuple and list items."""
    yield value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _nested(getattr(value, item.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _nested(item)


@dataclass(frozen=True)
class DebInput:
    """A locked .deb a step unpacks: its id covers name, version, architecture and
    sha256 (not the sets or suite it was locked in)."""

    name: str
    version: str
    architecture: str
    sha256: str
    package: LockedPackage = covered_by("sha256")

    @classmethod
    def of(cls, package: LockedPackage) -> DebInput:
        return cls(package.name, package.version, package.architecture, package.sha256, package)


def deb_inputs(packages: tuple[LockedPackage, ...] | list[LockedPackage]) -> tuple[DebInput, ...]:
    """`packages` as step inputs, in the order the lock lists them by name."""
    return tuple(DebInput.of(p) for p in sorted(packages, key=lambda p: (p.name, p.architecture)))


def tools_sandbox(env: StepEnv, inputs: Mapping[str, StepOutput]) -> Sandbox:
    """The sandbox running programs from the tools tree (a step that runs any program
    requires "tools", so the tree's content digest is part of its id)."""
    return Sandbox(inputs["tools"].path / "tree", env.scratch)


Opts = TypeVar("Opts")
F = TypeVar("F", covariant=True)


class Step(Protocol[Opts, F]):
    name: ClassVar[str]
    # Bump when the step's code changes what it produces, so old cache entries stop matching.
    version: ClassVar[int]
    requires: ClassVar[tuple[str, ...]]

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> Opts:
        """Everything `run` reads besides its inputs (a frozen dataclass).

        Also receives the inputs' facts: a step whose behaviour depends on an
        earlier step's facts (a root hash, say) may copy them here; the input
        ids already cover them.
        """
        ...

    def run(self, options: Opts, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path) -> F:
        """Write the step's files into the empty directory `out`; return its facts."""
        ...


def facts_json(facts: Any) -> dict[str, Any]:
    """A step's facts (a dataclass) as the JSON the cache and the manifest keep."""
    encoded = to_json(facts)
    if not isinstance(encoded, dict):
        raise TypeError(f"step facts must be a dataclass, not {type(facts).__name__}")
    return encoded
