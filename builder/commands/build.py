"""`build.py build RECIPE`: build the image and manifest from a locked, fetched recipe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from builder.build.image import build_image
from builder.build.steps.sbsign import published_signature
from builder.commands.options import add_cache_dir, add_out_dir, cache_dir
from builder.core.userns import enter_user_namespace
from builder.source.recipe import load_recipe


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "build", help="build NAME.img and NAME.manifest.json from a locked recipe (offline)"
    )
    parser.add_argument("recipe", help="recipe file, e.g. recipes/booth.yaml")
    add_out_dir(parser)
    add_cache_dir(parser, "the .debs and build steps")
    parser.add_argument(
        "--secure-boot-signature",
        type=Path,
        metavar="FILE",
        help="attach this published Secure Boot signature (a signature.bin, or the published "
        "NAME.manifest.json) to the UKI instead of signing it: an observer's rebuild",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the result")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)
    signature = (
        published_signature(args.secure_boot_signature) if args.secure_boot_signature else None
    )
    cache_root = cache_dir(args)
    # Rootless: be root in a user namespace (subordinate ids from /etc/subuid), so the
    # tree's owners, and so the bytes, are those of a root build.
    enter_user_namespace()

    def report(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    result = build_image(recipe, args.out, cache_root, report, secure_boot_signature=signature)
    cached = sum(1 for run in result.steps.values() if run.cached)
    image = result.manifest_data["image"]
    print(f"image     {result.image}  ({image['size']} bytes)")
    print(f"sha256    {image['sha256']}")
    print(f"root hash {result.manifest_data['verity']['root_hash']}")
    print(f"manifest  {result.manifest}")
    print(f"steps     {len(result.steps)} ({cached} from cache)")
    if not args.quiet:
        for name, step in result.steps.items():
            origin = "cache" if step.cached else "built"
            print(f"  {name:10s} {step.seconds:7.1f} s  {origin}", file=sys.stderr)
    return 0
