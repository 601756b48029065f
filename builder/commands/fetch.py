"""`build.py fetch RECIPE`: download the locked .debs into the cache, verified."""

from __future__ import annotations

import argparse
from typing import Any

from builder.commands.options import add_cache_dir, add_mirror, cache_dir
from builder.core.paths import deb_cache_dir
from builder.core.progress import Progress, format_size
from builder.source.debcache import DebCache
from builder.source.fetch import DEFAULT_JOBS, fetch_packages
from builder.source.http import RequestsFetcher
from builder.source.lockfile import load_lock_for
from builder.source.mirrors import mirrors_by_suite
from builder.source.recipe import load_recipe


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fetch",
        help="download every locked .deb into the cache, checking size and sha256",
        description=(
            "Download every package pinned by the recipe's lock file into the cache "
            "(CACHE/debs/sha256/..), checking each one's size and sha256 against the lock. "
            "Packages already cached with the right digest are not downloaded again."
        ),
    )
    parser.add_argument("recipe", help="recipe file, e.g. recipes/booth.yaml (its lock must exist)")
    add_mirror(parser)
    add_cache_dir(parser, "the fetched .debs (in DIR/debs)")
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"parallel downloads (default: {DEFAULT_JOBS})",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing unless it fails")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)
    lock = load_lock_for(recipe)
    mirrors = mirrors_by_suite(args.mirror, lock.suites)
    cache_root = deb_cache_dir(cache_dir(args))
    cache = DebCache(cache_root)
    packages = lock.packages
    mode = "quiet" if args.quiet else None
    with Progress(len(packages), sum(p.size for p in packages), mode=mode) as progress:
        report = fetch_packages(
            packages,
            mirrors,
            cache,
            RequestsFetcher(),
            jobs=args.jobs,
            progress=progress,
        )
    if not args.quiet:
        repaired = f" ({len(report.repaired)} corrupt cached copies replaced)"
        print(
            f"fetched {len(report.fetched)} package(s), {format_size(report.bytes_fetched)}"
            f"{repaired if report.repaired else ''}; "
            f"{len(report.cached)} already in the cache; cache: {cache_root}"
        )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value
