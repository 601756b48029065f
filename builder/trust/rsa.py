"""RSA keys for Secure Boot: what signs UKIs and UEFI variables, and X.509 certificates.

UEFI firmware checks RSA-2048 PKCS#1 v1.5 signatures over SHA-256, with the
signer's X.509 certificate enrolled in db (images) or KEK/PK (variables). An
`RsaSigner` is a PEM key file (`RsaKeyFile`) or a key on a PKCS#11 token
(`pkcs11.TokenRsaSigner`); both give their public key as a DER
SubjectPublicKeyInfo. `make_certificate` writes a self-signed certificate for
such a key without a clock or randomness: the serial is derived from the key,
the validity is fixed (not before `not_before`, no expiry: 9999-12-31).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from asn1crypto import algos, core, pem, x509
from asn1crypto import keys as asn1_keys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from builder.core.errors import InputError, VerificationFailed
from builder.trust.pemkey import SECURE_BOOT_PASSPHRASE_ENV, load_private_key_file

PASSPHRASE_ENV = SECURE_BOOT_PASSPHRASE_ENV
NO_EXPIRY = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


class RsaSigner(Protocol):
    """Makes RSASSA-PKCS1-v1_5 SHA-256 signatures for one RSA key."""

    @property
    def name(self) -> str: ...

    def public_key_info(self) -> bytes:
        """DER SubjectPublicKeyInfo of the key."""
        ...

    def sign_sha256(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class RsaKeyFile:
    """A decrypted RSA private key from a PEM file."""

    name: str
    private: rsa.RSAPrivateKey

    def public_key_info(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign_sha256(self, message: bytes) -> bytes:
        return self.private.sign(message, padding.PKCS1v15(), hashes.SHA256())


def load_rsa_key_file(path: Path, shown: str = "secure_boot.key") -> RsaKeyFile:
    """The RSA key in PEM file `path`, decrypted with $BOOTHKEY_SECURE_BOOT_PASSPHRASE if set."""
    private = load_private_key_file(path, shown, PASSPHRASE_ENV)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise InputError(f"{shown}: {path}: not an RSA key (UEFI Secure Boot uses RSA)")
    return RsaKeyFile(path.name, private)


def read_certificate(path: Path, shown: str = "certificate") -> x509.Certificate:
    """An X.509 certificate from a PEM or DER file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: {path}: cannot read: {exc.strerror}") from exc
    if pem.detect(data):
        _kind, _headers, data = pem.unarmor(data)
    try:
        certificate = x509.Certificate.load(data)
        certificate.native  # noqa: B018 - parses every field now, not later
    except (ValueError, TypeError) as exc:
        raise InputError(f"{shown}: {path}: not an X.509 certificate") from exc
    return certificate


def check_signature(certificate: x509.Certificate, signature: bytes, message: bytes) -> None:
    """Raise `VerificationFailed` unless `signature` is the certificate key's over `message`."""
    public = serialization.load_der_public_key(certificate.public_key.dump())
    if not isinstance(public, rsa.RSAPublicKey):
        raise VerificationFailed("the certificate's key is not RSA")
    try:
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise VerificationFailed(
            "the key's signature does not verify with the certificate: they do not belong together"
        ) from exc


def make_certificate(
    signer: RsaSigner, common_name: str, not_before: datetime.datetime
) -> x509.Certificate:
    """A self-signed CA certificate for `signer`'s key (what PK, KEK and db hold)."""
    if not common_name or len(common_name) > 64:
        raise InputError("a certificate's common name has 1 to 64 characters")
    spki = asn1_keys.PublicKeyInfo.load(signer.public_key_info())
    key_digest = hashlib.sha256(spki.dump()).digest()
    name = x509.Name.build({"common_name": common_name})
    algorithm = x509.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
    key_id = hashlib.sha1(spki["public_key"].contents[1:], usedforsecurity=False).digest()
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            # Positive, at most 20 bytes, and the same for the same key.
            "serial_number": int.from_bytes(key_digest[:16], "big") >> 1,
            "signature": algorithm,
            "issuer": name,
            "validity": {
                "not_before": x509.Time({"utc_time": not_before.astimezone(datetime.UTC)}),
                "not_after": x509.Time({"general_time": NO_EXPIRY}),
            },
            "subject": name,
            "subject_public_key_info": spki,
            "extensions": [
                {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": True}},
                {
                    "extn_id": "key_usage",
                    "critical": True,
                    "extn_value": {"digital_signature", "key_cert_sign", "crl_sign"},
                },
                {"extn_id": "key_identifier", "critical": False, "extn_value": key_id},
            ],
        }
    )
    signature = signer.sign_sha256(tbs.dump())
    certificate = x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    )
    check_signature(certificate, signature, tbs.dump())
    return certificate


def sha256_algorithm() -> algos.DigestAlgorithm:
    return algos.DigestAlgorithm({"algorithm": "sha256", "parameters": core.Null()})


@contextlib.contextmanager
def open_rsa_signer(key: str, module: str | None = None, shown: str = "key") -> Iterator[RsaSigner]:
    """An RSA signer for `key`: a `pkcs11:` URI (the key stays on the token), else a PEM file."""
    if key.startswith("pkcs11:"):
        from builder.trust.pkcs11 import open_token_rsa_signer

        with open_token_rsa_signer(key, module) as signer:
            yield signer
    else:
        yield load_rsa_key_file(Path(key), shown)
