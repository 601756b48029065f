"""Election definitions: parse and validate, per-station payloads, signing, the data partition.

An election definition (YAML or JSON, see docs/election-data.md) names the
election, its races (lists and/or candidates, with rules) and optionally its
polling stations; a station list may also come from its own CSV or YAML file.
Every problem is reported with the file and the path inside it, all at once.

For each station the payload is the canonical JSON of the election, that
station and the races it votes on. An election authority signs it in a DSSE
envelope (payload type `PAYLOAD_TYPE`); the "booth-data" partition holds
`MAGIC`, the envelope's length (8 bytes, big-endian), the envelope, then zeros.
The booth (overlays/booth/usr/lib/booth/booth/) reads exactly this.
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.core.canonical import canonical_json
from builder.core.errors import InputError, ValidationErrors, VerificationFailed
from builder.core.jsonfields import FieldReader, kind_of
from builder.core.safeload import decode_utf8, load_yaml, read_limited
from builder.core.text import text_problem
from builder.station.belgian import BelgianRace, Names, read_languages, read_names, read_races
from builder.trust.dsse import Envelope, new_envelope, parse_envelope
from builder.trust.keys import PublicKey, Revocation
from builder.trust.signer import Signer

FORMAT = 1  # generic races (`rules`)
FORMAT_BELGIAN = 2  # Belgian ballots in Dutch, French and German (builder.station.belgian)
FORMATS = (FORMAT, FORMAT_BELGIAN)
PAYLOAD_KIND = "boothkey-election-data"
PAYLOAD_TYPE = "application/vnd.boothkey.election+json"
MAGIC = b"BKDATA01"
HEADER = struct.Struct(">8sQ")
MAX_ENVELOPE = 16 * 1024 * 1024  # the booth refuses anything larger
CHOOSE = ("list", "candidate")
# \Z, not $: `$` also matches before a final newline, which would reach the screen.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


@dataclass(frozen=True)
class Candidate:
    id: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class PartyList:
    id: str
    name: str
    candidates: tuple[Candidate, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "candidates": [c.to_json() for c in self.candidates],
        }


@dataclass(frozen=True)
class Rules:
    """The voter picks between `min` and `max` lists or candidates; or, if `blank`, none."""

    choose: str  # "list" or "candidate"
    min: int
    max: int
    blank: bool

    def to_json(self) -> dict[str, Any]:
        return {"choose": self.choose, "min": self.min, "max": self.max, "blank": self.blank}


@dataclass(frozen=True)
class Race:
    id: str
    name: str
    rules: Rules
    lists: tuple[PartyList, ...]
    candidates: tuple[Candidate, ...]  # not on any list

    def choice_count(self) -> int:
        if self.rules.choose == "list":
            return len(self.lists)
        return sum(len(item.candidates) for item in self.lists) + len(self.candidates)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "rules": self.rules.to_json(),
            "lists": [item.to_json() for item in self.lists],
            "candidates": [c.to_json() for c in self.candidates],
        }


@dataclass(frozen=True)
class Station:
    id: str
    name: str
    races: tuple[str, ...]  # race ids; empty means every race


@dataclass(frozen=True)
class ElectionDefinition:
    path: Path
    id: str
    name: str
    date: str | None
    races: tuple[Race, ...] | tuple[BelgianRace, ...]
    stations: tuple[Station, ...]
    format: int = FORMAT
    languages: tuple[str, ...] = ()  # format 2: the languages the booth offers, in order
    names: Names | None = None  # format 2: the election's name per language

    def station(self, station_id: str) -> Station:
        for station in self.stations:
            if station.id == station_id:
                return station
        known = ", ".join(s.id for s in self.stations) or "none defined"
        raise InputError(f"{self.path}: no station {station_id!r} (stations: {known})")


def _read_structured(path: Path) -> tuple[Any, str]:
    shown = str(path)
    try:
        data = read_limited(path)
    except OSError as exc:
        raise InputError(f"{shown}: cannot read: {exc.strerror}") from exc
    text = decode_utf8(data, shown)
    return load_yaml(text, shown, "YAML or JSON"), text


def load_election(path: Path | str, stations_file: Path | str | None = None) -> ElectionDefinition:
    """Read and validate a definition (and a station list, which replaces its `stations`)."""
    definition_path = Path(path)
    raw, _text = _read_structured(definition_path)
    reader = FieldReader(str(path))
    top = reader.mapping(
        raw, "", {"format": False, "election": True, "races": True, "stations": False}
    )
    election_format = top.get("format", FORMAT)
    if type(election_format) is not int or election_format not in FORMATS:
        reader.error(
            "format",
            f"unsupported format {election_format!r} (this tool reads 1 and {FORMAT_BELGIAN})",
        )
        election_format = FORMAT
    belgian = election_format == FORMAT_BELGIAN
    info = reader.mapping(
        top.get("election", {}),
        "election",
        {"id": True, "name": True, "date": False, **({"languages": False} if belgian else {})},
    )
    election_id = reader.string(info.get("id"), "election.id", _ID_RE) if "id" in info else ""
    languages: tuple[str, ...] = ()
    names = None
    if belgian:
        languages = read_languages(reader, info.get("languages"), "election.languages")
        names = read_names(reader, info.get("name"), "election.name", languages, False)
        election_name = names.display()
    else:
        election_name = _name(reader, info.get("name"), "election.name") if "name" in info else ""
    date = None
    if "date" in info:
        date = reader.string(info["date"], "election.date", _DATE_RE)
    races: tuple[Race, ...] | tuple[BelgianRace, ...]
    if belgian:
        races = read_races(reader, top.get("races", []), languages)
    else:
        races = _races(reader, top.get("races", []))
    race_ids = [race.id for race in races]
    stations: tuple[Station, ...] = ()
    if "stations" in top:
        stations = _stations(reader, top["stations"], "stations", race_ids)
    if reader.problems:
        raise ValidationErrors(reader.problems)
    if stations_file is not None:
        stations = load_stations(stations_file, race_ids)
    return ElectionDefinition(
        definition_path,
        election_id,
        election_name,
        date,
        races,
        stations,
        election_format,
        languages,
        names,
    )


def load_stations(path: Path | str, race_ids: Sequence[str]) -> tuple[Station, ...]:
    """A station list: CSV with a header `id,name[,races]` (races separated by spaces),
    or YAML/JSON: a list of {id, name, races?} (or a mapping with key `stations`)."""
    station_path = Path(path)
    reader = FieldReader(str(path))
    if station_path.suffix.lower() == ".csv":
        stations = _stations_csv(reader, station_path, race_ids)
    else:
        raw, _text = _read_structured(station_path)
        if isinstance(raw, dict):
            raw = reader.mapping(raw, "", {"stations": True}).get("stations", [])
        stations = _stations(reader, raw, "stations", race_ids)
    if reader.problems:
        raise ValidationErrors(reader.problems)
    return stations


def _stations_csv(reader: FieldReader, path: Path, race_ids: Sequence[str]) -> tuple[Station, ...]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as UTF-8 text: {exc}") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip() for cell in rows[0]] not in (
        ["id", "name"],
        ["id", "name", "races"],
    ):
        raise InputError(f"{path}: line 1: the header must be id,name or id,name,races")
    entries: list[Any] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) not in (2, 3):
            reader.error(f"line {line}", f"expected 2 or 3 fields, got {len(row)}")
            continue
        entry: dict[str, Any] = {"id": row[0].strip(), "name": row[1].strip()}
        if len(row) == 3 and row[2].strip():
            entry["races"] = row[2].split()
        entries.append((f"line {line}", entry))
    return _station_entries(reader, entries, race_ids)


def _stations(
    reader: FieldReader, raw: Any, where: str, race_ids: Sequence[str]
) -> tuple[Station, ...]:
    if not isinstance(raw, list):
        reader.error(where, f"expected a list, got {kind_of(raw)}")
        return ()
    return _station_entries(
        reader, [(f"{where}[{i}]", item) for i, item in enumerate(raw)], race_ids
    )


def _station_entries(
    reader: FieldReader, entries: list[Any], race_ids: Sequence[str]
) -> tuple[Station, ...]:
    stations: list[Station] = []
    seen: set[str] = set()
    for where, item in entries:
        entry = reader.mapping(item, where, {"id": True, "name": True, "races": False})
        station_id = reader.string(entry.get("id"), f"{where}.id", _ID_RE) if "id" in entry else ""
        name = _name(reader, entry.get("name"), f"{where}.name") if "name" in entry else ""
        races = reader.string_list(entry.get("races", []), f"{where}.races")
        for index, race_id in enumerate(races):
            if race_id and race_id not in race_ids:
                reader.error(f"{where}.races[{index}]", f"no race {race_id!r} in the election")
        if station_id in seen:
            reader.error(f"{where}.id", f"duplicate station {station_id!r}")
        seen.add(station_id)
        stations.append(Station(station_id, name, races))
    return tuple(stations)


def _name(reader: FieldReader, value: Any, where: str) -> str:
    text = reader.string(value, where)
    problem = text_problem(text) if text else None
    if problem is not None:
        reader.error(where, problem)
    return text


def _people(reader: FieldReader, raw: Any, where: str, seen: set[str]) -> tuple[Candidate, ...]:
    if not isinstance(raw, list):
        reader.error(where, f"expected a list, got {kind_of(raw)}")
        return ()
    people = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        entry = reader.mapping(item, at, {"id": True, "name": True})
        person_id = reader.string(entry.get("id"), f"{at}.id", _ID_RE) if "id" in entry else ""
        _check_unique(reader, person_id, f"{at}.id", seen)
        name = _name(reader, entry.get("name"), f"{at}.name") if "name" in entry else ""
        people.append(Candidate(person_id, name))
    return tuple(people)


def _check_unique(reader: FieldReader, item_id: str, where: str, seen: set[str]) -> None:
    if item_id and item_id in seen:
        reader.error(where, f"duplicate id {item_id!r} in this race")
    seen.add(item_id)


def _races(reader: FieldReader, raw: Any, written_out: bool = False) -> tuple[Race, ...]:
    """Races of a definition; with `written_out`, of a payload (`station_payload` writes
    every default out, and the booth requires them)."""
    if not isinstance(raw, list) or not raw:
        reader.error("races", f"expected a non-empty list, got {kind_of(raw)}")
        return ()
    races: list[Race] = []
    race_ids: set[str] = set()
    for index, item in enumerate(raw):
        where = f"races[{index}]"
        entry = reader.mapping(
            item,
            where,
            {
                "id": True,
                "name": True,
                "rules": True,
                "lists": written_out,
                "candidates": written_out,
            },
        )
        race_id = reader.string(entry.get("id"), f"{where}.id", _ID_RE) if "id" in entry else ""
        if race_id in race_ids:
            reader.error(f"{where}.id", f"duplicate race {race_id!r}")
        race_ids.add(race_id)
        name = _name(reader, entry.get("name"), f"{where}.name") if "name" in entry else ""
        seen: set[str] = set()
        lists: list[PartyList] = []
        raw_lists = entry.get("lists", [])
        if not isinstance(raw_lists, list):
            reader.error(f"{where}.lists", f"expected a list, got {kind_of(raw_lists)}")
            raw_lists = []
        for list_index, list_item in enumerate(raw_lists):
            at = f"{where}.lists[{list_index}]"
            list_entry = reader.mapping(
                list_item, at, {"id": True, "name": True, "candidates": written_out}
            )
            list_id = (
                reader.string(list_entry.get("id"), f"{at}.id", _ID_RE)
                if "id" in list_entry
                else ""
            )
            _check_unique(reader, list_id, f"{at}.id", seen)
            list_name = (
                _name(reader, list_entry.get("name"), f"{at}.name") if "name" in list_entry else ""
            )
            members = _people(reader, list_entry.get("candidates", []), f"{at}.candidates", seen)
            lists.append(PartyList(list_id, list_name, members))
        candidates = _people(reader, entry.get("candidates", []), f"{where}.candidates", seen)
        rules = _rules(reader, entry.get("rules", {}), f"{where}.rules", written_out)
        race = Race(race_id, name, rules, tuple(lists), candidates)
        if rules.choose and "rules" in entry:
            count = race.choice_count()
            if count == 0:
                reader.error(f"{where}.rules.choose", f"there is no {rules.choose} to choose")
            elif rules.max > count:
                reader.error(
                    f"{where}.rules.max", f"{rules.max} is more than the {count} {rules.choose}s"
                )
        races.append(race)
    return tuple(races)


def _rules(reader: FieldReader, raw: Any, where: str, written_out: bool = False) -> Rules:
    entry = reader.mapping(
        raw,
        where,
        {"choose": True, "min": written_out, "max": written_out, "blank": written_out},
    )
    choose = (
        reader.choice(entry.get("choose"), f"{where}.choose", CHOOSE) if "choose" in entry else ""
    )
    counts = []
    for key in ("min", "max"):
        value = entry.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            reader.error(f"{where}.{key}", f"expected a whole number from 1 to 1000, got {value!r}")
            value = 1
        counts.append(value)
    if counts[0] > counts[1]:
        reader.error(f"{where}.min", f"min {counts[0]} is more than max {counts[1]}")
    blank = entry.get("blank", False)
    if not isinstance(blank, bool):
        reader.error(f"{where}.blank", f"expected true or false, got {blank!r}")
        blank = False
    return Rules(choose, counts[0], counts[1], blank)


def station_payload(definition: ElectionDefinition, station: Station) -> dict[str, Any]:
    """The canonical form signed for one station: the election, the station, its races."""
    election: dict[str, Any] = {"id": definition.id, "name": definition.name}
    if definition.names is not None:
        election["name"] = definition.names.to_json()
        election["languages"] = list(definition.languages)
    if definition.date is not None:
        election["date"] = definition.date
    races = [r for r in definition.races if not station.races or r.id in station.races]
    return {
        "format": definition.format,
        "type": PAYLOAD_KIND,
        "election": election,
        "station": {"id": station.id, "name": station.name},
        "races": [race.to_json() for race in races],
    }


def payload_problems(payload: bytes, shown: str) -> list[str]:
    """Why the booth would refuse these payload bytes as not usable (`[]`: it shows them):
    anything but the structure `station_payload` writes, an invalid id or rule, or a
    text breaking `text_problem`. Each problem names its place, never the text."""
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError):
        return [f"{shown}: the payload is not UTF-8 JSON"]
    reader = FieldReader(f"{shown}: payload")
    top = reader.mapping(
        raw,
        "",
        {"format": True, "type": True, "election": True, "station": True, "races": True},
    )
    payload_format = top.get("format")
    if "format" in top and (type(payload_format) is not int or payload_format not in FORMATS):
        reader.error("format", f"expected {FORMAT} or {FORMAT_BELGIAN}")
    belgian = type(payload_format) is int and payload_format == FORMAT_BELGIAN
    if "type" in top and top["type"] != PAYLOAD_KIND:
        reader.error("type", f"expected {PAYLOAD_KIND!r}")
    info = reader.mapping(
        top.get("election", {}),
        "election",
        {"id": True, "name": True, "date": False, **({"languages": True} if belgian else {})},
    )
    station = reader.mapping(top.get("station", {}), "station", {"id": True, "name": True})
    for where, entry in (("election", info), ("station", station)):
        if "id" in entry:
            reader.string(entry["id"], f"{where}.id", _ID_RE)
    if "name" in station:
        _name(reader, station["name"], "station.name")
    if "date" in info:
        reader.string(info["date"], "election.date", _DATE_RE)
    if belgian:
        languages = read_languages(reader, info.get("languages", []), "election.languages")
        if "name" in info:
            read_names(reader, info["name"], "election.name", languages, True)
        if "races" in top:
            read_races(reader, top["races"], languages, written_out=True)
    else:
        if "name" in info:
            _name(reader, info["name"], "election.name")
        if "races" in top:
            _races(reader, top["races"], written_out=True)
    return reader.problems


def sign_payload(payload: Mapping[str, Any], keys: Sequence[Signer]) -> Envelope:
    """A DSSE envelope over the canonical payload, signed by every key in `keys`.
    A payload the booth would refuse (`payload_problems`) is never signed:
    `ValidationErrors`."""
    if not keys:
        raise InputError("election data must be signed: give at least one --key")
    problems = payload_problems(canonical_json(payload), "election data")
    if problems:
        raise ValidationErrors(problems)
    envelope = new_envelope(payload, PAYLOAD_TYPE)
    for key in keys:
        envelope = envelope.add_signature(key)
    return envelope


def envelope_bytes(envelope: Envelope) -> bytes:
    """The exact bytes stored on the data partition and in `STATION.election.json`."""
    return canonical_json(envelope.to_json())


def parse_election_envelope(data: bytes, shown: str) -> Envelope:
    """Parse an election envelope; structural problems are `InputError`s naming `shown`."""
    return parse_envelope(data, shown, PAYLOAD_TYPE)


def verify_election_envelope(
    envelope: Envelope,
    trusted: Mapping[str, PublicKey],
    shown: str,
    revoked: Mapping[str, Revocation] | None = None,
) -> list[str]:
    """Names of trusted keys with a valid signature, by the booth's rule: at least one,
    no signature claiming a trusted key may fail, and the signed payload must be election
    data the booth shows (`payload_problems`). A signature by a `revoked` key fails it,
    naming the key and why it was withdrawn. `VerificationFailed` otherwise."""
    if not envelope.signatures:
        raise VerificationFailed(f"{shown}: the election data is not signed")
    revoked = revoked or {}
    for signature in envelope.signatures:
        withdrawn = revoked.get(signature.keyid)
        if withdrawn is not None:
            raise VerificationFailed(
                f"{shown}: signed by the revoked key {withdrawn.name} ({withdrawn.reason})"
            )
    trusted = {keyid: key for keyid, key in trusted.items() if keyid not in revoked}
    signers: list[str] = []
    for _signature, key, valid in envelope.check_each(trusted):
        if key is None:
            continue
        if not valid:
            raise VerificationFailed(
                f"{shown}: the signature by {key.name} does not match: altered"
            )
        if key.name not in signers:
            signers.append(key.name)
    if not signers:
        raise VerificationFailed(f"{shown}: signed only by keys that are not trusted")
    problems = payload_problems(envelope.payload, shown)
    if problems:
        raise VerificationFailed(
            "\n".join([f"{shown}: signed, but the booth would refuse it as not usable:", *problems])
        )
    return signers


def partition_prefix(envelope: bytes) -> bytes:
    """Header plus envelope: the data partition's non-zero start (the rest is zeros)."""
    if not envelope or len(envelope) > MAX_ENVELOPE:
        raise InputError(f"election envelope of {len(envelope)} bytes is empty or too large")
    return HEADER.pack(MAGIC, len(envelope)) + envelope


def envelope_from_partition(start: bytes, shown: str) -> bytes:
    """The envelope stored at the start of a data partition; `InputError` if there is none."""
    if len(start) < HEADER.size:
        raise InputError(f"{shown}: too short for a data partition")
    magic, length = HEADER.unpack_from(start)
    if magic != MAGIC:
        empty = start[: HEADER.size].strip(b"\0") == b""
        raise InputError(f"{shown}: {'no election data (zeros)' if empty else 'not election data'}")
    if not 0 < length <= MAX_ENVELOPE or HEADER.size + length > len(start):
        raise InputError(f"{shown}: election data length {length} is impossible here")
    return start[HEADER.size : HEADER.size + length]
