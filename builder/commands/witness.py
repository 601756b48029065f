"""`build.py witness SOURCE --key KEY --state FILE --out FILE [--log-key VKEY] [--name NAME]
[--time SECONDS]`: cosign the release log's newest checkpoint if it is consistent with
the last one this witness cosigned (`builder.observe.witness`).

SOURCE is a published log directory or an http(s) URL. The cosignature's time is
`--time` (POSIX seconds) or else now, read from the clock: the one place boothkey
reads it, because a cosignature states "as of this time" (c2sp.org/tlog-cosignature).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from builder.commands.options import add_signing_key
from builder.core.fsutil import write_atomic
from builder.observe.witness import witness
from builder.trust.keys import load_private_key, read_passphrase, resolve_private_key


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "witness",
        help="cosign the release log's newest checkpoint, if consistent with what you saw",
        description="As a witness, check that the log's newest checkpoint extends the last "
        "one you cosigned (a consistency proof), then add your C2SP cosignature. A fork or a "
        "rewritten history is refused, with both checkpoints as evidence.",
    )
    parser.add_argument("source", help="the published log: a directory or an http(s) URL")
    add_signing_key(parser)
    parser.add_argument("--state", type=Path, required=True, help="this witness's state file")
    parser.add_argument(
        "--out", type=Path, required=True, help="where the cosigned checkpoint goes"
    )
    parser.add_argument(
        "--log-key", help="the log's verifier key, or a file holding it (needed the first time)"
    )
    parser.add_argument("--name", help="your witness name (default: the key's name)")
    parser.add_argument(
        "--time", type=int, help="the cosignature's POSIX time (default: now, from the clock)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    log_vkey = args.log_key
    if log_vkey is not None and Path(log_vkey).is_file():
        log_vkey = Path(log_vkey).read_text(encoding="utf-8")
    path, key_name = resolve_private_key(args.key, args.private_dir)
    key = load_private_key(path, key_name, read_passphrase(f"Passphrase for key {key_name}: "))
    timestamp = args.time if args.time is not None else int(time.time())
    cosigned, checkpoint, witness_key = witness(
        args.source, key, args.name or key.name, args.state, timestamp, log_vkey
    )
    write_atomic(args.out, cosigned.to_bytes())
    print(f"cosigned: {checkpoint.describe()}")
    print(f"witness key: {witness_key.vkey()}")
    print(f"wrote {args.out}")
    return 0
