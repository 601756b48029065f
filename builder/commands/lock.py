"""`build.py lock RECIPE`: resolve the recipe against the signed archive index."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from builder.commands.options import add_mirror
from builder.core.progress import format_size
from builder.source.http import RequestsFetcher, describe_url
from builder.source.lockfile import write_lock
from builder.source.make_lock import lock_recipe, shown_path
from builder.source.mirrors import mirrors_by_suite
from builder.source.recipe import load_recipe


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lock",
        help="pin every package of a recipe by version and sha256",
        description=(
            "Verify the signed index of every suite of the recipe (distribution.suite and "
            "distribution.updates) with the recipe's keyring, resolve the rootfs and boot "
            "package sets (the highest version of any suite wins), and write "
            "recipes/NAME.lock.json."
        ),
    )
    parser.add_argument("recipe", help="the recipe YAML file")
    add_mirror(parser)
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per network read (default 30)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)
    mirrors = mirrors_by_suite(args.mirror, recipe.distribution.suites)
    result = lock_recipe(recipe, RequestsFetcher(timeout=args.timeout), mirrors, report=_progress)
    lock = result.lock
    path = recipe.lock_path
    old = path.read_bytes() if path.exists() else None
    new = lock.to_bytes()
    if old != new:
        write_lock(lock, path)
    rootfs = lock.in_set("rootfs")
    boot = lock.in_set("boot")
    total = format_size(sum(p.size for p in lock.packages))
    state = "unchanged" if old == new else ("updated" if old is not None else "written")
    print(f"{shown_path(path)}: {state}")
    print(
        f"  {len(lock.packages)} packages ({len(rootfs)} rootfs, {len(boot)} boot), "
        f"{total} to download"
    )
    by_suite = dict(zip(recipe.distribution.suites, result.indexes, strict=True))
    for archive in lock.archives:
        count = sum(1 for p in lock.packages if p.suite == archive.suite)
        print(
            f"  archive {archive.suite} ({archive.codename}) of {archive.date}: {count} package(s)"
        )
        print(
            f"    signed by {archive.signing_key}; "
            f"mirror {describe_url(by_suite[archive.suite].mirror)}"
        )
    return 0


def _progress(line: str) -> None:
    print(f"lock: {line}", file=sys.stderr, flush=True)
