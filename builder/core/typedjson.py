"""Frozen dataclasses to and from plain JSON, by their field types.

Build steps declare their options and facts as frozen dataclasses; the step cache
keeps facts as JSON and the manifest publishes both. `to_json` turns such a value
into JSON (tuples become lists) and `from_json` reads it back, checking every
field against its declared type, so a step reading an earlier step's facts gets
typed values or a `TypedJsonError` naming the field.

Supported field types: str, int, bool, None, unions of these with None, tuples
(`tuple[X, ...]`), `dict[str, X]`, `Any` (taken as it is) and nested frozen
dataclasses. A field whose metadata has `SKIP` is left out of the JSON (see
`builder.build.steps.base.covered_by`); `from_json` cannot make such a class.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")

# Metadata key: a field with it is not written to JSON; its value says why.
SKIP = "not_in_json"


class TypedJsonError(ValueError):
    """JSON that does not fit the declared types: names the place."""


def to_json(value: Any) -> Any:
    """`value` as plain JSON: dataclasses as objects, tuples and lists as lists.

    Anything else (a Path, bytes, a set) is refused with TypeError: what goes into a
    step id or a manifest must be explicit.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if SKIP not in f.metadata
        }
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"JSON object keys must be strings: {sorted(map(repr, value))}")
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON: {value!r}")


def from_json(cls: type[T], data: Any, where: str = "") -> T:
    """An instance of the dataclass `cls` from `data`, every field checked by its type."""
    return typing.cast(T, _read(cls, data, where or cls.__name__))


def _read(kind: Any, data: Any, where: str) -> Any:
    if kind is Any:
        return data
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _read_dataclass(kind, data, where)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return _read_union(typing.get_args(kind), data, where)
    if origin is tuple:
        item, ellipsis = typing.get_args(kind)
        if ellipsis is not Ellipsis:
            raise TypeError(f"{where}: only tuple[X, ...] is supported, not {kind}")
        if not isinstance(data, list):
            raise TypedJsonError(f"{where}: expected a list, got {_kind(data)}")
        return tuple(_read(item, value, f"{where}[{i}]") for i, value in enumerate(data))
    if origin is dict:
        key, item = typing.get_args(kind)
        if key is not str:
            raise TypeError(f"{where}: only dict[str, X] is supported, not {kind}")
        if not isinstance(data, dict):
            raise TypedJsonError(f"{where}: expected an object, got {_kind(data)}")
        return {k: _read(item, v, f"{where}.{k}") for k, v in data.items()}
    if kind is type(None):
        if data is not None:
            raise TypedJsonError(f"{where}: expected null, got {_kind(data)}")
        return None
    if kind in (str, int, bool, float):
        # JSON's true/false are Python bools, which are ints: never take one for the other.
        if type(data) is not kind and not (kind is float and type(data) is int):
            raise TypedJsonError(f"{where}: expected {kind.__name__}, got {_kind(data)}")
        return data
    raise TypeError(f"{where}: unsupported field type {kind!r}")


def _read_union(kinds: tuple[Any, ...], data: Any, where: str) -> Any:
    problems = []
    for kind in kinds:
        try:
            return _read(kind, data, where)
        except TypedJsonError as exc:
            problems.append(str(exc))
    raise TypedJsonError("; ".join(problems))


def _read_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise TypedJsonError(f"{where}: expected an object, got {_kind(data)}")
    fields = dataclasses.fields(cls)
    skipped = [f.name for f in fields if SKIP in f.metadata]
    if skipped:
        raise TypeError(f"{cls.__name__}: fields {skipped} are not in its JSON")
    names = {f.name for f in fields}
    if set(data) != names:
        missing, extra = sorted(names - set(data)), sorted(set(data) - names)
        raise TypedJsonError(f"{where}: missing {missing}, unexpected {extra}")
    hints = get_type_hints(cls)
    return cls(**{f.name: _read(hints[f.name], data[f.name], f"{where}.{f.name}") for f in fields})


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
