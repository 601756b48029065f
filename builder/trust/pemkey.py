"""Reading a PEM private key file that may be passphrase-protected.

The passphrase comes from the environment variable the caller names (never from
the command line), so the same rule holds for the Secure Boot key wherever it is
read: by the sbsign step for sbsign, and by `builder.trust.rsa` for signing in Python.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from builder.core.errors import InputError

if TYPE_CHECKING:
    # Not in Debian 12's python3-cryptography (38), which observers may run boothkey with.
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# The Secure Boot key's passphrase (sbsign step and Python signing alike).
SECURE_BOOT_PASSPHRASE_ENV = "BOOTHKEY_SECURE_BOOT_PASSPHRASE"


def load_private_key_file(path: Path, shown: str, passphrase_env: str) -> PrivateKeyTypes:
    """The private key in PEM file `path`, decrypted with $`passphrase_env` if set; an
    InputError naming `shown` (the recipe field) for an unreadable, encrypted-without-
    passphrase or malformed file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: {path}: cannot read: {exc.strerror}") from exc
    passphrase = os.environ.get(passphrase_env)
    try:
        return serialization.load_pem_private_key(
            data, password=passphrase.encode() if passphrase else None
        )
    except TypeError as exc:
        raise InputError(
            f"{shown}: {path} is encrypted; set ${passphrase_env} to its passphrase"
        ) from exc
    except ValueError as exc:
        raise InputError(
            f"{shown}: {path}: not a PEM private key, or wrong ${passphrase_env}"
        ) from exc
