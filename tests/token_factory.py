"""SoftHSM2 tokens for tests: a real PKCS#11 module with its token store under tmp_path.

`make_soft_token` writes a softhsm2.conf in the given directory, points
SOFTHSM2_CONF at it (through the test's monkeypatch), initialises one token and
sets $BOOTHKEY_PKCS11_MODULE and $BOOTHKEY_PKCS11_PIN, so boothkey finds both
without options. `rsa_key_on_token` and `ed25519_key_on_token` make keys the way
a release engineer's ceremony would (generated on the token, not extractable).
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "246810"
SO_PIN = "13579111"
NOT_BEFORE = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
INIT_TOKEN = ("softhsm2-util", "--init-token", "--free", "--label")

needs_softhsm = pytest.mark.skipif(
    not SOFTHSM_MODULE.is_file() or shutil.which("softhsm2-util") is None,
    reason="softhsm2 not installed (./setup installs it)",
)


@dataclass(frozen=True)
class SoftToken:
    label: str
    conf: Path
    module: Path = SOFTHSM_MODULE
    pin: str = PIN

    def uri(self, key: str) -> str:
        return f"pkcs11:token={self.label};object={key}"


def make_soft_token(
    directory: Path, monkeypatch: pytest.MonkeyPatch, label: str = "authority"
) -> SoftToken:
    tokens = directory / "softhsm-tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [*INIT_TOKEN, label, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("BOOTHKEY_PKCS11_MODULE", str(SOFTHSM_MODULE))
    monkeypatch.setenv("BOOTHKEY_PKCS11_PIN", PIN)
    return SoftToken(label, conf)


def add_token(token: SoftToken, label: str) -> SoftToken:
    """A second token in the same SoftHSM store (same PIN)."""
    subprocess.run(
        [*INIT_TOKEN, label, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        env={"SOFTHSM2_CONF": str(token.conf), "PATH": "/usr/bin:/bin"},
    )
    return SoftToken(label, token.conf)


@dataclass(frozen=True)
class SecureBootAuthority:
    """An election authority's Secure Boot keys on a SoftHSM token, with certificates."""

    token: SoftToken
    certificates: dict[str, Path]  # "pk", "kek", "db" -> PEM certificate

    def uri(self, role: str) -> str:
        return self.token.uri(f"sb-{role}")


def make_secure_boot_authority(directory: Path, token: SoftToken) -> SecureBootAuthority:
    """PK, KEK and db keys generated on `token` (RSA-2048), each with its certificate."""
    from builder.release.firmware import make_certificate_on_token

    certificates = {}
    for role in ("pk", "kek", "db"):
        path = directory / f"sb-{role}.pem"
        path.write_bytes(
            make_certificate_on_token(
                token.uri(f"sb-{role}"), None, f"Test Authority {role} 2030", NOT_BEFORE
            )
        )
        certificates[role] = path
    return SecureBootAuthority(token, certificates)
