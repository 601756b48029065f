"""Detached PKCS#7 SignedData, as UEFI authenticated variables carry it.

`sign_detached` signs a message with an `RsaSigner` (SHA-256, RSA PKCS#1 v1.5,
no signed attributes, so no time: the same message gives the same bytes) and
returns the DER SignedData (not wrapped in a ContentInfo), the form
EFI_VARIABLE_AUTHENTICATION_2's CertData holds and efitools writes.
"""

from __future__ import annotations

from asn1crypto import cms, core, x509

from builder.trust.rsa import RsaSigner, check_signature, sha256_algorithm


def signer_info(
    certificate: x509.Certificate,
    signature: bytes,
    signed_attributes: cms.CMSAttributes | None = None,
) -> cms.SignerInfo:
    """The SignerInfo of an RSA PKCS#1 v1.5 SHA-256 `signature` by `certificate`'s key
    (over `signed_attributes` when given, else over the content itself)."""
    fields: dict[str, object] = {
        "version": "v1",
        "sid": cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": certificate.issuer,
                    "serial_number": certificate.serial_number,
                }
            }
        ),
        "digest_algorithm": sha256_algorithm(),
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()},
        "signature": signature,
    }
    if signed_attributes is not None:
        fields["signed_attrs"] = signed_attributes
    return cms.SignerInfo(fields)


def sign_detached(message: bytes, certificate: x509.Certificate, signer: RsaSigner) -> bytes:
    signature = signer.sign_sha256(message)
    check_signature(certificate, signature, message)
    info = signer_info(certificate, signature)
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [sha256_algorithm()],
            "encap_content_info": {"content_type": "data"},
            "certificates": [certificate],
            "signer_infos": [info],
        }
    )
    return bytes(signed_data.dump())
