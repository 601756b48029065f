"""`build`: from a locked recipe to NAME.img + NAME.manifest.json, offline."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import __version__
from builder.build.documents import write_sbom_and_provenance
from builder.build.filelist import FILE_LIST_NAME, FILE_LIST_STEP
from builder.build.manifest import MANIFEST_FORMAT, VerityInfo, package_entry, write_manifest
from builder.build.pipeline import PlannedStep, StepRun, code_digest, plan, run_pipeline
from builder.build.stepcache import StepCache
from builder.build.steps.base import BuildContext
from builder.build.steps.disk import DiskFacts
from builder.build.steps.overlay_files import overlay_digest
from builder.build.steps.sbsign import SbsignFacts
from builder.build.steps.tools import ToolsFacts
from builder.build.steps.uki import UkiFacts
from builder.build.steps.verity import VerityFacts
from builder.core.canonical import sha256_file, sha256_json
from builder.core.errors import BuildError
from builder.core.fsutil import atomic_path
from builder.core.paths import deb_cache_dir, step_cache_dir
from builder.core.typedjson import to_json
from builder.source.debcache import DebCache
from builder.source.lockfile import Lock, check_tools, load_lock_for
from builder.source.recipe import Recipe


@dataclass(frozen=True)
class BuildResult:
    image: Path
    manifest: Path
    steps: dict[str, StepRun]
    manifest_data: dict[str, Any]


def overlays_digest(recipe: Recipe) -> str:
    # What the overlay step reads (exec bits, content, links), not the checkout's owners,
    # umask-dependent modes or times: an observer's fresh checkout must give the same value.
    return sha256_json([overlay_digest(path) for path in recipe.overlays])


def build_image(
    recipe: Recipe,
    out_dir: Path,
    cache_dir: Path,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    lock: Lock | None = None,
    *,
    secure_boot_signature: bytes | None = None,
) -> BuildResult:
    """Build the recipe's image into `out_dir`, reusing cached steps from `cache_dir`.

    `secure_boot_signature`: a published Secure Boot signature to attach to the UKI
    instead of signing it (an observer's rebuild; see builder/build/steps/sbsign.py).
    """
    lock = lock or load_lock_for(recipe)
    check_tools(lock, recipe)
    debs = DebCache(deb_cache_dir(cache_dir))
    debs.require_present(lock.packages)  # fail before any work; content is verified on use
    steps_cache = StepCache(step_cache_dir(cache_dir))
    planned = plan(recipe)
    # Every step output this build uses stays locked against `cache prune` until the
    # outputs are written.
    with steps_cache.session():
        return _build_in_session(
            recipe,
            lock,
            out_dir,
            cache_dir,
            debs,
            steps_cache,
            planned,
            report,
            secure_boot_signature,
        )


def _build_in_session(
    recipe: Recipe,
    lock: Lock,
    out_dir: Path,
    cache_dir: Path,
    debs: DebCache,
    steps_cache: StepCache,
    planned: list[PlannedStep],
    report: Callable[[str], None],
    secure_boot_signature: bytes | None,
) -> BuildResult:
    with tempfile.TemporaryDirectory(prefix="boothkey-build-") as scratch:
        ctx = BuildContext(
            recipe=recipe,
            lock=lock,
            source_date_epoch=lock.source_date_epoch,
            deb_path=debs.verified_path,
            scratch=Path(scratch),
            report=report,
            secure_boot_signature=secure_boot_signature,
        )

        def on_step(index: int, total: int, name: str, sid: str) -> None:
            report(f"[{index}/{total}] {name} ({sid[:12]})")

        results = run_pipeline(ctx, planned, steps_cache, on_step)
    disk = results["disk"].output
    image_name = f"{recipe.name}.img"
    image_path = out_dir / image_name
    manifest_path = out_dir / f"{recipe.name}.manifest.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The outputs are one set and the manifest is its commit record: it goes first and
    # comes back last, so a build killed in between leaves no manifest beside outputs
    # of another build (every reader starts from the manifest, which pins the rest).
    manifest_path.unlink(missing_ok=True)
    with atomic_path(image_path) as tmp:
        shutil.copyfile(disk.path / "image.img", tmp)
        if sha256_file(tmp) != disk.facts(DiskFacts).sha256:
            raise BuildError(f"{image_path}: copy does not match the built image")
    manifest = make_manifest(recipe, lock, results, image_name)
    # The root filesystem's file list, published beside the manifest so an observer's
    # rebuild can name the files that differ; the manifest pins it by digest.
    files_name = f"{recipe.name}.files.json"
    manifest["files"] = {
        "file": files_name,
        "step": FILE_LIST_STEP,
        "sha256": copy_output(
            results[FILE_LIST_STEP].output.path / FILE_LIST_NAME, out_dir / files_name
        ),
    }
    # SPDX SBOM and SLSA provenance beside the image, pinned in the manifest by digest.
    write_sbom_and_provenance(
        manifest, lock, out_dir, debs.verified_path, cache_dir / "copyright", image_path
    )
    write_manifest(manifest_path, manifest)
    return BuildResult(image_path, manifest_path, results, manifest)


def copy_output(source: Path, target: Path) -> str:
    """Copy a (verified) step output file to `target` atomically; return its sha256."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        return sha256_file(tmp)


def make_manifest(
    recipe: Recipe, lock: Lock, results: dict[str, StepRun], image_name: str
) -> dict[str, Any]:
    disk = results["disk"].output.facts(DiskFacts)
    uki = results["uki"].output.facts(UkiFacts)
    secure_boot = results["sbsign"].output.facts(SbsignFacts) if "sbsign" in results else None
    verity = results["verity"].output.facts(VerityFacts)
    tools = results["tools"].output.facts(ToolsFacts)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": recipe.name,
        "version": recipe.version,
        "boothkey": __version__,
        "recipe": {
            "file": str(recipe.path.relative_to(recipe.project_dir)),
            "sha256": sha256_file(recipe.path),
            "package_set_digest": recipe.package_set_digest(),
        },
        "supplier": recipe.supplier,
        "supplier_contact": recipe.supplier_contact,
        "licence": recipe.licence,
        "copyright": recipe.copyright,
        "overlays_sha256": overlays_digest(recipe),
        "lock_sha256": sha256_file(recipe.lock_path),
        "source_date_epoch": lock.source_date_epoch,
        # Each step with what its id covers, so a rebuild that diverges can say which of
        # the step's own inputs, options or tools differ.
        "code_sha256": code_digest(),
        "steps": [
            {
                "name": name,
                "id": run.output.step_id,
                "content_digest": run.output.content_digest,
                "inputs": dict(run.inputs),
                "options": dict(run.options),
            }
            for name, run in results.items()
        ],
        "image": {"file": image_name, "size": disk.size, "sha256": disk.sha256},
        "partitions": to_json(disk.partitions),
        "uki": {
            # The UKI on the disk: the signed one when the recipe asks for Secure Boot.
            "sha256": secure_boot.sha256 if secure_boot is not None else uki.sha256,
            "cmdline": uki.cmdline,
            "kernel_version": uki.kernel_version,
        },
        "verity": VerityInfo.from_step_facts(verity).to_json(),
        "packages": [package_entry(p) for p in lock.packages],
        # The tools tree every byte-producing program ran from: inputs like the packages.
        "tools": to_json(tools.packages),
        "secure_boot": to_json(secure_boot),
    }
    return manifest
