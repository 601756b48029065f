"""`build.py publish MANIFEST --keys DIR --out SITE [--threshold N] [--observer-keys DIR]`.

Checks the signed release beside MANIFEST (image, envelope, minisign signatures, SBOM,
provenance, observers' statements) against the signers' public keys, then writes its
release page: SITE/index.html and SITE/files/ (`builder.observe.page`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.observe.page import publish


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="write a signed release's static web page (verifies in the browser)",
        description="Write a static release page: fingerprint and QR code, digests, "
        "signers, observers, packages, provenance, how to verify, and an in-browser check "
        "of an image or USB key. It loads nothing from the network.",
    )
    parser.add_argument("manifest", type=Path, help="NAME.manifest.json, signed, image beside it")
    parser.add_argument(
        "--keys", type=Path, required=True, help="directory of the signers' *.pub.json"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the site")
    parser.add_argument(
        "--threshold",
        type=int,
        help="signatures the page's check requires (default: every signer's)",
    )
    parser.add_argument(
        "--observer-keys", type=Path, help="directory of trusted observers' *.pub.json"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    release, written = publish(
        args.manifest, args.keys, args.out, args.observer_keys, args.threshold
    )
    print(
        f"{release.manifest.name} {release.manifest.version}: software fingerprint "
        f"{release.software_fingerprint}, {len(release.signers)} signer(s)"
    )
    print(
        f"wrote {args.out / 'index.html'} and {len(written) - 1} file(s) under {args.out / 'files'}"
    )
    return 0
