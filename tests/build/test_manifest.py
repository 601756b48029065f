"""Manifest parsing: every problem is reported with the manifest and the field."""

from __future__ import annotations

import pytest

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
    ):
        assert expected in problems


def test_not_a_manifest() -> None:
    with pytest.raises(InputError, match="JSON object"):
        parse_manifest([], "m.json")
    with pytest.raises(InputError, match="format"):
        parse_manifest({"format": 99}, "m.json")
