"""`build.py ballot decode PICTURES... --election FILE [--election FILE2] [--json]`:
read printed ballots' QR codes (zbarimg), check each against its station's election
data and tally them. Exit 0 when every ballot counted, 3 when one was refused (damaged,
another election's, or against the rules: each is listed)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.core.canonical import pretty_json
from builder.core.errors import EXIT_OK, EXIT_VERIFICATION_FAILED
from builder.station.recount import load_ballot_election, recount


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ballot", help="read and tally printed ballots (their QR codes)"
    )
    actions = parser.add_subparsers(dest="ballot_command", required=True, metavar="ACTION")
    decode = actions.add_parser("decode", help="read ballots from pictures and tally them")
    decode.add_argument("pictures", type=Path, nargs="+", help="PBM/PNG pictures of ballots")
    decode.add_argument(
        "--election",
        type=Path,
        action="append",
        required=True,
        help="a station's election data: envelope, data partition or station image (repeat)",
    )
    decode.add_argument("--json", action="store_true", help="print JSON instead of text")
    decode.set_defaults(run=run_decode)


def run_decode(args: argparse.Namespace) -> int:
    result = recount(args.pictures, [load_ballot_election(path) for path in args.election])
    if args.json:
        print(pretty_json(result.to_json()).decode(), end="")
    else:
        for ballot in result.ballots:
            if ballot.refused is None:
                votes = " ".join(_vote_text(vote.to_json()) for vote in ballot.votes)
                print(f"counted  {ballot.source}: {ballot.code} ({votes})")
            else:
                print(f"REFUSED  {ballot.source}: {ballot.code or '-'}: {ballot.message} "
                      f"[{ballot.refused}]")  # fmt: skip
        for fingerprint, races in result.tallies.items():
            print(f"election {fingerprint}")
            for race_id, tally in races.items():
                print(f"  race {race_id}: blank {tally.blank}")
                for list_id in sorted({*tally.list_votes, *tally.preference_ballots}):
                    print(
                        f"    list {list_id}: list votes {tally.list_votes.get(list_id, 0)}, "
                        f"ballots with preferences {tally.preference_ballots.get(list_id, 0)}"
                    )
                for person, count in sorted(tally.candidates.items()):
                    print(f"      candidate {person}: {count}")
        print(f"{len(result.ballots) - len(result.refused)} counted, {len(result.refused)} refused")
    return EXIT_VERIFICATION_FAILED if result.refused else EXIT_OK


def _vote_text(vote: dict[str, Any]) -> str:
    if vote.get("blank"):
        return "[blank]"
    if "candidates" in vote:
        return f"[list {vote['list']}: {', '.join(vote['candidates'])}]"
    return f"[list {vote['list']}]"
