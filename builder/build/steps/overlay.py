"""The overlaid, normalised root filesystem tree.

Output `out/tree/`: a copy of the rootfs step's tree (owners, devices, hard
links and xattrs kept) with, in order: the recipe's overlays applied
(`builder.build.steps.overlay_files.apply_overlay`: templates rendered, escapes refused), the
recipe's file rules applied, and the tree normalised
(`builder.build.steps.normalize.normalize_tree`: logs, caches, host identity, bytecode
removed; mtimes clamped). Files written by overlays are never removed by
normalisation, so an overlay may ship its own /etc/hostname or /etc/hosts.

Info: {"overlay_files": [tree paths written by overlays],
       "file_rules": [tree paths changed by file rules],
       "normalized": [tree paths removed or rewritten by normalisation]}.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from builder.build.filelist import FILE_LIST_NAME, file_list_bytes
from builder.build.steps.base import BuildContext, StepOutput, tools_sandbox
from builder.build.steps.normalize import normalize_tree
from builder.build.steps.overlay_files import (
    apply_file_rules,
    apply_overlay,
    copy_tree,
    overlay_digest,
)
from builder.core.errors import BuildError, InputError
from builder.core.fsutil import write_atomic
from builder.source.recipe import Recipe


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


class OverlayStep:
    name: ClassVar[str] = "overlay"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "rootfs")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> dict[str, Any]:
        recipe = ctx.recipe
        return {
            "overlays": [
                {"path": _shown_overlay(recipe, path), "digest": overlay_digest(path)}
                for path in recipe.overlays
            ],
            "variables": _plain(template_variables(recipe)),
            "files": [
                {"path": r.path, "mode": r.mode, "owner": r.owner, "group": r.group}
                for r in recipe.files
            ],
        }

    def run(self, ctx: BuildContext, inputs: Mapping[str, StepOutput], out: Path) -> dict[str, Any]:
        recipe = ctx.recipe
        source = inputs["rootfs"].path / "tree"
        if not source.is_dir():
            raise BuildError(f"step overlay: the rootfs step produced no tree at {source}")
        tree = out / "tree"
        ctx.report("copying the root filesystem")
        copy_tree(tools_sandbox(ctx, inputs), source, tree)
        variables = template_variables(recipe)
        written: list[str] = []
        for overlay in recipe.overlays:
            shown = _shown_overlay(recipe, overlay)
            ctx.report(f"applying overlay {shown}")
            written += apply_overlay(overlay, tree, variables, shown)
        ruled = apply_file_rules(tree, recipe.files, recipe.path.name)
        ctx.report("normalising the root filesystem")
        changed = normalize_tree(
            tree,
            ctx.source_date_epoch,
            keep={*written, *ruled},
            forbidden=[str(ctx.scratch), str(out), *(str(p) for p in recipe.overlays)],
        )
        # The published file list is made here, once: a cached overlay output (verified
        # on every use) then carries it, and a no-change rebuild need not list the tree.
        write_atomic(out / FILE_LIST_NAME, file_list_bytes(tree))
        return {
            "overlay_files": sorted(set(written)),
            "file_rules": ruled,
            "normalized": changed,
        }


def _plain(value: Any) -> Any:
    """Variables as plain JSON (the recipe freezes them into read-only mappings and tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
