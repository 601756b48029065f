"""Command-line options several commands share, declared once so they read the same.

Each `add_*` function adds one option (or one group that belongs together) to
an argparse parser; `cache_dir` turns the parsed `--cache-dir` into the cache
directory to use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.core.paths import default_cache_dir
from builder.source.mirrors import MIRROR_ENV
from builder.trust.pkcs11 import MODULE_ENV, PIN_ENV

_CACHE_DEFAULT = "default: $BOOTHKEY_CACHE, else ~/.cache/boothkey"


def add_cache_dir(parser: argparse.ArgumentParser, holds: str) -> None:
    """`--cache-dir DIR`; `holds` says what the command uses from the cache."""
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"boothkey cache holding {holds} ({_CACHE_DEFAULT})",
    )


def cache_dir(args: argparse.Namespace) -> Path:
    """The cache directory: `--cache-dir` if given, else `paths.default_cache_dir()`."""
    given: Path | None = args.cache_dir
    return given or default_cache_dir()


def add_out_dir(parser: argparse.ArgumentParser) -> None:
    """`--out DIR`, the output directory, `out/` unless given."""
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="output directory (default: out/)"
    )


def add_signing_key(parser: argparse.ArgumentParser) -> None:
    """`--key NAME_OR_FILE_OR_URI` (required), `--private-dir DIR` and `--pkcs11-module`
    (see `builder.trust.signer.open_signer`)."""
    parser.add_argument(
        "--key",
        required=True,
        help="key name (in the private key directory), a key file path, or a PKCS#11 key "
        "as an RFC 7512 URI (pkcs11:token=authority;object=release-2030)",
    )
    parser.add_argument(
        "--private-dir",
        type=Path,
        help="private key directory (default: $XDG_CONFIG_HOME/boothkey/keys)",
    )
    add_pkcs11_module(parser)


def add_pkcs11_module(parser: argparse.ArgumentParser) -> None:
    """`--pkcs11-module PATH`, the token's PKCS#11 library for `pkcs11:` keys."""
    parser.add_argument(
        "--pkcs11-module",
        metavar="PATH",
        help=f"PKCS#11 module for pkcs11: keys (default: the URI's module-path, else "
        f"${MODULE_ENV}); the PIN comes from ${PIN_ENV} or a prompt",
    )


def add_mirror(parser: Any, use: str = "") -> None:
    """`--mirror [SUITE=]URL`, repeatable; `use` says what the command takes from it."""
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="[SUITE=]URL",
        help=(
            f"{use}a Debian mirror: http(s):// or file:// URL, or a local directory; "
            "repeat to try several in order; with SUITE= (e.g. bookworm-security=URL) only "
            f"for that suite (default: ${MIRROR_ENV}, else this machine's apt sources for "
            "each suite)"
        ),
    )
