"""`build.py log init|append|checkpoint|prove|consistency|cosign`: the authority's
append-only release log (`builder.release.log` says what is on disk and why it
is safe), kept as plain files to publish as a static directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from builder.commands.options import add_signing_key
from builder.core.fsutil import write_atomic
from builder.release.log import (
    add_cosignatures,
    append,
    consistency,
    format_proof,
    init_log,
    make_checkpoint,
    prove,
)
from builder.transparency.witnesses import load_witness_keys
from builder.trust.keys import SigningKey, load_private_key, read_passphrase, resolve_private_key


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "log",
        help="keep the public, append-only release log (Merkle tree, signed checkpoints)",
        description="The release log: every published release and observer statement as an "
        "entry of an RFC 6962 Merkle tree, with C2SP checkpoints that witnesses cosign.",
    )
    actions = parser.add_subparsers(dest="log_action", required=True, metavar="ACTION")

    init = actions.add_parser("init", help="start an empty log signed by KEY")
    init.add_argument("directory", type=Path)
    add_signing_key(init)
    init.add_argument(
        "--origin", required=True, help="the log's name, e.g. example.org/election-2030/log"
    )
    init.set_defaults(run=_init)

    add = actions.add_parser("append", help="append a release manifest or an observer statement")
    add.add_argument("directory", type=Path)
    add.add_argument("item", type=Path, help="NAME.manifest.json or NAME.rebuild.*.dsse.json")
    add.set_defaults(run=_append)

    checkpoint = actions.add_parser("checkpoint", help="sign a checkpoint over every entry")
    checkpoint.add_argument("directory", type=Path)
    add_signing_key(checkpoint)
    checkpoint.set_defaults(run=_checkpoint)

    proof = actions.add_parser("prove", help="write the proof bundle of one entry")
    proof.add_argument("directory", type=Path)
    which = proof.add_mutually_exclusive_group(required=True)
    which.add_argument("--entry", type=int, help="the entry's index")
    which.add_argument("--manifest", type=Path, help="the release whose entry to prove")
    proof.add_argument("--out", type=Path, required=True, help="where to write the bundle")
    proof.set_defaults(run=_prove)

    consist = actions.add_parser("consistency", help="print a consistency proof (base64 lines)")
    consist.add_argument("directory", type=Path)
    consist.add_argument("--from", dest="old", type=int, required=True, help="the older size")
    consist.add_argument("--to", dest="new", type=int, help="the newer size (default: newest)")
    consist.set_defaults(run=_consistency)

    cosign = actions.add_parser("cosign", help="add witnesses' cosignatures to the checkpoint")
    cosign.add_argument("directory", type=Path)
    cosign.add_argument("cosigned", type=Path, nargs="+", help="files `build.py witness` wrote")
    cosign.add_argument(
        "--witnesses",
        type=Path,
        metavar="DIR",
        help="the witnesses' keys (*.vkey, *.pub.json): merge only valid cosignatures by them",
    )
    cosign.set_defaults(run=_cosign)


def _key(args: argparse.Namespace) -> SigningKey:
    path, name = resolve_private_key(args.key, args.private_dir)
    return load_private_key(path, name, read_passphrase(f"Passphrase for key {name}: "))


def _init(args: argparse.Namespace) -> int:
    key = init_log(args.directory, _key(args), args.origin)
    print(f"log {key.name} started in {args.directory}")
    print(f"log key: {key.vkey()}")
    return 0


def _append(args: argparse.Namespace) -> int:
    index, what = append(args.directory, args.item)
    print(f"entry {index}: {what}")
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    checkpoint = make_checkpoint(args.directory, _key(args))
    print(f"checkpoint: {checkpoint.describe()}")
    return 0


def _prove(args: argparse.Namespace) -> int:
    bundle = prove(args.directory, args.entry, args.manifest)
    write_atomic(args.out, bundle.to_bytes())
    print(f"entry {bundle.index}: proof written to {args.out}")
    return 0


def _consistency(args: argparse.Namespace) -> int:
    print(format_proof(consistency(args.directory, args.old, args.new)).decode(), end="")
    return 0


def _cosign(args: argparse.Namespace) -> int:
    witnesses = load_witness_keys(args.witnesses) if args.witnesses is not None else None
    added = add_cosignatures(args.directory, args.cosigned, witnesses)
    print(f"{len(added)} cosignature(s) added: {', '.join(added) or 'none new'}")
    return 0
