"""`build.py sign MANIFEST --key KEY`: sign a built image (first signer or co-signer);
what is written is described in `builder.release.sign`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.commands.options import add_signing_key
from builder.release.sign import sign_manifest
from builder.trust.signer import open_signer


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sign", help="sign a built image's manifest (DSSE + minisign); co-signers add theirs"
    )
    parser.add_argument("manifest", type=Path, help="NAME.manifest.json (the image beside it)")
    add_signing_key(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_signer(args.key, args.private_dir, args.pkcs11_module) as key:
        written_files = sign_manifest(args.manifest, key)
    for written in written_files:
        print(f"wrote {written}")
    return 0
