"""`build.py keygen NAME` or `build.py keygen pkcs11:token=T;object=NAME`: make a signing key pair.

With a NAME, writes the passphrase-encrypted private key (mode 0600) to
`$XDG_CONFIG_HOME/boothkey/keys/NAME.key` (or `--private-dir`), never inside a
repository. With a PKCS#11 URI, the key pair is generated on the token (the
object's label is the key's name) and its private key never leaves it. Either
way the public key goes to `keys/NAME.pub.json` and `keys/NAME.minisign.pub`
(or `--public-dir`). Never overwrites a key.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from builder.commands.options import add_pkcs11_module
from builder.core.errors import InputError
from builder.core.fsutil import write_atomic
from builder.trust.keys import (
    check_key_name,
    default_private_dir,
    encrypt_private_key,
    generate_key,
    public_key_bytes,
    read_passphrase,
)
from builder.trust.minisign import keynum_text, public_key_file
from builder.trust.pkcs11 import generate_token_key
from builder.trust.pkcs11_uri import parse_token_uri
from builder.trust.signer import is_token_key


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keygen", help="create an Ed25519 signing key (private key outside the repository)"
    )
    parser.add_argument(
        "name",
        help="key name, e.g. release-2026 or observer-alice; or a PKCS#11 URI "
        "(pkcs11:token=authority;object=release-2030) to generate the key on that token",
    )
    parser.add_argument(
        "--private-dir",
        type=Path,
        help="where the encrypted private key goes (default: $XDG_CONFIG_HOME/boothkey/keys)",
    )
    parser.add_argument(
        "--public-dir", type=Path, default=Path("keys"), help="where public keys go (default: keys)"
    )
    add_pkcs11_module(parser)
    parser.set_defaults(run=run)


def _inside_repository(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def run(args: argparse.Namespace) -> int:
    if is_token_key(args.name):
        return _run_token(args)
    name = check_key_name(args.name)
    private_dir: Path = (args.private_dir or default_private_dir()).absolute()
    public_dir: Path = args.public_dir
    repository = _inside_repository(private_dir)
    if repository is not None:
        raise InputError(
            f"{private_dir}: is inside the repository {repository}; private keys must live "
            "outside it (choose another --private-dir)"
        )
    private_path = private_dir / f"{name}.key"
    json_path = public_dir / f"{name}.pub.json"
    minisign_path = public_dir / f"{name}.minisign.pub"
    existing = [str(p) for p in (private_path, json_path, minisign_path) if p.exists()]
    if existing:
        raise InputError(f"refusing to overwrite existing key file(s): {', '.join(existing)}")

    passphrase = read_passphrase(f"Passphrase for the new key {name}: ", confirm=True)
    key = generate_key(name)
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(private_dir, 0o700)
    write_atomic(private_path, encrypt_private_key(key, passphrase), mode=0o600)
    write_atomic(json_path, public_key_bytes(key.public))
    write_atomic(minisign_path, public_key_file(key.public))
    print(f"private key: {private_path} (encrypted, mode 0600; keep it and its passphrase safe)")
    print(f"public key:  {json_path}")
    print(f"             {minisign_path}")
    print(f"key id:      {key.public.keyid}")
    print(f"minisign id: {keynum_text(key.public.minisign_keynum)}")
    return 0


def _run_token(args: argparse.Namespace) -> int:
    uri = parse_token_uri(args.name)
    public_dir: Path = args.public_dir
    name = check_key_name(uri.object or "")
    json_path = public_dir / f"{name}.pub.json"
    minisign_path = public_dir / f"{name}.minisign.pub"
    existing = [str(p) for p in (json_path, minisign_path) if p.exists()]
    if existing:
        raise InputError(f"refusing to overwrite existing key file(s): {', '.join(existing)}")
    public = generate_token_key(args.name, args.pkcs11_module)
    write_atomic(json_path, public_key_bytes(public))
    write_atomic(minisign_path, public_key_file(public))
    print(f"private key: on the token, {args.name} (not extractable)")
    print(f"public key:  {json_path}")
    print(f"             {minisign_path}")
    print(f"key id:      {public.keyid}")
    print(f"minisign id: {keynum_text(public.minisign_keynum)}")
    return 0
