"""Build contexts for step tests: fake .debs locked as a lock file would, and a
`BuildContext` around them (offline; no archive, no network)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archive_factory import FIXED_EPOCH, FakeDeb
from lock_factory import archive, lock, package_of

from builder.build.pipeline import execute_step
from builder.build.steps.base import BuildContext, Step, StepOutput, options_json
from builder.core.sandbox import Sandbox
from builder.source.lockfile import LockedPackage
from builder.source.recipe import Recipe


def locked(name: str, version: str, arch: str, deb: Path) -> LockedPackage:
    """`deb` as a lock lists it: its size and sha256, a pool path, in the rootfs set."""
    return package_of(deb, name=name, version=version, architecture=arch)


def locked_fake(deb: FakeDeb) -> LockedPackage:
    """A fake .deb from archive_factory, locked (see `locked`)."""
    return package_of(deb)


def make_context(
    recipe: Recipe,
    debs: Mapping[LockedPackage, Path],
    scratch: Path,
    epoch: int = FIXED_EPOCH,
) -> BuildContext:
    """A context for `recipe` whose lock holds exactly `debs` (each read from its path)."""
    scratch.mkdir(parents=True, exist_ok=True)
    return BuildContext(
        recipe=recipe,
        lock=lock(
            debs,
            recipe_name=recipe.name,
            package_set_digest=recipe.package_set_digest(),
            epoch=epoch,
            base=archive("stable"),
        ),
        source_date_epoch=epoch,
        deb_path=lambda package: debs[package],
        scratch=scratch,
        report=lambda line: None,
    )


# The host's own / stands in for the tools tree in step tests: it has usr/ and etc/, and
# ./setup installs the same Debian tools there (the real tree is tested in test_tools.py
# and by the slow builds).
HOST_TOOLS_TREE = Path("/")


def host_tools(scratch: Path) -> Sandbox:
    """A sandbox running the host's own tools (see `HOST_TOOLS_TREE`)."""
    return Sandbox(HOST_TOOLS_TREE, scratch)


def host_tools_output(directory: Path) -> StepOutput:
    """A finished "tools" step whose tree is the host's / (through a symlink), as a
    step's ``inputs["tools"]``."""
    directory.mkdir(parents=True, exist_ok=True)
    tree = directory / "tree"
    if not tree.is_symlink():
        tree.symlink_to(HOST_TOOLS_TREE)
    return StepOutput(
        name="tools", step_id="host-tools", path=directory, info={}, content_digest="0" * 64
    )


def run_step(
    step: Step[Any, Any], ctx: BuildContext, inputs: Mapping[str, StepOutput], out: Path
) -> dict[str, Any]:
    """Run `step` as the pipeline does (its options, then run with only those); its facts
    as JSON."""
    return execute_step(ctx, step, step.options(ctx, inputs), inputs, out)


def options_of(
    step: Step[Any, Any], ctx: BuildContext, inputs: Mapping[str, StepOutput]
) -> dict[str, Any]:
    """`step`'s options as the JSON its id covers."""
    return options_json(step.options(ctx, inputs))
