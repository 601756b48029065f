"""Reading .debs in Python: control fields, unpacking like dpkg-deb -x, and refusals."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from archive_factory import FIXED_EPOCH, make_deb

from builder.build.steps.debextract import extract_deb
from builder.core.errors import InputError
from builder.core.paths import deb_cache_dir
from builder.formats.debarchive import (
    extract_data,
    open_data_tar,
    parse_control,
    read_control,
    read_control_file,
)

CONTROL = b"Package: crafted\nVersion: 1.0-1\nArchitecture: amd64\nDescription: crafted\n"


@dataclass(frozen=True)
class Entry:
    """One member of a hand-made data tar."""

    name: str
    kind: bytes = tarfile.REGTYPE
    content: bytes = b""
    mode: int = 0o644
    link: str = ""


def file(name: str, content: bytes = b"", mode: int = 0o644) -> Entry:
    return Entry(name, tarfile.REGTYPE, content, mode)


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.SYMTYPE, mode=0o777, link=target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, link=target)


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.kind
            info.mode = entry.mode
            info.mtime = FIXED_EPOCH
            info.uname = info.gname = "root"
            info.linkname = entry.link
            info.size = len(entry.content) if entry.kind == tarfile.REGTYPE else 0
            if entry.kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3
            archive.addfile(info, io.BytesIO(entry.content) if info.size else None)
    return buffer.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "xz":
        return lzma.compress(data)
    if compression == "gz":
        return gzip.compress(data)
    if compression == "bz2":
        return bz2.compress(data)
    return data  # "" and "zst": the name alone matters for zst


def ar_archive(members: Iterable[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def crafted_deb(
    path: Path, entries: Iterable[Entry], compression: str = "xz", *, cut_at: int | None = None
) -> Path:
    """A .deb put together by hand, so tests can ship what dpkg-deb --build refuses;
    `cut_at` truncates the data tar (before compression) at that byte."""
    suffix = f".{compression}" if compression else ""
    data = compress(tar_bytes(entries)[:cut_at], compression)
    return deb_with_data(path, f"data.tar{suffix}", data)


def deb_with_data(path: Path, member: str, data: bytes) -> Path:
    control = tar_bytes([directory("./"), file("./control", CONTROL)])
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", gzip.compress(control)),
        (member, data),
    ]
    path.write_bytes(ar_archive(members))
    return path


SAMPLE = [
    directory("./"),
    directory("./boot"),
    file("./boot/vmlinuz-6.1", b"kernel" * 1000),
    directory("./usr"),
    directory("./usr/bin"),
    file("./usr/bin/tool", b"#!/bin/sh\n", 0o755),
    file("./usr/bin/su", b"setuid", 0o4755),
    file("./usr/bin/wall", b"setgid", 0o2755),
    file("./usr/bin/empty", b""),
    file("./usr/bin/readonly", b"r", 0o444),
    hardlink("./usr/bin/tool-again", "./usr/bin/tool"),
    symlink("./usr/bin/relative", "tool"),
    symlink("./usr/bin/absolute", "/usr/bin/tool"),
    symlink("./usr/bin/dangling", "../nowhere"),
    directory("./tmp", 0o1777),
    directory("./etc", 0o750),
    file("./etc/conf", b"a=1\n", 0o600),
]


Snapshot = dict[str, tuple[str, float | None, str]]


def snapshot(root: Path) -> Snapshot:
    """Mode, mtime and content (digest and first name of its inode, or link target) of
    everything under root. Owners are left out: dpkg-deb -x run as root sets them,
    extract_data never does."""
    result: Snapshot = {}
    first_name: dict[int, str] = {}
    for current, dirs, names in os.walk(root):
        dirs.sort()
        for name in ["", *sorted(names)]:
            path = Path(current, name)
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            detail = ""
            if stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                detail = f"{digest} {first_name.setdefault(info.st_ino, relative)}"
            elif stat.S_ISLNK(info.st_mode):
                detail = os.readlink(path)
            result[relative] = (stat.filemode(info.st_mode), int(info.st_mtime), detail)
    return result


def assert_same_tree(ours: Path, theirs: Path, since: float) -> None:
    mine, reference = snapshot(ours), snapshot(theirs)
    for name, (mode, mtime, detail) in list(reference.items()):
        # GNU tar makes symlinks and hard links last (its "delayed links"), after setting
        # their directory's mtime, which so becomes the time of the run; ours keep the
        # archived time.
        if mode.startswith("d") and mtime is not None and mtime >= since and name in mine:
            reference[name] = (mode, None, detail)
            mine[name] = (mine[name][0], None, mine[name][2])
    assert mine == reference


def dpkg_extract(deb: Path, dest: Path) -> float:
    """Unpack with the host's dpkg-deb -x; return a time just before it ran."""
    started = time.time() - 1
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return started


def test_control_fields_of_a_built_deb(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "alpha", "1:2.0-1", depends="libc6 (>= 2.36), beta | gamma")

    fields = read_control(deb.path)

    assert fields == dict(deb.control)
    assert list(fields) == list(deb.control)
    printed = subprocess.run(
        ["dpkg-deb", "--field", str(deb.path)], capture_output=True, check=True
    )
    assert read_control_file(deb.path) == printed.stdout


def test_multi_line_fields_read_as_dpkg_deb_prints_them() -> None:
    raw = b"Package: a\nDescription: short\n long line one\n .\n two  \nDepends:  b \n"

    fields = parse_control(raw, "a.deb")

    assert fields == {
        "Package": "a",
        "Description": "short\n long line one\n .\n two",
        "Depends": "b",
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"Package: a\nPackage: b\n", "appears twice"),
        (b" continued\nPackage: a\n", "continuation line before any field"),
        (b"Package: a\n\nPackage: b\n", "second paragraph"),
        (b"Package a\n", "not a"),
        (b"\n\n", "empty"),
    ],
)
def test_malformed_control_is_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(InputError, match=f"a.deb.*{problem}"):
        parse_control(raw, "a.deb")


@pytest.mark.parametrize("compression", ["xz", "gz", "bz2", ""])
def test_unpacks_like_dpkg_deb(tmp_path: Path, compression: str) -> None:
    deb = crafted_deb(tmp_path / "crafted.deb", SAMPLE, compression)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"

    extract_data(deb, ours)
    since = dpkg_extract(deb, theirs)

    assert_same_tree(ours, theirs, since)
    tool = (ours / "usr/bin/tool").stat()
    assert tool.st_nlink == 2 and tool.st_ino == (ours / "usr/bin/tool-again").stat().st_ino
    assert stat.S_IMODE((ours / "usr/bin/su").stat().st_mode) == 0o4755
    assert stat.S_IMODE((ours / "tmp").stat().st_mode) == 0o1777
    assert int(ours.stat().st_mtime) == FIXED_EPOCH  # the "./" entry is dest itself


def test_unpacks_a_built_deb_like_dpkg_deb(tmp_path: Path) -> None:
    files = {"/usr/share/doc/alpha/copyright": b"c\n", "/usr/lib/alpha/data": b"d" * 5000}
    deb = make_deb(tmp_path, "alpha", "1.0", files=files)

    extract_data(deb.path, tmp_path / "ours")
    since = dpkg_extract(deb.path, tmp_path / "theirs")

    assert_same_tree(tmp_path / "ours", tmp_path / "theirs", since)


def test_members_select_paths_and_what_is_under_them(tmp_path: Path) -> None:
    deb = crafted_deb(tmp_path / "crafted.deb", SAMPLE)

    extract_data(deb, tmp_path / "boot", ["./boot", "./not/shipped"])
    extract_deb(deb, tmp_path / "one", ("usr/bin/tool",))

    assert sorted(
        p.relative_to(tmp_path / "boot").as_posix() for p in (tmp_path / "boot").rglob("*")
    ) == [
        "boot",
        "boot/vmlinuz-6.1",
    ]
    assert [p.name for p in (tmp_path / "one").rglob("*") if not p.is_dir()] == ["tool"]


def test_a_hard_link_needs_its_target_unpacked(tmp_path: Path) -> None:
    deb = crafted_deb(tmp_path / "crafted.deb", SAMPLE)

    with pytest.raises(InputError, match=r"crafted.deb.*tool-again.*not unpacked before"):
        extract_data(deb, tmp_path / "out", ["./usr/bin/tool-again"])


MERGED = [
    directory("./"),
    directory("./bin"),
    file("./bin/sh", b"shell", 0o755),
    hardlink("./bin/rbash", "./bin/sh"),
    directory("./lib"),
    directory("./lib/x86_64-linux-gnu"),
    file("./lib/x86_64-linux-gnu/libc.so.6", b"libc"),
    directory("./lib/modules"),
    file("./lib/modules/mod.ko", b"mod"),
    directory("./usr"),
    directory("./usr/bin"),
    file("./usr/bin/env", b"env", 0o755),
]


def test_merged_usr_writes_under_usr_and_links_the_top_directories(tmp_path: Path) -> None:
    deb = crafted_deb(tmp_path / "merged.deb", MERGED)
    dest = tmp_path / "tree"

    extract_data(deb, dest, merged_usr=True)

    assert os.readlink(dest / "bin") == "usr/bin"
    assert os.readlink(dest / "lib") == "usr/lib"
    assert not (dest / "sbin").exists() and not (dest / "lib64").exists()
    assert (dest / "usr/bin/sh").read_bytes() == b"shell"
    assert (dest / "usr/bin/rbash").stat().st_ino == (dest / "usr/bin/sh").stat().st_ino
    assert (dest / "usr/lib/x86_64-linux-gnu/libc.so.6").is_file()
    assert (dest / "usr/bin/env").is_file()
    # A second package into the same tree reuses the links.
    extract_data(deb, dest, merged_usr=True)
    assert os.readlink(dest / "bin") == "usr/bin"


def test_merged_usr_members_match_either_spelling(tmp_path: Path) -> None:
    deb = crafted_deb(tmp_path / "merged.deb", MERGED)

    extract_data(deb, tmp_path / "a", ["./usr/lib/modules"], merged_usr=True)
    extract_data(deb, tmp_path / "b", ["./lib/modules"], merged_usr=True)

    for dest in (tmp_path / "a", tmp_path / "b"):
        assert (dest / "usr/lib/modules/mod.ko").read_bytes() == b"mod"
        assert not (dest / "bin").exists()  # nothing unpacked there, so no link either
        assert not (dest / "usr/lib/x86_64-linux-gnu").exists()


def test_merged_usr_refuses_a_real_top_directory(tmp_path: Path) -> None:
    deb = crafted_deb(tmp_path / "merged.deb", MERGED)
    (tmp_path / "tree/bin").mkdir(parents=True)

    with pytest.raises(InputError, match=r"merged.deb.*bin there is not a link to usr/bin"):
        extract_data(deb, tmp_path / "tree", merged_usr=True)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([file("../escaped", b"x")], 'contains ".."'),
        ([file("./a/../../escaped", b"x")], 'contains ".."'),
        ([file("/escaped", b"x")], "absolute path"),
        ([directory("./"), symlink("./up", "../.."), file("./up/escaped", b"x")], "outside"),
        ([directory("./"), hardlink("./h", "../escaped")], 'contains ".."'),
        ([directory("./"), hardlink("./h", "./never-shipped")], "not unpacked before"),
        ([Entry("./null", tarfile.CHRTYPE)], "device nodes"),
        ([Entry("./fifo", tarfile.FIFOTYPE)], "device nodes"),
    ],
)
def test_unsafe_members_are_refused(tmp_path: Path, entries: list[Entry], reason: str) -> None:
    deb = crafted_deb(tmp_path / "evil.deb", entries)
    dest = tmp_path / "a" / "b" / "dest"

    with pytest.raises(InputError, match=f"evil.deb: refusing member .*{reason}"):
        extract_data(deb, dest)

    assert not list(tmp_path.rglob("escaped"))
    assert not (dest / "null").exists() and not (dest / "fifo").exists()


def test_an_absolute_symlink_out_of_dest_is_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    deb = crafted_deb(
        tmp_path / "evil.deb",
        [directory("./"), symlink("./etc", str(outside)), file("./etc/passwd", b"owned")],
    )

    with pytest.raises(InputError, match=r"evil.deb: refusing member \./etc/passwd: .*outside"):
        extract_data(deb, tmp_path / "dest")

    assert list(outside.iterdir()) == []


def test_links_already_in_dest_are_never_followed_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_bytes(b"keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "etc").symlink_to(outside)
    (dest / "file").symlink_to(outside / "target")
    deb = crafted_deb(tmp_path / "pkg.deb", [directory("./"), file("./file", b"new")])
    evil = crafted_deb(tmp_path / "evil.deb", [directory("./"), file("./etc/passwd", b"x")])

    extract_data(deb, dest)
    with pytest.raises(InputError, match=r"evil.deb.*outside"):
        extract_data(evil, dest)

    assert (outside / "target").read_bytes() == b"keep"
    assert not (dest / "file").is_symlink() and (dest / "file").read_bytes() == b"new"
    assert sorted(p.name for p in outside.iterdir()) == ["target"]


def test_a_link_inside_dest_may_lead_to_a_directory(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "usr/bin").mkdir(parents=True)
    (dest / "bin").symlink_to("usr/bin")
    deb = crafted_deb(tmp_path / "pkg.deb", [directory("./bin"), file("./bin/sh", b"sh")])

    extract_data(deb, dest)

    assert (dest / "bin").is_symlink()
    assert (dest / "usr/bin/sh").read_bytes() == b"sh"


def test_zstd_members_are_refused_by_name(tmp_path: Path) -> None:
    deb = crafted_deb(tmp_path / "modern.deb", SAMPLE, compression="zst")

    with pytest.raises(InputError, match=r"modern.deb: member data.tar.zst is zstd-compressed"):
        extract_data(deb, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_damaged_and_foreign_files_are_refused(tmp_path: Path) -> None:
    whole = crafted_deb(tmp_path / "whole.deb", SAMPLE).read_bytes()
    damaged = bytearray(whole)
    damaged[len(whole) - 200 : len(whole) - 100] = bytes(100)
    cases = {
        "truncated.deb": (whole[: len(whole) // 2], "truncated: member data.tar.xz"),
        "header-cut.deb": (whole[:40], "truncated or damaged ar archive"),
        "empty.deb": (b"", "not a Debian package"),
        "text.deb": (b"hello, world\n" * 10, "not a Debian package"),
        "no-data.deb": (ar_archive([("debian-binary", b"2.0\n")]), "has no data.tar member"),
        "not-deb.deb": (ar_archive([("other", b"x")]), "not a Debian binary package"),
        "damaged.deb": (bytes(damaged), "member data.tar.xz is damaged"),
    }

    for name, (content, problem) in cases.items():
        deb = tmp_path / name
        deb.write_bytes(content)
        with pytest.raises(InputError, match=f"{name}: .*{problem}"):
            extract_data(deb, tmp_path / "out" / name)
        if name != "damaged.deb":  # its control member is intact
            with pytest.raises(InputError, match=name):
                read_control(deb)


def test_damage_found_while_the_caller_reads_names_the_deb(tmp_path: Path) -> None:
    entries = [directory("./"), file("./big", bytes(300_000))]
    deb = crafted_deb(tmp_path / "cut.deb", entries, cut_at=200_000)

    with (
        pytest.raises(InputError, match=r"cut.deb: member data.tar.xz is not a readable tar"),
        open_data_tar(deb) as archive,
    ):
        for member in archive:
            content = archive.extractfile(member)
            if content is not None:
                content.read()


def test_damage_after_the_end_of_the_tar_is_found_too(tmp_path: Path) -> None:
    # Zeros after the tar's end, as a large tar blocking factor leaves: tarfile stops
    # reading at the end-of-archive blocks, long before the xz checksums.
    compressed = bytearray(lzma.compress(tar_bytes(SAMPLE) + bytes(4 << 20)))
    compressed[-12:] = bytes(12)
    deb = deb_with_data(tmp_path / "tail.deb", "data.tar.xz", bytes(compressed))

    with pytest.raises(InputError, match=r"tail.deb: member data.tar.xz is damaged"):
        extract_data(deb, tmp_path / "out")


def real_debs() -> dict[str, Path]:
    """Package name -> .deb in the user's default boothkey cache, ~/.cache/boothkey (the
    session points $BOOTHKEY_CACHE elsewhere); only read. Empty if nothing was fetched."""
    found: dict[str, Path] = {}
    for deb in sorted(deb_cache_dir(Path.home() / ".cache" / "boothkey").glob("sha256/*/*.deb")):
        found.setdefault(read_control(deb)["Package"], deb)
    return found


@pytest.fixture(scope="module")
def cached_debs() -> dict[str, Path]:
    debs = real_debs()
    if not debs:
        pytest.skip("no fetched .debs in the boothkey cache")
    return debs


def test_control_of_real_debs_matches_dpkg_deb(cached_debs: dict[str, Path]) -> None:
    for deb in cached_debs.values():
        printed = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, check=True)
        assert read_control_file(deb) == printed.stdout, deb
    for deb in list(cached_debs.values())[:20]:
        fields = read_control(deb)
        for name in ("Package", "Version", "Architecture", "Depends", "Description"):
            printed = subprocess.run(
                ["dpkg-deb", "--field", str(deb), name], capture_output=True, check=True
            )
            assert fields.get(name, "") == printed.stdout.decode().removesuffix("\n"), (deb, name)


# gzip and perl-base ship hard links and symlinks, util-linux and passwd setuid and
# setgid programs, base-files a sticky /tmp.
@pytest.mark.parametrize("package", ["gzip", "perl-base", "util-linux", "passwd", "base-files"])
def test_real_debs_unpack_like_dpkg_deb(
    tmp_path: Path, cached_debs: dict[str, Path], package: str
) -> None:
    if package not in cached_debs:
        pytest.skip(f"{package} is not in the boothkey cache")
    deb = cached_debs[package]

    extract_data(deb, tmp_path / "ours")
    since = dpkg_extract(deb, tmp_path / "theirs")

    assert_same_tree(tmp_path / "ours", tmp_path / "theirs", since)
