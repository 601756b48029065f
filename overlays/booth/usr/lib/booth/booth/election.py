"""The signed election payload, read into typed objects for the booth.

The builder validated the definition before signing; the booth checks it again
on its own (signed data from a careless authority, or signed without the
builder, must neither crash a booth nor reach the voter's screen): the exact
payload structure, ids, rules, and every text by the rule in `booth.text`. It
refuses with `DataRefused("invalid", ...)` otherwise, naming the place of the
problem but never printing the refused text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .datapart import DataRefused
from .text import text_problem

PAYLOAD_KIND = "boothkey-election-data"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_COUNT = 1000  # the most lists or candidates a rule may ask for


@dataclass(frozen=True)
class Choice:
    """One thing a voter can pick in a race: a list, or a candidate (maybe on a list)."""

    number: int  # 1-based position shown to the voter and written in the ballot code
    id: str
    label: str


@dataclass(frozen=True)
class Race:
    id: str
    name: str
    choose: str  # "list" or "candidate"
    minimum: int
    maximum: int
    blank: bool
    choices: tuple[Choice, ...]

    def rule_text(self) -> str:
        noun = self.choose if self.maximum == 1 else f"{self.choose}s"
        if self.minimum == self.maximum:
            text = f"Choose exactly {self.maximum} {noun}."
        elif self.minimum == 1:
            text = f"Choose up to {self.maximum} {noun}."
        else:
            text = f"Choose {self.minimum} to {self.maximum} {noun}."
        if self.blank:
            text += " Type 0 for a blank vote."
        return text


@dataclass(frozen=True)
class Election:
    election_id: str
    election_name: str
    election_date: str
    station_id: str
    station_name: str
    races: tuple[Race, ...]


class _Unusable(ValueError):
    """A problem with the payload, named by its place in it and never by its text."""


def _fields(value: Any, where: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> Any:
    if not isinstance(value, dict):
        raise _Unusable(f"{where or 'the payload'} is not an object")
    missing = [key for key in keys if key not in value]
    if missing:
        raise _Unusable(f"{where or 'the payload'} lacks {', '.join(missing)}")
    if any(key not in keys and key not in optional for key in value):
        raise _Unusable(f"{where or 'the payload'} has fields this booth does not know")
    return value


def _items(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Unusable(f"{where} is not a list")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Unusable(f"{where} is not text")
    problem = text_problem(value)
    if problem is not None:
        raise _Unusable(f"{where} {problem}")
    return value


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise _Unusable(f"{where} is not a valid id")
    return value


def _count(value: Any, where: str) -> int:
    # JSON true is a Python bool, which is an int: never take it for a number.
    if type(value) is not int or not 1 <= value <= MAX_COUNT:
        raise _Unusable(f"{where} is not a whole number from 1 to {MAX_COUNT}")
    return value


def _people(value: Any, where: str) -> list[tuple[str, str]]:
    people = []
    for index, item in enumerate(_items(value, where)):
        at = f"{where}[{index}]"
        person = _fields(item, at, ("id", "name"))
        people.append((_identifier(person["id"], f"{at}.id"), _text(person["name"], f"{at}.name")))
    return people


def _race(value: Any, where: str) -> Race:
    """One race; its choices in ballot-code order (docs/election-data.md)."""
    race = _fields(value, where, ("id", "name", "rules", "lists", "candidates"))
    race_id = _identifier(race["id"], f"{where}.id")
    name = _text(race["name"], f"{where}.name")
    rules = _fields(race["rules"], f"{where}.rules", ("choose", "min", "max", "blank"))
    choose = rules["choose"]
    if choose not in ("list", "candidate"):
        raise _Unusable(f"{where}.rules.choose is neither list nor candidate")
    lists = []
    for index, item in enumerate(_items(race["lists"], f"{where}.lists")):
        at = f"{where}.lists[{index}]"
        entry = _fields(item, at, ("id", "name", "candidates"))
        lists.append(
            (
                _identifier(entry["id"], f"{at}.id"),
                _text(entry["name"], f"{at}.name"),
                _people(entry["candidates"], f"{at}.candidates"),
            )
        )
    independents = _people(race["candidates"], f"{where}.candidates")
    if choose == "list":
        items = [(list_id, list_name) for list_id, list_name, _members in lists]
    else:
        items = [
            (person_id, f"{person_name} ({list_name})")
            for _list_id, list_name, members in lists
            for person_id, person_name in members
        ]
        items += independents
    choices = tuple(
        Choice(number, item_id, label) for number, (item_id, label) in enumerate(items, start=1)
    )
    minimum = _count(rules["min"], f"{where}.rules.min")
    maximum = _count(rules["max"], f"{where}.rules.max")
    if not minimum <= maximum <= len(choices):
        raise _Unusable(f"{where}.rules: min and max do not fit its {len(choices)} choices")
    if not isinstance(rules["blank"], bool):
        raise _Unusable(f"{where}.rules.blank is not true or false")
    return Race(race_id, name, choose, minimum, maximum, rules["blank"], choices)


def _election(raw: Any) -> Election:
    top = _fields(raw, "", ("format", "type", "election", "station", "races"))
    if top["type"] != PAYLOAD_KIND or type(top["format"]) is not int or top["format"] != 1:
        raise _Unusable("not boothkey election data format 1")
    info = _fields(top["election"], "election", ("id", "name"), optional=("date",))
    date = info.get("date", "")
    if "date" in info and (not isinstance(date, str) or not _DATE_RE.fullmatch(date)):
        raise _Unusable("election.date is not a date (YYYY-MM-DD)")
    election_id = _identifier(info["id"], "election.id")
    election_name = _text(info["name"], "election.name")
    station = _fields(top["station"], "station", ("id", "name"))
    station_id = _identifier(station["id"], "station.id")
    station_name = _text(station["name"], "station.name")
    races = tuple(
        _race(race, f"races[{index}]") for index, race in enumerate(_items(top["races"], "races"))
    )
    if not races:
        raise _Unusable("there are no races")
    return Election(election_id, election_name, date, station_id, station_name, races)


def parse_payload(payload: bytes) -> Election:
    """Read a verified payload; `DataRefused("invalid")` if its structure is wrong or a
    text breaks the rule in `booth.text`. The refusal never repeats the payload's text."""
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise DataRefused("invalid", "the election data is not usable: not UTF-8 JSON") from exc
    try:
        return _election(raw)
    except _Unusable as exc:
        raise DataRefused("invalid", f"the election data is not usable: {exc}") from exc
