"""Recounting printed ballots: read the QR codes on pictures of ballots with zbarimg
(Debian's zbar-tools), decode each against its station's election data (format 2) and
tally them, so that the paper can be checked against the electronic count.

A ballot whose code is damaged, of another election fingerprint, or that breaks the
race rules is refused and listed with its reason, never counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.core.errors import InputError, ToolError
from builder.core.tools import run_tool
from builder.station.ballot import (
    BallotElection,
    BallotRefused,
    Vote,
    ballot_election,
    decode_ballot,
)
from builder.station.fingerprint import election_fingerprint, read_station_data

ZBAR_NO_SYMBOL = 4  # zbarimg's exit status when a picture holds no code


@dataclass(frozen=True)
class ReadBallot:
    source: str  # the picture it was read from
    code: str
    fingerprint: str | None  # of the election it counted for; None if refused
    votes: tuple[Vote, ...]
    refused: str | None = None  # a `builder.station.ballot.REASONS` word
    message: str = ""


@dataclass
class RaceTally:
    blank: int = 0
    list_votes: dict[str, int] = field(default_factory=dict)
    preference_ballots: dict[str, int] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)

    def add(self, vote: Vote) -> None:
        if vote.list_id is None:
            self.blank += 1
        elif not vote.candidates:
            self.list_votes[vote.list_id] = self.list_votes.get(vote.list_id, 0) + 1
        else:
            count = self.preference_ballots.get(vote.list_id, 0)
            self.preference_ballots[vote.list_id] = count + 1
            for person in vote.candidates:
                self.candidates[person] = self.candidates.get(person, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "blank": self.blank,
            "list_votes": self.list_votes,
            "preference_ballots": self.preference_ballots,
            "candidates": self.candidates,
        }


@dataclass(frozen=True)
class Recount:
    ballots: tuple[ReadBallot, ...]
    tallies: dict[str, dict[str, RaceTally]]  # election fingerprint -> race id -> tally

    @property
    def refused(self) -> tuple[ReadBallot, ...]:
        return tuple(ballot for ballot in self.ballots if ballot.refused is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "counted": len(self.ballots) - len(self.refused),
            "refused": [
                {"source": b.source, "code": b.code, "reason": b.refused, "message": b.message}
                for b in self.refused
            ],
            "tallies": {
                fingerprint: {race: tally.to_json() for race, tally in races.items()}
                for fingerprint, races in self.tallies.items()
            },
        }


def load_ballot_election(path: Path) -> BallotElection:
    """A station's election data (envelope, data partition or station image), format 2."""
    data = read_station_data(path)
    return ballot_election(data.payload, election_fingerprint(data.payload), str(path))


def read_codes(picture: Path) -> list[str]:
    """Every QR code zbarimg finds in a picture (PBM, PNG, PPM ...), in zbarimg's order
    (not necessarily top to bottom)."""
    if not picture.is_file():
        raise InputError(f"{picture}: no such picture")
    result = run_tool(
        ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", picture], check=False
    )
    if result.returncode == ZBAR_NO_SYMBOL:
        return []
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip()
        raise ToolError(f"zbarimg could not read {picture}: {detail}")
    return result.stdout.decode("utf-8", "replace").splitlines()


def count_ballot(code: str, source: str, elections: Sequence[BallotElection]) -> ReadBallot:
    """One code decoded against the election whose fingerprint it carries."""
    refusal: BallotRefused | None = None
    for election in elections:
        try:
            votes = decode_ballot(code, election)
        except BallotRefused as refused:
            refusal = refused
            if refused.reason == "other-election":
                continue
            break
        return ReadBallot(source, code, election.fingerprint, votes)
    if refusal is None:
        raise InputError("no election data given to count the ballots against")
    return ReadBallot(source, code, None, (), refusal.reason, refusal.message)


def recount(pictures: Sequence[Path], elections: Sequence[BallotElection]) -> Recount:
    """Read, decode and tally the ballots in `pictures` (each may hold several)."""
    if not elections:
        raise InputError("give the election data of the ballots (--election)")
    ballots: list[ReadBallot] = []
    for picture in pictures:
        codes = read_codes(picture)
        if not codes:
            ballots.append(ReadBallot(str(picture), "", None, (), "not-a-ballot", "no QR code"))
        ballots += [count_ballot(code, str(picture), elections) for code in codes]
    tallies: dict[str, dict[str, RaceTally]] = {
        election.fingerprint: {race.id: RaceTally() for race in election.races}
        for election in elections
    }
    for ballot in ballots:
        if ballot.fingerprint is not None:
            for vote in ballot.votes:
                tallies[ballot.fingerprint][vote.race_id].add(vote)
    return Recount(tuple(ballots), tallies)
