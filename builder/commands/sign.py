"""`build.py sign MANIFEST --key KEY`: sign a built image (first signer or co-signer);
what is written is described in `builder.release.sign`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.commands.options import add_signing_key
from builder.release.sign import sign_manifest
from builder.trust.keys import load_private_key, read_passphrase, resolve_private_key


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sign", help="sign a built image's manifest (DSSE + minisign); co-signers add theirs"
    )
    parser.add_argument("manifest", type=Path, help="NAME.manifest.json (the image beside it)")
    add_signing_key(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path, name = resolve_private_key(args.key, args.private_dir)
    passphrase = read_passphrase(f"Passphrase for key {name}: ")
    key = load_private_key(path, name, passphrase)
    for written in sign_manifest(args.manifest, key):
        print(f"wrote {written}")
    return 0
