"""FieldReader: typed fields of parsed JSON/YAML, every problem collected with its place."""

from __future__ import annotations

import re

from builder.core.jsonfields import FieldReader, join_path, kind_of


def test_field_returns_the_value_or_none_with_a_problem() -> None:
    reader = FieldReader("m.json")
    raw = {"size": 3, "name": "x", "flag": True, "parts": []}
    assert reader.field(raw, "size", int, "size") == 3
    assert reader.field(raw, "parts", list, "parts") == []
    assert reader.problems == []
    assert reader.field(raw, "absent", str, "absent") is None
    assert reader.field(raw, "name", int, "name") is None
    assert reader.field(raw, "flag", int, "flag") is None  # a boolean is not a number
    assert reader.field(["not", "a", "mapping"], "size", int, "x.size") is None
    assert reader.problems == [
        "m.json: absent: missing",
        "m.json: name: expected int",
        "m.json: flag: expected int",
        "m.json: x.size: missing",
    ]


def test_field_or_empty_gives_the_empty_value() -> None:
    reader = FieldReader("m.json")
    raw = {"size": "3", "name": "x"}
    assert reader.field_or_empty(raw, "size", int, "size") == 0
    assert reader.field_or_empty(raw, "name", str, "name") == "x"
    assert reader.field_or_empty(raw, "parts", list, "parts") == []
    assert reader.field_or_empty(raw, "image", dict, "image") == {}
    assert reader.problems == [
        "m.json: size: expected int",
        "m.json: parts: missing",
        "m.json: image: missing",
    ]


def test_mapping_strings_and_choices() -> None:
    reader = FieldReader("r.yaml")
    kept = reader.mapping({"a": 1, "zz": 2}, "top", {"a": True, "b": True})
    assert kept == {"a": 1}
    assert reader.mapping("text", "other", {}) == {}
    assert reader.string("", "s") == ""
    assert reader.string("Bad", "p", re.compile("^[a-z]+$")) == "Bad"
    assert reader.string_list(["x", "x", 3], "l") == ("x", "x", "")
    assert reader.choice("c", "ch", ("a", "b")) == "c"
    reader.error("", "whole file")
    assert reader.problems == [
        "r.yaml: top.zz: unknown key (known keys: a, b)",
        "r.yaml: top.b: missing required key",
        "r.yaml: other: expected a mapping, got a string",
        "r.yaml: s: expected a non-empty string, got a string",
        "r.yaml: p: invalid value 'Bad'",
        "r.yaml: l[1]: duplicate entry 'x'",
        "r.yaml: l[2]: expected a non-empty string, got int",
        "r.yaml: ch: 'c' is not one of: a, b",
        "r.yaml: whole file",
    ]


def test_kind_and_path_names() -> None:
    values: tuple[object, ...] = (None, {}, [], "", True, 1.5)
    assert [kind_of(value) for value in values] == [
        "nothing",
        "a mapping",
        "a list",
        "a string",
        "a boolean",
        "float",
    ]
    assert join_path("", "name") == "name"
    assert join_path("boot", "cmdline") == "boot.cmdline"
