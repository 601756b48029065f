"""`build.py cache prune`: remove step-cache entries that were not used lately."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..paths import default_cache_dir, step_cache_dir
from ..stepcache import StepCache


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("cache", help="manage the build cache")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    prune = actions.add_parser("prune", help="remove step outputs not used recently")
    prune.add_argument("--cache-dir", type=Path, default=None)
    age = prune.add_mutually_exclusive_group()
    age.add_argument("--older-than-days", type=float, default=14.0, help="default: 14")
    age.add_argument("--all", action="store_true", help="remove every step output")
    prune.set_defaults(run=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    cache = StepCache(step_cache_dir(args.cache_dir or default_cache_dir()))
    result = cache.prune(None if args.all else args.older_than_days)
    print(
        f"removed {result.removed} step outputs ({result.freed_bytes / 2**20:.1f} MiB), "
        f"kept {result.kept}"
    )
    return 0
