"""The signed election payload, read into typed objects for the booth.

The builder validated the definition before signing; the booth still checks
the structure (signed data from a careless authority must not crash a booth)
and refuses with `DataRefused("invalid", ...)` if it is not what it expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .datapart import DataRefused

PAYLOAD_KIND = "boothkey-election-data"


@dataclass(frozen=True)
class Choice:
    """One thing a voter can pick in a race: a list, or a candidate (maybe on a list)."""

    number: int  # 1-based position shown to the voter and written in the ballot code
    id: str
    label: str


@dataclass(frozen=True)
class Race:
    id: str
    name: str
    choose: str  # "list" or "candidate"
    minimum: int
    maximum: int
    blank: bool
    choices: tuple[Choice, ...]

    def rule_text(self) -> str:
        noun = self.choose if self.maximum == 1 else f"{self.choose}s"
        if self.minimum == self.maximum:
            text = f"Choose exactly {self.maximum} {noun}."
        elif self.minimum == 1:
            text = f"Choose up to {self.maximum} {noun}."
        else:
            text = f"Choose {self.minimum} to {self.maximum} {noun}."
        if self.blank:
            text += " Type 0 for a blank vote."
        return text


@dataclass(frozen=True)
class Election:
    election_id: str
    election_name: str
    election_date: str
    station_id: str
    station_name: str
    races: tuple[Race, ...]


def race_choices(race: dict[str, Any]) -> list[tuple[str, str]]:
    """(id, label) of the choosable items in ballot-code order (docs/election-data.md)."""
    if race["rules"]["choose"] == "list":
        return [(item["id"], item["name"]) for item in race["lists"]]
    choices = [
        (candidate["id"], f"{candidate['name']} ({item['name']})")
        for item in race["lists"]
        for candidate in item["candidates"]
    ]
    choices += [(candidate["id"], candidate["name"]) for candidate in race["candidates"]]
    return choices


def parse_payload(payload: bytes) -> Election:
    """Read a verified payload; `DataRefused("invalid")` if its structure is wrong."""
    try:
        raw = json.loads(payload)
        if raw.get("type") != PAYLOAD_KIND or raw.get("format") != 1:
            raise ValueError("not boothkey election data format 1")
        races = []
        for race in raw["races"]:
            rules = race["rules"]
            if rules["choose"] not in ("list", "candidate"):
                raise ValueError(f"race {race['id']}: unknown rule {rules['choose']!r}")
            choices = tuple(
                Choice(number, str(item_id), str(label))
                for number, (item_id, label) in enumerate(race_choices(race), start=1)
            )
            minimum, maximum = int(rules["min"]), int(rules["max"])
            if not 1 <= minimum <= maximum <= len(choices):
                raise ValueError(f"race {race['id']}: impossible rule min/max")
            races.append(
                Race(
                    str(race["id"]),
                    str(race["name"]),
                    rules["choose"],
                    minimum,
                    maximum,
                    bool(rules["blank"]),
                    choices,
                )
            )
        if not races:
            raise ValueError("no races")
        return Election(
            str(raw["election"]["id"]),
            str(raw["election"]["name"]),
            str(raw["election"].get("date", "")),
            str(raw["station"]["id"]),
            str(raw["station"]["name"]),
            tuple(races),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataRefused("invalid", f"the election data is not usable: {exc}") from exc
