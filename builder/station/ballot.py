"""Belgian votes (election data format 2): the rules of one race's vote, and the ballot
code printed in the ballot's QR code (docs/election-data.md, section 6b).

A vote in a race is blank (where the race allows it), a list vote (the head of one
list), or preference votes for one or more candidates of that same list. The voter
marks things (`("list", LIST_ID)` for the head of a list, `("candidate", ID)` for a
candidate); `vote_from_marks` turns marks into a vote or refuses them with a stable
reason (`REASONS`). Marks on two lists are refused; marks on the head of a list and on
candidates of that list count as the candidates' preference votes (the Belgian rule).

The ballot code, e.g. ``BK2:MFRGGZDFMZTWQ2LK:2/1.S1:B:Q2ZX``: ``BK2``, the election
fingerprint's 16 characters without dashes, one field per race in the payload's order,
and a check: the first 4 characters of base32(sha256(everything before ":CHECK")). A
field is ``B`` (blank), ``L`` (a list vote for the L-th list) or ``L/C.C...`` (preference
votes: ``n`` the n-th effective candidate, ``Sn`` the n-th substitute, effective first,
each ascending). Every character is in the QR code's alphanumeric set.

The booth has its own copy of these rules (overlays/booth/usr/lib/booth/booth/belgian.py);
tests/booth/vectors/belgian-ballots.json holds the cases both must agree on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from builder.core.errors import InputError
from builder.core.jsonfields import FieldReader
from builder.station.belgian import BelgianList, BelgianRace, read_languages, read_races

CODE_VERSION = "BK2"
REASONS = (
    "blank-not-allowed",  # no mark, and the race has no blank vote
    "unknown-choice",  # a mark or a field names no list or candidate of the race
    "duplicate",  # the same thing marked twice
    "mixed-lists",  # marks on two lists
    "bad-field",  # a race field that is not written as section 6b says
    "not-a-ballot",  # not a BK2 code
    "check",  # the check characters do not match
    "other-election",  # a ballot of another election fingerprint
    "race-count",  # not one field per race
)
_NUMBER = r"[1-9][0-9]{0,3}"
_FIELD_RE = re.compile(rf"^(?:B|({_NUMBER})(?:/((?:S?{_NUMBER})(?:\.S?{_NUMBER})*))?)\Z")
_FINGERPRINT_RE = re.compile(r"^[A-Z2-7]{16}\Z")


class BallotRefused(ValueError):
    """A vote or a ballot code the rules refuse; `reason` is one of `REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Vote:
    """One race's vote: `list_id` None is a blank vote; no candidates is a list vote."""

    race_id: str
    list_id: str | None
    candidates: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        if self.list_id is None:
            return {"blank": True}
        if not self.candidates:
            return {"list": self.list_id}
        return {"list": self.list_id, "candidates": list(self.candidates)}


@dataclass(frozen=True)
class BallotElection:
    """What a ballot code is read against: one station's format 2 payload."""

    fingerprint: str  # 16 characters, no dashes
    languages: tuple[str, ...]
    races: tuple[BelgianRace, ...]


def _ordered(party: BelgianList, chosen: set[str]) -> tuple[str, ...]:
    people = party.effective + party.substitutes
    return tuple(person.id for person in people if person.id in chosen)


def vote_from_marks(race: BelgianRace, marks: Sequence[tuple[str, str]]) -> Vote:
    """The vote these marks make, or `BallotRefused` (see the module docstring)."""
    if not marks:
        if not race.blank:
            raise BallotRefused("blank-not-allowed", f"race {race.id}: a blank vote is not allowed")
        return Vote(race.id, None, ())
    if len(set(marks)) != len(marks):
        raise BallotRefused("duplicate", f"race {race.id}: the same choice is marked twice")
    owner: dict[tuple[str, str], BelgianList] = {}
    for party in race.lists:
        owner["list", party.id] = party
        for person in party.effective + party.substitutes:
            owner["candidate", person.id] = party
    parties: list[BelgianList] = []
    for mark in marks:
        if mark not in owner:
            raise BallotRefused("unknown-choice", f"race {race.id}: no {mark[0]} {mark[1]!r}")
        if owner[mark] not in parties:
            parties.append(owner[mark])
    if len(parties) > 1:
        raise BallotRefused(
            "mixed-lists", f"race {race.id}: choices on more than one list are not allowed"
        )
    chosen = {item_id for kind, item_id in marks if kind == "candidate"}
    return Vote(race.id, parties[0].id, _ordered(parties[0], chosen))


def race_field(race: BelgianRace, vote: Vote) -> str:
    """The vote's field in the ballot code."""
    if vote.list_id is None:
        return "B"
    position = [party.id for party in race.lists].index(vote.list_id) + 1
    if not vote.candidates:
        return str(position)
    party = race.lists[position - 1]
    words = [str(i) for i, p in enumerate(party.effective, 1) if p.id in vote.candidates]
    words += [f"S{i}" for i, p in enumerate(party.substitutes, 1) if p.id in vote.candidates]
    return f"{position}/{'.'.join(words)}"


def vote_from_field(race: BelgianRace, field: str) -> Vote:
    """The vote a ballot code's field holds, or `BallotRefused`; only the one way
    `race_field` writes a vote is accepted."""
    match = _FIELD_RE.match(field)
    if match is None:
        raise BallotRefused("bad-field", f"race {race.id}: {field!r} is not a race field")
    if field == "B":
        return vote_from_marks(race, [])
    position = int(match.group(1))
    if position > len(race.lists):
        raise BallotRefused("unknown-choice", f"race {race.id}: there is no list {position}")
    party = race.lists[position - 1]
    marks = [("list", party.id)]
    if match.group(2):
        marks = []
        for word in match.group(2).split("."):
            people = party.substitutes if word.startswith("S") else party.effective
            number = int(word.lstrip("S"))
            if number > len(people):
                raise BallotRefused(
                    "unknown-choice", f"race {race.id}: list {position} has no candidate {word}"
                )
            marks.append(("candidate", people[number - 1].id))
    vote = vote_from_marks(race, marks)
    if race_field(race, vote) != field:
        raise BallotRefused("bad-field", f"race {race.id}: {field!r} is not written in order")
    return vote


def _check(body: str) -> str:
    return base64.b32encode(hashlib.sha256(body.encode("ascii")).digest()).decode()[:4]


def ballot_code(fingerprint: str, fields: Sequence[str]) -> str:
    """The code for a ballot of the election with this fingerprint (dashes allowed)."""
    short = fingerprint.replace("-", "")
    if not _FINGERPRINT_RE.match(short):
        raise ValueError(f"not an election fingerprint: {fingerprint!r}")
    body = ":".join([CODE_VERSION, short, *fields])
    return f"{body}:{_check(body)}"


def decode_ballot(code: str, election: BallotElection) -> tuple[Vote, ...]:
    """The votes a ballot code holds, or `BallotRefused`: not a BK2 code, a failed check,
    another election's fingerprint, or a field the race's rules refuse."""
    fields = code.strip().split(":")
    if len(fields) < 3 or fields[0] != CODE_VERSION or not _FINGERPRINT_RE.match(fields[1]):
        raise BallotRefused("not-a-ballot", "not a BK2 ballot code")
    body, check = ":".join(fields[:-1]), fields[-1]
    if _check(body) != check:
        raise BallotRefused("check", "the ballot code's check characters do not match")
    if fields[1] != election.fingerprint:
        raise BallotRefused(
            "other-election", f"a ballot of another election (fingerprint {fields[1]})"
        )
    races = fields[2:-1]
    if len(races) != len(election.races):
        raise BallotRefused(
            "race-count", f"{len(races)} race fields for {len(election.races)} races"
        )
    return tuple(
        vote_from_field(race, field) for race, field in zip(election.races, races, strict=True)
    )


def ballot_election(payload: bytes, fingerprint: str, shown: str) -> BallotElection:
    """A format 2 payload read for decoding ballots; `InputError` if it is not one."""
    try:
        raw = json.loads(payload)
    except ValueError as exc:
        raise InputError(f"{shown}: the payload is not JSON") from exc
    if not isinstance(raw, dict) or raw.get("format") != 2:
        raise InputError(f"{shown}: not election data of format 2 (Belgian ballots)")
    reader = FieldReader(f"{shown}: payload")
    election = raw.get("election")
    languages = read_languages(
        reader, election.get("languages") if isinstance(election, dict) else None, "languages"
    )
    races = read_races(reader, raw.get("races"), languages, written_out=True)
    if reader.problems:
        raise InputError("\n".join(reader.problems))
    return BallotElection(fingerprint.replace("-", ""), languages, races)
