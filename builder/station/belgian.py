"""Election data format 2: Belgian ballots, in Dutch, French and German.

A format 2 race is a set of party lists, each with its effective candidates and
(optionally) its substitutes. The voter casts one of: a list vote (for the head of
one list), preference votes for one or more candidates of that same list (effective,
substitute, or both), or, where the race allows it, a blank vote. Votes for two lists
are refused (docs/election-data.md, section 1b; the rules of a vote are in
`builder.station.ballot`).

Names of the election, of races and of lists are given per language
(`{nl: ..., fr: ..., de: ...}`) or once, as written, for every language; candidate
and station names are always as written. Every text follows `text_problem`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from builder.core.jsonfields import FieldReader, kind_of
from builder.core.text import text_problem

LANGUAGES = ("nl", "fr", "de")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass(frozen=True)
class Names:
    """A name in each of the election's languages, in the election's language order."""

    texts: tuple[tuple[str, str], ...]  # (language, text)

    def to_json(self) -> dict[str, str]:
        return dict(self.texts)

    def display(self) -> str:
        """Every distinct text, joined by " / " (for a poll worker's listing)."""
        shown: list[str] = []
        for _language, text in self.texts:
            if text not in shown:
                shown.append(text)
        return " / ".join(shown)


@dataclass(frozen=True)
class Person:
    id: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class BelgianList:
    id: str
    name: Names
    effective: tuple[Person, ...]
    substitutes: tuple[Person, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name.to_json(),
            "effective": [person.to_json() for person in self.effective],
            "substitutes": [person.to_json() for person in self.substitutes],
        }


@dataclass(frozen=True)
class BelgianRace:
    id: str
    name: Names
    blank: bool
    lists: tuple[BelgianList, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name.to_json(),
            "blank": self.blank,
            "lists": [item.to_json() for item in self.lists],
        }

    def summary(self) -> str:
        """One line for `election check`."""
        people = sum(len(item.effective) + len(item.substitutes) for item in self.lists)
        blank = ", blank allowed" if self.blank else ""
        return (
            f"{self.name.display()} — one list, or candidates of one list{blank}: "
            f"{len(self.lists)} lists, {people} candidates"
        )


def read_languages(reader: FieldReader, raw: Any, where: str) -> tuple[str, ...]:
    """The election's languages (default: all three), in the order the booth offers them."""
    if raw is None:
        return LANGUAGES
    languages = reader.string_list(raw, where)
    if not languages and isinstance(raw, list):
        reader.error(where, "expected at least one language")
    for index, language in enumerate(languages):
        if language and language not in LANGUAGES:
            reader.error(f"{where}[{index}]", f"{language!r} is not one of: {', '.join(LANGUAGES)}")
    return tuple(language for language in languages if language in LANGUAGES)


def read_names(
    reader: FieldReader, raw: Any, where: str, languages: tuple[str, ...], written_out: bool
) -> Names:
    """A name per language: a mapping with exactly the election's languages, or (unless
    `written_out`, as in a payload) one text as written, used for every language."""
    if isinstance(raw, str) and not written_out:
        text = _text(reader, raw, where)
        return Names(tuple((language, text) for language in languages))
    if not isinstance(raw, dict):
        expected = "a mapping" if written_out else "a string or a mapping"
        reader.error(
            where, f"expected {expected} of languages ({', '.join(languages)}), got {kind_of(raw)}"
        )
        return Names(())
    texts = reader.mapping(raw, where, {language: True for language in languages})
    return Names(
        tuple(
            (language, _text(reader, texts[language], f"{where}.{language}"))
            for language in languages
            if language in texts
        )
    )


def _text(reader: FieldReader, value: Any, where: str) -> str:
    text = reader.string(value, where)
    problem = text_problem(text) if text else None
    if problem is not None:
        reader.error(where, problem)
    return text


def _id(reader: FieldReader, entry: dict[str, Any], where: str, seen: set[str]) -> str:
    if "id" not in entry:
        return ""
    item_id = reader.string(entry["id"], f"{where}.id", _ID_RE)
    if item_id and item_id in seen:
        reader.error(f"{where}.id", f"duplicate id {item_id!r} in this race")
    seen.add(item_id)
    return item_id


def _people(
    reader: FieldReader, raw: Any, where: str, seen: set[str], required: bool
) -> tuple[Person, ...]:
    if not isinstance(raw, list):
        reader.error(where, f"expected a list, got {kind_of(raw)}")
        return ()
    if required and not raw:
        reader.error(where, "a list needs at least one effective candidate")
    people = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        entry = reader.mapping(item, at, {"id": True, "name": True})
        person_id = _id(reader, entry, at, seen)
        name = _text(reader, entry.get("name"), f"{at}.name") if "name" in entry else ""
        people.append(Person(person_id, name))
    return tuple(people)


def read_races(
    reader: FieldReader, raw: Any, languages: tuple[str, ...], written_out: bool = False
) -> tuple[BelgianRace, ...]:
    """The races of a format 2 definition; with `written_out`, of a payload (every
    default written out and every name a mapping, as `station_payload` writes them)."""
    if not isinstance(raw, list) or not raw:
        reader.error("races", f"expected a non-empty list, got {kind_of(raw)}")
        return ()
    races: list[BelgianRace] = []
    race_ids: set[str] = set()
    for index, item in enumerate(raw):
        where = f"races[{index}]"
        entry = reader.mapping(
            item, where, {"id": True, "name": True, "blank": written_out, "lists": True}
        )
        race_id = reader.string(entry.get("id"), f"{where}.id", _ID_RE) if "id" in entry else ""
        if race_id and race_id in race_ids:
            reader.error(f"{where}.id", f"duplicate race {race_id!r}")
        race_ids.add(race_id)
        name = read_names(reader, entry.get("name"), f"{where}.name", languages, written_out)
        blank = entry.get("blank", True)
        if not isinstance(blank, bool):
            reader.error(f"{where}.blank", f"expected true or false, got {kind_of(blank)}")
            blank = True
        lists = _lists(reader, entry.get("lists"), f"{where}.lists", languages, written_out)
        races.append(BelgianRace(race_id, name, blank, lists))
    return tuple(races)


def _lists(
    reader: FieldReader, raw: Any, where: str, languages: tuple[str, ...], written_out: bool
) -> tuple[BelgianList, ...]:
    if not isinstance(raw, list):
        reader.error(where, f"expected a list of party lists, got {kind_of(raw)}")
        return ()
    if not raw:
        reader.error(where, "a race needs at least one party list")
    seen: set[str] = set()
    lists: list[BelgianList] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        entry = reader.mapping(
            item,
            at,
            {"id": True, "name": True, "effective": True, "substitutes": written_out},
        )
        list_id = _id(reader, entry, at, seen)
        name = read_names(reader, entry.get("name"), f"{at}.name", languages, written_out)
        effective = (
            _people(reader, entry["effective"], f"{at}.effective", seen, True)
            if "effective" in entry
            else ()
        )
        substitutes = _people(
            reader, entry.get("substitutes", []), f"{at}.substitutes", seen, False
        )
        lists.append(BelgianList(list_id, name, effective, substitutes))
    return tuple(lists)
