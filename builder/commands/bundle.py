"""`build.py bundle RECIPE`: the source bundle an observer rebuilds from, offline.

Writes OUT/NAME-VERSION-source/ (a directory that is both a project root and a
Debian mirror) and OUT/NAME-VERSION-source.tar (deterministic). When
OUT/NAME.manifest.json is there (a build with the same --out), the bundle's
file name, sha256 and size are recorded in it; do this before `sign`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from builder.commands.options import add_cache_dir, add_out_dir, cache_dir
from builder.core.paths import deb_cache_dir
from builder.core.progress import format_size
from builder.release.bundle import make_bundle, record_bundle
from builder.source.debcache import DebCache
from builder.source.lockfile import load_lock_for
from builder.source.recipe import load_recipe


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bundle",
        help="write the source bundle (recipe, overlays, lock, keyring, .debs) as dir and tar",
        description=(
            "Write OUT/NAME-VERSION-source/ and the same files as one deterministic tar: the "
            "recipe, its overlays and lock, the archive keyring, boothkey's own source and "
            "every locked .deb at its pool path, so the directory works as a mirror "
            "(build.py fetch --mirror DIR). If OUT/NAME.manifest.json exists, the tar's "
            "sha256 is recorded in it (run bundle after build and before sign)."
        ),
    )
    parser.add_argument("recipe", help="recipe file, e.g. recipes/booth.yaml (locked and fetched)")
    add_out_dir(parser)
    add_cache_dir(parser, "the fetched .debs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="record the bundle in this manifest (default: OUT/NAME.manifest.json if present)",
    )
    where.add_argument("--no-manifest", action="store_true", help="do not touch any manifest")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)
    lock = load_lock_for(recipe)
    debs = DebCache(deb_cache_dir(cache_dir(args)))
    result = make_bundle(recipe, lock, debs.verified_path, args.out)
    print(f"bundle    {result.directory}/  ({result.files} files)")
    print(f"tar       {result.tarball}  ({format_size(result.size)})")
    print(f"sha256    {result.sha256}")
    manifest = args.manifest
    if manifest is None and not args.no_manifest:
        candidate = args.out / f"{recipe.name}.manifest.json"
        manifest = candidate if candidate.is_file() else None
    if manifest is not None and not args.no_manifest:
        record_bundle(manifest, result, recipe)
        print(f"manifest  {manifest}  (now names this bundle)")
    else:
        print(
            "manifest  none updated (build first with the same --out to record the bundle)",
            file=sys.stderr,
        )
    return 0
