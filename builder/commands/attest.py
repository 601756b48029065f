"""`build.py attest MANIFEST --key KEY [--rebuilt-manifest M2] [--result same|different]`.

An observer signs a statement about a published image (MANIFEST): with
`--rebuilt-manifest`, the manifest of their own rebuild, boothkey compares
the image, partition and UKI digests and states the result; without it the
observer states `--result` in their own words. Written beside MANIFEST (or in
`--out`) as `NAME.rebuild.<keyid[:16]>.dsse.json`; `build.py verify
--observer-keys DIR --observers K` counts these statements.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.commands.options import add_signing_key
from builder.core.errors import InputError
from builder.observe.attest import RESULTS, attest
from builder.trust.signer import open_signer


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "attest",
        help="sign an observer's statement that a rebuild gave the same (or a different) image",
        description="Sign, as an independent observer, a statement about a published image: "
        "which inputs you rebuilt, with which tools, and whether your image and partition "
        "digests are the published ones.",
    )
    parser.add_argument("manifest", type=Path, help="the published NAME.manifest.json")
    add_signing_key(parser)
    parser.add_argument(
        "--rebuilt-manifest",
        type=Path,
        help="the manifest of your own rebuild; the result is computed from it",
    )
    parser.add_argument(
        "--result",
        choices=RESULTS,
        help="the result in your own words (checked against --rebuilt-manifest if given)",
    )
    parser.add_argument(
        "--out", type=Path, help="directory for the statement (default: beside MANIFEST)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.rebuilt_manifest is None and args.result is None:
        raise InputError("give --rebuilt-manifest (your rebuild's manifest) or --result")
    with open_signer(args.key, args.private_dir, args.pkcs11_module) as key:
        written, result = attest(args.manifest, key, args.rebuilt_manifest, args.result, args.out)
    verdict = "the same image" if result == "same" else "a DIFFERENT image"
    print(f"{key.name}: rebuilt {verdict}")
    print(f"wrote {written}")
    return 0
