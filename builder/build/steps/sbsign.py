"""Secure Boot: sign the UKI with sbsign, and publish the signature as a separable blob.

Only planned when the recipe has `secure_boot: {key, certificate}`. Output:
`out/BOOTX64.EFI` (signed), `out/cmdline.txt` (copied), `out/signature.bin`
(the PE certificate table sbsign appended). The info, which the manifest
records under "secure_boot", holds that blob in base64, so an observer
rebuilds the unsigned UKI and reattaches it with
`builder.build.steps.secureboot.attach_signature` to get the signed UKI bit for bit.

An observer who rebuilds without the private key passes the published
signature explicitly (`build --secure-boot-signature FILE`, or `rebuild`, which
takes it from the published manifest; it arrives as
`BuildContext.secure_boot_signature`): the step then attaches it to the
rebuilt UKI instead of signing, and fails unless sbverify accepts the result,
which it does only when the rebuilt UKI is the one that was signed. Which of
the two the step did, and the signature's digest, are among its options, so the
step id covers it.

The key file may be passphrase-protected PEM: the passphrase is read from
$BOOTHKEY_SECURE_BOOT_PASSPHRASE, and a decrypted copy lives in the build's
scratch directory (mode 0600) only while sbsign runs.

A key on a PKCS#11 token (`secure_boot.key: pkcs11:...`, an RSA key) never
reaches a file, nor the sandbox: boothkey computes the UKI's Authenticode
digest itself and has the token sign the PKCS#7 signed attributes
(`builder.trust.authenticode`, CKM_SHA256_RSA_PKCS; PIN from
$BOOTHKEY_PKCS11_PIN or a prompt, module from the URI or
$BOOTHKEY_PKCS11_MODULE). RSA PKCS#1 v1.5 is deterministic and the signingTime
is SOURCE_DATE_EPOCH, so the blob is the same for the same UKI. The locked
sbverify checks the result exactly as it checks sbsign's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from cryptography.hazmat.primitives import serialization

from builder.build.steps.base import BuildContext, StepOutput, tools_sandbox
from builder.build.steps.secureboot import attach_signature, certificate_table, sbsign, sbverify
from builder.core.canonical import sha256_bytes, sha256_file
from builder.core.errors import BuildError, InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.core.sandbox import Sandbox
from builder.source.recipe import SecureBootOptions

PASSPHRASE_ENV = "BOOTHKEY_SECURE_BOOT_PASSPHRASE"


def _options(ctx: BuildContext) -> SecureBootOptions:
    if ctx.recipe.secure_boot is None:
        raise RuntimeError("the sbsign step is only planned for recipes with secure_boot")
    return ctx.recipe.secure_boot


def write_plain_key(key: Path, target: Path) -> None:
    """Write `key` unencrypted to `target` (0600), decrypting it with $BOOTHKEY_SECURE_BOOT_PASSPHRASE."""
    try:
        pem = key.read_bytes()
    except OSError as exc:
        raise InputError(f"secure_boot.key: {key}: cannot read: {exc.strerror}") from exc
    passphrase = os.environ.get(PASSPHRASE_ENV)
    try:
        private = serialization.load_pem_private_key(
            pem, password=passphrase.encode() if passphrase else None
        )
    except TypeError as exc:
        raise InputError(
            f"secure_boot.key: {key} is encrypted; set ${PASSPHRASE_ENV} to its passphrase"
        ) from exc
    except ValueError as exc:
        raise InputError(
            f"secure_boot.key: {key}: not a PEM private key, or wrong ${PASSPHRASE_ENV}"
        ) from exc
    plain = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(target, plain, mode=0o600)


def published_signature(path: Path) -> bytes:
    """The certificate table from a published `signature.bin`, or from a published
    manifest (`NAME.manifest.json`, field secure_boot.signature)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    if path.suffix != ".json":
        return data
    try:
        encoded = json.loads(data)["secure_boot"]["signature"]
        return base64.b64decode(encoded, validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a manifest with a secure_boot.signature") from exc


def sign_with_token(unsigned: bytes, secure_boot: SecureBootOptions, ctx: BuildContext) -> bytes:
    """The UKI signed by the token key `secure_boot.token` (see the module's docstring)."""
    from builder.formats.authenticode import unsigned_sha256
    from builder.trust.authenticode import certificate_table as win_certificate
    from builder.trust.authenticode import sign_pe_digest
    from builder.trust.pkcs11 import open_token_rsa_signer
    from builder.trust.rsa import read_certificate

    if secure_boot.token is None:
        raise RuntimeError("sign_with_token without a token key")
    certificate = read_certificate(secure_boot.certificate, "secure_boot.certificate")
    digest = unsigned_sha256(unsigned)
    try:
        with open_token_rsa_signer(secure_boot.token) as signer:
            pkcs7 = sign_pe_digest(digest, certificate, ctx.source_date_epoch, signer)
    except VerificationFailed as exc:
        raise InputError(
            f"secure_boot.key: {secure_boot.token}: does not match secure_boot.certificate "
            f"{secure_boot.certificate}: {exc.message}"
        ) from exc
    return attach_signature(unsigned, win_certificate(pkcs7))


class SbsignStep:
    name: ClassVar[str] = "sbsign"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "uki")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> dict[str, Any]:
        # The certificate names the key: sbsign refuses a key that does not match it.
        published = ctx.secure_boot_signature
        options: dict[str, Any] = {
            "certificate_sha256": sha256_file(_options(ctx).certificate),
            "signing_time": ctx.source_date_epoch,
            "signature": ({"attach": sha256_bytes(published)} if published is not None else "sign"),
        }
        if published is None and _options(ctx).token is not None:
            # Signed in Python through the token: other signed attributes than sbsign's.
            options["signer"] = "pkcs11"
        return options

    def run(self, ctx: BuildContext, inputs: Mapping[str, StepOutput], out: Path) -> dict[str, Any]:
        secure_boot = _options(ctx)
        unsigned = inputs["uki"].path / "BOOTX64.EFI"
        signed = out / "BOOTX64.EFI"
        tools = tools_sandbox(ctx, inputs)
        published = ctx.secure_boot_signature
        if published is not None:
            ctx.report("attaching the published Secure Boot signature")
            signed.write_bytes(attach_signature(unsigned.read_bytes(), published, str(unsigned)))
            if not sbverify(tools, signed, secure_boot.certificate):
                raise BuildError(
                    "step sbsign: the published signature does not verify on this build's "
                    "UKI: the rebuilt UKI differs from the one that was signed"
                )
        elif secure_boot.token is not None:
            ctx.report("signing the UKI for Secure Boot through the PKCS#11 token")
            signed.write_bytes(sign_with_token(unsigned.read_bytes(), secure_boot, ctx))
        else:
            self._sign(ctx, tools, secure_boot, unsigned, signed)
        signed_bytes = signed.read_bytes()
        table = certificate_table(signed_bytes, str(signed))
        if attach_signature(unsigned.read_bytes(), table) != signed_bytes:
            raise BuildError(
                "step sbsign: the signature cannot be reattached to the unsigned UKI bit for bit"
            )
        if not sbverify(tools, signed, secure_boot.certificate):
            raise BuildError("step sbsign: sbverify rejects the signed UKI")
        (out / "signature.bin").write_bytes(table)
        shutil.copyfile(inputs["uki"].path / "cmdline.txt", out / "cmdline.txt")
        return {
            "sha256": sha256_bytes(signed_bytes),
            "unsigned_sha256": sha256_file(unsigned),
            "certificate_sha256": sha256_file(secure_boot.certificate),
            "signature": base64.b64encode(table).decode(),
            "signature_sha256": sha256_bytes(table),
            "signing_time": ctx.source_date_epoch,
        }

    @staticmethod
    def _sign(
        ctx: BuildContext,
        tools: Sandbox,
        secure_boot: SecureBootOptions,
        unsigned: Path,
        signed: Path,
    ) -> None:
        if secure_boot.key is None:
            raise RuntimeError("a recipe's secure_boot names a key file or a token")
        work = Path(tempfile.mkdtemp(prefix="sbsign-", dir=ctx.scratch))
        try:
            os.chmod(work, 0o700)
            key = work / "key.pem"
            write_plain_key(secure_boot.key, key)
            ctx.report("signing the UKI for Secure Boot (sbsign)")
            sbsign(tools, unsigned, key, secure_boot.certificate, signed, ctx.source_date_epoch)
        finally:
            shutil.rmtree(work, ignore_errors=True)
