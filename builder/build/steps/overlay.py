"""The overlaid, normalised root filesystem tree.

Output `out/tree/`: a copy of the rootfs step's tree (owners, devices, hard
links and xattrs kept) with, in order: the recipe's overlays applied
(`builder.build.steps.overlay_files.apply_overlay`: templates rendered, escapes refused), the
recipe's file rules applied, and the tree normalised
(`builder.build.steps.normalize.normalize_tree`: logs, caches, host identity, bytecode
removed; mtimes clamped). Files written by overlays are never removed by
normalisation, so an overlay may ship its own /etc/hostname or /etc/hosts.

Facts: OverlayFacts, the tree paths written by overlays, changed by file rules,
and removed or rewritten by normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from builder.build.filelist import FILE_LIST_NAME, file_list_bytes
from builder.build.steps.base import BuildContext, StepEnv, StepOutput, covered_by, tools_sandbox
from builder.build.steps.normalize import normalize_tree
from builder.build.steps.overlay_files import (
    apply_file_rules,
    apply_overlay,
    copy_tree,
    overlay_digest,
)
from builder.core.errors import BuildError, InputError
from builder.core.fsutil import write_atomic
from builder.source.recipe import FileRule, Recipe


def template_variables(recipe: Recipe) -> dict[str, Any]:
    """What overlay templates see: the recipe's variables plus `recipe` (name, version)."""
    if "recipe" in recipe.variables:
        raise InputError(
            f"{recipe.path.name}: variables.recipe: the name `recipe` is reserved for "
            "templates ({{ recipe.name }}, {{ recipe.version }})"
        )
    return {**recipe.variables, "recipe": {"name": recipe.name, "version": recipe.version}}


def _shown_overlay(recipe: Recipe, overlay: Path) -> str:
    # Relative to the project, so neither messages nor step ids carry the checkout path.
    try:
        return overlay.relative_to(recipe.project_dir).as_posix()
    except ValueError:
        return overlay.name


@dataclass(frozen=True)
class OverlaySource:
    """An overlay directory: shown relative to the project (so neither messages nor ids
    carry the checkout's path), its content covered by `digest`."""

    path: str
    digest: str
    source: Path = covered_by("digest")


@dataclass(frozen=True)
class OverlayOptions:
    overlays: tuple[OverlaySource, ...]
    variables: Mapping[str, Any]
    files: tuple[FileRule, ...]
    recipe_file: str  # the recipe's file name, for messages about file rules


@dataclass(frozen=True)
class OverlayFacts:
    overlay_files: tuple[str, ...]
    file_rules: tuple[str, ...]
    normalized: tuple[str, ...]


class OverlayStep:
    name: ClassVar[str] = "overlay"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "rootfs")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> OverlayOptions:
        recipe = ctx.recipe
        return OverlayOptions(
            overlays=tuple(
                OverlaySource(_shown_overlay(recipe, path), overlay_digest(path), path)
                for path in recipe.overlays
            ),
            variables=template_variables(recipe),
            files=recipe.files,
            recipe_file=recipe.path.name,
        )

    def run(
        self, options: OverlayOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> OverlayFacts:
        source = inputs["rootfs"].path / "tree"
        if not source.is_dir():
            raise BuildError(f"step overlay: the rootfs step produced no tree at {source}")
        tree = out / "tree"
        env.report("copying the root filesystem")
        copy_tree(tools_sandbox(env, inputs), source, tree)
        written: list[str] = []
        for overlay in options.overlays:
            env.report(f"applying overlay {overlay.path}")
            written += apply_overlay(overlay.source, tree, options.variables, overlay.path)
        ruled = apply_file_rules(tree, options.files, options.recipe_file)
        env.report("normalising the root filesystem")
        changed = normalize_tree(
            tree,
            env.source_date_epoch,
            keep={*written, *ruled},
            forbidden=[str(env.scratch), str(out), *(str(o.source) for o in options.overlays)],
        )
        # The published file list is made here, once: a cached overlay output (verified
        # on every use) then carries it, and a no-change rebuild need not list the tree.
        write_atomic(out / FILE_LIST_NAME, file_list_bytes(tree))
        return OverlayFacts(tuple(sorted(set(written))), tuple(ruled), tuple(changed))
