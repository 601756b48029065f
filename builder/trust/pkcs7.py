"""Detached PKCS#7 SignedData, as UEFI authenticated variables carry it.

`sign_detached` signs a message with an `RsaSigner` (SHA-256, RSA PKCS#1 v1.5,
no signed attributes, so no time: the same message gives the same bytes) and
returns the DER SignedData (not wrapped in a ContentInfo), the form
EFI_VARIABLE_AUTHENTICATION_2's CertData holds and efitools writes.
"""

from __future__ import annotations

from asn1crypto import cms, core, x509

from builder.trust.rsa import RsaSigner, check_signature, sha256_algorithm


def sign_detached(message: bytes, certificate: x509.Certificate, signer: RsaSigner) -> bytes:
    signature = signer.sign_sha256(message)
    check_signature(certificate, signature, message)
    signer_info = cms.SignerInfo(
        {
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
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [sha256_algorithm()],
            "encap_content_info": {"content_type": "data"},
            "certificates": [certificate],
            "signer_infos": [signer_info],
        }
    )
    return bytes(signed_data.dump())
