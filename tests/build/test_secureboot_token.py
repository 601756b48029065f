"""Secure Boot signing of the UKI through a PKCS#11 token (SoftHSM2): the Authenticode
signature boothkey makes in Python is checked by sbverify and osslsigncode, is the same
separable blob every time, and a token key that is not the certificate's is refused."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from image_factory import write_pe
from step_factory import host_tools_output, options_of, run_step
from token_factory import (
    SecureBootAuthority,
    make_secure_boot_authority,
    make_soft_token,
    needs_softhsm,
)

from builder.build.steps.base import BuildContext, StepOutput
from builder.build.steps.sbsign import SbsignStep
from builder.build.steps.secureboot import attach_signature, certificate_table
from builder.core.errors import InputError
from builder.formats.authenticode import unsigned_sha256
from builder.source.recipe import SecureBootOptions

EPOCH = 1700000000
pytestmark = needs_softhsm


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SecureBootAuthority:
    token = make_soft_token(tmp_path / "hsm", monkeypatch)
    return make_secure_boot_authority(tmp_path, token)


def _uki_output(directory: Path, cmdline: bytes = b"console=ttyS0 roothash=00") -> StepOutput:
    directory.mkdir()
    sections = [(".text", b"\xc3" * 64), (".cmdline", cmdline), (".linux", b"k" * 999)]
    write_pe(directory / "BOOTX64.EFI", sections)
    (directory / "cmdline.txt").write_text(cmdline.decode())
    return StepOutput("uki", "0" * 64, directory, {}, "0" * 64)


def _context(tmp_path: Path, key: str, certificate: Path) -> BuildContext:
    recipe = SimpleNamespace(secure_boot=SecureBootOptions(None, certificate, token=key))
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return cast(
        BuildContext,
        SimpleNamespace(
            recipe=recipe,
            source_date_epoch=EPOCH,
            scratch=tmp_path / "scratch",
            report=lambda line: None,
            deb_path=lambda package: tmp_path / "no-debs",
            secure_boot_signature=None,
        ),
    )


def _run(ctx: BuildContext, uki: StepOutput, out: Path) -> dict[str, Any]:
    out.mkdir()
    tools = host_tools_output(out.with_name(out.name + "-tools"))
    return run_step(SbsignStep(), ctx, {"uki": uki, "tools": tools}, out)


def test_token_signature_is_checked_by_sbverify_and_osslsigncode(
    tmp_path: Path, authority: SecureBootAuthority
) -> None:
    certificate = authority.certificates["db"]
    ctx = _context(tmp_path, authority.uri("db"), certificate)
    uki = _uki_output(tmp_path / "uki")
    info = _run(ctx, uki, tmp_path / "one")
    signed = tmp_path / "one" / "BOOTX64.EFI"
    subprocess.run(["sbverify", "--cert", str(certificate), str(signed)], check=True)
    if shutil.which("osslsigncode"):
        done = subprocess.run(
            ["osslsigncode", "verify", "-in", str(signed), "-CAfile", str(certificate)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Signature verification: ok" in done.stdout
        # osslsigncode computes the Authenticode digest itself: the same as ours.
        assert unsigned_sha256((uki.path / "BOOTX64.EFI").read_bytes()).hex().upper() in (
            done.stdout.upper()
        )
    # The separable blob: attached to the unsigned UKI it gives the signed UKI bit for bit.
    blob = base64.b64decode(info["signature"])
    assert attach_signature((uki.path / "BOOTX64.EFI").read_bytes(), blob) == signed.read_bytes()
    # Deterministic: signing again gives the same blob.
    assert _run(ctx, uki, tmp_path / "two") == info
    assert options_of(SbsignStep(), ctx, {"uki": uki})["signer"] == "pkcs11"
    # Another certificate does not accept it.
    other = authority.certificates["kek"]
    refused = subprocess.run(["sbverify", "--cert", str(other), str(signed)], capture_output=True)
    assert refused.returncode != 0


def test_a_changed_uki_does_not_verify_with_the_blob(
    tmp_path: Path, authority: SecureBootAuthority
) -> None:
    certificate = authority.certificates["db"]
    ctx = _context(tmp_path, authority.uri("db"), certificate)
    info = _run(ctx, _uki_output(tmp_path / "uki"), tmp_path / "one")
    altered = _uki_output(tmp_path / "altered", b"console=ttyS0 roothash=01")
    forged = tmp_path / "forged.efi"
    blob = base64.b64decode(info["signature"])
    forged.write_bytes(attach_signature((altered.path / "BOOTX64.EFI").read_bytes(), blob))
    done = subprocess.run(
        ["sbverify", "--cert", str(certificate), str(forged)], capture_output=True
    )
    assert done.returncode != 0
    assert certificate_table(forged.read_bytes()) == blob


def test_a_token_key_that_is_not_the_certificates_is_refused(
    tmp_path: Path, authority: SecureBootAuthority
) -> None:
    ctx = _context(tmp_path, authority.uri("kek"), authority.certificates["db"])
    with pytest.raises(InputError, match=r"does not match secure_boot\.certificate"):
        _run(ctx, _uki_output(tmp_path / "uki"), tmp_path / "out")
    ctx = _context(tmp_path, authority.token.uri("no-such-key"), authority.certificates["db"])
    with pytest.raises(InputError, match="holds no RSA private key"):
        _run(ctx, _uki_output(tmp_path / "uki2"), tmp_path / "out2")
