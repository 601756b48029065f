"""Authenticode signatures of PE files (Secure Boot), made in Python through an `RsaSigner`.

The signature is a PKCS#7 SignedData whose content is an SpcIndirectDataContent
holding the file's Authenticode SHA-256 (`formats.authenticode`); one signer
(issuer and serial of the certificate), signed attributes contentType,
signingTime (given: SOURCE_DATE_EPOCH, never the clock) and messageDigest, and
an RSA PKCS#1 v1.5 signature, which is deterministic. The certificate table
(`certificate_table`) wraps it in a WIN_CERTIFICATE, padded to 8 bytes, the blob
`attach_signature` appends. sbverify, osslsigncode and OVMF accept it.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from typing import Any, ClassVar

from asn1crypto import cms, core, x509

from builder.trust.pkcs7 import signer_info
from builder.trust.rsa import RsaSigner, check_signature, sha256_algorithm

SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
_WIN_CERT_REVISION_2 = 0x0200
_WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002


class _SpcString(core.Choice):  # type: ignore[misc]
    _alternatives: ClassVar[list[Any]] = [
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class _SpcLink(core.Choice):  # type: ignore[misc]
    _alternatives: ClassVar[list[Any]] = [
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", core.Any, {"implicit": 1}),
        ("file", _SpcString, {"explicit": 2}),
    ]


class _SpcPeImageData(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("flags", core.OctetBitString),
        ("file", _SpcLink, {"explicit": 0, "optional": True}),
    ]


class _SpcAttributeTypeAndOptionalValue(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("type", core.ObjectIdentifier),
        ("value", core.Any, {"optional": True}),
    ]


class _DigestInfo(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("digest_algorithm", cms.DigestAlgorithm),
        ("digest", core.OctetString),
    ]


class _SpcIndirectDataContent(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("data", _SpcAttributeTypeAndOptionalValue),
        ("message_digest", _DigestInfo),
    ]


class _IndirectContentInfo(core.Sequence):  # type: ignore[misc]
    # PKCS#7's content is the DER value itself, not CMS's OCTET STRING around it.
    _fields: ClassVar[list[Any]] = [
        ("content_type", core.ObjectIdentifier),
        ("content", _SpcIndirectDataContent, {"explicit": 0}),
    ]


class _SignedData(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("version", cms.CMSVersion),
        ("digest_algorithms", cms.DigestAlgorithms),
        ("content_info", _IndirectContentInfo),
        ("certificates", cms.CertificateSet, {"implicit": 0, "optional": True}),
        ("signer_infos", cms.SignerInfos),
    ]


class _ContentInfo(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("content_type", core.ObjectIdentifier),
        ("content", _SignedData, {"explicit": 0}),
    ]


def indirect_data(pe_sha256: bytes) -> Any:
    """The SpcIndirectDataContent (asn1crypto) naming a PE image by its Authenticode SHA-256."""
    image_data = _SpcPeImageData(
        {"flags": b"", "file": _SpcLink({"file": _SpcString({"unicode": "<<<Obsolete>>>"})})}
    )
    content = _SpcIndirectDataContent(
        {
            "data": {"type": SPC_PE_IMAGE_DATA, "value": core.Any.load(image_data.dump())},
            "message_digest": {"digest_algorithm": sha256_algorithm(), "digest": pe_sha256},
        }
    )
    content.dump()
    return content


def sign_pe_digest(
    pe_sha256: bytes,
    certificate: x509.Certificate,
    signing_time: int,
    signer: RsaSigner,
) -> bytes:
    """DER of the PKCS#7 ContentInfo (SignedData) signing the PE whose digest is `pe_sha256`."""
    content = indirect_data(pe_sha256)
    # Authenticode's messageDigest covers the content's value, without its tag and length.
    message_digest = hashlib.sha256(content.contents).digest()
    when = datetime.datetime.fromtimestamp(signing_time, datetime.UTC)
    time = cms.Time({"utc_time": when} if when.year < 2050 else {"general_time": when})
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": [SPC_INDIRECT_DATA]}),
        cms.CMSAttribute({"type": "signing_time", "values": [time]}),
        cms.CMSAttribute({"type": "message_digest", "values": [message_digest]}),
    ]
    # DER orders a SET OF by the encodings of its members.
    signed_attributes = cms.CMSAttributes(sorted(attributes, key=lambda a: bytes(a.dump())))
    to_sign = bytes(signed_attributes.dump())
    signature = signer.sign_sha256(to_sign)
    check_signature(certificate, signature, to_sign)
    info = signer_info(certificate, signature, signed_attributes)
    signed_data = _SignedData(
        {
            "version": "v1",
            "digest_algorithms": [sha256_algorithm()],
            "content_info": {"content_type": SPC_INDIRECT_DATA, "content": content},
            "certificates": [certificate],
            "signer_infos": [info],
        }
    )
    outer = _ContentInfo({"content_type": "1.2.840.113549.1.7.2", "content": signed_data})
    return bytes(outer.dump())


def certificate_table(pkcs7: bytes) -> bytes:
    """A WIN_CERTIFICATE (revision 2, PKCS#7 signed data) around `pkcs7`, padded to 8 bytes."""
    entry = struct.pack(
        "<IHH", 8 + len(pkcs7), _WIN_CERT_REVISION_2, _WIN_CERT_TYPE_PKCS_SIGNED_DATA
    )
    entry += pkcs7
    return entry + bytes(-len(entry) % 8)
