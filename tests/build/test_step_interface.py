"""Every step sees only what its id covers: typed options and facts, checked for all steps."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import pytest
from archive_factory import make_deb
from step_factory import locked_fake, make_context

from builder.build.pipeline import execute_step, plan
from builder.build.steps.base import (
    DebStore,
    Step,
    StepEnv,
    covered_by,
    deb_inputs,
    declared_packages,
    options_json,
)
from builder.build.steps.disk import DiskStep
from builder.build.steps.esp import EspStep
from builder.build.steps.initrd import InitrdStep
from builder.build.steps.overlay import OverlayStep
from builder.build.steps.rootfs import RootfsStep
from builder.build.steps.rootimage import RootImageStep
from builder.build.steps.sbsign import SbsignStep
from builder.build.steps.tools import ToolsStep
from builder.build.steps.uki import UkiStep
from builder.build.steps.verity import VerityStep
from builder.core.errors import BuildError
from builder.core.typedjson import SKIP
from builder.source.lockfile import LockedPackage
from builder.source.recipe import Recipe

STEPS: list[type[Step[Any, Any]]] = [
    ToolsStep,
    RootfsStep,
    OverlayStep,
    RootImageStep,
    VerityStep,
    InitrdStep,
    UkiStep,
    SbsignStep,
    EspStep,
    DiskStep,
]
# Types `run` may read only through a field marked covered_by (their content is not JSON).
_OPAQUE = (Path, bytes, LockedPackage)


def _types(step: type[Step[Any, Any]]) -> tuple[Any, Any]:
    hints = typing.get_type_hints(step.run)
    return hints["options"], hints["return"]


def _mentions_opaque(kind: Any) -> bool:
    if kind in _OPAQUE:
        return True
    return any(_mentions_opaque(arg) for arg in typing.get_args(kind))


def _dataclass_fields(cls: type) -> list[tuple[type, dataclasses.Field[Any], Any]]:
    """Every field of `cls` and of the dataclasses its fields hold, with resolved types."""
    found = []
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        found.append((cls, item, hints[item.name]))
        for arg in (hints[item.name], *typing.get_args(hints[item.name])):
            if dataclasses.is_dataclass(arg) and arg is not LockedPackage:
                found += _dataclass_fields(arg)  # type: ignore[arg-type]
    return found


def test_the_plan_uses_every_step_here() -> None:
    recipe = cast(Recipe, SimpleNamespace(secure_boot=object()))
    assert {type(planned.step) for planned in plan(recipe)} == set(STEPS)


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_run_receives_typed_options_an_env_and_inputs_only(step: type[Step[Any, Any]]) -> None:
    parameters = list(inspect.signature(step.run).parameters)
    assert parameters == ["self", "options", "inputs", "env", "out"]
    assert typing.get_type_hints(step.run)["env"] is StepEnv
    options, facts = _types(step)
    for kind in (options, facts):
        assert dataclasses.is_dataclass(kind), kind
        assert getattr(kind, "__dataclass_params__").frozen, kind  # noqa: B009


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_whatever_run_reads_outside_json_is_covered_by_a_digest(step: type[Step[Any, Any]]) -> None:
    options, _ = _types(step)
    for owner, item, kind in _dataclass_fields(options):
        cover = item.metadata.get(SKIP)
        if _mentions_opaque(kind):
            assert cover is not None, f"{owner.__name__}.{item.name} is read but not in the id"
        if cover is not None:
            names = {f.name for f in dataclasses.fields(owner)}
            assert cover in names and cover != item.name, f"{owner.__name__}.{item.name}"


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_facts_are_plain_json(step: type[Step[Any, Any]]) -> None:
    _, facts = _types(step)
    for owner, item, kind in _dataclass_fields(facts):
        assert SKIP not in item.metadata, f"{owner.__name__}.{item.name}"
        assert not _mentions_opaque(kind), f"{owner.__name__}.{item.name}"


@dataclass(frozen=True)
class _Leaky:
    source: Path


@dataclass(frozen=True)
class _WrongCover:
    digest: str
    source: Path = covered_by("digets")


def test_options_json_refuses_what_the_id_would_not_cover() -> None:
    with pytest.raises(TypeError, match="PosixPath is not JSON"):
        options_json(_Leaky(Path("/etc")))
    with pytest.raises(TypeError, match=r"_WrongCover\.source: covered by 'digets'"):
        options_json(_WrongCover("abc", Path("/etc")))


def test_a_step_gets_only_the_debs_its_options_name(tmp_path: Path) -> None:
    named = locked_fake(make_deb(tmp_path, "named", "1"))
    other = locked_fake(make_deb(tmp_path, "other", "1"))
    inputs = deb_inputs([named])
    assert options_json(_Debs(inputs)) == {
        "packages": [
            {"name": "named", "version": "1", "architecture": "amd64", "sha256": named.sha256}
        ]
    }
    declared = declared_packages(_Debs(inputs))
    assert declared == {named}
    store = DebStore("demo", declared, lambda package: tmp_path / package.name)
    assert store(named) == tmp_path / "named"
    with pytest.raises(BuildError, match="step demo: reads other 1, which its options do not"):
        store(other)


@dataclass(frozen=True)
class _Debs:
    packages: tuple[Any, ...]


def test_the_pipeline_hands_a_step_only_its_declared_debs(tmp_path: Path) -> None:
    """A step whose run asks for a package its options do not name fails."""
    deb = make_deb(tmp_path, "tool", "1")
    package = locked_fake(deb)
    recipe = cast(Recipe, SimpleNamespace(name="demo", package_set_digest=lambda: "sha256:0"))
    ctx = make_context(recipe, {package: deb.path}, tmp_path / "scratch")

    class Sneaky:
        name: ClassVar[str] = "sneaky"
        version: ClassVar[int] = 1
        requires: ClassVar[tuple[str, ...]] = ()

        def options(self, ctx: Any, inputs: Any) -> _Debs:
            return _Debs(())

        def run(self, options: _Debs, inputs: Any, env: StepEnv, out: Path) -> _Debs:
            env.deb_path(package)
            return options

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError, match="step sneaky: reads tool 1"):
        execute_step(ctx, Sneaky(), _Debs(()), {}, out)
