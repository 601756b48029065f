"""Manifest parsing: every problem is reported with the manifest and the field."""

from __future__ import annotations

import pytest
from manifest_factory import manifest

from builder.build.manifest import parse_manifest
from builder.core.errors import InputError, ValidationErrors


def test_every_problem_is_named() -> None:
    raw = {
        "format": 1,
        "name": "hello",
        "version": 2,
        "image": {"file": "../x.img", "size": True, "sha256": "zz"},
        "partitions": [{"name": "esp"}],
    }
    with pytest.raises(ValidationErrors) as caught:
        parse_manifest(raw, "m.json")
    problems = caught.value.problems
    for expected in (
        "m.json: version: expected str",
        "m.json: image.size: expected int",
        "m.json: image.sha256: not a sha256 hex digest",
        "m.json: image.file: '../x.img' must be a plain file name",
        "m.json: partitions[0].offset: missing",
        "m.json: verity: missing",
        "m.json: uki.sha256: missing",
        "m.json: steps: missing",
        "m.json: code_sha256: missing",
    ):
        assert expected in problems


def test_not_a_manifest() -> None:
    with pytest.raises(InputError, match="JSON object"):
        parse_manifest([], "m.json")
    with pytest.raises(InputError, match="format"):
        parse_manifest({"format": 99}, "m.json")


def test_steps_packages_and_tools_are_read_typed() -> None:
    raw = manifest()
    raw["steps"][0]["content_digest"] = "md5:00"
    raw["steps"][1]["inputs"] = {"tools": 7}
    raw["tools"] = [{"name": "zstd", "version": "1.5.4", "architecture": "amd64"}]
    with pytest.raises(ValidationErrors) as caught:
        parse_manifest(raw, "m.json")
    assert caught.value.problems == [
        "m.json: steps[1].inputs.tools: expected str, got int",
        "m.json: steps: tools: content_digest is not sha256:<hex digest>",
        "m.json: tools[0]: missing ['sha256'], unexpected []",
    ]
    parsed = parse_manifest(manifest(), "m.json")
    assert [step.name for step in parsed.steps] == ["tools", "rootfs", "overlay", "disk"]
