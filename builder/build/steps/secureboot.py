"""Secure Boot signing of the UKI, with a signature that can be detached and reattached.

sbsign appends an Authenticode certificate table (a WIN_CERTIFICATE holding a
PKCS#7 signature) at the 8-byte-aligned end of the PE file, points the
security data directory at it and updates the header CheckSum. Nothing else
changes, so `attach_signature(unsigned, certificate_table(signed)) == signed`:
an observer who rebuilds the unsigned UKI and takes the published table gets
the published bytes exactly. The PKCS#7 signingTime is pinned to
SOURCE_DATE_EPOCH (libfaketime) so signing the same UKI with the same key twice
gives the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

from builder.core.errors import BuildError, InputError
from builder.core.sandbox import Sandbox
from builder.core.tools import faketime_env
from builder.formats.pe import parse_pe_headers, pe_checksum_bytes, security_directory_entry

_WIN_CERT_REVISION_2 = 0x0200
_WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002
_HEAD = 64 * 1024


def certificate_table(signed_pe: bytes, shown: str = "signed UKI") -> bytes:
    """The certificate table (WIN_CERTIFICATE entries, padded) a signed PE carries."""
    _entry, address, size = security_directory_entry(signed_pe, shown)
    if size == 0:
        raise BuildError(f"{shown}: is not signed (no certificate table)")
    if address + size != len(signed_pe):
        raise BuildError(f"{shown}: the certificate table is not at the end of the file")
    return signed_pe[address : address + size]


def parse_certificate_table(table: bytes) -> bytes:
    """The PKCS#7 DER of the first WIN_CERTIFICATE; `InputError` if the blob is malformed."""
    if len(table) < 8:
        raise InputError("signature blob is too short for a WIN_CERTIFICATE")
    length, revision, cert_type = struct.unpack_from("<IHH", table)
    if revision != _WIN_CERT_REVISION_2 or cert_type != _WIN_CERT_TYPE_PKCS_SIGNED_DATA:
        raise InputError("signature blob is not a PKCS#7 WIN_CERTIFICATE (revision 2)")
    if not 8 < length <= len(table):
        raise InputError("signature blob's WIN_CERTIFICATE length is out of range")
    return table[8:length]


def attach_signature(unsigned_pe: bytes, table: bytes, shown: str = "unsigned UKI") -> bytes:
    """Append a published certificate table to an unsigned PE, as sbsign does.

    The result equals the signed PE bit for bit when `unsigned_pe` is the
    exact input sbsign signed. Raises `InputError` if the PE is already signed
    or the table is malformed.
    """
    parse_certificate_table(table)
    if len(table) % 8:
        raise InputError("signature blob length is not a multiple of 8")
    entry, _address, size = security_directory_entry(unsigned_pe, shown)
    if size != 0:
        raise InputError(f"{shown}: already carries a signature")
    data = bytearray(unsigned_pe)
    data += bytes(-len(data) % 8)
    struct.pack_into("<II", data, entry, len(data), len(table))
    data += table
    checksum_offset = parse_pe_headers(bytes(data[:_HEAD]), shown).checksum_offset
    struct.pack_into("<I", data, checksum_offset, pe_checksum_bytes(bytes(data), checksum_offset))
    return bytes(data)


def sbsign(
    tools: Sandbox, unsigned: Path, key: Path, certificate: Path, output: Path, signing_time: int
) -> None:
    """Sign `unsigned` into `output` with sbsign, the PKCS#7 signingTime frozen at `signing_time`.

    `key` must be an unencrypted PEM private key (sbsign can only prompt for a passphrase).
    """
    frozen = datetime.datetime.fromtimestamp(signing_time, datetime.UTC)
    # A bare "YYYY-mm-dd HH:MM:SS" freezes the clock; "@DATE" would only start it there
    # and let it tick, so two signatures could straddle a second and differ.
    with _staged(tools, key, certificate) as (staged_key, staged_certificate):
        tools.run(
            [
                "sbsign",
                "--key",
                staged_key,
                "--cert",
                staged_certificate,
                "--output",
                output,
                unsigned,
            ],
            env=faketime_env(frozen.strftime("%Y-%m-%d %H:%M:%S"), tools.tree),
            binds=[unsigned, staged_key.parent],
            writable=[output.parent],
        )


def sbverify(tools: Sandbox, signed: Path, certificate: Path) -> bool:
    """True when `sbverify --cert` accepts the signature."""
    with _staged(tools, certificate) as (staged,):
        try:
            tools.run(["sbverify", "--cert", staged, signed], binds=[signed, staged.parent])
        except BuildError:
            return False
    return True


@contextlib.contextmanager
def _staged(tools: Sandbox, *files: Path) -> Iterator[tuple[Path, ...]]:
    """Private copies of `files` in the sandbox's scratch directory, removed afterwards.

    A key or certificate may lie anywhere, /usr/share included, where the sandbox
    cannot bind it (its /usr is the tools tree's)."""
    tools.scratch.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="sbsign-files-", dir=tools.scratch))
    try:
        copies = []
        for index, source in enumerate(files):
            copy = directory / f"{index}{source.suffix}"
            with open(source, "rb") as reader:
                fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as writer:
                    shutil.copyfileobj(reader, writer)
            copies.append(copy)
        yield tuple(copies)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
