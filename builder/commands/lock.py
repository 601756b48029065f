"""`build.py lock RECIPE`: resolve the recipe against the signed archive index."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lock", help="pin every package of a recipe by version and sha256"
    )
    parser.add_argument("recipe")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("lock is being written (issue 2)")
