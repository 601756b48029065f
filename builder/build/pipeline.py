"""The build pipeline: the explicit, ordered list of steps and how their ids are made."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import __version__
from builder.build.stepcache import StepCache
from builder.build.steps.base import (
    BuildContext,
    DebStore,
    Step,
    StepEnv,
    StepOutput,
    declared_packages,
    facts_json,
    options_json,
)
from builder.build.steps.normalize import clamp_mtimes
from builder.core.canonical import sha256_json
from builder.core.errors import BuildError
from builder.source.recipe import Recipe


@dataclass(frozen=True)
class PlannedStep:
    """A step and where its inputs come from: {input name: producing step name}."""

    step: Step[Any, Any]
    sources: Mapping[str, str]


def plan(recipe: Recipe) -> list[PlannedStep]:
    """The steps of a build, in order. Explicit on purpose: no discovery."""
    from builder.build.steps.disk import DiskStep
    from builder.build.steps.esp import EspStep
    from builder.build.steps.initrd import InitrdStep
    from builder.build.steps.overlay import OverlayStep
    from builder.build.steps.rootfs import RootfsStep
    from builder.build.steps.rootimage import RootImageStep
    from builder.build.steps.tools import ToolsStep
    from builder.build.steps.uki import UkiStep
    from builder.build.steps.verity import VerityStep

    steps: list[Step[Any, Any]] = [
        ToolsStep(),
        RootfsStep(),
        OverlayStep(),
        RootImageStep(),
        VerityStep(),
        InitrdStep(),
        UkiStep(),
    ]
    uki_source = "uki"
    if recipe.secure_boot is not None:
        from builder.build.steps.sbsign import SbsignStep

        steps.append(SbsignStep())
        uki_source = "sbsign"
    steps += [EspStep(), DiskStep()]
    planned = []
    for step in steps:
        sources = {name: name for name in step.requires}
        if "uki" in sources and step.name != "sbsign":
            sources["uki"] = uki_source
        planned.append(PlannedStep(step, sources))
    return planned


def code_digest() -> str:
    """sha256 over boothkey's own source, so a code change never reuses a stale cache entry."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parents[1]  # the whole builder package
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".sh", ".j2"}:
            digest.update(str(path.relative_to(package)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def step_id(
    step: Step[Any, Any],
    options: Mapping[str, Any],
    inputs: Mapping[str, StepOutput],
    source_date_epoch: int,
    code: str,
) -> str:
    """sha256 over what decides the step's output: its name and version, boothkey's
    source, its options, its inputs' *content* digests (so a rebuilt upstream entry with
    other bytes never reuses a stale downstream one; the tools tree is one of them) and
    SOURCE_DATE_EPOCH."""
    return sha256_json(
        {
            "step": step.name,
            "version": step.version,
            "code": code,
            "options": dict(options),
            "inputs": input_digests(inputs),
            "source_date_epoch": source_date_epoch,
        }
    )


def input_digests(inputs: Mapping[str, StepOutput]) -> dict[str, str]:
    return {name: out.content_digest for name, out in sorted(inputs.items())}


@dataclass(frozen=True)
class StepRun:
    output: StepOutput
    cached: bool
    seconds: float  # wall time, including the cache's verification of the output
    options: Mapping[str, Any]  # what the step's id covers besides its inputs
    inputs: Mapping[str, str]  # input name -> content digest


def run_pipeline(
    ctx: BuildContext,
    planned: list[PlannedStep],
    cache: StepCache,
    on_step: Callable[[int, int, str, str], None] | None = None,
) -> dict[str, StepRun]:
    """Run (or take from the cache) every step in order; return each step's result."""
    code = code_digest()
    results: dict[str, StepRun] = {}
    for index, item in enumerate(planned, start=1):
        step = item.step
        try:
            inputs = {name: results[source].output for name, source in item.sources.items()}
        except KeyError as exc:
            raise RuntimeError(f"step {step.name} needs {exc} which runs later") from exc
        options = step.options(ctx, inputs)
        encoded = options_json(options)
        sid = step_id(step, encoded, inputs, ctx.source_date_epoch, code)
        if on_step is not None:
            on_step(index, len(planned), step.name, sid)

        def build(
            out: Path,
            step: Step[Any, Any] = step,
            options: Any = options,
            inputs: dict[str, StepOutput] = inputs,
        ) -> dict[str, Any]:
            # The content digest covers modes and mtimes. A fixed umask (the step cache
            # made `out` under the caller's) and mtimes clamped to SOURCE_DATE_EPOCH make
            # it the same in every rebuild, so the manifest's step list shows where two
            # builds diverge (rebuild/compare), not who ran them or when.
            old_umask = os.umask(0o022)
            try:
                os.chmod(out, 0o755)
                info = execute_step(ctx, step, options, inputs, out)
                clamp_mtimes(out, ctx.source_date_epoch)
                return info
            except BuildError:
                raise
            except OSError as exc:
                raise BuildError(f"step {step.name}: {exc}") from exc
            finally:
                os.umask(old_umask)

        started = time.monotonic()
        output, cached = cache.get_or_build(step.name, sid, build)
        results[step.name] = StepRun(
            output, cached, time.monotonic() - started, encoded, input_digests(inputs)
        )
    return results


def execute_step(
    ctx: BuildContext,
    step: Step[Any, Any],
    options: Any,
    inputs: Mapping[str, StepOutput],
    out: Path,
) -> dict[str, Any]:
    """Run `step` into `out` with `options` (from `step.options`) and `inputs`, and nothing
    else the id does not cover; return its facts as JSON."""
    return facts_json(step.run(options, inputs, step_env(ctx, step, options), out))


def step_env(ctx: BuildContext, step: Step[Any, Any], options: Any) -> StepEnv:
    """What `step.run` may use besides `options` and its inputs: the .debs it reads are
    only those its options name."""
    return StepEnv(
        step=step.name,
        source_date_epoch=ctx.source_date_epoch,
        scratch=ctx.scratch,
        report=ctx.report,
        deb_path=DebStore(step.name, declared_packages(options), ctx.deb_path),
    )
