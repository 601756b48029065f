"""`build.py verify IMAGE_OR_DEVICE --manifest M --keys DIR --threshold N [--json]
[--observer-keys DIR --observers K [--observer-statements DIR]]`.

Reads the image (a file, or a block device over the manifest's image size
only), measures it, and lets `builder.observe.verify` judge: image digest, envelope
signatures, GPT partitions, and the root partition's hash tree against the
root hash on the UKI's command line; with --observers, also that K trusted
observers signed "I rebuilt it and got the same image" (`builder.observe.attest`); with
--log-key, --witnesses and --witness-threshold, also that the release is in the
release log, cosigned by enough witnesses (proof: --log-proof, else the key's). Exit 0 when everything passed, 3 when a
check failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from builder.core.errors import InputError, VerificationFailed
from builder.observe.verify import LogTrust, verify_files


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check an image or USB key against its signed manifest",
        description="Check that an image file or a USB key holds exactly the published, "
        "signed image: its digest, the signatures, the partitions and the root hash tree.",
    )
    parser.add_argument("image", type=Path, help="image file or block device (read only)")
    parser.add_argument("--manifest", type=Path, required=True, help="NAME.manifest.json")
    parser.add_argument(
        "--envelope",
        type=Path,
        help="signature envelope (default: NAME.dsse.json beside the manifest)",
    )
    parser.add_argument("--keys", type=Path, required=True, help="directory of trusted *.pub.json")
    parser.add_argument("--threshold", type=int, required=True, help="signatures required")
    parser.add_argument(
        "--observer-keys", type=Path, help="directory of trusted observers' *.pub.json"
    )
    parser.add_argument(
        "--observers", type=int, help="distinct observers' 'same image' statements required"
    )
    parser.add_argument(
        "--observer-statements",
        type=Path,
        help="directory of NAME.rebuild.*.dsse.json (default: beside the manifest)",
    )
    parser.add_argument(
        "--log-key", type=Path, help="the release log's verifier key file (log.vkey)"
    )
    parser.add_argument(
        "--witnesses", type=Path, help="directory of trusted witnesses' *.vkey or *.pub.json"
    )
    parser.add_argument(
        "--witness-threshold", type=int, help="distinct witnesses' cosignatures required"
    )
    parser.add_argument(
        "--log-proof",
        type=Path,
        help="the release's proof bundle (default: the one on the key's booth-data partition)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.observer_keys is None) != (args.observers is None):
        raise InputError("--observer-keys and --observers go together")
    log_options = (args.log_key, args.witnesses, args.witness_threshold)
    if any(option is not None for option in (*log_options, args.log_proof)) and None in log_options:
        raise InputError("--log-key, --witnesses and --witness-threshold go together")
    log = None
    if args.log_key is not None:
        log = LogTrust(args.log_key, args.witnesses, args.witness_threshold, args.log_proof)
    report = verify_files(
        args.image,
        args.manifest,
        args.envelope,
        args.keys,
        args.threshold,
        observer_keys=args.observer_keys,
        observers=args.observers or 0,
        observer_statements=args.observer_statements,
        log=log,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(f"Verifying {args.image} against {args.manifest}")
        print(report.to_text())
    sys.stdout.flush()
    if not report.ok:
        failed = [check.name for check in report.checks if not check.ok]
        raise VerificationFailed(f"verification failed: {', '.join(failed)}")
    return 0
