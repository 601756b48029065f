"""`build.py ballot decode`: printed ballots (pictures the booth's printout module draws)
read back with zbarimg, checked against the station's election data and tallied."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from builder.cli import main
from builder.core.errors import InputError
from builder.station.ballot import ballot_code
from builder.station.fingerprint import election_fingerprint
from builder.station.recount import load_ballot_election, read_codes, recount

sys.path.insert(0, str(Path(__file__).parents[1] / "booth"))
from booth_helpers import belgian_envelope, booth_module, example_envelope

printout = booth_module("printout")
raster = booth_module("raster")


def _fingerprint(envelope: bytes) -> str:
    return election_fingerprint(base64.b64decode(json.loads(envelope)["payload"]))


def _ballot(path: Path, *codes: str) -> Path:
    """A picture holding the printed ballots with these codes, one under the other."""
    font = raster.load_font()
    pictures = [printout.render(printout.BallotPrint("STEMBILJET", (), (), c), font) for c in codes]
    sheet = raster.Bitmap(printout.WIDTH, sum(p.height for p in pictures))
    y = 0
    for picture in pictures:
        sheet.rows[y : y + picture.height] = picture.rows
        y += picture.height
    path.write_bytes(sheet.pbm())
    return path


@pytest.fixture
def stations(tmp_path: Path) -> tuple[Path, Path]:
    first = tmp_path / "0001.election.json"
    first.write_bytes(belgian_envelope("0001"))
    second = tmp_path / "0002.election.json"
    second.write_bytes(belgian_envelope("0002"))
    return first, second


def test_ballots_are_tallied_and_others_refused(
    tmp_path: Path, stations: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = stations
    fp1, fp2 = _fingerprint(first.read_bytes()), _fingerprint(second.read_bytes())
    good = [ballot_code(fp1, ["2/1.S1", "1"]), ballot_code(fp1, ["B", "2/2"])]
    other = ballot_code(fp2, ["3"])
    damaged = good[0][:-1] + ("A" if good[0][-1] != "A" else "B")
    pictures = [
        _ballot(tmp_path / "a.pbm", *good),
        _ballot(tmp_path / "b.pbm", other, damaged),
    ]
    assert sorted(read_codes(pictures[0])) == sorted(good)  # zbarimg's order is its own
    result = recount(pictures, [load_ballot_election(first)])
    assert sorted((b.code, b.refused) for b in result.refused) == sorted(
        [(other, "other-election"), (damaged, "check")]
    )
    tally = result.to_json()["tallies"][fp1.replace("-", "")]
    assert tally["chamber"] == {
        "blank": 1,
        "list_votes": {},
        "preference_ballots": {"2": 1},
        "candidates": {"2-1": 1, "2-S1": 1},
    }
    assert tally["region"]["list_votes"] == {"1": 1}
    assert tally["region"]["candidates"] == {"2-2": 1}
    # With the second station's data, its ballot counts too (the damaged one never does).
    args = ["ballot", "decode", *map(str, pictures), "--election", str(first)]
    assert main([*args, "--election", str(second)]) == 3
    out = capsys.readouterr().out
    assert f"counted  {pictures[1]}: {other} ([list 3])" in out
    assert "REFUSED" in out and "[check]" in out
    assert "3 counted, 1 refused" in out
    assert main(["ballot", "decode", str(pictures[0]), "--election", str(first), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counted"] == 2


def test_a_picture_without_a_code_is_refused(tmp_path: Path, stations: tuple[Path, Path]) -> None:
    blank = tmp_path / "blank.pbm"
    blank.write_bytes(raster.Bitmap(100, 100).pbm())
    result = recount([blank], [load_ballot_election(stations[0])])
    assert [b.refused for b in result.ballots] == ["not-a-ballot"]


def test_format_1_data_and_missing_pictures_are_input_errors(tmp_path: Path) -> None:
    old = tmp_path / "old.election.json"
    old.write_bytes(example_envelope("0001"))
    with pytest.raises(InputError, match="not election data of format 2"):
        load_ballot_election(old)
    with pytest.raises(InputError, match="no such picture"):
        read_codes(tmp_path / "nothing.png")
