"""The booth's modules on their own, and agreement between the booth's and the builder's
implementations of every shared format (fingerprints, data partition, envelope, payload)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from booth_helpers import (
    BOOTH_LIB,
    HIDDEN_TEXTS,
    KEYS,
    SHOWN_TEXTS,
    altered_envelope,
    booth_module,
    data_partition,
    example_definition,
    example_envelope,
    example_payload,
)

from builder.core import text as builder_text
from builder.core.canonical import canonical_json
from builder.station import election as builder_election
from builder.station import fingerprint as builder_fingerprint

ballot = booth_module("ballot")
datapart = booth_module("datapart")
election = booth_module("election")
fingerprint = booth_module("fingerprint")
text = booth_module("text")


def _trusted(*names: str) -> dict[str, object]:
    keys = {}
    for name in names:
        key = datapart.parse_public_key((KEYS / f"{name}.pub.json").read_bytes(), name)
        keys[key.keyid] = key
    return keys


@pytest.mark.parametrize("seed", range(20))
def test_booth_and_builder_fingerprints_agree(seed: int) -> None:
    digest = hashlib.sha256(f"seed {seed}".encode()).hexdigest()
    assert fingerprint.software_fingerprint(digest) == builder_fingerprint.software_fingerprint(
        digest
    )
    payload = f"payload {seed}".encode()
    assert fingerprint.election_fingerprint(payload) == builder_fingerprint.election_fingerprint(
        payload
    )


def test_root_hash_from_cmdline() -> None:
    root = "ab" * 32
    assert fingerprint.root_hash_from_cmdline(f"quiet boothkey.roothash={root} x=1") == root
    assert fingerprint.root_hash_from_cmdline("quiet") is None
    assert fingerprint.root_hash_from_cmdline("boothkey.roothash=xyz") is None


def test_booth_reads_what_the_builder_writes(tmp_path: Path) -> None:
    envelope = example_envelope("0003")
    data = data_partition(tmp_path / "data.img", envelope, size=2 * 1024 * 1024)
    assert data.stat().st_size == 2 * 1024 * 1024
    assert datapart.read_partition(data) == envelope
    checked = datapart.check_envelope(envelope, _trusted("test-authority"))
    assert checked.signers == ("test-authority",)
    definition = example_definition()
    expected = builder_election.station_payload(definition, definition.station("0003"))
    assert json.loads(checked.payload) == expected
    parsed = election.parse_payload(checked.payload)
    assert parsed.station_id == "0003"
    assert [race.id for race in parsed.races] == ["council", "mayor-list"]
    assert [choice.id for choice in parsed.races[0].choices] == ["A1", "A2", "B1", "B2", "I1"]
    assert [choice.id for choice in parsed.races[1].choices] == ["yes", "no"]


def test_builder_reads_back_the_envelope_from_a_partition(tmp_path: Path) -> None:
    envelope = example_envelope()
    data = data_partition(tmp_path / "data.img", envelope)
    found = builder_fingerprint.read_station_data(data)
    assert found.envelope == envelope
    assert found.fingerprint == fingerprint.election_fingerprint(found.payload)


def test_check_envelope_refusals() -> None:
    good = example_envelope()
    with pytest.raises(datapart.DataRefused) as refused:
        datapart.check_envelope(altered_envelope(good), _trusted("test-authority"))
    assert refused.value.reason == "altered"
    with pytest.raises(datapart.DataRefused) as refused:
        datapart.check_envelope(good, _trusted("test-other"))
    assert refused.value.reason == "unknown-key"
    with pytest.raises(datapart.DataRefused) as refused:
        datapart.check_envelope(b"{not json", _trusted("test-authority"))
    assert refused.value.reason == "damaged"


def test_partition_header_refusals(tmp_path: Path) -> None:
    zeros = data_partition(tmp_path / "zeros.img", None)
    with pytest.raises(datapart.DataRefused, match="no election data") as refused:
        datapart.read_partition(zeros)
    assert refused.value.reason == "missing"
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"something else entirely" + bytes(100))
    with pytest.raises(datapart.DataRefused) as refused:
        datapart.read_partition(junk)
    assert refused.value.reason == "damaged"
    with pytest.raises(datapart.DataRefused) as refused:
        datapart.read_partition(tmp_path / "absent.img")
    assert refused.value.reason == "missing"


def test_key_list_rendered_from_a_recipe_variable(tmp_path: Path) -> None:
    key = json.loads((KEYS / "test-authority.pub.json").read_text())
    key_list = tmp_path / "authority-keys.json"
    key_list.write_text(json.dumps([key]))
    trusted = datapart.load_trusted_keys(tmp_path / "no-dir", key_list)
    assert [k.name for k in trusted.values()] == ["test-authority"]
    broken = dict(key, keyid="00" * 32)
    key_list.write_text(json.dumps([broken]))
    with pytest.raises(datapart.DataRefused, match="keyid does not match"):
        datapart.load_trusted_keys(tmp_path / "no-dir", key_list)


def test_find_data_partition_by_gpt_name(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    for name, partname in (("sda1", "esp"), ("sda4", "booth-data"), ("sda", None)):
        (sysfs / name).mkdir(parents=True)
        lines = [f"DEVNAME={name}"] + ([f"PARTNAME={partname}"] if partname else [])
        (sysfs / name / "uevent").write_text("\n".join(lines) + "\n")
    assert datapart.find_data_partition(sysfs, tmp_path / "dev") == tmp_path / "dev" / "sda4"
    (sysfs / "sdb4").mkdir()
    (sysfs / "sdb4" / "uevent").write_text("DEVNAME=sdb4\nPARTNAME=booth-data\n")
    with pytest.raises(datapart.DataRefused, match="several booth-data"):
        datapart.find_data_partition(sysfs, tmp_path / "dev")


def _race(
    choose: str = "candidate", minimum: int = 1, maximum: int = 2, blank: bool = True
) -> object:
    choices = tuple(election.Choice(n, f"c{n}", f"Choice {n}") for n in range(1, 5))
    return election.Race("r", "Race", choose, minimum, maximum, blank, choices)


def test_parse_answer_applies_the_rules() -> None:
    race = _race(minimum=2, maximum=3, blank=False)
    assert ballot.parse_answer(race, "4 1").numbers == (1, 4)
    for answer, problem in (
        ("1", "at least 2"),
        ("1 2 3 4", "at most 3"),
        ("0", "blank vote is not allowed"),
        ("1 1", "twice"),
        ("x", "not a number"),
        ("", "type the number"),
    ):
        with pytest.raises(ballot.InvalidChoice, match=problem):
            ballot.parse_answer(race, answer)
    assert ballot.parse_answer(_race(), "0").numbers == ()


def test_ballot_code_round_trip_and_check() -> None:
    race = _race()
    votes = [ballot.RaceVote(race, (1, 3)), ballot.RaceVote(race, ())]
    code = ballot.ballot_code("ABCD-EFGH-IJKL-MNOP", votes)
    assert code.startswith("BK1:ABCDEFGH:1.3:B:")
    assert set(code) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert ballot.decode_ballot_code(code) == ("ABCDEFGH", [(1, 3), ()])
    damaged = code.replace("1.3", "1.4")
    with pytest.raises(ValueError, match="check"):
        ballot.decode_ballot_code(damaged)


def test_invalid_payload_is_refused() -> None:
    with pytest.raises(datapart.DataRefused) as refused:
        election.parse_payload(json.dumps({"type": "something"}).encode())
    assert refused.value.reason == "invalid"


@pytest.mark.parametrize("kind", sorted(HIDDEN_TEXTS))
def test_text_rule_refuses_what_a_voter_must_not_see(kind: str) -> None:
    problem = text.text_problem(HIDDEN_TEXTS[kind])
    assert problem is not None
    assert problem == builder_text.text_problem(HIDDEN_TEXTS[kind])


@pytest.mark.parametrize("shown", SHOWN_TEXTS)
def test_text_rule_keeps_accents_and_every_script(shown: str) -> None:
    assert text.text_problem(shown) is None
    assert builder_text.text_problem(shown) is None


def test_booth_and_builder_text_rules_agree_on_every_code_point() -> None:
    disagree = [
        f"U+{code:04X}"
        for code in range(0x110000)
        if text.text_problem(f"a{chr(code)}") != builder_text.text_problem(f"a{chr(code)}")
    ]
    assert disagree == []


# Every place of the payload whose text the booth shows: the console and the ballot.
SHOWN_PLACES = {
    "election.name": lambda p: p["election"],
    "station.name": lambda p: p["station"],
    "races[0].name": lambda p: p["races"][0],
    "races[0].lists[1].name": lambda p: p["races"][0]["lists"][1],
    "races[0].lists[0].candidates[1].name": lambda p: p["races"][0]["lists"][0]["candidates"][1],
    "races[0].candidates[0].name": lambda p: p["races"][0]["candidates"][0],
    "races[1].lists[0].name": lambda p: p["races"][1]["lists"][0],
}


@pytest.mark.parametrize("place", sorted(SHOWN_PLACES))
@pytest.mark.parametrize("kind", ["escape sequences", "right-to-left override", "a megabyte"])
def test_booth_refuses_hidden_text_anywhere_without_showing_it(place: str, kind: str) -> None:
    payload = example_payload()
    SHOWN_PLACES[place](payload)["name"] = HIDDEN_TEXTS[kind]
    signed = canonical_json(payload)
    with pytest.raises(datapart.DataRefused) as refused:
        election.parse_payload(signed)
    assert refused.value.reason == "invalid"
    message = refused.value.message
    assert message.startswith(f"the election data is not usable: {place} ")
    assert "pwned" not in message and "\x1b" not in message and "\u202e" not in message
    assert len(message) < 200
    assert builder_election.payload_problems(signed, "p") != []


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = payload
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return change


_DELETE = object()

# Changes to a payload signed without the builder's checks; the booth and
# `election verify` (builder.station.election.payload_problems) must judge each the same.
PAYLOAD_CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "none": lambda p: None,
    "election id with a newline": _set("election.id", "gr2030\n"),
    "station id with an escape": _set("station.id", "0001\x1b[2J"),
    "candidate id with a space": _set("races.0.candidates.0.id", "I 1"),
    "date with a newline": _set("election.date", "2030-03-20\n"),
    "date in Arabic-Indic digits": _set("election.date", "\u0662\u0660\u0663\u0660-03-20"),
    "no date": _set("election.date", _DELETE),
    "name not text": _set("races.0.name", 7),
    "lists missing": _set("races.1.lists", _DELETE),
    "candidates missing": _set("races.0.lists.0.candidates", _DELETE),
    "blank missing": _set("races.0.rules.blank", _DELETE),
    "min is true": _set("races.0.rules.min", True),
    "min is zero": _set("races.0.rules.min", 0),
    "max above the choices": _set("races.0.rules.max", 6),
    "max is a float": _set("races.0.rules.max", 2.0),
    "blank is a word": _set("races.0.rules.blank", "yes"),
    "unknown rule": _set("races.0.rules.choose", "party"),
    "format is true": _set("format", True),
    "another type": _set("type", "something"),
    "an unknown field": _set("station.colour", "red"),
    "no races": _set("races", []),
}


@pytest.mark.parametrize("change", sorted(PAYLOAD_CHANGES))
def test_booth_and_election_verify_judge_payloads_alike(change: str) -> None:
    payload = example_payload()
    PAYLOAD_CHANGES[change](payload)
    signed = canonical_json(payload)
    builder_problems = builder_election.payload_problems(signed, "p")
    try:
        election.parse_payload(signed)
        booth_refused = False
    except datapart.DataRefused as refused:
        assert refused.reason == "invalid"
        booth_refused = True
    assert booth_refused == bool(builder_problems), builder_problems
    assert booth_refused == (change not in ("none", "no date"))


def _freeze(value: object) -> object:
    # The recipe hands templates read-only mappings and tuples (builder.source.recipe._freeze).
    from types import MappingProxyType

    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@pytest.mark.parametrize("with_keys", [False, True])
def test_booth_overlay_renders_and_its_key_list_is_read(tmp_path: Path, with_keys: bool) -> None:
    from builder.build.steps.overlay_files import apply_overlay

    tree = tmp_path / "tree"
    tree.mkdir()
    variables: dict[str, object] = {"recipe": {"name": "booth", "version": "1"}}
    key = json.loads((KEYS / "test-authority.pub.json").read_text())
    if with_keys:
        variables["authority_keys"] = _freeze([key])
        variables["booth_title"] = "Stembureau"
    apply_overlay(BOOTH_LIB.parents[2], tree, variables)
    init = tree / "usr" / "sbin" / "booth-init"
    assert init.stat().st_mode & 0o777 == 0o755
    assert (tree / "usr" / "lib" / "booth" / "booth" / "__main__.py").is_file()
    key_list = tree / "usr" / "share" / "booth" / "authority-keys.json"
    trusted = datapart.load_trusted_keys(tree / "usr/share/booth/authority-keys", key_list)
    assert [k.keyid for k in trusted.values()] == ([key["keyid"]] if with_keys else [])
    title = (tree / "usr" / "share" / "booth" / "title.txt").read_text()
    assert title.strip() == ("Stembureau" if with_keys else "")
