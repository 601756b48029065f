"""`build.py fingerprint IMAGE|MANIFEST [--station-data FILE]`: what the booth will show.

Prints the software fingerprint (from the verity root hash) and, for a station
image or with --station-data (data partition, envelope or station image), the
election-data fingerprint. A poll worker compares them with the booth's screen.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.build.manifest import read_manifest
from builder.core.canonical import pretty_json
from builder.core.errors import InputError
from builder.station.fingerprint import (
    StationData,
    read_station_data,
    root_hash_from_image,
    software_fingerprint,
)


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fingerprint", help="show the fingerprints a booth displays for an image or manifest"
    )
    parser.add_argument(
        "source", type=Path, help="NAME.img (or a station image) or NAME.manifest.json"
    )
    parser.add_argument(
        "--station-data", type=Path, help="data partition image, envelope or station image"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=run)


def fingerprints(source: Path, station_data: Path | None) -> dict[str, Any]:
    """Fingerprints of an image or manifest (and election data) as a JSON-able mapping."""
    is_manifest = source.suffix == ".json"
    if is_manifest:
        root_hash = read_manifest(source).verity.root_hash
    else:
        root_hash = root_hash_from_image(source)
    result: dict[str, Any] = {
        "software_fingerprint": software_fingerprint(root_hash),
        "root_hash": root_hash,
    }
    data: StationData | None = None
    if station_data is not None:
        data = read_station_data(station_data)
    elif not is_manifest:
        try:
            data = read_station_data(source)
        except InputError:
            data = None  # a software image: its data partition is still empty
    if data is not None:
        result["election_fingerprint"] = data.fingerprint
        result["election_payload_sha256"] = data.payload_sha256
        result.update(data.summary())
    return result


def run(args: argparse.Namespace) -> int:
    result = fingerprints(args.source, args.station_data)
    if args.json:
        print(pretty_json(result).decode(), end="")
        return 0
    print(f"software fingerprint  {result['software_fingerprint']}")
    print(f"verity root hash      {result['root_hash']}")
    if "election_fingerprint" in result:
        print(f"election fingerprint  {result['election_fingerprint']}")
        print(f"election sha256       {result['election_payload_sha256']}")
        if "station" in result:
            station = result["station"]
            print(f"station               {station.get('id')} {station.get('name')}")
        print("(signature not checked here: use `build.py election verify --keys DIR`)")
    return 0
