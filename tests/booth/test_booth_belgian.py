"""The text booth with a Belgian election (format 2), driven over a pty: the language
first, a list vote, preference votes, a refused mix of lists, a blank vote, and the
ballot's code decoded by the builder to the vote cast."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from booth_helpers import BoothRun, belgian_envelope, booth_module, data_partition, spawn_booth

from builder.station.ballot import ballot_election, decode_ballot
from builder.station.fingerprint import election_fingerprint

i18n = booth_module("i18n")


@pytest.fixture
def booth(tmp_path: Path) -> Iterator[BoothRun]:
    data = data_partition(tmp_path / "booth-data.img", belgian_envelope("0001"))
    run = spawn_booth(tmp_path, data)
    yield run
    run.close()


def _start(child: pexpect.spawn, language: str) -> None:
    child.expect_exact("READY: press Enter to start voting")
    child.sendline("")
    child.expect_exact("Kies uw taal / Choisissez votre langue / Wählen Sie Ihre Sprache")
    child.expect_exact("LANGUAGE> ")
    child.sendline(language)


def _code(child: pexpect.spawn) -> str:
    child.expect(r"CODE: (\S+)\r\n")
    return str(child.match.group(1))


def _decoded(code: str) -> list[dict[str, object]]:
    payload = base64.b64decode(json.loads(belgian_envelope("0001"))["payload"])
    election = ballot_election(payload, election_fingerprint(payload), "test")
    return [vote.to_json() for vote in decode_ballot(code, election)]


def test_every_language_has_every_message() -> None:
    keys = set(i18n.MESSAGES["nl"])
    assert all(set(messages) == keys for messages in i18n.MESSAGES.values())


def test_french_voter_mixing_lists_is_refused_then_votes_for_candidates(booth: BoothRun) -> None:
    child = booth.child
    _start(child, "2")
    child.expect_exact("RACE 1/2: Chambre")
    child.expect_exact("Tapez 0 pour voter blanc.")
    child.expect_exact("2) Parti libéral")
    child.expect_exact("2.S2  Maes, Ilse")
    child.expect_exact("CHOICE> ")
    child.sendline("1.1 2.1")
    child.expect_exact(
        "INVALID: vous ne pouvez voter que pour une liste ou pour des candidats d'une liste"
    )
    child.sendline("7")
    child.expect_exact("INVALID: ce numéro ne figure pas sur ce bulletin")
    child.sendline("2.S1 2.1")
    child.expect_exact("RACE 2/2: Parlement")
    child.expect_exact("CHOICE> ")
    child.sendline("0")
    child.expect_exact("INVALID: le vote blanc n'est pas possible dans cette élection")
    child.sendline("1")
    child.expect_exact("REVIEW: Votre choix")
    child.expect_exact("- Parti libéral: Lambert, Chloé")
    child.expect_exact("- Parti libéral: Wouters, Noël")
    child.expect_exact("- Groen Links: Vote en case de tête")
    child.expect_exact("CONFIRM> ")
    child.sendline("OUI")
    child.expect_exact("Élections fédérales 2030 (exemple)")
    assert _decoded(_code(child)) == [
        {"list": "2", "candidates": ["2-1", "2-S1"]},
        {"list": "1"},
    ]
    child.expect_exact("BALLOT CAST")


@pytest.mark.parametrize(
    ("answer", "race", "yes"), [("1", "Kamer", "JA"), ("3", "Kammer", "JA"), ("de", "Kammer", "J")]
)
def test_dutch_and_german_voters_cast_blank_and_list_votes(
    booth: BoothRun, answer: str, race: str, yes: str
) -> None:
    child = booth.child
    _start(child, answer)
    child.expect_exact(f"RACE 1/2: {race}")
    child.sendline("0")
    child.expect_exact("RACE 2/2: ")
    child.sendline("2")
    child.expect_exact("CONFIRM> ")
    child.sendline(yes)
    if yes == "J":
        child.expect_exact("INVALID: geben Sie JA oder NEIN ein")
        child.sendline("nein")
        child.expect_exact("READY: press Enter to start voting")
        return
    assert _decoded(_code(child)) == [{"blank": True}, {"list": "2"}]
