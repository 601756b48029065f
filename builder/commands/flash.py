"""`build.py flash IMAGE TARGET...`: write an image to USB keys and read each one back
(`builder.station.write_keys` says what is checked and the exit statuses)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.station.write_keys import write_keys


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "flash",
        help="write an image to one or more USB keys and read each one back",
        description=(
            "Write IMAGE to every TARGET (block devices such as /dev/sdb, or files) in "
            "parallel, then read each target back and compare it with the manifest's sha256."
        ),
    )
    parser.add_argument("image", type=Path, help="the image file (NAME.img)")
    parser.add_argument("targets", type=Path, nargs="+", metavar="TARGET")
    parser.add_argument(
        "--manifest",
        type=Path,
        help="the image's manifest (default: NAME.manifest.json beside NAME.img)",
    )
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read every target back and compare with the manifest (default: on)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write even to targets that look unsafe (mounted, system disk, read-only, small)",
    )
    parser.add_argument(
        "--log-proof",
        type=Path,
        metavar="FILE",
        help="also write this release log proof bundle (build.py log prove) into every "
        "key's proof slot, where verify and the booth find it",
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="targets written at once (default: all)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return write_keys(
        args.image,
        args.targets,
        manifest_path=args.manifest,
        verify=args.verify,
        force=args.force,
        jobs=args.jobs,
        log_proof=args.log_proof,
    )
