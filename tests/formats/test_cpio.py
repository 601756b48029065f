"""cpio "newc" archives written in Python: byte for byte what GNU cpio 2.13 writes."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from builder.formats.cpio import newc_archive, write_newc_archive

CPIO_OPTIONS = ["-o", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet"]


def host_cpio_version() -> str:
    if shutil.which("cpio") is None:
        return ""
    output = subprocess.run(["cpio", "--version"], capture_output=True, text=True, check=False)
    return output.stdout.partition("\n")[0]


needs_cpio_2_13 = pytest.mark.skipif(
    host_cpio_version() != "cpio (GNU cpio) 2.13",
    reason="the byte-for-byte reference is GNU cpio 2.13",
)


def host_cpio(root: Path, names: list[str]) -> bytes:
    listing = "".join(f"{name}\n" for name in names).encode()
    return subprocess.run(
        ["cpio", *CPIO_OPTIONS], cwd=root, input=listing, capture_output=True, check=True
    ).stdout


def make_tree(root: Path, *, hard_links: bool = True) -> list[str]:
    """Directories, files of every size modulo 4, an executable, a setuid program, an
    empty file, symlinks (relative, "./"-prefixed, absolute, dangling), a 2 MiB file,
    and hard links; returns the names in archive order, as an initrd step lists them."""
    files = {
        "init": (b"#!/bin/sh\nexec /bin/busybox sh\n", 0o755),
        "bin/busybox": (b"\x7fELF" + bytes(range(256)) * 3, 0o755),
        "bin/su": (b"setuid", 0o4755),
        "etc/empty": (b"", 0o644),
        "etc/one": (b"1", 0o644),
        "etc/two": (b"22", 0o600),
        "etc/three": (b"333", 0o644),
        "etc/four": (b"4444", 0o444),
        "lib/modules/boothkey/big.ko": (os.urandom(2 << 20) + b"end", 0o644),
        "lib/modules/boothkey/load-order": (b"big\n", 0o644),
    }
    for name, (content, mode) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    (root / "newroot").mkdir()
    (root / "dev").mkdir(mode=0o700)
    (root / "sbin").symlink_to("bin")
    (root / "bin/sh").symlink_to("./busybox")
    (root / "bin/abs").symlink_to("/bin/busybox")
    (root / "etc/dangling").symlink_to("../nowhere")
    if hard_links:
        (root / "bin/all-1").write_bytes(b"all linked")
        os.link(root / "bin/all-1", root / "bin/all-2")
        os.link(root / "bin/all-1", root / "etc/all-3")
        (root / "etc/some-1").write_bytes(b"some linked")
        os.link(root / "etc/some-1", root / "etc/some-2")
        os.link(root / "etc/some-1", root / "newroot/unlisted")
    names = []
    for current, dirs, filenames in os.walk(root):
        dirs.sort()
        for entry in (*dirs, *filenames):
            names.append((Path(current) / entry).relative_to(root).as_posix())
    names = sorted(names, key=lambda name: name.encode())
    if hard_links:
        names.remove("newroot/unlisted")
    for index, name in enumerate(names):
        # Fractional and distinct times: cpio keeps whole seconds.
        when = 1_700_000_000 + index * 1.75
        os.utime(root / name, (when, when), follow_symlinks=False)
    return names


@needs_cpio_2_13
def test_same_bytes_as_host_cpio(tmp_path: Path) -> None:
    names = make_tree(tmp_path)

    ours = newc_archive(tmp_path, names)

    assert ours == host_cpio(tmp_path, names)
    assert len(ours) % 512 == 0


@needs_cpio_2_13
def test_same_bytes_as_host_cpio_for_dotted_names_and_any_order(tmp_path: Path) -> None:
    names = make_tree(tmp_path)
    listed = [f"./{name}" if index % 3 == 0 else name for index, name in enumerate(names)]
    listed.reverse()

    assert newc_archive(tmp_path, listed) == host_cpio(tmp_path, listed)


@needs_cpio_2_13
def test_same_bytes_as_host_cpio_for_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")

    assert newc_archive(tmp_path, ["fifo"]) == host_cpio(tmp_path, ["fifo"])


def test_host_cpio_lists_and_unpacks_the_archive(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("no cpio on this host")
    source, unpacked = tmp_path / "source", tmp_path / "unpacked"
    source.mkdir()
    unpacked.mkdir()
    names = make_tree(source, hard_links=False)
    archive = newc_archive(source, names)

    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=archive, capture_output=True, check=True
    ).stdout
    subprocess.run(
        ["cpio", "-i", "-d", "-m", "--quiet", "--no-absolute-filenames"],
        cwd=unpacked,
        input=archive,
        check=True,
    )

    assert listing.decode().splitlines() == names
    for name in names:
        before, after = (source / name).lstat(), (unpacked / name).lstat()
        assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode), name
        if stat.S_ISLNK(before.st_mode):
            expected = os.readlink(source / name).removeprefix("./")
            assert os.readlink(unpacked / name) == expected
        elif stat.S_ISREG(before.st_mode):
            assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode), name
            assert int(after.st_mtime) == int(before.st_mtime), name
            assert (unpacked / name).read_bytes() == (source / name).read_bytes(), name


def test_streaming_writer_gives_the_same_bytes_and_their_size(tmp_path: Path) -> None:
    names = make_tree(tmp_path)
    out = io.BytesIO()

    size = write_newc_archive(tmp_path, names, out)

    assert out.getvalue() == newc_archive(tmp_path, names)
    assert size == len(out.getvalue())


def test_an_empty_list_is_the_trailer_in_one_block(tmp_path: Path) -> None:
    archive = newc_archive(tmp_path, [])

    assert len(archive) == 512
    assert archive.startswith(b"070701" + b"0" * 32 + b"00000001")
    assert archive[110:121] == b"TRAILER!!!\0"
    assert archive[121:] == bytes(512 - 121)


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../outside", "a/../../b", "two\nlines"])
def test_names_outside_the_root_or_unlistable_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="cpio name"):
        newc_archive(tmp_path, [name])


def test_a_missing_name_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        newc_archive(tmp_path, ["missing"])
