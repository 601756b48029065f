"""Short fingerprints a person can compare by eye.

Software fingerprint: from the dm-verity root hash (64 hex digits) that the
initrd set up and the kernel enforces. Election-data fingerprint: from the
sha256 of the signed payload bytes. Short form: the first 10 bytes of the
digest in RFC 4648 base32 (A-Z, 2-7: no 0/O or 1/I to confuse), as four
groups of four, e.g. ``MFRG-GZDF-MZTW-Q2LK``. Anyone can recompute it with
``printf %s HEX | xxd -r -p | head -c 10 | base32``.
"""

from __future__ import annotations

import base64
import hashlib
import re

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def short_form(digest: bytes) -> str:
    """Four dash-separated groups of four base32 characters from the first 10 bytes."""
    if len(digest) < 10:
        raise ValueError("a digest of at least 10 bytes is needed")
    text = base64.b32encode(digest[:10]).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def software_fingerprint(root_hash_hex: str) -> str:
    """Short fingerprint of the software: the verity root hash, shortened."""
    root = root_hash_hex.strip().lower()
    if not _HEX64.match(root):
        raise ValueError(f"not a sha256 root hash: {root_hash_hex!r}")
    return short_form(bytes.fromhex(root))


def election_digest(payload: bytes) -> str:
    """Full sha256 hex of the signed election payload bytes."""
    return hashlib.sha256(payload).hexdigest()


def election_fingerprint(payload: bytes) -> str:
    """Short fingerprint of the election data: sha256 of the signed payload, shortened."""
    return short_form(hashlib.sha256(payload).digest())


def root_hash_from_cmdline(cmdline: str) -> str | None:
    """The value of ``boothkey.roothash=`` on a kernel command line, if present and valid,
    and if no ``boothkey.*`` parameter appears twice (the build writes each once)."""
    parameters = _boothkey_parameters(cmdline)
    found = None if parameters is None else parameters.get("boothkey.roothash")
    if found is None or not _HEX64.match(found.lower()):
        return None
    return found.lower()


def _boothkey_parameters(cmdline: str) -> dict[str, str] | None:
    """The ``boothkey.*`` parameters, or None if one is repeated: then words were added
    to what the build wrote, and the booth names no fingerprint (the initrd stops too).
    Words are split as the initrd's shell splits them, at spaces, tabs and newlines."""
    found: dict[str, str] = {}
    for word in re.split(r"[ \t\n]+", cmdline):
        if word.startswith("boothkey."):
            key, _, value = word.partition("=")
            if key in found:
                return None
            found[key] = value
    return found
