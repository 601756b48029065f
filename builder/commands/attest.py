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

from builder.build.manifest import read_manifest
from builder.commands.options import add_signing_key
from builder.commands.sign import resolve_key_path
from builder.core.canonical import sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.observe.attest import (
    RESULTS,
    rebuild_statement,
    sign_rebuild_statement,
    statement_file_name,
)
from builder.trust.keys import SigningKey, load_private_key, read_passphrase


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


def attest(
    manifest_path: Path,
    key: SigningKey,
    rebuilt_manifest: Path | None = None,
    result: str | None = None,
    out_dir: Path | None = None,
) -> tuple[Path, str]:
    """Write the observer's signed statement; return (its path, the result it states)."""
    published = read_manifest(manifest_path)
    rebuilt = None
    if rebuilt_manifest is not None:
        rebuilt = read_manifest(rebuilt_manifest)
        _check_rebuilt_image(rebuilt_manifest, rebuilt.image.file, rebuilt.image.sha256)
    statement = rebuild_statement(published, rebuilt, result)
    envelope = sign_rebuild_statement(statement, key)
    path = (out_dir or manifest_path.parent) / statement_file_name(published.name, key.public)
    write_atomic(path, envelope.to_bytes())
    return path, str(statement["predicate"]["result"])


def _check_rebuilt_image(manifest_path: Path, image_file: str, sha256: str) -> None:
    """When the rebuilt image is beside its manifest, never vouch for a manifest it contradicts."""
    image = manifest_path.parent / image_file
    if image.is_file() and sha256_file(image) != sha256:
        raise VerificationFailed(
            f"{image}: sha256 differs from {manifest_path}; the rebuilt manifest does not "
            "describe the rebuilt image"
        )


def run(args: argparse.Namespace) -> int:
    if args.rebuilt_manifest is None and args.result is None:
        raise InputError("give --rebuilt-manifest (your rebuild's manifest) or --result")
    path, name = resolve_key_path(args.key, args.private_dir)
    passphrase = read_passphrase(f"Passphrase for key {name}: ")
    key = load_private_key(path, name, passphrase)
    written, result = attest(args.manifest, key, args.rebuilt_manifest, args.result, args.out)
    verdict = "the same image" if result == "same" else "a DIFFERENT image"
    print(f"{key.name}: rebuilt {verdict}")
    print(f"wrote {written}")
    return 0
