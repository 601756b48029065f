"""`build.py lock RECIPE`: resolve the recipe against the signed archive index."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..fetcher import RequestsFetcher, describe_url
from ..lockfile import write_lock
from ..locking import lock_recipe, shown_path
from ..mirrors import MIRROR_ENV, choose_mirrors
from ..progress import format_size
from ..recipe import load_recipe


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lock",
        help="pin every package of a recipe by version and sha256",
        description=(
            "Verify the archive's signed index with the recipe's keyring, resolve the "
            "rootfs and boot package sets, and write recipes/NAME.lock.json."
        ),
    )
    parser.add_argument("recipe", help="the recipe YAML file")
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help=(
            "Debian mirror URL or local directory, tried in order (repeatable); default: "
            f"${MIRROR_ENV}, else the machine's apt sources for the suite"
        ),
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per network read (default 30)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)
    mirrors = choose_mirrors(args.mirror, recipe.distribution.suite)
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
    archive = lock.archive
    state = "unchanged" if old == new else ("updated" if old is not None else "written")
    print(f"{shown_path(path)}: {state}")
    print(
        f"  {len(lock.packages)} packages ({len(rootfs)} rootfs, {len(boot)} boot), "
        f"{total} to download"
    )
    print(f"  archive {archive.suite} ({archive.codename}) of {archive.date}")
    print(f"  signed by {archive.signing_key}; mirror {describe_url(result.index.mirror)}")
    return 0


def _progress(line: str) -> None:
    print(f"lock: {line}", file=sys.stderr, flush=True)
