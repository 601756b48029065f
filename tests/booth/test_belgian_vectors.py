"""Belgian ballot rules (election data format 2): the builder (builder/station/ballot.py,
builder/station/election.py) and the booth (booth/belgian.py, booth/election.py) decide
every case of tests/booth/vectors/belgian-ballots.json the same way, each with its own code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from booth_helpers import REPO, booth_module

from builder.core.canonical import canonical_json
from builder.station import ballot as builder_ballot
from builder.station.election import payload_problems

VECTORS = json.loads(
    (REPO / "tests" / "booth" / "vectors" / "belgian-ballots.json").read_text("utf-8")
)
PAYLOAD = canonical_json(VECTORS["payload"])
FINGERPRINT = VECTORS["fingerprint"]
belgian = booth_module("belgian")
booth_election = booth_module("election")
datapart = booth_module("datapart")


def _builder_races() -> dict[str, Any]:
    election = builder_ballot.ballot_election(PAYLOAD, FINGERPRINT, "vectors")
    return {race.id: race for race in election.races}


def _booth_races() -> dict[str, Any]:
    election = booth_election.parse_payload(PAYLOAD)
    return {race.id: race for race in election.races}


def _marks(case: dict[str, Any]) -> list[tuple[str, str]]:
    return [(kind, item) for kind, item in case["marks"]]


def _case_id(case: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in case.items() if k in ("race", "marks", "field", "code")})


def test_the_vectors_cover_every_refusal_reason() -> None:
    seen = {
        case["refused"]
        for group in ("votes", "fields", "codes")
        for case in VECTORS[group]
        if "refused" in case
    }
    assert seen == set(builder_ballot.REASONS)


@pytest.mark.parametrize("case", VECTORS["votes"], ids=_case_id)
def test_votes_from_marks(case: dict[str, Any]) -> None:
    builder_race = _builder_races()[case["race"]]
    booth_race = _booth_races()[case["race"]]
    if "refused" in case:
        with pytest.raises(builder_ballot.BallotRefused) as builder_refusal:
            builder_ballot.vote_from_marks(builder_race, _marks(case))
        with pytest.raises(belgian.VoteRefused) as booth_refusal:
            belgian.vote_from_marks(booth_race, _marks(case))
        assert builder_refusal.value.reason == booth_refusal.value.reason == case["refused"]
        return
    builder_vote = builder_ballot.vote_from_marks(builder_race, _marks(case))
    booth_vote = belgian.vote_from_marks(booth_race, _marks(case))
    assert builder_ballot.race_field(builder_race, builder_vote) == case["field"]
    assert belgian.race_field(booth_vote) == case["field"]
    assert builder_vote.to_json() == booth_vote.to_json()


@pytest.mark.parametrize("case", VECTORS["fields"], ids=_case_id)
def test_votes_from_fields(case: dict[str, Any]) -> None:
    builder_race = _builder_races()[case["race"]]
    booth_race = _booth_races()[case["race"]]
    if "refused" in case:
        with pytest.raises(builder_ballot.BallotRefused) as builder_refusal:
            builder_ballot.vote_from_field(builder_race, case["field"])
        with pytest.raises(belgian.VoteRefused) as booth_refusal:
            belgian.vote_from_field(booth_race, case["field"])
        assert builder_refusal.value.reason == booth_refusal.value.reason == case["refused"]
        return
    assert builder_ballot.vote_from_field(builder_race, case["field"]).to_json() == case["vote"]
    assert belgian.vote_from_field(booth_race, case["field"]).to_json() == case["vote"]


@pytest.mark.parametrize("case", VECTORS["codes"], ids=_case_id)
def test_ballot_codes(case: dict[str, Any]) -> None:
    builder_election = builder_ballot.ballot_election(PAYLOAD, FINGERPRINT, "vectors")
    booth_races = booth_election.parse_payload(PAYLOAD).races
    if "refused" in case:
        with pytest.raises(builder_ballot.BallotRefused) as builder_refusal:
            builder_ballot.decode_ballot(case["code"], builder_election)
        with pytest.raises(belgian.VoteRefused) as booth_refusal:
            belgian.decode_ballot(case["code"], FINGERPRINT, booth_races)
        assert builder_refusal.value.reason == booth_refusal.value.reason == case["refused"]
        return
    builder_votes = builder_ballot.decode_ballot(case["code"], builder_election)
    booth_votes = belgian.decode_ballot(case["code"], FINGERPRINT, booth_races)
    assert [vote.to_json() for vote in builder_votes] == case["votes"]
    assert [vote.to_json() for vote in booth_votes] == case["votes"]
    # Written back, each side gives the same code.
    fields = [
        builder_ballot.race_field(r, v)
        for r, v in zip(builder_election.races, builder_votes, strict=True)
    ]
    assert builder_ballot.ballot_code(FINGERPRINT, fields) == case["code"]
    assert belgian.ballot_code(FINGERPRINT, booth_votes) == case["code"]


def _mutated(case: dict[str, Any]) -> bytes:
    payload = copy.deepcopy(VECTORS["payload"])
    *parents, last = case["path"]
    target = payload
    for step in parents:
        target = target[step]
    if case.get("delete"):
        del target[last]
    else:
        target[last] = case["value"]
    return canonical_json(payload)


@pytest.mark.parametrize("case", VECTORS["payloads"], ids=lambda case: json.dumps(case)[:80])
def test_payloads(case: dict[str, Any]) -> None:
    payload = _mutated(case)
    builder_refuses = bool(payload_problems(payload, "vectors"))
    try:
        booth_election.parse_payload(payload)
        booth_refuses = False
    except datapart.DataRefused as refusal:
        assert refusal.reason == "invalid"
        booth_refuses = True
    assert builder_refuses == booth_refuses == (not case["valid"])


def test_the_vector_payload_is_the_example_station(tmp_path: Path) -> None:
    """The vectors' payload is examples/election-be's station 0001, as signed today."""
    from builder.station.election import load_election, station_payload

    definition = load_election(REPO / "examples" / "election-be" / "election.yaml")
    assert station_payload(definition, definition.station("0001")) == VECTORS["payload"]
