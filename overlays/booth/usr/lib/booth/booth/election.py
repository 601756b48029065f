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

from . import belgian
from .datapart import DataRefused
from .fields import Unusable as _Unusable
from .fields import fields as _fields
from .fields import identifier as _identifier
from .fields import items as _items
from .fields import text as _text

PAYLOAD_KIND = "boothkey-election-data"
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
    races: tuple[Race, ...] | tuple[belgian.BelgianRace, ...]
    format: int = 1
    languages: tuple[str, ...] = ()  # format 2: the languages offered, in order
    names: dict[str, str] | None = None  # format 2: the election's name by language

    def name_in(self, language: str) -> str:
        """The election's name in `language` (format 1: its only name)."""
        return self.names[language] if self.names else self.election_name


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
    if top["type"] != PAYLOAD_KIND or type(top["format"]) is not int or top["format"] not in (1, 2):
        raise _Unusable("not boothkey election data of format 1 or 2")
    if top["format"] == 2:
        return _belgian_election(top)
    info = _fields(top["election"], "election", ("id", "name"), optional=("date",))
    date = _date(info)
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


def _belgian_election(top: Any) -> Election:
    """Format 2: Belgian races, names per language (`booth.belgian`)."""
    info = _fields(top["election"], "election", ("id", "name", "languages"), optional=("date",))
    date = _date(info)
    election_id = _identifier(info["id"], "election.id")
    languages = belgian.languages_of(info["languages"])
    names = belgian.names_of(info["name"], "election.name", languages)
    station = _fields(top["station"], "station", ("id", "name"))
    station_id = _identifier(station["id"], "station.id")
    station_name = _text(station["name"], "station.name")
    races = tuple(
        belgian.parse_race(race, f"races[{index}]", languages)
        for index, race in enumerate(_items(top["races"], "races"))
    )
    if not races:
        raise _Unusable("there are no races")
    if len({race.id for race in races}) != len(races):
        raise _Unusable("two races have the same id")
    first = names[languages[0]]
    return Election(election_id, first, date, station_id, station_name, races, 2, languages, names)


def _date(info: Any) -> str:
    date = info.get("date", "")
    if "date" in info and (not isinstance(date, str) or not _DATE_RE.fullmatch(date)):
        raise _Unusable("election.date is not a date (YYYY-MM-DD)")
    return str(date)


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
