"""Shared-library closure of ELF binaries, checked against the host's own loader (ldd)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.build.steps.elfdeps import (
    library_closure,
    read_dynamic_info,
    read_section,
    resolve_in_tree,
)
from builder.core.errors import BuildError

HOST_BINARY = "/usr/bin/ls"  # coreutils: always there, links libselinux -> libpcre2


def ldd_sonames(binary: str) -> set[str]:
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return {
        match.group(1).rsplit("/", 1)[-1]
        for match in re.finditer(r"^\s*(\S+)(?: =>|\s+\(0x)", output, re.MULTILINE)
        if "vdso" not in match.group(1)
    }


def test_dynamic_info_of_a_host_binary() -> None:
    info = read_dynamic_info(Path(HOST_BINARY))
    assert info.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in info.needed


def test_closure_matches_ldd_on_the_host() -> None:
    closure = library_closure(Path("/"), HOST_BINARY)
    names = {path.rsplit("/", 1)[-1] for path in closure}
    assert ldd_sonames(HOST_BINARY) <= names
    assert "/lib64/ld-linux-x86-64.so.2" in closure
    assert HOST_BINARY not in closure
    assert list(closure) == sorted(closure)


def test_static_binary_needs_nothing() -> None:
    assert read_dynamic_info(Path("/sbin/ldconfig")).interpreter is None
    assert library_closure(Path("/"), "/sbin/ldconfig") == ()


def copy_into(tree: Path, host_path: str) -> None:
    target = tree / host_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(host_path).resolve(), target)


def make_tree(tree: Path, leave_out: str | None = None) -> None:
    """ls with its libraries inside `tree`, the loader reached through an absolute symlink
    (as Debian ships /lib64/ld-linux-x86-64.so.2), which must resolve inside the tree."""
    copy_into(tree, HOST_BINARY)
    for path in library_closure(Path("/"), HOST_BINARY):
        if path == "/lib64/ld-linux-x86-64.so.2" or path.endswith(leave_out or "\0"):
            continue
        copy_into(tree, path)
    (tree / "lib64").mkdir()
    (tree / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")


def test_closure_inside_a_tree_resolves_symlinks_in_the_tree(tmp_path: Path) -> None:
    make_tree(tmp_path)
    closure = library_closure(tmp_path, HOST_BINARY)
    assert "/lib64/ld-linux-x86-64.so.2" in closure
    for path in closure:
        real = resolve_in_tree(tmp_path, path)
        assert real is not None and (tmp_path / real.lstrip("/")).is_file()


def test_absolute_symlink_never_escapes_to_the_host(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/libc.so.6").symlink_to("/usr/bin/ls")  # exists on the host, not in tree
    assert resolve_in_tree(tmp_path, "/lib/libc.so.6") is None
    (tmp_path / "up").symlink_to("../../../../usr")
    assert resolve_in_tree(tmp_path, "/up/bin/ls") is None


def test_missing_library_is_named(tmp_path: Path) -> None:
    make_tree(tmp_path, leave_out="/libselinux.so.1")
    with pytest.raises(BuildError, match=r"libselinux\.so\.1"):
        library_closure(tmp_path, HOST_BINARY)


def test_read_section_returns_the_interpreter_string() -> None:
    data = Path(HOST_BINARY).read_bytes()
    assert read_section(data, ".interp") == b"/lib64/ld-linux-x86-64.so.2\0"
    assert read_section(data, ".no-such-section") is None


def test_not_an_elf_file(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(BuildError, match="not an ELF file"):
        read_dynamic_info(script)
