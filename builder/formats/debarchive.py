"""Reading Debian binary packages (.deb) in Python, without dpkg-deb or tar.

A .deb is an `ar` archive: `debian-binary` ("2.0"), then `control.tar[.COMP]`
(the package's metadata), then `data.tar[.COMP]` (its files). Host tools differ
by version in what they write (modes, times, links), and such differences would
reach image bytes; the standard library reads these formats exactly, so no host
tool is run. Compressions read: none, gzip, xz (and legacy lzma), bzip2.
Python 3.11 has no zstd: a zstd-compressed member is refused.

Every problem in a .deb's bytes (not an ar archive, truncated, a member missing,
undecodable or zstd-compressed, an unsafe member name) raises `InputError`
naming the .deb file.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

from builder.core.errors import InputError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# Top-level directories that are links into /usr on a merged-/usr system.
MERGED_USR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER_SIZE = 60
_CHUNK = 1 << 20
# What the stdlib decompressors and tarfile raise for damaged bytes (gzip and bz2
# report bad data as OSError).
_DAMAGED = (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError)


def read_control_file(deb: Path) -> bytes:
    """The control file (`./control` in control.tar) exactly as the package ships it:
    the bytes `dpkg-deb --field DEB` prints."""
    with _open_member_tar(deb, "control.tar") as archive:
        for member in archive:
            if member.name.removeprefix("./") == "control" and member.isfile():
                content = archive.extractfile(member)
                if content is not None:
                    return content.read()
    raise InputError(f"{deb}: the control member has no ./control file")


def read_control(deb: Path) -> dict[str, str]:
    """The control paragraph's fields in file order (see `parse_control`)."""
    return parse_control(read_control_file(deb), str(deb))


def parse_control(raw: bytes, origin: str) -> dict[str, str]:
    """Fields of one control paragraph, in order, as `dpkg-deb --field DEB FIELD` prints
    each: a one-line value without surrounding blanks; a multi-line value's continuation
    lines joined with "\\n", keeping their leading blank. Undecodable UTF-8 is replaced
    (U+FFFD); the fields dpkg and apt read (Package, Version, Architecture, Depends...)
    are ASCII. A malformed or empty paragraph is an `InputError` prefixed with `origin`.
    """
    fields: dict[str, str] = {}
    current: str | None = None
    ended = False
    for number, line in enumerate(raw.decode("utf-8", errors="replace").split("\n"), 1):
        line = line.rstrip("\r")
        where = f"{origin}: control file line {number}"
        if not line.strip():
            ended = bool(fields)
            continue
        if ended:
            raise InputError(f"{where}: a second paragraph (a package has exactly one)")
        if line[0] in " \t":
            if current is None:
                raise InputError(f"{where}: a continuation line before any field")
            fields[current] += "\n" + line.rstrip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise InputError(f'{where}: not a "Field: value" line: {line!r}')
        if name in fields:
            raise InputError(f"{where}: field {name} appears twice")
        fields[name] = value.strip()
        current = name
    if not fields:
        raise InputError(f"{origin}: the control file is empty")
    return fields


@contextmanager
def open_data_tar(deb: Path) -> Iterator[tarfile.TarFile]:
    """The data member as a streaming `tarfile.TarFile` (mode "r|"): iterate it once, in
    order, and read a member's content (`extractfile`) before going on to the next. Damaged
    bytes raise `InputError` naming `deb`, also when they surface while the `with` body
    reads. Leaving the block normally reads the member to its end (checksums included),
    so stop early only when that cost is fine."""
    with _open_member_tar(deb, "data.tar") as archive:
        yield archive


def extract_data(
    deb: Path, dest: Path, members: Sequence[str] = (), *, merged_usr: bool = False
) -> None:
    """Unpack the data member of `deb` into `dest` (created with its parents if missing),
    as `dpkg-deb -x` does, streaming (a 400 MB kernel is never held in memory).

    Regular files get their mode (setuid, setgid and sticky bits included, as far as the
    OS allows) and mtime; directories likewise, set once everything is unpacked, so a
    read-only directory can still be filled (the "./" entry sets `dest`'s own); symlinks
    get their mtime; hard links link to the member unpacked earlier. Owners are not set
    (like `tar --no-same-owner`). An existing file, link or empty directory where a member
    goes is replaced, as tar does; an existing directory is kept.

    `members` works like tar's member arguments: "./boot" selects that path and everything
    under it; a member the package does not ship is not an error (an absolute one, or
    one with "..", is a `ValueError`: the caller's mistake).

    With `merged_usr`, a path under ./bin, ./sbin, ./lib, ./lib32, ./lib64 or ./libx32 is
    written under ./usr instead, and `members` may name either spelling. extract_data
    itself creates the top-level link (`bin -> usr/bin`) the first time it writes under
    such a directory, if absent; one that exists must already resolve to dest/usr/<dir>.

    Never writes outside `dest`: absolute member names, "..", device nodes and FIFOs are
    refused, a member whose parent directory resolves (through a symlink already in
    `dest`, absolute or not) to a place outside `dest` is refused, and the last component
    of a path is never followed (an existing symlink there is replaced, not written
    through). Refusals are `InputError`s naming `deb`; members unpacked before the
    refused one stay, so unpack into a scratch directory.
    """
    selected = [_requested_parts(member) for member in members]
    with open_data_tar(deb) as archive:
        dest.mkdir(parents=True, exist_ok=True)
        _Unpacker(deb, dest, merged_usr).unpack(archive, selected)


@dataclass(frozen=True)
class _ArMember:
    name: str
    offset: int
    size: int


class _Readable(Protocol):
    def readinto(self, buffer: WriteableBuffer, /) -> int | None: ...


class _ArMemberReader(io.RawIOBase):
    """The bytes of one ar member, read in place from the open .deb."""

    def __init__(self, deb: Path, file: io.BufferedReader, member: _ArMember) -> None:
        self._deb = deb
        self._file = file
        self._member = member
        self._remaining = member.size
        file.seek(member.offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self._remaining)
        if wanted == 0:
            return 0
        got = self._file.readinto(view[:wanted])
        if not got:  # the file shrank after its ar headers were checked
            raise InputError(f"{self._deb}: truncated inside member {self._member.name}")
        self._remaining -= got
        return got


class _NamingErrors(io.RawIOBase):
    """Passes reads through, turning a decompressor's or tarfile's complaint into an
    `InputError` that says which .deb member is damaged."""

    def __init__(self, inner: _Readable, where: str) -> None:
        self._inner = inner
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        try:
            return self._inner.readinto(buffer)
        except _DAMAGED as exc:
            raise InputError(f"{self._where} is damaged: {exc}") from exc


@contextmanager
def _open_member_tar(deb: Path, prefix: str) -> Iterator[tarfile.TarFile]:
    try:
        file = deb.open("rb")
    except OSError as exc:
        raise InputError(f"{deb}: cannot open: {exc.strerror}") from exc
    with file:
        member = _find_member(deb, _ar_members(deb, file), prefix)
        raw = io.BufferedReader(_ArMemberReader(deb, file, member), _CHUNK)
        where = f"{deb}: member {member.name}"
        stream = io.BufferedReader(_NamingErrors(_decompressed(deb, member, raw), where), _CHUNK)
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK) as archive:
                yield archive
        except tarfile.TarError as exc:
            raise InputError(f"{where} is not a readable tar archive: {exc}") from exc
        # The rest of the member (tar padding, the compressor's checksum) is read too:
        # damage there is damage in the package all the same.
        while stream.read(_CHUNK):
            pass


def _ar_members(deb: Path, file: io.BufferedReader) -> list[_ArMember]:
    """Every member's place, checked against the file's size before anything is read."""
    end = os.fstat(file.fileno()).st_size
    if file.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise InputError(f"{deb}: not a Debian package (no ar archive signature)")
    members: list[_ArMember] = []
    position = len(_AR_MAGIC)
    while position < end:
        file.seek(position)
        header = file.read(_AR_HEADER_SIZE)
        size_field = header[48:58].strip()
        if len(header) < _AR_HEADER_SIZE or header[58:60] != b"`\n" or not size_field.isdigit():
            raise InputError(
                f"{deb}: truncated or damaged ar archive (member header at byte {position})"
            )
        name = header[:16].decode("ascii", errors="replace").rstrip(" ").removesuffix("/")
        size = int(size_field)
        offset = position + _AR_HEADER_SIZE
        if offset + size > end:
            raise InputError(
                f"{deb}: truncated: member {name} needs {size} bytes, the file holds {end - offset}"
            )
        members.append(_ArMember(name, offset, size))
        position = offset + size + size % 2  # ar pads members to an even size
    return members


def _find_member(deb: Path, members: list[_ArMember], prefix: str) -> _ArMember:
    if not members or members[0].name != "debian-binary":
        raise InputError(f"{deb}: not a Debian binary package (no debian-binary member first)")
    for member in members:
        if member.name == prefix or member.name.startswith(prefix + "."):
            return member
    names = ", ".join(member.name for member in members)
    raise InputError(f"{deb}: has no {prefix} member (it holds {names})")


def _decompressed(
    deb: Path, member: _ArMember, raw: io.BufferedReader[_ArMemberReader]
) -> _Readable:
    compression = member.name.partition(".tar")[2]
    if compression == "":
        return raw
    if compression in (".xz", ".lzma"):
        return lzma.LZMAFile(raw)
    if compression == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == ".bz2":
        return bz2.BZ2File(raw)
    if compression == ".zst":
        raise InputError(
            f"{deb}: member {member.name} is zstd-compressed, which boothkey cannot read "
            "(Python 3.11 has no zstd); use a package built with xz or gzip"
        )
    raise InputError(f"{deb}: member {member.name} has an unknown compression")


def _requested_parts(member: str) -> tuple[str, ...]:
    parts = tuple(part for part in member.split("/") if part not in ("", "."))
    if member.startswith("/") or ".." in parts:
        raise ValueError(
            f"member {member!r}: give a path as the package's tar lists it, e.g. ./boot"
        )
    return parts


class _Unpacker:
    """One unpacking of a data tar into `dest`; see `extract_data` for the rules."""

    def __init__(self, deb: Path, dest: Path, merged_usr: bool) -> None:
        self._deb = deb
        self._dest = dest
        self._root = os.path.realpath(dest)
        self._merged_usr = merged_usr
        # Directories already resolved (real paths, inside dest), by member path.
        self._dirs: dict[tuple[str, ...], str] = {(): self._root}
        # Non-directories unpacked by this call, the only targets a hard link may have.
        self._written: dict[tuple[str, ...], str] = {}
        self._dir_metadata: list[tuple[str, int, float]] = []
        self._merged_links: set[str] = set()

    def unpack(self, archive: tarfile.TarFile, selected: list[tuple[str, ...]]) -> None:
        for member in archive:
            shipped = self._member_parts(member.name, member.name)
            parts = self._redirected(shipped)
            if selected and not any(
                path[: len(want)] == want for want in selected for path in (shipped, parts)
            ):
                continue
            if parts != shipped:
                self._ensure_merged_link(parts[1])
            self._unpack_member(archive, member, parts)
        for path, mode, mtime in reversed(self._dir_metadata):
            # Only a directory still there: an emptied one may have been replaced by a link.
            if stat.S_ISDIR(os.lstat(path).st_mode):
                os.chmod(path, mode)
                os.utime(path, (mtime, mtime))

    def _unpack_member(
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, parts: tuple[str, ...]
    ) -> None:
        if member.isdir():
            self._directory(member, parts)
            return
        if not parts:
            self._refuse(member.name, "the package's root must be a directory")
        path = os.path.join(self._parent(parts[:-1], member.name), parts[-1])
        if member.isreg():
            self._make_room(path, member.name)
            self._regular_file(archive, member, path)
        elif member.issym():
            self._make_room(path, member.name)
            os.symlink(member.linkname, path)
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        elif member.islnk():
            target = self._redirected(self._member_parts(member.linkname, member.name))
            source = self._written.get(target)
            if source is None or target == parts:
                self._refuse(member.name, f"hard link to {member.linkname}, not unpacked before it")
            self._make_room(path, member.name)
            os.link(source, path, follow_symlinks=False)
        else:
            self._refuse(member.name, "device nodes and FIFOs are not unpacked from packages")
        self._written[parts] = path

    def _regular_file(self, archive: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        content = archive.extractfile(member)
        if content is None:
            raise RuntimeError(f"tarfile gave no content for regular file {member.name}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with open(os.open(path, flags, 0o600), "wb") as out:
            shutil.copyfileobj(content, out, _CHUNK)
            # Written first: a write by a non-root owner clears setuid/setgid again.
            out.flush()
            os.fchmod(out.fileno(), member.mode & 0o7777)
            os.utime(out.fileno(), (member.mtime, member.mtime))

    def _directory(self, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if not parts:
            self._dir_metadata.append((self._root, member.mode & 0o7777, member.mtime))
            return
        path = os.path.join(self._parent(parts[:-1], member.name), parts[-1])
        existing = _lstat(path)
        if existing is not None and stat.S_ISLNK(existing.st_mode):
            real = os.path.realpath(path)
            if os.path.isdir(real):
                if not self._inside(real):
                    self._refuse(member.name, f"{path} is a link to {real}, outside {self._dest}")
                # A link to a directory stays (as bin -> usr/bin does); its target's mode
                # and mtime are not changed through it.
                self._dirs[parts] = real
                return
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            if existing is not None:
                self._make_room(path, member.name)
            os.mkdir(path, 0o700)  # the archived mode is set at the end
        self._dirs[parts] = path
        self._dir_metadata.append((path, member.mode & 0o7777, member.mtime))

    def _parent(self, parts: tuple[str, ...], member_name: str) -> str:
        """The real directory for `parts`, made like tar's implied directories if missing
        (mode 0777 less the umask); one reached through a link must stay inside dest."""
        known = self._dirs.get(parts)
        if known is not None:
            return known
        path = os.path.join(self._parent(parts[:-1], member_name), parts[-1])
        existing = _lstat(path)
        if existing is None:
            os.mkdir(path)
            real = path
        elif stat.S_ISDIR(existing.st_mode):
            real = path
        elif stat.S_ISLNK(existing.st_mode):
            real = os.path.realpath(path)
            if not self._inside(real) or not os.path.isdir(real):
                self._refuse(member_name, f"{path} is a link to {real}, outside {self._dest}")
        else:
            self._refuse(member_name, f"{path} is a file where the package needs a directory")
        self._dirs[parts] = real
        return real

    def _make_room(self, path: str, member_name: str) -> None:
        """Remove what is at `path` (never following it), as tar replaces old files."""
        existing = _lstat(path)
        if existing is None:
            return
        if stat.S_ISDIR(existing.st_mode):
            try:
                os.rmdir(path)
            except OSError:
                self._refuse(member_name, f"{path} is a directory that is not empty")
        else:
            os.unlink(path)
        if not stat.S_ISREG(existing.st_mode):
            # A removed link or directory may be part of a resolved parent.
            self._dirs = {(): self._root}

    def _ensure_merged_link(self, top: str) -> None:
        if top in self._merged_links:
            return
        usr_dir = self._parent(("usr", top), f"./{top}")
        path = os.path.join(self._root, top)
        existing = _lstat(path)
        if existing is None:
            os.symlink(f"usr/{top}", path)
        elif os.path.realpath(path) != usr_dir:
            raise InputError(
                f"{self._deb}: cannot unpack with merged /usr into {self._dest}: {top} there "
                f"is not a link to usr/{top}"
            )
        self._merged_links.add(top)

    def _redirected(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        if self._merged_usr and parts and parts[0] in MERGED_USR_DIRS:
            return ("usr", *parts)
        return parts

    def _member_parts(self, name: str, member_name: str) -> tuple[str, ...]:
        parts = tuple(part for part in name.split("/") if part not in ("", "."))
        if name.startswith("/"):
            self._refuse(member_name, f"absolute path {name}")
        if ".." in parts:
            self._refuse(member_name, f'path {name} contains ".."')
        return parts

    def _inside(self, real: str) -> bool:
        return os.path.commonpath([self._root, real]) == self._root

    def _refuse(self, member_name: str, reason: str) -> NoReturn:
        raise InputError(f"{self._deb}: refusing member {member_name}: {reason}")


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
