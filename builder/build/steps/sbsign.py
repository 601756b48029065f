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
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives import serialization

from builder.build.steps.base import BuildContext, StepEnv, StepOutput, covered_by, tools_sandbox
from builder.build.steps.secureboot import attach_signature, certificate_table, sbsign, sbverify
from builder.core.canonical import sha256_bytes, sha256_file
from builder.core.errors import BuildError, InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.core.sandbox import Sandbox
from builder.trust.pemkey import SECURE_BOOT_PASSPHRASE_ENV, load_private_key_file

PASSPHRASE_ENV = SECURE_BOOT_PASSPHRASE_ENV


def write_plain_key(key: Path, target: Path) -> None:
    """Write `key` unencrypted to `target` (0600), decrypting it with $BOOTHKEY_SECURE_BOOT_PASSPHRASE."""
    private = load_private_key_file(key, "secure_boot.key", PASSPHRASE_ENV)
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


@dataclass(frozen=True)
class SbsignOptions:
    certificate_sha256: str
    signing_time: int
    # "sign" with the key, or "attach" the published signature `attach_sha256` names.
    signature: str
    attach_sha256: str | None
    # Who signs: "sbsign" (a key file), or "pkcs11" (boothkey, through the token: other
    # signed attributes than sbsign's); None when attaching.
    signer: str | None
    # The certificate names the key: a key (file or token) that does not match it is
    # refused.
    certificate: Path = covered_by("certificate_sha256")
    key: Path | None = covered_by("certificate_sha256")
    token: str | None = covered_by("certificate_sha256")
    published: bytes | None = covered_by("attach_sha256")


@dataclass(frozen=True)
class SbsignFacts:
    sha256: str
    unsigned_sha256: str
    certificate_sha256: str
    signature: str  # the certificate table, base64
    signature_sha256: str
    signing_time: int


def sign_with_token(unsigned: bytes, options: SbsignOptions) -> bytes:
    """The UKI signed by the token key `options.token` (see the module's docstring)."""
    from builder.formats.authenticode import unsigned_sha256
    from builder.trust.authenticode import certificate_table as win_certificate
    from builder.trust.authenticode import sign_pe_digest
    from builder.trust.pkcs11 import open_token_rsa_signer
    from builder.trust.rsa import read_certificate

    if options.token is None:
        raise RuntimeError("sign_with_token without a token key")
    certificate = read_certificate(options.certificate, "secure_boot.certificate")
    digest = unsigned_sha256(unsigned)
    try:
        with open_token_rsa_signer(options.token) as signer:
            pkcs7 = sign_pe_digest(digest, certificate, options.signing_time, signer)
    except VerificationFailed as exc:
        raise InputError(
            f"secure_boot.key: {options.token}: does not match secure_boot.certificate "
            f"{options.certificate}: {exc.message}"
        ) from exc
    return attach_signature(unsigned, win_certificate(pkcs7))


class SbsignStep:
    name: ClassVar[str] = "sbsign"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "uki")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> SbsignOptions:
        secure_boot = ctx.recipe.secure_boot
        if secure_boot is None:
            raise RuntimeError("the sbsign step is only planned for recipes with secure_boot")
        published = ctx.secure_boot_signature
        if published is not None:
            signer = None
        else:
            signer = "pkcs11" if secure_boot.token is not None else "sbsign"
        return SbsignOptions(
            certificate_sha256=sha256_file(secure_boot.certificate),
            signing_time=ctx.source_date_epoch,
            signature="sign" if published is None else "attach",
            attach_sha256=sha256_bytes(published) if published is not None else None,
            signer=signer,
            certificate=secure_boot.certificate,
            key=secure_boot.key,
            token=secure_boot.token,
            published=published,
        )

    def run(
        self, options: SbsignOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> SbsignFacts:
        unsigned = inputs["uki"].path / "BOOTX64.EFI"
        signed = out / "BOOTX64.EFI"
        tools = tools_sandbox(env, inputs)
        if options.published is not None:
            env.report("attaching the published Secure Boot signature")
            signed.write_bytes(
                attach_signature(unsigned.read_bytes(), options.published, str(unsigned))
            )
            if not sbverify(tools, signed, options.certificate):
                raise BuildError(
                    "step sbsign: the published signature does not verify on this build's "
                    "UKI: the rebuilt UKI differs from the one that was signed"
                )
        elif options.token is not None:
            env.report("signing the UKI for Secure Boot through the PKCS#11 token")
            signed.write_bytes(sign_with_token(unsigned.read_bytes(), options))
        else:
            self._sign(env, tools, options, unsigned, signed)
        signed_bytes = signed.read_bytes()
        table = certificate_table(signed_bytes, str(signed))
        if attach_signature(unsigned.read_bytes(), table) != signed_bytes:
            raise BuildError(
                "step sbsign: the signature cannot be reattached to the unsigned UKI bit for bit"
            )
        if not sbverify(tools, signed, options.certificate):
            raise BuildError("step sbsign: sbverify rejects the signed UKI")
        (out / "signature.bin").write_bytes(table)
        shutil.copyfile(inputs["uki"].path / "cmdline.txt", out / "cmdline.txt")
        return SbsignFacts(
            sha256=sha256_bytes(signed_bytes),
            unsigned_sha256=sha256_file(unsigned),
            certificate_sha256=options.certificate_sha256,
            signature=base64.b64encode(table).decode(),
            signature_sha256=sha256_bytes(table),
            signing_time=options.signing_time,
        )

    @staticmethod
    def _sign(
        env: StepEnv, tools: Sandbox, options: SbsignOptions, unsigned: Path, signed: Path
    ) -> None:
        if options.key is None:
            raise RuntimeError("a recipe's secure_boot names a key file or a token")
        work = Path(tempfile.mkdtemp(prefix="sbsign-", dir=env.scratch))
        try:
            os.chmod(work, 0o700)
            key = work / "key.pem"
            write_plain_key(options.key, key)
            env.report("signing the UKI for Secure Boot (sbsign)")
            sbsign(tools, unsigned, key, options.certificate, signed, options.signing_time)
        finally:
            shutil.rmtree(work, ignore_errors=True)
