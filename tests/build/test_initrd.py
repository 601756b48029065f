"""The initrd step: layout from extracted packages, reproducible cpio+zstd, /init syntax."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lock_factory import lock as fake_lock
from lock_factory import package
from step_factory import host_tools, host_tools_output, options_of, run_step

from builder.build.steps.base import BuildContext
from builder.build.steps.elfdeps import library_closure
from builder.build.steps.initrd import INIT_SCRIPT, InitrdStep, assemble_initrd_tree, pack_initrd
from builder.core.errors import BuildError
from builder.source.lockfile import Lock, LockedPackage
from builder.source.recipe import load_recipe

EPOCH = 1_700_000_000
PROJECT = Path(__file__).resolve().parents[2]
KVER = "6.1.0-99-amd64"


def cpio_entries(initrd: bytes) -> list[dict[str, int | str]]:
    """Parse the newc headers of a zstd-compressed initrd (name, mode, uid, gid, mtime)."""
    raw = subprocess.run(["zstd", "-d", "-c"], input=initrd, capture_output=True, check=True).stdout
    entries: list[dict[str, int | str]] = []
    offset = 0
    while True:
        header = raw[offset : offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = raw[offset + 110 : offset + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            return entries
        entries.append(
            {
                "name": name,
                "mode": fields[1],
                "uid": fields[2],
                "gid": fields[3],
                "mtime": fields[5],
            }
        )
        offset = -(-(offset + 110 + namesize) // 4) * 4
        offset = -(-(offset + filesize) // 4) * 4


def make_staging(root: Path, empty_object: Path | None = None) -> Path:
    """Extracted 'packages': a static busybox, a dynamic dmsetup with its libraries, a kernel."""
    (root / "bin").mkdir(parents=True)
    shutil.copyfile("/sbin/ldconfig", root / "bin/busybox")  # any static binary
    (root / "sbin").mkdir()
    shutil.copyfile("/usr/bin/ls", root / "sbin/dmsetup")  # any dynamic binary
    for library in library_closure(Path("/"), "/usr/bin/ls"):
        target = root / library.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(library).resolve(), target)
    modules = root / "lib/modules" / KVER / "kernel/fs"
    modules.mkdir(parents=True)
    base = root / "empty.o"
    subprocess.run(["as", "-o", str(base)], input=b"", check=True)
    for name, depends in (("dm-mod", ""), ("dm-verity", "dm-mod")):
        info = root / "info"
        info.write_bytes(f"depends={depends}\0".encode())
        subprocess.run(
            [
                "objcopy",
                "--add-section",
                f".modinfo={info}",
                str(base),
                str(modules / f"{name}.ko"),
            ],
            check=True,
        )
    (root / "lib/modules" / KVER / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    (root / "boot").mkdir()
    (root / "boot" / f"config-{KVER}").write_text("CONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_ZSTD=y\n")
    return root


def test_tree_layout(tmp_path: Path) -> None:
    staging = make_staging(tmp_path / "staging")
    image = tmp_path / "image"
    contents = assemble_initrd_tree(staging, image, ("dm_verity", "ext4", "nosuch"))
    assert contents.kernel_version == KVER
    assert contents.modules == ("dm_mod", "dm_verity")
    assert [name for name, _reason in contents.skipped_modules] == ["ext4", "nosuch"]
    assert (image / "lib/modules/boothkey/load-order").read_text() == "dm_mod\ndm_verity\n"
    assert (image / "lib/modules/boothkey/dm_verity.ko").is_file()
    assert (image / "init").read_bytes() == INIT_SCRIPT.read_bytes()
    assert os.access(image / "init", os.X_OK)
    assert (image / "bin/busybox").read_bytes() == Path("/sbin/ldconfig").read_bytes()
    assert (image / "bin/dmsetup").is_file()
    # the loader is copied under the path PT_INTERP names, plus the libraries' real paths
    assert (image / "lib64/ld-linux-x86-64.so.2").is_file()
    assert (image / "lib/x86_64-linux-gnu/libc.so.6").is_file()
    for directory in ("proc", "sys", "dev", "newroot", "run"):
        assert (image / directory).is_dir()


def test_missing_tool_is_named(tmp_path: Path) -> None:
    staging = make_staging(tmp_path / "staging")
    (staging / "sbin/dmsetup").unlink()
    with pytest.raises(BuildError, match="dmsetup"):
        assemble_initrd_tree(staging, tmp_path / "image", ())


def test_dynamic_busybox_is_refused(tmp_path: Path) -> None:
    staging = make_staging(tmp_path / "staging")
    shutil.copyfile("/usr/bin/ls", staging / "bin/busybox")
    with pytest.raises(BuildError, match="busybox-static"):
        assemble_initrd_tree(staging, tmp_path / "image", ())


def test_kernel_without_zstd_initrd_support_is_refused(tmp_path: Path) -> None:
    staging = make_staging(tmp_path / "staging")
    (staging / "boot" / f"config-{KVER}").write_text("# CONFIG_RD_ZSTD is not set\n")
    with pytest.raises(BuildError, match="CONFIG_RD_ZSTD"):
        assemble_initrd_tree(staging, tmp_path / "image", ())


def build_packed(tmp_path: Path, where: str, umask: int) -> bytes:
    staging = make_staging(tmp_path / where / "staging")
    image = tmp_path / where / "image"
    old = os.umask(umask)
    try:
        assemble_initrd_tree(staging, image, ("dm_verity",))
    finally:
        os.umask(old)
    (image / "bin/busybox").touch()  # a fresh mtime, which packing must clamp
    return pack_initrd(host_tools(tmp_path / where / "scratch"), image, EPOCH)


def test_packing_is_reproducible_and_normalised(tmp_path: Path) -> None:
    first = build_packed(tmp_path, "a", 0o022)
    second = build_packed(tmp_path, "second-dir", 0o077)
    assert first == second
    entries = cpio_entries(first)
    names = [str(entry["name"]) for entry in entries]
    assert names == sorted(names, key=str.encode)
    assert {"init", "bin/busybox", "lib/modules/boothkey/load-order"} <= set(names)
    assert {entry["uid"] for entry in entries} == {0}
    assert {entry["gid"] for entry in entries} == {0}
    assert {entry["mtime"] for entry in entries} == {EPOCH}
    modes = {str(entry["name"]): int(entry["mode"]) & 0o7777 for entry in entries}
    assert modes["init"] == 0o755 and modes["bin"] == 0o755
    assert modes["lib/modules/boothkey/load-order"] == 0o644


def make_ctx(
    tmp_path: Path, lock: Lock, deb_path: Callable[[LockedPackage], Path], where: str
) -> BuildContext:
    recipe = load_recipe(PROJECT / "recipes" / "hello.yaml")
    return BuildContext(
        recipe=recipe,
        lock=lock,
        source_date_epoch=lock.source_date_epoch,
        deb_path=deb_path,
        scratch=tmp_path / where / "scratch",
        report=lambda line: None,
    )


def extract_file(initrd: Path, name: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["zstd", "-d", "-c", str(initrd)], capture_output=True, check=True)
    subprocess.run(
        ["cpio", "-i", "--quiet", "-d", name], input=archive.stdout, cwd=dest, check=True
    )
    return dest / name


@pytest.mark.slow
def test_real_initrd_is_reproducible_and_its_init_parses(
    tmp_path: Path, hello_boot_debs: tuple[Lock, Callable[[LockedPackage], Path]]
) -> None:
    lock, deb_path = hello_boot_debs
    outputs = []
    for where in ("one", "two"):
        ctx = make_ctx(tmp_path, lock, deb_path, where)
        out = tmp_path / where / "out"
        out.mkdir(parents=True)
        tools = host_tools_output(tmp_path / where / "tools")
        info = run_step(InitrdStep(), ctx, {"tools": tools}, out)
        outputs.append((out / "initrd.img").read_bytes())
    assert outputs[0] == outputs[1]
    kernel = next(p for p in lock.in_set("boot") if p.name.startswith("linux-image-6"))
    assert info["kernel_version"] == kernel.name.removeprefix("linux-image-")
    assert info["skipped_modules"] == []
    assert {"dm_verity", "usb_storage", "virtio_blk", "squashfs", "overlay"} <= set(info["modules"])
    names = {str(entry["name"]) for entry in cpio_entries(outputs[0])}
    assert {"bin/busybox", "bin/dmsetup", "lib/modules/boothkey/dm_verity.ko"} <= names
    assert not list((tmp_path / "one" / "scratch").iterdir())  # staging removed
    # Beside the initrd: the kernel image its modules were built for, from the same package.
    vmlinuz = (tmp_path / "one" / "out" / "vmlinuz").read_bytes()
    assert vmlinuz[:2] == b"MZ" and len(vmlinuz) > 4 * 2**20
    assert f"{info['kernel_version']} (debian-kernel".encode() in vmlinuz
    # The init script parses with the busybox it will run under.
    busybox = extract_file(tmp_path / "two/out/initrd.img", "bin/busybox", tmp_path / "x")
    syntax = subprocess.run([str(busybox), "sh", "-n", str(INIT_SCRIPT)], capture_output=True)
    assert syntax.returncode == 0, syntax.stderr
    broken = tmp_path / "broken.sh"
    broken.write_text(INIT_SCRIPT.read_text() + "\nif true; then\n")
    assert subprocess.run([str(busybox), "sh", "-n", str(broken)]).returncode != 0


def test_options_name_every_input(tmp_path: Path) -> None:
    lock = fake_lock([package("busybox-static", "1", sets=("boot",), sha256="a" * 64)])
    options = options_of(InitrdStep(), make_ctx(tmp_path, lock, lambda p: tmp_path, "o"), {})
    assert options["packages"] == [
        {"name": "busybox-static", "version": "1", "architecture": "amd64", "sha256": "a" * 64}
    ]
    assert "dm_verity" in options["modules"]
    assert len(options["init_sha256"]) == 64
