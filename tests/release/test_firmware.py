"""`secureboot keygen` and `secureboot enroll`: keys made on a SoftHSM2 token, signature
lists, signed authenticated variables checked with openssl, and an OVMF variable store
read back with virt-firmware; all of it deterministic."""

from __future__ import annotations

import datetime
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from asn1crypto import cms
from token_factory import (
    SecureBootAuthority,
    SoftToken,
    make_secure_boot_authority,
    make_soft_token,
    needs_softhsm,
)

from builder.cli import main
from builder.release.firmware import (
    AUTHENTICATED_ATTRIBUTES,
    EFI_GLOBAL_VARIABLE,
    EFI_IMAGE_SECURITY_DATABASE,
    OVMF_VARS_TEMPLATE,
    owner_guid,
)
from builder.trust.rsa import read_certificate

pytestmark = needs_softhsm


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SecureBootAuthority:
    token = make_soft_token(tmp_path / "hsm", monkeypatch)
    return make_secure_boot_authority(tmp_path, token)


def _enroll(authority: SecureBootAuthority, out: Path, *extra: str) -> int:
    certificates = authority.certificates
    return main(
        [
            "secureboot",
            "enroll",
            "--pk",
            str(certificates["pk"]),
            "--kek",
            str(certificates["kek"]),
            "--db",
            str(certificates["db"]),
            "--pk-key",
            authority.uri("pk"),
            "--kek-key",
            authority.uri("kek"),
            "--out",
            str(out),
            *extra,
        ]
    )


def _openssl_verify(auth: Path, name: str, vendor: uuid.UUID, signer_certificate: Path) -> bool:
    """openssl's own check of an EFI_VARIABLE_AUTHENTICATION_2 signature."""
    blob = auth.read_bytes()
    length, revision, kind = struct.unpack_from("<IHH", blob, 16)
    assert (revision, kind) == (0x0200, 0x0EF1)
    assert uuid.UUID(bytes_le=blob[24:40]) == uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
    signed_data = cms.SignedData.load(blob[40 : 16 + length])
    data = blob[16 + length :]
    message = (
        name.encode("utf-16-le")
        + vendor.bytes_le
        + struct.pack("<I", AUTHENTICATED_ATTRIBUTES)
        + blob[:16]
        + data
    )
    work = auth.parent / f".{name}-check"
    work.mkdir()
    (work / "signature.der").write_bytes(
        cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    )
    (work / "message").write_bytes(message)
    signature, content = str(work / "signature.der"), str(work / "message")
    done = subprocess.run(
        [
            *("openssl", "cms", "-verify", "-inform", "DER", "-in", signature, "-binary"),
            *("-content", content, "-CAfile", str(signer_certificate), "-purpose", "any"),
            *("-no_check_time", "-out", "/dev/null"),
        ],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_enrol_writes_lists_signed_variables_and_ovmf_vars(
    tmp_path: Path, authority: SecureBootAuthority
) -> None:
    out = tmp_path / "firmware"
    assert _enroll(authority, out) == 0
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [
        "KEK.auth",
        "KEK.esl",
        "OVMF_VARS.fd",
        "PK.auth",
        "PK.esl",
        "db.auth",
        "db.esl",
    ]
    certificates = {role: read_certificate(path) for role, path in authority.certificates.items()}
    owner = owner_guid(certificates["pk"])
    # One X.509 signature list, owned by the GUID derived from the PK certificate.
    esl = (out / "db.esl").read_bytes()
    assert uuid.UUID(bytes_le=esl[:16]) == uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
    assert uuid.UUID(bytes_le=esl[28:44]) == owner
    assert esl[44:] == certificates["db"].dump()
    # PK and KEK are signed by the PK key, db by the KEK key; not the other way round.
    pk, kek = authority.certificates["pk"], authority.certificates["kek"]
    assert _openssl_verify(out / "PK.auth", "PK", EFI_GLOBAL_VARIABLE, pk)
    assert _openssl_verify(out / "KEK.auth", "KEK", EFI_GLOBAL_VARIABLE, pk)
    assert _openssl_verify(out / "db.auth", "db", EFI_IMAGE_SECURITY_DATABASE, kek)
    (out / ".db-check").rename(out / ".db-first")
    assert not _openssl_verify(out / "db.auth", "db", EFI_IMAGE_SECURITY_DATABASE, pk)
    # The timestamp is the latest notBefore, not the clock.
    assert (out / "db.auth").read_bytes()[:8] == struct.pack("<HBBBBB", 2025, 6, 1, 0, 0, 0) + b"\0"

    # virt-firmware reads the OVMF store back: the three lists, Secure Boot on.
    from virt.firmware.varstore.edk2 import Edk2VarStore

    variables = Edk2VarStore(str(out / "OVMF_VARS.fd")).get_varlist()
    assert variables["PK"].data == (out / "PK.esl").read_bytes()
    assert variables["KEK"].data == (out / "KEK.esl").read_bytes()
    assert variables["db"].data == esl
    assert variables["SecureBootEnable"].data == b"\x01"
    assert variables["db"].time == datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)

    # The same inputs give the same bytes.
    again = tmp_path / "again"
    assert _enroll(authority, again) == 0
    for name in names:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    # A given timestamp moves only the authenticated variables' time.
    later = tmp_path / "later"
    assert _enroll(authority, later, "--timestamp", "2031-02-03T04:05:06Z", "--no-ovmf") == 0
    assert (later / "db.auth").read_bytes()[:7] == struct.pack("<HBBBBB", 2031, 2, 3, 4, 5, 6)
    assert (later / "db.esl").read_bytes() == esl
    assert not (later / "OVMF_VARS.fd").exists()


def test_enrol_and_keygen_refuse_bad_input(
    tmp_path: Path, authority: SecureBootAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    certificates = authority.certificates
    base = ["secureboot", "enroll", "--pk", str(certificates["pk"])]
    assert main([*base, "--kek", str(certificates["kek"]), "--out", str(tmp_path / "x")]) == 2
    assert "at least one --kek and one --db" in capsys.readouterr().err
    argv = [*base, "--kek", str(certificates["kek"]), "--db", str(certificates["db"])]
    assert main([*argv, "--pk-key", authority.uri("pk"), "--out", str(tmp_path / "y")]) == 2
    assert "need both --pk-key and --kek-key" in capsys.readouterr().err
    # A KEK key that does not belong to the KEK certificate signs nothing.
    wrong = [*argv, "--pk-key", authority.uri("pk"), "--kek-key", authority.uri("db")]
    assert main([*wrong, "--out", str(tmp_path / "z")]) == 3
    assert "do not belong together" in capsys.readouterr().err
    assert main([*argv, "--ovmf-vars", str(OVMF_VARS_TEMPLATE.with_name("OVMF_VARS_4M.snakeoil.fd")),
                 "--out", str(tmp_path / "w")]) == 2  # fmt: skip
    assert "already enrolls PK" in capsys.readouterr().err
    keygen = ["secureboot", "keygen", authority.uri("pk"), "--common-name", "again"]
    assert main([*keygen, "--out", str(tmp_path / "again.pem")]) == 2
    assert "already holds an object labelled 'sb-pk'" in capsys.readouterr().err


def test_token_keys_stay_on_the_token(tmp_path: Path, authority: SecureBootAuthority) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    token: SoftToken = authority.token
    library = pkcs11.lib(str(token.module))
    try:
        with library.get_token(token_label=token.label).open(user_pin=token.pin) as session:
            for role in ("pk", "kek", "db"):
                key = session.get_key(ObjectClass.PRIVATE_KEY, label=f"sb-{role}")
                assert key[Attribute.EXTRACTABLE] is False
                assert key[Attribute.SENSITIVE] is True
    finally:
        library.finalize()
    certificate = read_certificate(authority.certificates["pk"])
    assert certificate.self_signed == "maybe"  # asn1crypto: issuer == subject, same key id
    assert certificate.ca is True
