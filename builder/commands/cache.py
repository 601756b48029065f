"""`build.py cache prune`: remove step-cache entries that were not used lately.

Safe while builds run: entries they use and their staging directories are skipped.
"""

from __future__ import annotations

import argparse
from typing import Any

from builder.build.stepcache import StepCache
from builder.commands.options import add_cache_dir, cache_dir
from builder.core.paths import step_cache_dir
from builder.core.userns import enter_user_namespace


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("cache", help="manage the build cache")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    prune = actions.add_parser("prune", help="remove step outputs not used recently")
    add_cache_dir(prune, "the build steps")
    age = prune.add_mutually_exclusive_group()
    age.add_argument("--older-than-days", type=float, default=14.0, help="default: 14")
    age.add_argument("--all", action="store_true", help="remove every step output")
    prune.set_defaults(run=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    # Rootless: entries hold files owned by subordinate ids; only the namespace's root
    # may remove them.
    enter_user_namespace()
    cache = StepCache(step_cache_dir(cache_dir(args)))
    result = cache.prune(None if args.all else args.older_than_days)
    busy = f" ({result.in_use} in use by a running build)" if result.in_use else ""
    print(
        f"removed {result.removed} step outputs ({result.freed_bytes / 2**20:.1f} MiB), "
        f"kept {result.kept}{busy}"
    )
    return 0
