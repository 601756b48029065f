"""Typed dataclasses to and from JSON: what step facts and options are made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from builder.core.typedjson import SKIP, TypedJsonError, from_json, to_json


@dataclass(frozen=True)
class Part:
    name: str
    size: int


@dataclass(frozen=True)
class Whole:
    label: str
    count: int
    ready: bool
    level: int | None
    parts: tuple[Part, ...]
    extra: dict[str, Any]


WHOLE = Whole("disk", 2, True, None, (Part("esp", 1), Part("root", 2)), {"a": [1, "b"]})


def test_round_trip() -> None:
    data = to_json(WHOLE)
    assert data == {
        "label": "disk",
        "count": 2,
        "ready": True,
        "level": None,
        "parts": [{"name": "esp", "size": 1}, {"name": "root", "size": 2}],
        "extra": {"a": [1, "b"]},
    }
    assert from_json(Whole, data) == WHOLE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": True}, r"Whole\.count: expected int, got bool"),
        ({"ready": 1}, r"Whole\.ready: expected bool, got int"),
        ({"level": "9"}, r"Whole\.level: expected int, got str; .*expected null"),
        ({"parts": [{"name": "esp"}]}, r"Whole\.parts\[0\]: missing \['size'\]"),
        ({"parts": {"name": "esp"}}, r"Whole\.parts: expected a list, got dict"),
    ],
)
def test_wrong_types_are_named(change: dict[str, Any], message: str) -> None:
    data = {**to_json(WHOLE), **change}
    with pytest.raises(TypedJsonError, match=message):
        from_json(Whole, data)


def test_unknown_and_missing_keys_are_refused() -> None:
    data = to_json(WHOLE)
    with pytest.raises(TypedJsonError, match=r"unexpected \['other'\]"):
        from_json(Whole, {**data, "other": 1})
    del data["label"]
    with pytest.raises(TypedJsonError, match=r"missing \['label'\]"):
        from_json(Whole, data)


@dataclass(frozen=True)
class WithPath:
    digest: str
    source: Path = field(metadata={SKIP: "digest"})


def test_skipped_fields_stay_out_and_paths_are_never_json() -> None:
    assert to_json(WithPath("abc", Path("/somewhere"))) == {"digest": "abc"}
    with pytest.raises(TypeError, match="PosixPath is not JSON"):
        to_json({"source": Path("/somewhere")})
    with pytest.raises(TypeError, match="bytes is not JSON"):
        to_json(Part("x", 1).__class__.__name__.encode())
    with pytest.raises(TypeError, match=r"\['source'\] are not in its JSON"):
        from_json(WithPath, {"digest": "abc"})
