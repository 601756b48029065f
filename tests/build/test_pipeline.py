"""The pipeline: step ids, what reruns after a change, and cache reuse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

from builder.build.pipeline import PlannedStep, run_pipeline
from builder.build.stepcache import StepCache
from builder.build.steps.base import BuildContext, Step, StepEnv, StepOutput
from builder.source.lockfile import Lock
from builder.source.recipe import Recipe

EPOCH = 1_700_000_000


class _Recorded:
    """A fake step writing its option and its inputs' content into one file."""

    version: ClassVar[int] = 1

    def __init__(self, name: str, requires: tuple[str, ...], runs: list[str]) -> None:
        self.name = name
        self.requires = requires
        self.runs = runs

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> _Setting:
        return _Setting(dict(ctx.recipe.variables).get(self.name, "default"))

    def run(
        self, options: _Setting, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> _Parts:
        self.runs.append(self.name)
        parts = [options.setting]
        parts += [(inputs[name].path / "data").read_text() for name in sorted(inputs)]
        (out / "data").write_text("|".join(parts))
        return _Parts(len(parts))


@dataclass(frozen=True)
class _Setting:
    setting: str


@dataclass(frozen=True)
class _Parts:
    parts: int


class _FakeRecipe:
    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = variables


def _context(tmp_path: Path, variables: dict[str, str]) -> BuildContext:
    return BuildContext(
        recipe=cast(Recipe, _FakeRecipe(variables)),
        lock=cast(Lock, None),
        source_date_epoch=EPOCH,
        deb_path=lambda package: Path("/nonexistent"),
        scratch=tmp_path,
        report=lambda line: None,
    )


def _plan(runs: list[str]) -> list[PlannedStep]:
    steps = [
        _Recorded("rootfs", (), runs),
        _Recorded("overlay", ("rootfs",), runs),
        _Recorded("initrd", (), runs),
        _Recorded("image", ("overlay", "initrd"), runs),
    ]
    return [PlannedStep(cast(Step[Any, Any], s), {n: n for n in s.requires}) for s in steps]


def test_nothing_changed_reruns_nothing(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    runs: list[str] = []
    first = run_pipeline(_context(tmp_path, {}), _plan(runs), cache)
    assert runs == ["rootfs", "overlay", "initrd", "image"]
    again: list[str] = []
    second = run_pipeline(_context(tmp_path, {}), _plan(again), cache)
    assert again == []
    assert all(run.cached for run in second.values())
    assert {n: r.output.step_id for n, r in first.items()} == {
        n: r.output.step_id for n, r in second.items()
    }
    assert (second["image"].output.path / "data").read_text() == "default|default|default|default"


def test_a_change_reruns_that_step_and_what_depends_on_it(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    run_pipeline(_context(tmp_path, {}), _plan([]), cache)
    runs: list[str] = []
    results = run_pipeline(_context(tmp_path, {"overlay": "edited"}), _plan(runs), cache)
    assert runs == ["overlay", "image"]
    assert results["rootfs"].cached and results["initrd"].cached
    assert not results["overlay"].cached and not results["image"].cached


def test_step_outputs_have_fixed_modes_and_times(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "steps")
    results = run_pipeline(_context(tmp_path, {}), _plan([]), cache)
    data = results["image"].output.path / "data"
    assert int(data.stat().st_mtime) == EPOCH
    assert data.stat().st_mode & 0o777 == 0o644


def test_a_step_needing_a_later_step_is_a_programming_error(tmp_path: Path) -> None:
    runs: list[str] = []
    plan = _plan(runs)
    plan.reverse()
    with pytest.raises(RuntimeError, match="runs later"):
        run_pipeline(_context(tmp_path, {}), plan, StepCache(tmp_path / "steps"))
