"""Reading typed fields out of parsed JSON or YAML, collecting every problem with its place.

`FieldReader` walks raw data (what `builder.core.safeload` parsed)
and records each problem as `SOURCE: WHERE: MESSAGE` instead of stopping at
the first one; the caller raises `ValidationErrors(reader.problems)` once it
has read everything. Recipes, election definitions, manifests and lock files
are read this way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

from builder.core.errors import InputError
from builder.core.safeload import load_json, read_limited

T = TypeVar("T")


def kind_of(value: Any) -> str:
    """How a value is named in a message: "a mapping", "a list", "nothing", ..."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def join_path(where: str, key: str) -> str:
    """The place of `key` inside `where` (`where` empty: the top level)."""
    return f"{where}.{key}" if where else key


def _is_a(value: Any, kind: type | tuple[type, ...]) -> bool:
    # JSON's true/false are Python bools, which are ints: never take them for an int.
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


class FieldReader:
    """Walks raw parsed data, collecting every problem with its path in `problems`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def error(self, where: str, message: str) -> None:
        """Record `message` about the place `where` (empty: the whole document)."""
        self.problems.append(
            f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}"
        )

    def field(
        self, container: Any, key: str, kind: type | tuple[type, ...], where: str
    ) -> Any | None:
        """`container[key]` if `container` is a mapping holding a `kind` there, else None.

        A missing key is recorded as "missing", another type as "expected KIND";
        a boolean is not taken for `int`.
        """
        if not isinstance(container, dict) or key not in container:
            self.error(where, "missing")
            return None
        value = container[key]
        if not _is_a(value, kind):
            names = kind if isinstance(kind, tuple) else (kind,)
            self.error(where, f"expected {' or '.join(k.__name__ for k in names)}")
            return None
        return value

    def field_or_empty(self, container: Any, key: str, kind: type[T], where: str) -> T:
        """Like `field`, but a problem gives `kind()` (0, "", [], {}) so reading can go on."""
        value = self.field(container, key, kind, where)
        if value is None:
            return kind()
        result: T = value
        return result

    def mapping(self, value: Any, where: str, allowed: dict[str, bool]) -> dict[str, Any]:
        """Check `value` is a mapping with only `allowed` keys (value: required?)."""
        if not isinstance(value, dict):
            self.error(where, f"expected a mapping, got {kind_of(value)}")
            return {}
        for key in value:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                self.error(join_path(where, str(key)), f"unknown key (known keys: {known})")
        for key, required in allowed.items():
            if required and key not in value:
                self.error(join_path(where, key), "missing required key")
        return {k: v for k, v in value.items() if k in allowed}

    def string(self, value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str:
        """A non-empty string (matching `pattern` if given), or "" after recording why not."""
        if not isinstance(value, str) or not value:
            self.error(where, f"expected a non-empty string, got {kind_of(value)}")
            return ""
        if pattern is not None and not pattern.match(value):
            self.error(where, f"invalid value {value!r}")
        return value

    def string_list(
        self, value: Any, where: str, pattern: re.Pattern[str] | None = None, unique: bool = True
    ) -> tuple[str, ...]:
        """A list of non-empty strings; with `unique`, a repeated entry is a problem."""
        if not isinstance(value, list):
            self.error(where, f"expected a list, got {kind_of(value)}")
            return ()
        items: list[str] = []
        seen: set[str] = set()  # a set: lists of tens of thousands of packages stay linear
        for index, item in enumerate(value):
            text = self.string(item, f"{where}[{index}]", pattern)
            if unique and text and text in seen:
                self.error(f"{where}[{index}]", f"duplicate entry {text!r}")
            seen.add(text)
            items.append(text)
        return tuple(items)

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        """One of `choices`, or what was given after recording that it is not one."""
        text = self.string(value, where)
        if text and text not in choices:
            self.error(where, f"{text!r} is not one of: {', '.join(choices)}")
        return text


def read_json_file(path: Path, what: str, missing_hint: str = "") -> Any:
    """Parsed JSON of `path`; `InputError` naming the file (and `what` it should be)
    when it is absent, not UTF-8, not JSON, or beyond `builder.core.safeload`'s limits.
    `missing_hint` follows "no such ..." (e.g. how to make it)."""
    try:
        data = read_limited(path)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no {what}{missing_hint}") from exc
    except OSError as exc:
        raise InputError(f"{path}: not a readable JSON {what}: {exc}") from exc
    return load_json(data, str(path), what)
