"""argparse front end. Subcommands live in `builder/commands/`, listed here explicitly."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from builder import __version__
from builder.commands import attest as attest_command
from builder.commands import ballot as ballot_command
from builder.commands import boot as boot_command
from builder.commands import build as build_command
from builder.commands import bundle as bundle_command
from builder.commands import cache as cache_command
from builder.commands import election as election_command
from builder.commands import fetch as fetch_command
from builder.commands import fingerprint as fingerprint_command
from builder.commands import flash as flash_command
from builder.commands import keygen as keygen_command
from builder.commands import lock as lock_command
from builder.commands import log as log_command
from builder.commands import publish as publish_command
from builder.commands import rebuild as rebuild_command
from builder.commands import secureboot as secureboot_command
from builder.commands import sign as sign_command
from builder.commands import verify as verify_command
from builder.commands import witness as witness_command
from builder.core.errors import BoothkeyError

# Each module has `add_parser(subparsers)`, which sets `run=<callable(args) -> int>`.
COMMANDS: tuple[ModuleType, ...] = (
    lock_command,
    fetch_command,
    build_command,
    boot_command,
    cache_command,
    flash_command,
    keygen_command,
    sign_command,
    verify_command,
    attest_command,
    bundle_command,
    publish_command,
    rebuild_command,
    election_command,
    ballot_command,
    fingerprint_command,
    log_command,
    witness_command,
    secureboot_command,
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build.py",
        description="boothkey: build, sign and verify reproducible voting-booth boot images",
    )
    parser.add_argument("--version", action="version", version=f"boothkey {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except BoothkeyError as exc:
        print(f"boothkey: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("boothkey: interrupted", file=sys.stderr)
        return 130
