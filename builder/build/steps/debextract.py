"""Unpacking locked .deb files (never installing them) for the boot steps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from builder.formats.debarchive import extract_data


def extract_deb(deb: Path, dest: Path, members: Sequence[str] = ()) -> None:
    """Unpack the data member of `deb` into `dest` (created if missing), as dpkg-deb -x does.

    With `members` (paths as the package's tar lists them, e.g. "./boot"), only those
    files and directories are unpacked: the kernel package is 400 MB unpacked, its
    vmlinuz 8 MB. A member the package does not ship is not an error: callers check for
    the files they need and name the package if one is missing. Unpacked in Python
    (`debarchive.extract_data`), so no host dpkg-deb or tar decides the files' bytes or
    modes; a damaged or unsafe package raises `InputError`.
    """
    extract_data(deb, dest, members)
