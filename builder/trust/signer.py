"""What signs: the one interface every signature of a release goes through.

A `Signer` has a name (the key name written into file names and comments), its
Ed25519 public key (whose `keyid` is what DSSE signatures carry) and a `sign`
method that returns a 64-byte Ed25519 signature of the message. Two kinds
exist: a decrypted key file (`keys.SigningKey`) and a key on a PKCS#11 token
(`pkcs11.TokenSigner`), whose private key never leaves the token.
`open_signers` turns what a user passed to `--key` into signers of either kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from builder.trust.keys import PublicKey, load_private_key, read_passphrase, resolve_private_key


class Signer(Protocol):
    """Anything that makes Ed25519 signatures for one public key."""

    @property
    def name(self) -> str: ...

    @property
    def public(self) -> PublicKey: ...

    def sign(self, message: bytes) -> bytes: ...


def is_token_key(key: str) -> bool:
    """True when `--key` names a PKCS#11 key (an RFC 7512 `pkcs11:` URI)."""
    return key.startswith("pkcs11:")


@contextlib.contextmanager
def open_signers(
    keys: Sequence[str], private_dir: Path | None = None, module: str | None = None
) -> Iterator[list[Signer]]:
    """Signers for each `--key`: a `pkcs11:` URI (PIN from $BOOTHKEY_PKCS11_PIN or a
    prompt; module from `module`, the URI's module-path or $BOOTHKEY_PKCS11_MODULE),
    else a key name or file (passphrase from $BOOTHKEY_PASSPHRASE or a prompt).
    Token sessions stay open until the `with` block ends."""
    with contextlib.ExitStack() as stack:
        signers: list[Signer] = []
        for key in keys:
            if is_token_key(key):
                from builder.trust.pkcs11 import open_token_signer

                signers.append(stack.enter_context(open_token_signer(key, module)))
            else:
                path, name = resolve_private_key(key, private_dir)
                passphrase = read_passphrase(f"Passphrase for key {name}: ")
                signers.append(load_private_key(path, name, passphrase))
        yield signers


@contextlib.contextmanager
def open_signer(
    key: str, private_dir: Path | None = None, module: str | None = None
) -> Iterator[Signer]:
    """The one signer for `--key` (see `open_signers`)."""
    with open_signers([key], private_dir, module) as signers:
        yield signers[0]
