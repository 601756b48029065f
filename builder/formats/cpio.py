"""cpio "newc" archives written in Python, byte for byte as GNU cpio 2.13 writes them.

The initrd is a newc archive; packing it with the host's cpio would let the
host's cpio version decide image bytes. This module writes what
`cpio -o -H newc --reproducible -R 0:0` (GNU cpio 2.13) writes for the same name
list, read from the same files (tests compare the two byte for byte):

- names as listed, less any leading "./" (symlink targets too, as cpio does);
- inode numbers renumbered from 0 in order of appearance, one number shared by
  the hard links of a file; device numbers 0; owner and group 0;
- mode, link count, mtime (whole seconds) and size from `lstat`;
- a regular file with several links is held back until its last link in the
  list (or the end), and only the last one written carries the data;
- the "TRAILER!!!" entry, then NULs up to a multiple of 512 bytes.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"070701"
_TRAILER = b"TRAILER!!!"
_BLOCK_SIZE = 512
_FIELD_MAX = 0xFFFFFFFF
_CHUNK = 1 << 20


def newc_archive(root: Path, names: Sequence[str]) -> bytes:
    """The archive of `names` (paths relative to `root`, in archive order) as bytes."""
    buffer = io.BytesIO()
    write_newc_archive(root, names, buffer)
    return buffer.getvalue()


def write_newc_archive(root: Path, names: Sequence[str], out: BinaryIO) -> int:
    """Write the archive of `names` to `out`, streaming file contents; return its size.

    `names` are what one would feed `cpio -o` run in `root`: relative paths, one entry
    each, in archive order (list a directory before what it holds). A name that is empty,
    absolute, holds "..", or a newline (which cpio's list could not carry) is a
    `ValueError`; a name that does not exist raises the `OSError` of its `lstat`.
    """
    writer = _NewcWriter(root, out)
    for name in names:
        writer.add(name)
    return writer.finish()


@dataclass(frozen=True)
class _Entry:
    name: bytes  # as archived
    source: str  # the file it is read from
    inode: int
    mode: int
    nlink: int
    mtime_seconds: int
    size: int
    rdev_major: int
    rdev_minor: int


class _NewcWriter:
    def __init__(self, root: Path, out: BinaryIO) -> None:
        self._root = root
        self._out = out
        self._written = 0
        self._next_inode = 0
        self._linked_inodes: dict[tuple[int, int], int] = {}
        # Held-back hard links, most recent first: cpio's list order decides which
        # header is written when, and which one carries the data.
        self._held: list[_Entry] = []

    def add(self, name: str) -> None:
        archived = _archive_name(name)
        source = os.path.join(self._root, name)
        info = os.lstat(source)
        entry = _Entry(
            name=archived,
            source=source,
            inode=self._inode(info),
            mode=info.st_mode,
            nlink=info.st_nlink,
            mtime_seconds=info.st_mtime_ns // 1_000_000_000,
            size=info.st_size,
            rdev_major=os.major(info.st_rdev),
            rdev_minor=os.minor(info.st_rdev),
        )
        if stat.S_ISREG(info.st_mode):
            if info.st_nlink > 1:
                held_links = sum(1 for other in self._held if other.inode == entry.inode)
                if info.st_nlink != held_links + 1:
                    self._held.insert(0, entry)
                    return
                self._write_held_links_of(entry.inode)
            self._file(entry)
        elif stat.S_ISLNK(info.st_mode):
            target = _strip_leading_dots(os.readlink(os.fsencode(source)))
            self._header(entry, len(target))
            self._write(target)
            self._pad(4)
        elif stat.S_ISDIR(info.st_mode) or stat.S_IFMT(info.st_mode) in (
            stat.S_IFCHR,
            stat.S_IFBLK,
            stat.S_IFIFO,
            stat.S_IFSOCK,
        ):
            self._header(entry, 0)
        else:
            raise ValueError(f"{source}: unknown file type {stat.S_IFMT(info.st_mode):o}")

    def finish(self) -> int:
        # Links whose other names were not listed: the earliest held one gets the data.
        while self._held:
            first = self._held.pop(0)
            if any(other.inode == first.inode for other in self._held):
                self._header(first, 0)
            else:
                self._file(first)
        trailer = _Entry(_TRAILER, "", 0, 0, 1, 0, 0, 0, 0)
        self._header(trailer, 0)
        self._pad(_BLOCK_SIZE)
        return self._written

    def _inode(self, info: os.stat_result) -> int:
        # --reproducible: numbers in order of appearance; linked names share theirs.
        if info.st_nlink > 1:
            key = (info.st_dev, info.st_ino)
            if key not in self._linked_inodes:
                self._linked_inodes[key] = self._take_inode()
            return self._linked_inodes[key]
        return self._take_inode()

    def _take_inode(self) -> int:
        number = self._next_inode
        self._next_inode += 1
        return number

    def _write_held_links_of(self, inode: int) -> None:
        for held in [other for other in self._held if other.inode == inode]:
            self._header(held, 0)
        self._held = [other for other in self._held if other.inode != inode]

    def _file(self, entry: _Entry) -> None:
        self._header(entry, entry.size)
        remaining = entry.size
        with open(entry.source, "rb") as source:
            while remaining:
                chunk = source.read(min(remaining, _CHUNK))
                if not chunk:
                    raise RuntimeError(f"{entry.source} shrank while it was being archived")
                self._write(chunk)
                remaining -= len(chunk)
        self._pad(4)

    def _header(self, entry: _Entry, size: int) -> None:
        # cpio truncates the first six fields to 32 bits and refuses oversized others.
        truncated = (entry.inode, entry.mode, 0, 0, entry.nlink, entry.mtime_seconds)
        checked = (size, 0, 0, entry.rdev_major, entry.rdev_minor, len(entry.name) + 1)
        for value in checked:
            if value > _FIELD_MAX:
                raise ValueError(f"{entry.source}: {value} does not fit a newc header field")
        fields = [value & _FIELD_MAX for value in truncated] + [*checked, 0]
        self._write(_MAGIC + b"".join(b"%08X" % value for value in fields))
        self._write(entry.name + b"\0")
        self._pad(4)

    def _pad(self, multiple: int) -> None:
        self._write(b"\0" * (-self._written % multiple))

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._written += len(data)


def _archive_name(name: str) -> bytes:
    raw = os.fsencode(name)
    if not raw or b"\n" in raw or raw.startswith(b"/") or b".." in raw.split(b"/"):
        raise ValueError(f"cpio name {name!r}: give a relative path inside the root, no newline")
    return _strip_leading_dots(raw)


def _strip_leading_dots(name: bytes) -> bytes:
    """Drop leading "./" (and the slashes after it) as cpio does; "./" alone stays."""
    if name == b"./":
        return name
    while name.startswith(b"./"):
        name = name[2:].lstrip(b"/")
    return name
