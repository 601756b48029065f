"""Secure Boot for a booth's firmware: trust only the election authority's keys.

UEFI Secure Boot runs an image only if a certificate in the `db` variable
signed it; `KEK` holds who may change db, `PK` who may change KEK and PK.
`write_firmware` writes, for certificates the authority made on its tokens
(`make_certificate_on_token`):

- `PK.esl`, `KEK.esl`, `db.esl`: EFI signature lists (virt-firmware's), one
  X.509 entry per certificate, owned by a GUID derived from the PK certificate;
- `PK.auth`, `KEK.auth`, `db.auth`: the same as time-based authenticated
  variables (EFI_VARIABLE_AUTHENTICATION_2), PK and KEK signed by the PK key,
  db by the KEK key, what a firmware setup screen or `efi-updatevar` takes;
  given only with those keys;
- with an OVMF variable-store template, `OVMF_VARS.fd`: the template with PK,
  KEK and db enrolled and Secure Boot on (virt-firmware), for QEMU.

Nothing comes from a clock or a random source: the owner GUID is derived from
the PK certificate, the variables' timestamp is given or else the latest
notBefore of the certificates, and the RSA signatures are deterministic.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import struct
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509

from builder.core.canonical import derive_uuid
from builder.core.errors import InputError
from builder.core.fsutil import write_atomic
from builder.trust.pkcs7 import sign_detached
from builder.trust.rsa import RsaSigner, make_certificate, read_certificate

EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
EFI_CERT_TYPE_PKCS7 = uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
# NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS
AUTHENTICATED_ATTRIBUTES = 0x27
_WIN_CERT_TYPE_EFI_GUID = 0x0EF1
OVMF_VARS_TEMPLATE = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


@dataclass(frozen=True)
class FirmwareCertificates:
    pk: x509.Certificate
    kek: tuple[x509.Certificate, ...]
    db: tuple[x509.Certificate, ...]


def read_firmware_certificates(
    pk: Path, kek: Sequence[Path], db: Sequence[Path]
) -> FirmwareCertificates:
    if not kek or not db:
        raise InputError("give at least one --kek and one --db certificate")
    return FirmwareCertificates(
        read_certificate(pk, "--pk"),
        tuple(read_certificate(path, "--kek") for path in kek),
        tuple(read_certificate(path, "--db") for path in db),
    )


def owner_guid(pk: x509.Certificate) -> uuid.UUID:
    """The signature owner of every entry: derived from the PK certificate."""
    return uuid.UUID(derive_uuid("secure-boot-owner", hashlib.sha256(pk.dump()).hexdigest()))


def signature_list(certificates: Sequence[x509.Certificate], owner: uuid.UUID) -> bytes:
    """EFI signature lists (EFI_CERT_X509_GUID), one per certificate, in the given order."""
    from virt.firmware.efi import siglist

    database = siglist.EfiSigDB()
    for certificate in certificates:
        database.add_cert_data(owner, certificate.dump())
    return bytes(database)


def efi_time(when: datetime.datetime) -> bytes:
    """EFI_TIME of `when` in UTC (no nanoseconds, time zone 0, no daylight flag)."""
    when = when.astimezone(datetime.UTC)
    return struct.pack(
        "<HBBBBBxLhBx",
        when.year,
        when.month,
        when.day,
        when.hour,
        when.minute,
        when.second,
        0,
        0,
        0,
    )


def authenticated_variable(
    name: str,
    vendor: uuid.UUID,
    data: bytes,
    timestamp: datetime.datetime,
    certificate: x509.Certificate,
    signer: RsaSigner,
) -> bytes:
    """An EFI_VARIABLE_AUTHENTICATION_2 followed by `data`: what SetVariable takes for a
    time-based authenticated write, signed by `signer` (whose certificate it carries)."""
    time = efi_time(timestamp)
    signed = (
        name.encode("utf-16-le")
        + vendor.bytes_le
        + struct.pack("<I", AUTHENTICATED_ATTRIBUTES)
        + time
        + data
    )
    pkcs7 = sign_detached(signed, certificate, signer)
    header = struct.pack("<IHH", 24 + len(pkcs7), 0x0200, _WIN_CERT_TYPE_EFI_GUID)
    return time + header + EFI_CERT_TYPE_PKCS7.bytes_le + pkcs7 + data


def default_timestamp(certificates: FirmwareCertificates) -> datetime.datetime:
    """The latest notBefore among the certificates: later than any earlier enrolment of
    older keys, and never the clock."""
    everything = (certificates.pk, *certificates.kek, *certificates.db)
    starts: list[datetime.datetime] = [
        c["tbs_certificate"]["validity"]["not_before"].native for c in everything
    ]
    return max(starts)


def write_firmware(
    out: Path,
    certificates: FirmwareCertificates,
    pk_signer: RsaSigner | None = None,
    kek_signer: RsaSigner | None = None,
    timestamp: datetime.datetime | None = None,
    ovmf_template: Path | None = None,
) -> list[Path]:
    """Write the signature lists, the signed variables (with both signers) and the OVMF
    variable store (with a template) into `out`; return the files written."""
    if (pk_signer is None) != (kek_signer is None):
        raise InputError("the signed .auth variables need both --pk-key and --kek-key")
    when = timestamp or default_timestamp(certificates)
    owner = owner_guid(certificates.pk)
    lists = {
        "PK": (EFI_GLOBAL_VARIABLE, signature_list([certificates.pk], owner)),
        "KEK": (EFI_GLOBAL_VARIABLE, signature_list(certificates.kek, owner)),
        "db": (EFI_IMAGE_SECURITY_DATABASE, signature_list(certificates.db, owner)),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_vendor, data) in lists.items():
        write_atomic(out / f"{name}.esl", data)
        written.append(out / f"{name}.esl")
    if pk_signer is not None and kek_signer is not None:
        signers = {
            "PK": (pk_signer, certificates.pk),
            "KEK": (pk_signer, certificates.pk),
            "db": (kek_signer, certificates.kek[0]),
        }
        for name, (vendor, data) in lists.items():
            signer, certificate = signers[name]
            blob = authenticated_variable(name, vendor, data, when, certificate, signer)
            write_atomic(out / f"{name}.auth", blob)
            written.append(out / f"{name}.auth")
    if ovmf_template is not None:
        written.append(_write_ovmf_vars(out / "OVMF_VARS.fd", ovmf_template, lists, when))
    return written


def _write_ovmf_vars(
    target: Path,
    template: Path,
    lists: dict[str, tuple[uuid.UUID, bytes]],
    when: datetime.datetime,
) -> Path:
    from virt.firmware.efi import efivar
    from virt.firmware.varstore.edk2 import Edk2VarStore

    if not template.is_file():
        raise InputError(f"{template}: no OVMF variable store (install Debian's ovmf)")
    store = Edk2VarStore(str(template))
    variables = store.get_varlist()
    for name in ("PK", "KEK", "db"):
        if name in variables:
            raise InputError(f"{template}: already enrolls {name}; start from an empty store")
    for name, (vendor, data) in lists.items():
        variable = efivar.EfiVar(name, guid=str(vendor), attr=AUTHENTICATED_ATTRIBUTES, data=data)
        variable.time = when.astimezone(datetime.UTC).replace(microsecond=0)
        variables[name] = variable
    variables.enable_secureboot()
    descriptor, temporary = tempfile.mkstemp(prefix=".OVMF_VARS-", dir=target.parent)
    os.close(descriptor)
    try:
        store.write_varstore(temporary, variables)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def make_certificate_on_token(
    uri: str, module: str | None, common_name: str, not_before: datetime.datetime
) -> bytes:
    """Generate an RSA-2048 key on the token and return its self-signed certificate (PEM)."""
    from builder.trust.pkcs11 import generate_token_rsa_key

    with generate_token_rsa_key(uri, module) as signer:
        certificate = make_certificate(signer, common_name, not_before)
    return bytes(pem.armor("CERTIFICATE", certificate.dump()))
