"""Reading YAML and JSON input files without the parsers' traps.

Recipes, election definitions, station lists, locks and manifests are read
here, so every one of them gets the same rules:

- UTF-8 only: other bytes are an `InputError` naming the file and line.
- At most `MAX_DOCUMENT_BYTES`, nested at most `MAX_DEPTH` levels deep: a
  larger or deeper document is an `InputError`, never a `RecursionError` or a
  machine out of memory.
- YAML anchors and aliases (`&name`, `*name`) are refused: no input needs
  them, and an alias "bomb" of a few hundred bytes expands into billions of
  nodes for whoever walks the result.
- A mapping that repeats a key is refused (YAML and JSON): a reviewer would
  read one value while the build uses another. YAML merge keys (`<<`) too.
- JSON's non-standard NaN and Infinity are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

from builder.core.errors import InputError

MAX_DOCUMENT_BYTES = 64 * 2**20
MAX_DEPTH = 64

try:  # libyaml's parser when PyYAML has it (about 8 times faster), else PyYAML's own
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml.parser import Parser as _Parser  # type: ignore[assignment]


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that boothkey does not accept (an alias, a repeated key, too deep)."""


class _SafeLoader(Composer, _Parser, SafeConstructor, Resolver):
    # Python's composer on top of the parser's events (whichever parser), so that
    # every node passes `compose_node` below before anything is built from it.

    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        Composer.__init__(self)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # libyaml's marks are not yaml.Mark to the stubs
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                problem="YAML anchors and aliases (&name, *name) are not allowed; "
                "write the value out",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    problem=f"nested more than {MAX_DEPTH} levels deep",
                    problem_mark=event.start_mark,
                )
            node: Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if not isinstance(key_node, ScalarNode):
                continue  # the base class names unhashable keys
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(
                    problem="YAML merge keys (<<) are not allowed; write the keys out",
                    problem_mark=key_node.start_mark,
                )
            # Constructed once: the base class below reuses the constructed object.
            key = self.construct_object(key_node)
            if key in seen:
                raise _Refused(
                    problem=f"the key {key!r} appears more than once in this mapping",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def read_limited(path: Path) -> bytes:
    """The bytes of `path`; `InputError` if it holds more than `MAX_DOCUMENT_BYTES`.

    OSError (a missing file, ...) is left to the caller, which knows what the file is.
    """
    with open(path, "rb") as stream:
        data = stream.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(f"{path}: larger than {MAX_DOCUMENT_BYTES // 2**20} MiB; refused")
    return data


def decode_utf8(data: bytes, shown: str) -> str:
    """`data` as text; `InputError` naming `shown` and the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{shown}: line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); "
            "save the file as UTF-8"
        ) from exc


def load_yaml(text: str, shown: str, kind: str = "YAML") -> Any:
    """Parse one YAML document (JSON is YAML too) under the rules above.

    Problems are `InputError`s naming `shown` and the line: "not valid {kind}" for
    a syntax error.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InputError(f"{shown}: larger than {MAX_DOCUMENT_BYTES // 2**20} MiB; refused")
    loader = _SafeLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise InputError(f"{shown}: {_line(exc)}{exc.problem}") from exc
    except ConstructorError as exc:
        raise InputError(f"{shown}: {_line(exc)}{exc.problem}") from exc
    except yaml.MarkedYAMLError as exc:
        detail = f"{exc.context}: {exc.problem}" if exc.context else exc.problem
        raise InputError(f"{shown}: {_line(exc)}not valid {kind}: {detail}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{shown}: not valid {kind}: {exc}") from exc
    finally:
        loader.dispose()


def _line(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    return f"line {mark.line + 1}: " if mark is not None else ""


def load_json(data: bytes, shown: str, what: str) -> Any:
    """Parse JSON bytes under the rules above; problems are `InputError`s naming `shown`
    and saying it is not a readable JSON `what`."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(f"{shown}: larger than {MAX_DOCUMENT_BYTES // 2**20} MiB; refused")
    text = decode_utf8(data, shown)
    try:
        value = json.loads(text, object_pairs_hook=_no_repeated_keys, parse_constant=_no_constants)
    except RecursionError as exc:
        raise InputError(f"{shown}: nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:
        raise InputError(f"{shown}: not a readable JSON {what}: {exc}") from exc
    if _too_deep(value):
        raise InputError(f"{shown}: nested more than {MAX_DEPTH} levels deep")
    return value


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears more than once in an object")
            seen.add(key)
    return mapping


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _too_deep(value: Any) -> bool:
    # Iterative, so the check itself cannot run out of stack.
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
