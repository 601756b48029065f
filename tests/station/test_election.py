"""Election definitions, station lists, payloads, signatures and `build.py election`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from image_factory import make_image

from builder.cli import main
from builder.core.canonical import canonical_json
from builder.core.errors import InputError, ValidationErrors, VerificationFailed
from builder.station.election import (
    PAYLOAD_TYPE,
    Race,
    envelope_bytes,
    load_election,
    load_stations,
    parse_election_envelope,
    sign_payload,
    station_payload,
    verify_election_envelope,
)
from builder.trust.keys import Revocation, load_trusted_keys

sys.path.insert(0, str(Path(__file__).parent / "booth"))
from booth_helpers import (
    EXAMPLE,
    HIDDEN_TEXTS,
    KEYS,
    altered_envelope,
    example_definition,
    example_payload,
    sign_unchecked,
    signing_key,
)

MINIMAL: dict[str, Any] = {
    "election": {"id": "e1", "name": "Election"},
    "races": [
        {
            "id": "r1",
            "name": "Race",
            "rules": {"choose": "list"},
            "lists": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        }
    ],
    "stations": [{"id": "s1", "name": "Station"}],
}


def _write(tmp_path: Path, raw: Any, name: str = "election.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def _problems(tmp_path: Path, raw: Any) -> list[str]:
    with pytest.raises(ValidationErrors) as caught:
        load_election(_write(tmp_path, raw))
    return caught.value.problems


def test_example_loads() -> None:
    definition = example_definition()
    assert definition.id == "gr2030-example"
    assert [race.id for race in definition.races] == ["council", "mayor-list"]
    assert [station.id for station in definition.stations] == ["0001", "0002", "0003"]
    assert definition.station("0002").races == ("council",)
    council = definition.races[0]
    assert isinstance(council, Race) and council.choice_count() == 5


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    raw = json.loads(json.dumps(MINIMAL))
    raw["format"] = 3
    raw["election"]["id"] = "bad id!"
    raw["election"]["colour"] = "red"
    race = raw["races"][0]
    race["rules"] = {"choose": "party", "min": 3, "max": 2, "blank": "yes"}
    race["lists"][1]["id"] = "a"
    race["lists"][0]["name"] = "Evil\x1b[2J"
    raw["races"].append({"id": "r1", "name": "Again", "rules": {"choose": "candidate"}})
    raw["stations"].append({"id": "s1", "name": "Twice", "races": ["nope"]})
    problems = "\n".join(_problems(tmp_path, raw))
    for expected in (
        "election.yaml: format: unsupported format 3",
        "election.id: invalid value 'bad id!'",
        "election.colour: unknown key",
        "races[0].rules.choose: 'party' is not one of: list, candidate",
        "races[0].rules.min: min 3 is more than max 2",
        "races[0].rules.blank: expected true or false",
        "races[0].lists[1].id: duplicate id 'a' in this race",
        "races[0].lists[0].name: contains a control character (U+001B) at character 5",
        "races[1].id: duplicate race 'r1'",
        "races[1].rules.choose: there is no candidate to choose",
        "stations[1].id: duplicate station 's1'",
        "stations[1].races[0]: no race 'nope' in the election",
    ):
        assert expected in problems


def test_max_cannot_exceed_the_choices(tmp_path: Path) -> None:
    raw = json.loads(json.dumps(MINIMAL))
    raw["races"][0]["rules"]["max"] = 3
    assert any(
        "races[0].rules.max: 3 is more than the 2 lists" in p for p in _problems(tmp_path, raw)
    )


def test_missing_keys_and_wrong_types(tmp_path: Path) -> None:
    problems = "\n".join(_problems(tmp_path, {"election": "x", "races": []}))
    assert "election: expected a mapping, got a string" in problems
    assert "races: expected a non-empty list" in problems


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_election(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("election: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_election(bad)


def test_station_lists_csv_and_yaml(tmp_path: Path) -> None:
    races = ["council", "mayor-list"]
    from_csv = load_stations(EXAMPLE / "stations.csv", races)
    yaml_file = _write(
        tmp_path,
        {"stations": [{"id": s.id, "name": s.name, "races": list(s.races)} for s in from_csv]},
        "stations.yaml",
    )
    assert load_stations(yaml_file, races) == from_csv
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,races\n0001,One,council\n0001,Two,senate\n0003\n")
    with pytest.raises(ValidationErrors) as caught:
        load_stations(bad, races)
    problems = "\n".join(caught.value.problems)
    assert "bad.csv: line 3.id: duplicate station '0001'" in problems
    assert "bad.csv: line 3.races[0]: no race 'senate'" in problems
    assert "bad.csv: line 4: expected 2 or 3 fields" in problems
    header = tmp_path / "header.csv"
    header.write_text("station,name\n")
    with pytest.raises(InputError, match="line 1: the header"):
        load_stations(header, races)


def test_station_list_replaces_inline_stations(tmp_path: Path) -> None:
    stations = tmp_path / "s.csv"
    stations.write_text("id,name\nx9,Other\n")
    definition = load_election(_write(tmp_path, MINIMAL), stations)
    assert [s.id for s in definition.stations] == ["x9"]
    with pytest.raises(InputError, match="no station 's1'"):
        definition.station("s1")


def test_payload_is_canonical_and_filtered_per_station() -> None:
    definition = example_definition()
    payload = station_payload(definition, definition.station("0002"))
    assert payload["type"] == "boothkey-election-data"
    assert payload["station"] == {"id": "0002", "name": "Bibliotheek Noord"}
    assert [race["id"] for race in payload["races"]] == ["council"]
    assert payload["races"][0]["rules"] == {
        "choose": "candidate",
        "min": 1,
        "max": 3,
        "blank": True,
    }
    assert payload["election"]["date"] == "2030-03-20"
    envelope = sign_payload(payload, [signing_key()])
    assert envelope.payload == canonical_json(payload)
    assert envelope.payload_type == PAYLOAD_TYPE


def test_sign_and_verify() -> None:
    definition = example_definition()
    payload = station_payload(definition, definition.station("0001"))
    trusted = load_trusted_keys(KEYS)
    envelope = sign_payload(payload, [signing_key(), signing_key("test-other")])
    parsed = parse_election_envelope(envelope_bytes(envelope), "env")
    assert verify_election_envelope(parsed, trusted, "env") == ["test-authority", "test-other"]
    only_authority = {k: v for k, v in trusted.items() if v.name == "test-authority"}
    assert verify_election_envelope(parsed, only_authority, "env") == ["test-authority"]
    altered = parse_election_envelope(altered_envelope(envelope_bytes(envelope)), "env")
    with pytest.raises(VerificationFailed, match="altered"):
        verify_election_envelope(altered, trusted, "env")
    other_only = {k: v for k, v in trusted.items() if v.name == "test-other"}
    single = parse_election_envelope(envelope_bytes(sign_payload(payload, [signing_key()])), "e")
    with pytest.raises(VerificationFailed, match="not trusted"):
        verify_election_envelope(single, other_only, "e")
    unsigned = parse_election_envelope(
        canonical_json(dict(json.loads(envelope_bytes(envelope)), signatures=[])), "u"
    )
    with pytest.raises(VerificationFailed, match="not signed"):
        verify_election_envelope(unsigned, trusted, "u")
    with pytest.raises(InputError, match="at least one"):
        sign_payload(payload, [])


def test_a_revoked_signer_fails_election_verify_by_name() -> None:
    """Election data signed (also) by a withdrawn key fails, naming the key and the reason,
    even when another trusted key's signature alone would do."""
    definition = example_definition()
    payload = station_payload(definition, definition.station("0001"))
    trusted = load_trusted_keys(KEYS)
    other = signing_key("test-other")
    withdrawn = {other.public.keyid: Revocation(other.public.keyid, "test-other", "lost")}
    both = parse_election_envelope(
        envelope_bytes(sign_payload(payload, [signing_key(), other])), "env"
    )
    with pytest.raises(VerificationFailed, match=r"revoked key test-other \(lost\)"):
        verify_election_envelope(both, trusted, "env", withdrawn)
    single = parse_election_envelope(envelope_bytes(sign_payload(payload, [signing_key()])), "e")
    assert verify_election_envelope(single, trusted, "e", withdrawn) == ["test-authority"]


def test_envelope_parse_errors() -> None:
    with pytest.raises(InputError, match="not JSON"):
        parse_election_envelope(b"{", "x")
    with pytest.raises(InputError, match="payloadType"):
        parse_election_envelope(
            json.dumps({"payloadType": "other", "payload": "", "signatures": []}).encode(), "x"
        )
    for entry, message in (
        ({"keyid": "ab"}, "needs keyid and sig"),
        ({"keyid": 7, "sig": ""}, "needs keyid and sig"),
        ({"keyid": "ab", "sig": "@@"}, "not base64"),
    ):
        raw = {"payloadType": PAYLOAD_TYPE, "payload": "", "signatures": [entry]}
        with pytest.raises(InputError, match=message):
            parse_election_envelope(json.dumps(raw).encode(), "x")


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOTHKEY_PASSPHRASE", "boothkey-test")


def test_cli_check_sign_data_verify(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    definition = str(EXAMPLE / "election.yaml")
    stations = str(EXAMPLE / "stations.csv")
    key = str(KEYS / "test-authority.key")
    assert main(["election", "check", definition, "--stations", stations]) == 0
    assert "ok: 2 races, 3 stations" in capsys.readouterr().out
    envelope = tmp_path / "0001.election.json"
    sign = ["election", "sign", definition, "--stations", stations, "--station", "0001"]
    assert main([*sign, "--key", key, "-o", str(envelope)]) == 0
    signed_out = capsys.readouterr().out
    data = tmp_path / "0001.data"
    assert (
        main(["election", "data", "--envelope", str(envelope), "--size-mib", "2", "-o", str(data)])
        == 0
    )
    assert data.stat().st_size == 2 * 1024 * 1024
    data_out = capsys.readouterr().out
    fingerprint_line = signed_out.splitlines()[-1]
    assert fingerprint_line.startswith("election fingerprint ")
    assert fingerprint_line in data_out
    assert main(["election", "verify", str(data), "--keys", str(KEYS)]) == 0
    assert "signed by test-authority: OK" in capsys.readouterr().out
    other_keys = tmp_path / "other-keys"
    other_keys.mkdir()
    (other_keys / "test-other.pub.json").write_bytes((KEYS / "test-other.pub.json").read_bytes())
    assert main(["election", "verify", str(envelope), "--keys", str(other_keys)]) == 3
    assert "not trusted" in capsys.readouterr().err


def test_cli_stations_with_images(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    built = make_image(tmp_path / "built", name="booth", data_mib=1)
    out = tmp_path / "out"
    code = main(
        ["election", "stations", str(EXAMPLE / "election.yaml"), "--stations",
         str(EXAMPLE / "stations.csv"), "--key", str(KEYS / "test-authority.key"),
         "--manifest", str(built.manifest_path), "--image", str(built.image),
         "--out", str(out), "--jobs", "2"]
    )  # fmt: skip
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "0001.data", "0001.election.json", "0002.data", "0002.election.json",
        "0003.data", "0003.election.json", "booth-0001.img", "booth-0002.img",
        "booth-0003.img", "stations.json",
    ]  # fmt: skip
    assert (out / "0001.data").stat().st_size == 1024 * 1024
    assert "wrote 3 stations" in capsys.readouterr().out


def test_cli_errors_are_input_errors(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    definition = _write(tmp_path, {"election": {}, "races": []})
    assert main(["election", "check", str(definition)]) == 2
    err = capsys.readouterr().err
    assert "election.id: missing required key" in err
    assert "races: expected a non-empty list" in err
    code = main(
        ["election", "data", str(EXAMPLE / "election.yaml"), "--size-mib", "1", "-o",
         str(tmp_path / "x.data")]
    )  # fmt: skip
    assert code == 2
    assert "--station" in capsys.readouterr().err


# Where a definition carries text shown to the voter, and how to put `text` there.
TEXT_PLACES: dict[str, Callable[[Any, str], None]] = {
    "election.name": lambda raw, text: raw["election"].update(name=text),
    "races[0].name": lambda raw, text: raw["races"][0].update(name=text),
    "races[0].lists[1].name": lambda raw, text: raw["races"][0]["lists"][1].update(name=text),
    "stations[0].name": lambda raw, text: raw["stations"][0].update(name=text),
}


@pytest.mark.parametrize("kind", sorted(HIDDEN_TEXTS))
def test_check_refuses_text_a_voter_must_not_see(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hidden = HIDDEN_TEXTS[kind]
    for place, put in TEXT_PLACES.items():
        raw = json.loads(json.dumps(MINIMAL))
        put(raw, hidden)
        definition = _write(tmp_path, raw)
        assert main(["election", "check", str(definition)]) == 2
        out = capsys.readouterr()
        assert f"election.yaml: {place}: " in out.err
        assert hidden not in out.err + out.out
        assert "\x1b" not in out.err and "pwned" not in out.err


def test_candidates_and_csv_stations_follow_the_text_rule(tmp_path: Path) -> None:
    raw = json.loads(json.dumps(MINIMAL))
    raw["races"][0]["rules"]["choose"] = "candidate"
    raw["races"][0]["lists"][0]["candidates"] = [{"id": "c1", "name": "Jansen\u200b, Anna"}]
    raw["races"][0]["candidates"] = [{"id": "c2", "name": "x" * 1_000_000}]
    problems = "\n".join(_problems(tmp_path, raw))
    assert (
        "races[0].lists[0].candidates[0].name: contains an invisible format character" in problems
    )
    assert "races[0].candidates[0].name: is 1000000 characters long, more than 200" in problems
    stations = tmp_path / "stations.csv"
    stations.write_text("id,name\n0001,Stad\u202ehuis\n0002,Zoë\u2019s Bibliothèque\n", "utf-8")
    with pytest.raises(ValidationErrors) as caught:
        load_stations(stations, ["r1"])
    assert caught.value.problems == [
        f"{stations}: line 2.name: contains an invisible format character (bidi control, "
        "zero-width or similar) (U+202E) at character 5"
    ]


def test_ids_and_dates_cannot_end_in_a_newline(tmp_path: Path) -> None:
    raw = json.loads(json.dumps(MINIMAL))
    raw["election"]["id"] = "e1\n"
    raw["election"]["date"] = "2030-03-20\n"
    raw["stations"][0]["id"] = "s1\n"
    problems = "\n".join(_problems(tmp_path, raw))
    assert "election.id: invalid value 'e1\\n'" in problems
    assert "election.date: invalid value '2030-03-20\\n'" in problems
    assert "stations[0].id: invalid value 's1\\n'" in problems
    raw = json.loads(json.dumps(MINIMAL))
    raw["election"]["date"] = "\u0662\u0660\u0663\u0660-03-20"  # Arabic-Indic digits
    assert any("election.date: invalid value" in p for p in _problems(tmp_path, raw))


def test_sign_refuses_hidden_text(
    tmp_path: Path, passphrase: None, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(json.dumps(MINIMAL))
    raw["races"][0]["lists"][0]["name"] = "A\u202e"
    definition = _write(tmp_path, raw)
    output = tmp_path / "s1.election.json"
    key = str(KEYS / "test-authority.key")
    sign = ["election", "sign", str(definition), "--station", "s1", "--key", key]
    assert main([*sign, "-o", str(output)]) == 2
    assert "races[0].lists[0].name: contains an invisible format character" in (
        capsys.readouterr().err
    )
    assert not output.exists()
    # Nor does signing accept a payload made by hand.
    payload = example_payload()
    payload["station"]["name"] = HIDDEN_TEXTS["escape sequences"]
    with pytest.raises(ValidationErrors, match=r"station\.name: contains a control character"):
        sign_payload(payload, [signing_key()])


@pytest.mark.parametrize("kind", ["escape sequences", "right-to-left override", "a megabyte"])
def test_verify_refuses_hidden_text_signed_without_check(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An authority key signed a payload carrying escape sequences with its own tools,
    never running `election check`: the booth would refuse it, so verify does too."""
    payload = example_payload()
    payload["races"][0]["lists"][0]["candidates"][1]["name"] = HIDDEN_TEXTS[kind]
    envelope = tmp_path / "0001.election.json"
    envelope.write_bytes(sign_unchecked(payload))
    assert main(["election", "verify", str(envelope), "--keys", str(KEYS)]) == 3
    out = capsys.readouterr()
    assert "signed, but the booth would refuse it as not usable" in out.err
    assert "races[0].lists[0].candidates[1].name: " in out.err
    assert "OK" not in out.out
    assert HIDDEN_TEXTS[kind] not in out.err + out.out
    assert "\x1b" not in out.err + out.out and "\u202e" not in out.err + out.out
    data = tmp_path / "0001.data"
    argv = ["election", "data", "--envelope", str(envelope), "--size-mib", "2", "-o", str(data)]
    assert main(argv) == 2
    assert not data.exists()
    assert "races[0].lists[0].candidates[1].name: " in capsys.readouterr().err
