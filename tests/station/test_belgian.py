"""Election definitions of format 2 (Belgian ballots): loading, every problem with its
place, the payload, and `build.py election check` (the vote rules: tests/booth/
test_belgian_vectors.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.cli import main
from builder.core.canonical import canonical_json
from builder.core.errors import ValidationErrors
from builder.station.belgian import BelgianRace
from builder.station.election import load_election, payload_problems, station_payload

sys.path.insert(0, str(Path(__file__).parents[1] / "booth"))
from booth_helpers import REPO

EXAMPLE = REPO / "examples" / "election-be" / "election.yaml"


def _definition() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    return raw


def _problems(tmp_path: Path, raw: Any) -> list[str]:
    path = tmp_path / "election.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    with pytest.raises(ValidationErrors) as caught:
        load_election(path)
    return caught.value.problems


def test_the_example_loads_with_names_in_every_language() -> None:
    definition = load_election(EXAMPLE)
    assert definition.format == 2
    assert definition.languages == ("nl", "fr", "de")
    assert definition.names is not None
    assert definition.names.to_json()["fr"] == "Élections fédérales 2030 (exemple)"
    chamber = definition.races[0]
    assert isinstance(chamber, BelgianRace)
    # A list name written once is the same in every language; candidates as written.
    assert chamber.lists[0].name.to_json() == {"nl": "Groen Links", "fr": "Groen Links",
                                               "de": "Groen Links"}  # fmt: skip
    assert chamber.lists[1].name.to_json()["de"] == "Liberale Partei"
    assert [p.id for p in chamber.lists[1].substitutes] == ["2-S1", "2-S2"]
    assert chamber.blank and not definition.races[1].blank  # type: ignore[union-attr]


def test_the_payload_writes_every_default_out_and_passes_the_booth_rule() -> None:
    definition = load_election(EXAMPLE)
    payload = station_payload(definition, definition.station("0002"))
    assert payload["format"] == 2
    assert payload["election"]["languages"] == ["nl", "fr", "de"]
    assert [race["id"] for race in payload["races"]] == ["chamber"]
    third = payload["races"][0]["lists"][2]
    assert third["substitutes"] == []
    assert third["name"] == {"nl": "Sociaal Front", "fr": "Sociaal Front", "de": "Sociaal Front"}
    assert payload_problems(canonical_json(payload), "payload") == []


def test_every_problem_is_reported_with_its_place(tmp_path: Path) -> None:
    raw = _definition()
    raw["election"]["name"] = {"nl": "Verkiezingen", "fr": "Élections"}
    chamber = raw["races"][0]
    chamber["blank"] = "ja"
    chamber["rules"] = {"choose": "list"}
    chamber["lists"][0]["effective"] = []
    chamber["lists"][1]["id"] = "1"
    chamber["lists"][1]["name"]["fr"] = "Parti\x1b[2J"
    chamber["lists"][1]["substitutes"][0]["id"] = "1-S1"
    del chamber["lists"][2]["effective"]
    raw["races"][1]["lists"] = []
    raw["races"][1]["id"] = "chamber"
    problems = "\n".join(_problems(tmp_path, raw))
    for expected in (
        "election.name.de: missing required key",
        "races[0].blank: expected true or false",
        "races[0].rules: unknown key",
        "races[0].lists[0].effective: a list needs at least one effective candidate",
        "races[0].lists[1].id: duplicate id '1' in this race",
        "races[0].lists[1].name.fr: contains a control character (U+001B) at character 6",
        "races[0].lists[1].substitutes[0].id: duplicate id '1-S1' in this race",
        "races[0].lists[2].effective: missing required key",
        "races[1].id: duplicate race 'chamber'",
        "races[1].lists: a race needs at least one party list",
    ):
        assert expected in problems
    # The refused text itself is never repeated.
    assert "\x1b" not in problems


def test_a_name_mapping_must_name_exactly_the_election_languages(tmp_path: Path) -> None:
    raw = _definition()
    raw["election"]["languages"] = ["fr", "de"]
    problems = "\n".join(_problems(tmp_path, raw))
    assert "election.name.nl: unknown key" in problems
    assert "races[0].name.nl: unknown key" in problems
    raw["election"]["languages"] = ["nl", "en"]
    assert "election.languages[1]: 'en' is not one of: nl, fr, de" in "\n".join(
        _problems(tmp_path, raw)
    )
    raw["election"]["languages"] = []
    assert "election.languages: expected at least one language" in "\n".join(
        _problems(tmp_path, raw)
    )


def test_format_1_stays_accepted(tmp_path: Path) -> None:
    example = REPO / "examples" / "election"
    definition = load_election(example / "election.yaml", example / "stations.csv")
    assert definition.format == 1 and definition.languages == ()
    payload = station_payload(definition, definition.stations[0])
    assert payload["format"] == 1 and "languages" not in payload["election"]


def test_a_format_1_race_in_a_format_2_definition_is_refused(tmp_path: Path) -> None:
    raw = _definition()
    raw["races"].append(
        {
            "id": "old",
            "name": "Oud",
            "rules": {"choose": "list"},
            "lists": [{"id": "a", "name": "A"}],
        }
    )
    problems = "\n".join(_problems(tmp_path, raw))
    assert "races[2].rules: unknown key" in problems
    assert "races[2].lists[0].effective: missing required key" in problems


def test_election_check_lists_the_belgian_races(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["election", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "format 2, languages: nl fr de" in out
    assert "race chamber: Kamer / Chambre / Kammer — one list, or candidates of one list" in out
    assert "3 lists, 9 candidates" in out


def test_election_check_refuses_a_bad_definition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _definition()
    raw["races"][0]["lists"][0]["effective"][0]["name"] = "Peeters\u202e"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw), "utf-8")
    assert main(["election", "check", str(path)]) == 2
    assert "races[0].lists[0].effective[0].name: contains an invisible format character" in (
        capsys.readouterr().err
    )
