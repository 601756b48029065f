"""A voter's selections: checking them against the race rules, and the ballot code.

Ballot code (docs/election-data.md), e.g. ``BK1:MFRGGZDF:2:1.4.7:B:Q2ZX``:
``BK1`` (format), the first 8 characters of the election-data fingerprint, one
field per race in order (``B`` for a blank vote, else the chosen choice
numbers ascending, joined by ``.``), and a check field: the first 4
characters of base32(sha256(everything before ``:CHECK``)). Every character is
in the QR-code alphanumeric set. The code holds no time and no serial number.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from .election import Election, Race

CODE_VERSION = "BK1"
_FIELD_RE = re.compile(r"^(B|[1-9][0-9]*(\.[1-9][0-9]*)*)$")


class InvalidChoice(ValueError):
    """The voter's answer breaks the race's rules; the message says why, for the voter."""


@dataclass(frozen=True)
class RaceVote:
    race: Race
    numbers: tuple[int, ...]  # empty: a blank vote

    def labels(self) -> list[str]:
        if not self.numbers:
            return ["BLANK VOTE"]
        by_number = {choice.number: choice.label for choice in self.race.choices}
        return [by_number[number] for number in self.numbers]


def parse_answer(race: Race, answer: str) -> RaceVote:
    """Turn a typed answer ("3", "1 4 7", "0") into a vote, or raise `InvalidChoice`."""
    words = answer.replace(",", " ").split()
    if not words:
        raise InvalidChoice("type the number of your choice")
    if words == ["0"]:
        if not race.blank:
            raise InvalidChoice("a blank vote is not allowed in this race")
        return RaceVote(race, ())
    numbers: list[int] = []
    for word in words:
        if not word.isdigit() or not 1 <= int(word) <= len(race.choices):
            raise InvalidChoice(f"{word!r} is not a number from 1 to {len(race.choices)}")
        if int(word) in numbers:
            raise InvalidChoice(f"{word} was typed twice")
        numbers.append(int(word))
    if len(numbers) > race.maximum:
        raise InvalidChoice(f"at most {race.maximum} may be chosen, you chose {len(numbers)}")
    if len(numbers) < race.minimum:
        raise InvalidChoice(f"at least {race.minimum} must be chosen, you chose {len(numbers)}")
    return RaceVote(race, tuple(sorted(numbers)))


def _check(body: str) -> str:
    return base64.b32encode(hashlib.sha256(body.encode("ascii")).digest()).decode()[:4]


def ballot_code(election_fingerprint: str, votes: list[RaceVote]) -> str:
    """The short machine-readable code for a ballot (see the module docstring)."""
    fields = [CODE_VERSION, election_fingerprint.replace("-", "")[:8]]
    for vote in votes:
        fields.append(".".join(str(n) for n in vote.numbers) if vote.numbers else "B")
    body = ":".join(fields)
    return f"{body}:{_check(body)}"


def decode_ballot_code(code: str) -> tuple[str, list[tuple[int, ...]]]:
    """(election fingerprint prefix, chosen numbers per race); `ValueError` if damaged."""
    fields = code.strip().split(":")
    if len(fields) < 4 or fields[0] != CODE_VERSION:
        raise ValueError("not a BK1 ballot code")
    body, check = ":".join(fields[:-1]), fields[-1]
    if _check(body) != check:
        raise ValueError("ballot code check characters do not match")
    races: list[tuple[int, ...]] = []
    for field in fields[2:-1]:
        if not _FIELD_RE.match(field):
            raise ValueError(f"bad race field {field!r}")
        races.append(() if field == "B" else tuple(int(n) for n in field.split(".")))
    return fields[1], races


def ballot_text(election: Election, votes: list[RaceVote], code: str) -> str:
    """The human-readable ballot printed for the voter, ending with its code."""
    lines = [
        "----- BALLOT -----",
        f"Election: {election.election_name}",
        f"Station: {election.station_id} {election.station_name}",
    ]
    for vote in votes:
        lines.append(f"{vote.race.name}:")
        lines.extend(f"  - {label}" for label in vote.labels())
    lines += [f"CODE: {code}", "----- END BALLOT -----"]
    return "\n".join(lines) + "\n"
