"""Reading the signed payload's JSON: each helper returns the checked value or raises
`Unusable`, which names the place of the problem and never the text found there."""

from __future__ import annotations

import re
from typing import Any

from .text import text_problem

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Unusable(ValueError):
    """A problem with the payload, named by its place in it and never by its text."""


def fields(value: Any, where: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> Any:
    if not isinstance(value, dict):
        raise Unusable(f"{where or 'the payload'} is not an object")
    missing = [key for key in keys if key not in value]
    if missing:
        raise Unusable(f"{where or 'the payload'} lacks {', '.join(missing)}")
    if any(key not in keys and key not in optional for key in value):
        raise Unusable(f"{where or 'the payload'} has fields this booth does not know")
    return value


def items(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Unusable(f"{where} is not a list")
    return value


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise Unusable(f"{where} is not text")
    problem = text_problem(value)
    if problem is not None:
        raise Unusable(f"{where} {problem}")
    return value


def identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise Unusable(f"{where} is not a valid id")
    return value
