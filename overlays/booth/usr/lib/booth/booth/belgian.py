"""Belgian ballots (election data format 2): the races, the rules of a vote, the ballot code.

A vote in a race is blank (if the race allows it), a list vote (the head of one list),
or preference votes for candidates of that same list, effective or substitute. Marks
(``("list", LIST_ID)``, ``("candidate", ID)``) on two lists are refused; the head of a
list marked with candidates of that list counts as the candidates' votes.

Ballot code (docs/election-data.md, section 6b), e.g. ``BK2:MFRGGZDFMZTWQ2LK:2/1.S1:B:Q2ZX``:
``BK2``, the 16 characters of the election fingerprint, one field per race (``B``
blank, ``L`` a list vote for the L-th list, ``L/1.3.S2`` effective candidates 1 and 3
and substitute 2 of list L), and 4 check characters: base32(sha256(the rest)).

The builder has its own copy of these rules (builder/station/ballot.py); both are
tested against tests/booth/vectors/belgian-ballots.json.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .fields import Unusable, fields, identifier, items, text

LANGUAGES = ("nl", "fr", "de")
CODE_VERSION = "BK2"
_NUMBER = r"[1-9][0-9]{0,3}"
_FIELD_RE = re.compile(rf"(?:B|({_NUMBER})(?:/((?:S?{_NUMBER})(?:\.S?{_NUMBER})*))?)")
_FINGERPRINT_RE = re.compile(r"[A-Z2-7]{16}")


class VoteRefused(ValueError):
    """Marks or a code the rules refuse; `reason` is a stable word (see the builder's
    REASONS), the message says why in English for logs and tests."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Person:
    id: str
    name: str


@dataclass(frozen=True)
class PartyList:
    id: str
    names: dict[str, str]  # by language
    effective: tuple[Person, ...]
    substitutes: tuple[Person, ...]

    @property
    def people(self) -> tuple[Person, ...]:
        return self.effective + self.substitutes


@dataclass(frozen=True)
class BelgianRace:
    id: str
    names: dict[str, str]
    blank: bool
    lists: tuple[PartyList, ...]


@dataclass(frozen=True)
class Vote:
    """One race's vote: `party` None is blank; no candidates is a list vote."""

    race: BelgianRace
    party: PartyList | None
    candidates: tuple[Person, ...]

    def to_json(self) -> dict[str, Any]:
        if self.party is None:
            return {"blank": True}
        if not self.candidates:
            return {"list": self.party.id}
        return {"list": self.party.id, "candidates": [person.id for person in self.candidates]}


def languages_of(value: Any) -> tuple[str, ...]:
    found = items(value, "election.languages")
    if not found or len(set(found)) != len(found) or any(x not in LANGUAGES for x in found):
        raise Unusable("election.languages is not a list of nl, fr and de")
    return tuple(found)


def names_of(value: Any, where: str, languages: tuple[str, ...]) -> dict[str, str]:
    entry = fields(value, where, languages)
    return {language: text(entry[language], f"{where}.{language}") for language in languages}


def _people(value: Any, where: str, seen: set[str]) -> tuple[Person, ...]:
    people = []
    for index, item in enumerate(items(value, where)):
        at = f"{where}[{index}]"
        entry = fields(item, at, ("id", "name"))
        people.append(
            Person(_unique(entry["id"], f"{at}.id", seen), text(entry["name"], f"{at}.name"))
        )
    return tuple(people)


def _unique(value: Any, where: str, seen: set[str]) -> str:
    found = identifier(value, where)
    if found in seen:
        raise Unusable(f"{where} repeats an id of this race")
    seen.add(found)
    return found


def parse_race(value: Any, where: str, languages: tuple[str, ...]) -> BelgianRace:
    race = fields(value, where, ("id", "name", "blank", "lists"))
    race_id = identifier(race["id"], f"{where}.id")
    names = names_of(race["name"], f"{where}.name", languages)
    if not isinstance(race["blank"], bool):
        raise Unusable(f"{where}.blank is not true or false")
    seen: set[str] = set()
    lists = []
    for index, item in enumerate(items(race["lists"], f"{where}.lists")):
        at = f"{where}.lists[{index}]"
        entry = fields(item, at, ("id", "name", "effective", "substitutes"))
        list_id = _unique(entry["id"], f"{at}.id", seen)
        list_names = names_of(entry["name"], f"{at}.name", languages)
        effective = _people(entry["effective"], f"{at}.effective", seen)
        if not effective:
            raise Unusable(f"{at}.effective is empty")
        substitutes = _people(entry["substitutes"], f"{at}.substitutes", seen)
        lists.append(PartyList(list_id, list_names, effective, substitutes))
    if not lists:
        raise Unusable(f"{where}.lists is empty")
    return BelgianRace(race_id, names, race["blank"], tuple(lists))


def vote_from_marks(race: BelgianRace, marks: Sequence[tuple[str, str]]) -> Vote:
    """The vote these marks make, or `VoteRefused`."""
    if not marks:
        if not race.blank:
            raise VoteRefused("blank-not-allowed", "a blank vote is not allowed in this race")
        return Vote(race, None, ())
    if len(set(marks)) != len(marks):
        raise VoteRefused("duplicate", "the same choice is marked twice")
    parties: list[PartyList] = []
    for kind, item_id in marks:
        party = _owner(race, kind, item_id)
        if party is None:
            raise VoteRefused("unknown-choice", f"no {kind} {item_id!r} in this race")
        if party not in parties:
            parties.append(party)
    if len(parties) > 1:
        raise VoteRefused("mixed-lists", "choices on more than one list are not allowed")
    chosen = {item_id for kind, item_id in marks if kind == "candidate"}
    return Vote(race, parties[0], tuple(p for p in parties[0].people if p.id in chosen))


def _owner(race: BelgianRace, kind: str, item_id: str) -> PartyList | None:
    for party in race.lists:
        if kind == "list" and party.id == item_id:
            return party
        if kind == "candidate" and any(person.id == item_id for person in party.people):
            return party
    return None


def race_field(vote: Vote) -> str:
    if vote.party is None:
        return "B"
    position = vote.race.lists.index(vote.party) + 1
    if not vote.candidates:
        return str(position)
    words = [str(i) for i, p in enumerate(vote.party.effective, 1) if p in vote.candidates]
    words += [f"S{i}" for i, p in enumerate(vote.party.substitutes, 1) if p in vote.candidates]
    return f"{position}/{'.'.join(words)}"


def vote_from_field(race: BelgianRace, field: str) -> Vote:
    """The vote in a code's race field; only the form `race_field` writes is accepted."""
    match = _FIELD_RE.fullmatch(field)
    if match is None:
        raise VoteRefused("bad-field", f"{field!r} is not a race field")
    if field == "B":
        return vote_from_marks(race, [])
    position = int(match.group(1))
    if position > len(race.lists):
        raise VoteRefused("unknown-choice", f"there is no list {position}")
    party = race.lists[position - 1]
    marks = [("list", party.id)]
    if match.group(2):
        marks = []
        for word in match.group(2).split("."):
            people = party.substitutes if word.startswith("S") else party.effective
            number = int(word.lstrip("S"))
            if number > len(people):
                raise VoteRefused("unknown-choice", f"list {position} has no candidate {word}")
            marks.append(("candidate", people[number - 1].id))
    vote = vote_from_marks(race, marks)
    if race_field(vote) != field:
        raise VoteRefused("bad-field", f"{field!r} is not written in order")
    return vote


def _check(body: str) -> str:
    return base64.b32encode(hashlib.sha256(body.encode("ascii")).digest()).decode()[:4]


def ballot_code(fingerprint: str, votes: Sequence[Vote]) -> str:
    short = fingerprint.replace("-", "")
    if not _FINGERPRINT_RE.fullmatch(short):
        raise ValueError("not an election fingerprint")
    body = ":".join([CODE_VERSION, short, *(race_field(vote) for vote in votes)])
    return f"{body}:{_check(body)}"


def decode_ballot(code: str, fingerprint: str, races: Sequence[BelgianRace]) -> tuple[Vote, ...]:
    """The votes of a ballot code of this election, or `VoteRefused`."""
    parts = code.strip().split(":")
    if len(parts) < 3 or parts[0] != CODE_VERSION or not _FINGERPRINT_RE.fullmatch(parts[1]):
        raise VoteRefused("not-a-ballot", "not a BK2 ballot code")
    if _check(":".join(parts[:-1])) != parts[-1]:
        raise VoteRefused("check", "the check characters do not match")
    if parts[1] != fingerprint.replace("-", ""):
        raise VoteRefused("other-election", "a ballot of another election")
    if len(parts) - 3 != len(races):
        raise VoteRefused("race-count", "not one field per race")
    return tuple(
        vote_from_field(race, field) for race, field in zip(races, parts[2:-1], strict=True)
    )
