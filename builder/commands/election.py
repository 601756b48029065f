"""`build.py election check|sign|data|stations|verify`: per-station election data.

- `check DEFINITION [--stations FILE]`: validate, and list stations and their races.
- `sign DEFINITION --station ID --key KEY [--key KEY2] -o ENVELOPE.json`
- `data (DEFINITION --station ID --key KEY | --envelope FILE) (--manifest M | --size-mib N) -o FILE`:
  a data partition image, to write at the "booth-data" partition's offset.
- `stations DEFINITION [--stations FILE] --key KEY --out DIR (--manifest M [--image IMG] |
  --size-mib N) [--jobs N]`: every station's envelope, data partition and (with --image)
  full image, plus DIR/stations.json with each station's election fingerprint.
- `verify FILE --keys DIR`: check the signature and the payload as the booth does (every
  text by `builder.core.text.text_problem`); print the fingerprint.

Every text of the election is checked by `builder.core.text.text_problem` before it is signed, and
again by `verify` and `data --envelope` on data signed elsewhere.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from builder.build.manifest import read_manifest
from builder.commands.options import add_pkcs11_module
from builder.core.errors import InputError, ValidationErrors
from builder.core.fsutil import write_atomic
from builder.station.belgian import BelgianRace
from builder.station.election import (
    ElectionDefinition,
    envelope_bytes,
    load_election,
    parse_election_envelope,
    payload_problems,
    sign_payload,
    station_payload,
    verify_election_envelope,
)
from builder.station.fingerprint import election_fingerprint, read_station_data
from builder.station.stations import (
    MIB,
    SoftwareImage,
    data_partition_of,
    make_stations,
    open_software_image,
    write_data_partition,
)
from builder.transparency.proof import parse_bundle
from builder.trust.keys import load_revoked, load_trusted_keys
from builder.trust.signer import Signer, open_signers


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "election", help="validate, sign and write per-station election data"
    )
    actions = parser.add_subparsers(dest="election_command", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="validate an election definition and station list")
    _definition_args(check)
    check.set_defaults(run=run_check)

    sign = actions.add_parser("sign", help="sign one station's election data (DSSE envelope)")
    _definition_args(sign)
    sign.add_argument("--station", required=True, help="station id")
    _key_args(sign)
    sign.add_argument("-o", "--output", type=Path, required=True, help="envelope file to write")
    sign.set_defaults(run=run_sign)

    data = actions.add_parser("data", help="write one station's data partition image")
    data.add_argument("definition", nargs="?", type=Path, help="election definition (YAML/JSON)")
    data.add_argument("--stations", type=Path, help="station list (CSV or YAML)")
    data.add_argument("--station", help="station id (with a definition)")
    data.add_argument("--envelope", type=Path, help="an already signed envelope instead")
    _key_args(data, required=False)
    _size_args(data)
    data.add_argument("-o", "--output", type=Path, required=True, help="data partition image")
    data.set_defaults(run=run_data)

    stations = actions.add_parser("stations", help="data partitions and images for all stations")
    _definition_args(stations)
    _key_args(stations)
    _size_args(stations)
    stations.add_argument("--image", type=Path, help="software image: also write station images")
    stations.add_argument("--out", type=Path, required=True, help="output directory")
    stations.add_argument(
        "--log-proof",
        type=Path,
        help="the release's proof bundle (`build.py log prove`): put it on every station's key",
    )
    stations.add_argument(
        "--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel stations"
    )
    stations.set_defaults(run=run_stations)

    verify = actions.add_parser("verify", help="check election data as the booth does")
    verify.add_argument("file", type=Path, help="envelope, data partition or station image")
    verify.add_argument(
        "--keys", type=Path, required=True, help="directory of trusted authority *.pub.json"
    )
    verify.set_defaults(run=run_verify)


def _definition_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("definition", type=Path, help="election definition (YAML or JSON)")
    parser.add_argument("--stations", type=Path, help="station list (CSV or YAML)")


def _key_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--key",
        action="append",
        required=required,
        default=[],
        help="authority key name, key file or pkcs11: URI (repeat for several signers)",
    )
    parser.add_argument("--private-dir", type=Path, help="private key directory")
    add_pkcs11_module(parser)


def _size_args(parser: argparse.ArgumentParser) -> None:
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--manifest", type=Path, help="manifest of the software image")
    size.add_argument("--size-mib", type=int, help="data partition size in MiB")


def _load(args: argparse.Namespace) -> ElectionDefinition:
    return load_election(args.definition, args.stations)


def _signing_keys(args: argparse.Namespace) -> AbstractContextManager[list[Signer]]:
    if not args.key:
        raise InputError("give at least one --key to sign the election data")
    return open_signers(args.key, args.private_dir, args.pkcs11_module)


def _data_size(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        return data_partition_of(read_manifest(args.manifest)).size
    if not 1 <= args.size_mib <= 1024:
        raise InputError(f"--size-mib: expected 1..1024, got {args.size_mib}")
    return int(args.size_mib) * MIB


def run_check(args: argparse.Namespace) -> int:
    definition = _load(args)
    print(f"election {definition.id}: {definition.name}")
    if definition.languages:
        print(f"  format {definition.format}, languages: {' '.join(definition.languages)}")
    for race in definition.races:
        if isinstance(race, BelgianRace):
            print(f"  race {race.id}: {race.summary()}")
            continue
        rules = race.rules
        print(
            f"  race {race.id}: {race.name} — choose {rules.min}..{rules.max} {rules.choose}"
            f"{' (blank allowed)' if rules.blank else ''}, {race.choice_count()} choices"
        )
    for station in definition.stations:
        races = " ".join(station.races) if station.races else "all races"
        print(f"  station {station.id}: {station.name} ({races})")
    print(f"ok: {len(definition.races)} races, {len(definition.stations)} stations")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    definition = _load(args)
    station = definition.station(args.station)
    with _signing_keys(args) as keys:
        envelope = sign_payload(station_payload(definition, station), keys)
    write_atomic(args.output, envelope_bytes(envelope))
    print(f"wrote {args.output}")
    _print_fingerprint(envelope.payload)
    return 0


def run_data(args: argparse.Namespace) -> int:
    size = _data_size(args)
    if args.envelope is not None:
        if args.definition is not None or args.station is not None or args.key:
            raise InputError("--envelope replaces the definition, --station and --key")
        envelope = args.envelope.read_bytes()
        payload = parse_election_envelope(envelope, str(args.envelope)).payload
        problems = payload_problems(payload, str(args.envelope))
        if problems:
            raise ValidationErrors(problems)
    else:
        if args.definition is None or args.station is None:
            raise InputError("give a definition and --station, or --envelope")
        definition = _load(args)
        with _signing_keys(args) as keys:
            signed = sign_payload(
                station_payload(definition, definition.station(args.station)), keys
            )
        envelope, payload = envelope_bytes(signed), signed.payload
    write_data_partition(args.output, envelope, size)
    print(f"wrote {args.output} ({size} bytes)")
    _print_fingerprint(payload)
    return 0


def run_stations(args: argparse.Namespace) -> int:
    definition = _load(args)
    software: SoftwareImage | None = None
    if args.image is not None:
        if args.manifest is None:
            raise InputError("--image needs --manifest (the software image's manifest)")
        software = open_software_image(args.image, args.manifest)
    with _signing_keys(args) as keys:
        results = make_stations(
            definition,
            definition.stations,
            keys,
            args.out,
            data_size=_data_size(args),
            software=software,
            jobs=args.jobs,
            report=lambda line: print(line, file=sys.stderr, flush=True),
            log_proof=_log_proof(args.log_proof),
        )
    print(f"wrote {len(results)} stations to {args.out} (see {args.out / 'stations.json'})")
    return 0


def _log_proof(path: Path | None) -> bytes | None:
    """The proof bundle's bytes, checked to be one (not verified: `verify` does that)."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the proof bundle: {exc.strerror}") from exc
    parse_bundle(data, str(path))
    return data


def run_verify(args: argparse.Namespace) -> int:
    data = read_station_data(args.file)
    envelope = parse_election_envelope(data.envelope, str(args.file))
    signers = verify_election_envelope(
        envelope, load_trusted_keys(args.keys), str(args.file), load_revoked(args.keys)
    )
    print(f"signed by {', '.join(signers)}: OK")
    _print_fingerprint(data.payload)
    return 0


def _print_fingerprint(payload: bytes) -> None:
    print(f"election fingerprint {election_fingerprint(payload)}")
