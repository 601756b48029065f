"""The one interface every pipeline step implements.

A step is a pure function of its inputs: the outputs of the earlier steps it
`requires`, plus its `options` (which must name, by digest, every outside file
it reads: locked .debs, overlay trees, keys). A step that runs a program
requires "tools" and runs it from that tree through `tools_sandbox`, never from
the host. Its id, sha256 over canonical JSON of (name, version, options, input
content digests, SOURCE_DATE_EPOCH, boothkey's source), is both the cache key
and the audit trail written into the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from builder.core.sandbox import Sandbox
from builder.source.lockfile import Lock, LockedPackage
from builder.source.recipe import Recipe


@dataclass(frozen=True)
class BuildContext:
    """What every step may read besides its inputs. Steps never touch the network."""

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
    """A finished step: its files under `path`, and JSON facts in `info`."""

    name: str
    step_id: str
    path: Path
    info: Mapping[str, Any]
    content_digest: str  # sha256 over the listing of `path` (see stepcache.tree_digest)


def tools_sandbox(ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> Sandbox:
    """The sandbox running programs from the tools tree (a step that runs any program
    requires "tools", so the tree's content digest is part of its id)."""
    return Sandbox(inputs["tools"].path / "tree", ctx.scratch)


class Step(Protocol):
    name: ClassVar[str]
    # Bump when the step's code changes what it produces, so old cache entries stop matching.
    version: ClassVar[int]
    requires: ClassVar[tuple[str, ...]]

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> dict[str, Any]:
        """JSON-able options that, with the input ids, decide the output completely.

        Also receives the inputs' facts: a step whose behaviour depends on an
        earlier step's info (a root hash, say) may copy it here, but the input
        ids already cover it.
        """
        ...

    def run(self, ctx: BuildContext, inputs: Mapping[str, StepOutput], out: Path) -> dict[str, Any]:
        """Write the step's files into the empty directory `out`; return JSON facts."""
        ...
