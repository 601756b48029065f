"""Shared-library closure of an ELF binary inside an extracted tree, read in pure Python.

The initrd carries dynamically linked tools (dmsetup) taken from locked
packages, not from the build host, so their libraries must be found inside the
tree the packages were extracted into. Paths are resolved as a chroot would:
absolute symlinks point into the tree, never at the host.
"""

from __future__ import annotations

import posixpath
import struct
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import BuildError

# The directories glibc's loader searches on Debian amd64 when there is no
# ld.so.cache (there is none in the initrd), after DT_RPATH/DT_RUNPATH.
DEFAULT_LIBRARY_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)
_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_INTERP = 3
_DT_NULL = 0
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_RPATH = 15
_DT_RUNPATH = 29
_MAX_SYMLINKS = 40


@dataclass(frozen=True)
class ElfDynamicInfo:
    """What the dynamic loader needs to start a binary."""

    interpreter: str | None  # PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; None if static
    needed: tuple[str, ...]  # DT_NEEDED sonames, in file order
    search_path: tuple[str, ...]  # DT_RUNPATH, else DT_RPATH, split on ':'


class _Elf:
    """A little-endian ELF64 file held in memory (the only kind boothkey handles)."""

    def __init__(self, data: bytes, shown: str) -> None:
        if data[:4] != b"\x7fELF":
            raise BuildError(f"{shown}: not an ELF file")
        if data[4] != 2 or data[5] != 1:
            raise BuildError(f"{shown}: only little-endian 64-bit ELF files are supported")
        self.data = data
        self.shown = shown
        (
            self.phoff,
            self.shoff,
        ) = struct.unpack_from("<QQ", data, 0x20)
        self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx = struct.unpack_from(
            "<HHHHH", data, 0x36
        )

    def program_headers(self) -> list[tuple[int, int, int, int, int]]:
        """(type, offset, vaddr, filesz, memsz) of every program header."""
        headers = []
        for index in range(self.phnum):
            base = self.phoff + index * self.phentsize
            p_type, _flags, offset, vaddr, _paddr, filesz, memsz = struct.unpack_from(
                "<IIQQQQQ", self.data, base
            )
            headers.append((p_type, offset, vaddr, filesz, memsz))
        return headers

    def sections(self) -> dict[str, tuple[int, int]]:
        """Section name -> (file offset, size)."""
        if self.shoff == 0 or self.shnum == 0:
            return {}
        raw = []
        for index in range(self.shnum):
            base = self.shoff + index * self.shentsize
            name, _type, _flags, _addr, offset, size = struct.unpack_from(
                "<IIQQQQ", self.data, base
            )
            raw.append((name, offset, size))
        _n, names_offset, _s = raw[self.shstrndx]
        return {self.c_string(names_offset + name): (offset, size) for name, offset, size in raw}

    def c_string(self, offset: int) -> str:
        end = self.data.index(b"\0", offset)
        return self.data[offset:end].decode("utf-8", errors="surrogateescape")

    def vaddr_to_offset(self, vaddr: int) -> int:
        for p_type, offset, start, filesz, _memsz in self.program_headers():
            if p_type == _PT_LOAD and start <= vaddr < start + filesz:
                return offset + vaddr - start
        raise BuildError(f"{self.shown}: address {vaddr:#x} is in no loaded segment")


def read_section(data: bytes, name: str, shown: str = "ELF file") -> bytes | None:
    """The bytes of section `name` of an ELF64 file (e.g. a kernel module's .modinfo)."""
    elf = _Elf(data, shown)
    found = elf.sections().get(name)
    if found is None:
        return None
    offset, size = found
    return data[offset : offset + size]


def read_dynamic_info(path: Path) -> ElfDynamicInfo:
    """Interpreter, needed libraries and search path of the ELF file at `path`."""
    elf = _Elf(path.read_bytes(), str(path))
    interpreter: str | None = None
    dynamic: tuple[int, int] | None = None
    for p_type, offset, _vaddr, filesz, _memsz in elf.program_headers():
        if p_type == _PT_INTERP:
            interpreter = elf.data[offset : offset + filesz].rstrip(b"\0").decode()
        elif p_type == _PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return ElfDynamicInfo(interpreter, (), ())
    entries: list[tuple[int, int]] = []
    offset, size = dynamic
    for base in range(offset, offset + size, 16):
        tag, value = struct.unpack_from("<qQ", elf.data, base)
        if tag == _DT_NULL:
            break
        entries.append((tag, value))
    strtab = next((value for tag, value in entries if tag == _DT_STRTAB), None)
    if strtab is None:
        raise BuildError(f"{path}: dynamic section without a string table")
    strings = elf.vaddr_to_offset(strtab)
    needed = tuple(elf.c_string(strings + value) for tag, value in entries if tag == _DT_NEEDED)
    runpath = [elf.c_string(strings + value) for tag, value in entries if tag == _DT_RUNPATH]
    rpath = [elf.c_string(strings + value) for tag, value in entries if tag == _DT_RPATH]
    chosen = runpath or rpath
    search = tuple(part for text in chosen for part in text.split(":") if part)
    return ElfDynamicInfo(interpreter, needed, search)


def resolve_in_tree(tree: Path, path: str) -> str | None:
    """Follow `path` (absolute, inside `tree`) through symlinks as a chroot would.

    Returns the tree-relative absolute path of the regular file it ends at, or
    None if it does not exist inside the tree.
    """
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = tree.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise BuildError(f"{path}: too many symbolic links inside {tree}")
            target = str(candidate.readlink())
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not candidate.exists():
            return None
        resolved.append(part)
    final = tree.joinpath(*resolved)
    return "/" + "/".join(resolved) if final.is_file() else None


def library_closure(tree: Path, binary: str) -> tuple[str, ...]:
    """Every file `binary` needs to run, as absolute paths inside `tree`, sorted.

    Includes the dynamic loader (as named by PT_INTERP) and every library in
    the DT_NEEDED closure, each under the path the loader will look it up by;
    the binary itself is not included. A static binary gives (). A library that
    cannot be found raises `BuildError` naming the binary and the soname.
    """
    found: set[str] = set()
    pending = [binary]
    seen_objects: set[str] = set()
    while pending:
        current = pending.pop()
        real = resolve_in_tree(tree, current)
        if real is None:
            raise BuildError(f"{binary}: {current} does not exist in {tree}")
        if real in seen_objects:
            continue
        seen_objects.add(real)
        info = read_dynamic_info(tree / real.lstrip("/"))
        if info.interpreter is not None and info.interpreter not in found:
            if resolve_in_tree(tree, info.interpreter) is None:
                raise BuildError(f"{binary}: interpreter {info.interpreter} not found in {tree}")
            found.add(info.interpreter)
            pending.append(info.interpreter)
        origin = posixpath.dirname(current)
        dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in info.search_path]
        for soname in info.needed:
            location = _find_library(tree, soname, (*dirs, *DEFAULT_LIBRARY_DIRS))
            if location is None:
                raise BuildError(f"{binary}: library {soname} (needed by {current}) not found")
            if location not in found:
                found.add(location)
                pending.append(location)
    return tuple(sorted(found))


def _find_library(tree: Path, soname: str, dirs: tuple[str, ...]) -> str | None:
    if "/" in soname:
        return soname if resolve_in_tree(tree, soname) is not None else None
    for directory in dirs:
        candidate = posixpath.join(directory, soname)
        if resolve_in_tree(tree, candidate) is not None:
            return candidate
    return None
