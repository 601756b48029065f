"""`build.py secureboot keygen|enroll`: the authority's Secure Boot keys and a booth's firmware.

- `keygen pkcs11:token=T;object=NAME --common-name CN --out CERT.pem [--not-before DATE]`:
  an RSA-2048 key generated on the token and its self-signed certificate (PK, KEK or db).
- `enroll --pk CERT --kek CERT --db CERT [--pk-key KEY --kek-key KEY] [--timestamp DATE]
  [--ovmf-vars TEMPLATE] --out DIR`: signature lists, signed authenticated variables and an
  OVMF variable store that trust only these certificates (see `builder.release.firmware`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
from pathlib import Path
from typing import Any

from builder.commands.options import add_pkcs11_module
from builder.core.errors import InputError
from builder.core.fsutil import write_atomic
from builder.observe.qemu import OVMF_VARS as OVMF_VARS_TEMPLATE

# builder.release.firmware (asn1crypto, virt-firmware) is imported when a secureboot
# action runs: observers who only verify and rebuild never need those packages.


def _date(text: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: not an ISO date (2030-01-01T00:00:00Z)"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "secureboot", help="Secure Boot keys on tokens and firmware that trusts only them"
    )
    actions = parser.add_subparsers(dest="secureboot_command", required=True, metavar="ACTION")

    keygen = actions.add_parser(
        "keygen", help="generate an RSA key on a PKCS#11 token and self-certify it"
    )
    keygen.add_argument("uri", help="pkcs11:token=TOKEN;object=LABEL (a new label)")
    keygen.add_argument("--common-name", required=True, help="the certificate's subject CN")
    keygen.add_argument(
        "--not-before",
        type=_date,
        default=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        help="start of validity (default 2025-01-01; no clock is read); it never expires",
    )
    keygen.add_argument("--out", type=Path, required=True, help="certificate file (PEM)")
    add_pkcs11_module(keygen)
    keygen.set_defaults(run=run_keygen)

    enroll = actions.add_parser(
        "enroll", help="PK, KEK and db for a booth's firmware (ESL, .auth, OVMF variables)"
    )
    enroll.add_argument("--pk", type=Path, required=True, help="platform key certificate")
    enroll.add_argument("--kek", type=Path, action="append", default=[], help="KEK certificate")
    enroll.add_argument(
        "--db", type=Path, action="append", default=[], help="certificate that signs UKIs"
    )
    enroll.add_argument("--pk-key", help="PK's key (pkcs11: URI or PEM) to sign PK.auth, KEK.auth")
    enroll.add_argument("--kek-key", help="KEK's key (pkcs11: URI or PEM) to sign db.auth")
    enroll.add_argument(
        "--timestamp",
        type=_date,
        help="the authenticated variables' time (default: the latest certificate notBefore)",
    )
    enroll.add_argument(
        "--ovmf-vars",
        type=Path,
        default=OVMF_VARS_TEMPLATE,
        help=f"empty OVMF variable store to enrol into (default {OVMF_VARS_TEMPLATE})",
    )
    enroll.add_argument("--no-ovmf", action="store_true", help="write no OVMF variable store")
    enroll.add_argument("--out", type=Path, required=True, help="output directory")
    add_pkcs11_module(enroll)
    enroll.set_defaults(run=run_enroll)


def run_keygen(args: argparse.Namespace) -> int:
    from builder.release.firmware import make_certificate_on_token

    if args.out.exists():
        raise InputError(f"{args.out}: exists; refusing to overwrite a certificate")
    pem = make_certificate_on_token(args.uri, args.pkcs11_module, args.common_name, args.not_before)
    write_atomic(args.out, pem)
    print(f"key on the token: {args.uri} (RSA-2048, not extractable)")
    print(f"certificate: {args.out}")
    return 0


def run_enroll(args: argparse.Namespace) -> int:
    from builder.release.firmware import read_firmware_certificates, write_firmware
    from builder.trust.rsa import open_rsa_signer

    certificates = read_firmware_certificates(args.pk, args.kek, args.db)
    if (args.pk_key is None) != (args.kek_key is None):
        raise InputError("the signed .auth variables need both --pk-key and --kek-key")
    with contextlib.ExitStack() as stack:
        pk_signer = kek_signer = None
        if args.pk_key is not None:
            pk_signer = stack.enter_context(
                open_rsa_signer(args.pk_key, args.pkcs11_module, "--pk-key")
            )
            kek_signer = stack.enter_context(
                open_rsa_signer(args.kek_key, args.pkcs11_module, "--kek-key")
            )
        written = write_firmware(
            args.out,
            certificates,
            pk_signer,
            kek_signer,
            args.timestamp,
            None if args.no_ovmf else args.ovmf_vars,
        )
    for path in written:
        print(f"wrote {path}")
    return 0
