"""The Authenticode digest of a PE file: what a Secure Boot signature of the UKI covers.

As the PE/COFF specification ("Calculating the PE Image Hash") and UEFI
firmware compute it: the headers up to SizeOfHeaders without the CheckSum field
and the security data directory entry, then each section's raw data in file
order, then whatever follows the last section, up to where the certificate
table starts. `unsigned_sha256` hashes an unsigned PE as it will be once
`attach_signature` has appended a table: padded with zeros to 8 bytes.
"""

from __future__ import annotations

import hashlib

from builder.core.errors import InputError
from builder.formats.pe import parse_pe_headers, security_directory_entry

_HEAD = 64 * 1024


def padded_for_signature(unsigned_pe: bytes) -> bytes:
    """The PE with the zero padding that puts a certificate table on an 8-byte boundary."""
    return unsigned_pe + bytes(-len(unsigned_pe) % 8)


def unsigned_sha256(unsigned_pe: bytes, shown: str = "unsigned UKI") -> bytes:
    """The Authenticode SHA-256 of `unsigned_pe` once a signature is attached to it."""
    entry, _address, size = security_directory_entry(unsigned_pe, shown)
    if size != 0:
        raise InputError(f"{shown}: already carries a signature")
    data = padded_for_signature(unsigned_pe)
    headers = parse_pe_headers(data[:_HEAD], shown)
    checksum = headers.checksum_offset
    end_of_headers = headers.size_of_headers
    if not checksum + 4 <= entry and entry + 8 <= end_of_headers <= len(data):
        raise InputError(f"{shown}: PE header fields lie outside SizeOfHeaders")
    digest = hashlib.sha256()
    digest.update(data[:checksum])
    digest.update(data[checksum + 4 : entry])
    digest.update(data[entry + 8 : end_of_headers])
    hashed = end_of_headers
    for section in sorted(headers.sections, key=lambda s: s.raw_offset):
        if section.raw_size == 0:
            continue
        if section.raw_offset + section.raw_size > len(data):
            raise InputError(f"{shown}: section {section.name} runs past the end of the file")
        digest.update(data[section.raw_offset : section.raw_offset + section.raw_size])
        hashed += section.raw_size
    if hashed < len(data):
        digest.update(data[hashed:])
    return digest.digest()
