"""`build.py rebuild MANIFEST`: rebuild a published image from scratch and compare.

Exit 0 when the rebuild is bit-for-bit the published build, 3 when anything
differs (the report says what, in plain words), 2 for bad input, 1 when the
rebuild itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from builder.build.manifest import read_manifest
from builder.commands.options import add_mirror
from builder.core.errors import EXIT_OK, EXIT_VERIFICATION_FAILED
from builder.core.userns import enter_user_namespace
from builder.observe.rebuild import rebuild_and_compare


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rebuild",
        help="rebuild a published image in a fresh directory and compare it, step by step",
        description=(
            "Rebuild the image that MANIFEST describes, in a new work directory with a fresh "
            "cache, then compare: the whole image, each partition, each step's content, and "
            "every file of the root filesystem. Exit 0: same; 3: different."
        ),
    )
    parser.add_argument("manifest", type=Path, help="the published NAME.manifest.json")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--bundle",
        type=Path,
        help="the source bundle (NAME-VERSION-source.tar or its directory); no network used",
    )
    add_mirror(source, "take the recipe from this checkout and the .debs from ")
    parser.add_argument(
        "--recipe",
        type=Path,
        help="recipe to rebuild without --bundle (default: the manifest's recipe file, "
        "relative to the current directory)",
    )
    parser.add_argument(
        "--image",
        type=Path,
        help="the published image (default: the manifest's image file beside it)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="new or empty work directory, kept afterwards (default: ./rebuild-NAME-XXXX)",
    )
    parser.add_argument("--no-diffoscope", action="store_true", help="never run diffoscope")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no build progress")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.bundle is not None and args.recipe is not None:
        print(
            "boothkey: --recipe is ignored with --bundle (the bundle has its recipe)",
            file=sys.stderr,
        )
    manifest = read_manifest(args.manifest)
    enter_user_namespace()  # rootless: the same owners, hence bytes, as a root rebuild
    work = args.work
    if work is None:
        work = Path(tempfile.mkdtemp(prefix=f"rebuild-{manifest.name}-", dir=Path.cwd()))

    def report(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    report(f"rebuilding {manifest.name} {manifest.version} in {work}")
    result = rebuild_and_compare(
        args.manifest,
        work,
        bundle=args.bundle,
        mirrors=args.mirror,
        recipe_path=None if args.bundle is not None else args.recipe,
        image=args.image,
        report=report,
        diffoscope=not args.no_diffoscope,
    )
    if args.json:
        print(json.dumps(result.comparison.to_json(), indent=2, sort_keys=True))
    else:
        print(result.comparison.to_text(), end="")
        print(f"Work directory (rebuilt image, reports): {result.work}")
    return EXIT_OK if result.comparison.ok else EXIT_VERIFICATION_FAILED
