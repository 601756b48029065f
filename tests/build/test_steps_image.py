"""Image assembly steps: rootimage, verity, uki, esp, disk (real host tools, tiny inputs)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from image_factory import make_pe
from lock_factory import lock as fake_lock
from lock_factory import package
from step_factory import host_tools, host_tools_output, options_of
from step_factory import run_step as step_facts

from builder.build.steps.base import BuildContext, StepOutput, facts_json
from builder.build.steps.disk import DiskStep
from builder.build.steps.esp import FAT32_MIN_MIB, EspStep, esp_size_mib, make_esp
from builder.build.steps.initrd import InitrdFacts
from builder.build.steps.rootimage import RootImageStep, make_squashfs
from builder.build.steps.uki import (
    UkiStep,
    assemble_uki,
    kernel_command_line,
    kernel_package,
    os_release,
)
from builder.build.steps.verity import VerityFacts, VerityStep
from builder.core.canonical import sha256_file
from builder.core.errors import BuildError, InputError
from builder.core.tools import run_tool
from builder.formats.gpt import (
    ESP_TYPE,
    LINUX_DATA_TYPE,
    ROOT_X86_64_TYPE,
    ROOT_X86_64_VERITY_TYPE,
    read_gpt,
)
from builder.formats.pe import read_pe, read_section
from builder.source.lockfile import Lock, LockedPackage
from builder.source.recipe import (
    DEFAULT_KEYRING,
    BootOptions,
    DataPartition,
    Distribution,
    Recipe,
    RootfsOptions,
)

EPOCH = 1_700_000_000
MIB = 1024 * 1024


def make_recipe(
    tmp_path: Path,
    *,
    fmt: str = "squashfs",
    compression: str = "zstd",
    data_mib: int | None = None,
    cmdline: tuple[str, ...] = ("console=ttyS0", "quiet"),
) -> Recipe:
    return Recipe(
        path=tmp_path / "recipes" / "demo.yaml",
        name="demo",
        version="2026.1",
        distribution=Distribution("bookworm", "amd64", ("main",), DEFAULT_KEYRING),
        kernel="linux-image-amd64",
        packages=(),
        overlays=(),
        variables={},
        files=(),
        rootfs=RootfsOptions(format=fmt, compression=compression),
        boot=BootOptions(cmdline=cmdline),
        source_date_epoch=EPOCH,
        data_partition=DataPartition(data_mib) if data_mib else None,
        project_dir=tmp_path,
    )


def locked(name: str, version: str = "1.0", sets: tuple[str, ...] = ("boot",)) -> LockedPackage:
    return package(name, version, sets=sets)


def make_lock(packages: tuple[LockedPackage, ...] = ()) -> Lock:
    return fake_lock(packages, epoch=EPOCH)


def make_ctx(
    tmp_path: Path,
    recipe: Recipe,
    lock: Lock | None = None,
    debs: Mapping[str, Path] | None = None,
) -> BuildContext:
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    known = dict(debs or {})

    def deb_path(package: LockedPackage) -> Path:
        return known[package.name]

    return BuildContext(
        recipe=recipe,
        lock=lock or make_lock(),
        source_date_epoch=EPOCH,
        deb_path=deb_path,
        scratch=scratch,
        report=lambda line: None,
    )


def given(name: str, path: Path, info: Mapping[str, Any] | None = None) -> StepOutput:
    """A finished earlier step whose files are in `path`."""
    return StepOutput(name, hashlib.sha256(str(path).encode()).hexdigest(), path, info or {}, "d")


def verity_info(root_hash: str, salt: str, data_blocks: int) -> dict[str, Any]:
    """The verity step's facts for a root image of `data_blocks` blocks."""
    return facts_json(VerityFacts(root_hash, salt, "uuid", data_blocks, 4096, 4096, "sha256"))


def initrd_info(kernel_version: str) -> dict[str, Any]:
    """The initrd step's facts for an initrd holding no modules."""
    return facts_json(InitrdFacts(kernel_version, (), (), "0" * 64, 6))


def run_step(
    step: Any, ctx: BuildContext, inputs: Mapping[str, StepOutput], out: Path
) -> StepOutput:
    out.mkdir(parents=True)
    # The host's tools stand in for the tools tree (see step_factory.HOST_TOOLS_TREE).
    inputs = {"tools": host_tools_output(out.with_name(out.name + "-tools")), **inputs}
    info = step_facts(step, ctx, inputs, out)
    return StepOutput(step.name, hashlib.sha256(str(out).encode()).hexdigest(), out, info, "d")


def make_tree(root: Path, reverse: bool = False) -> Path:
    """A tiny root tree with what real trees have: owners, modes, links, a device node."""
    tree = root / "tree"
    names = [f"file{index:02d}" for index in range(20)]
    if reverse:
        names.reverse()
    (tree / "usr" / "share" / "demo").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "dev").mkdir()
    for name in names:
        (tree / "usr" / "share" / "demo" / name).write_bytes(name.encode() * 1000)
    (tree / "etc" / "hostname").write_text("booth\n")
    os.chown(tree / "etc" / "hostname", 1000, 1000)
    os.chmod(tree / "etc" / "hostname", 0o600)
    (tree / "bin").symlink_to("usr/bin")
    os.link(tree / "etc" / "hostname", tree / "etc" / "hostname.link")
    os.mknod(tree / "dev" / "null", 0o20666, os.makedev(1, 3))
    os.chmod(tree / "dev" / "null", 0o666)  # mknod obeys the umask
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (123456, 123456), follow_symlinks=False)
    return root


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="device nodes and owners need root")


def build_rootimage(tmp_path: Path, fmt: str, compression: str, where: str) -> StepOutput:
    recipe = make_recipe(tmp_path, fmt=fmt, compression=compression)
    ctx = make_ctx(tmp_path / where, recipe)
    overlay = given("overlay", make_tree(tmp_path / where / "overlay", reverse=where == "b"))
    return run_step(RootImageStep(), ctx, {"overlay": overlay}, tmp_path / where / "rootimage")


@needs_root
@pytest.mark.parametrize(
    ("fmt", "compression"),
    [("squashfs", "zstd"), ("squashfs", "xz"), ("erofs", "lz4hc"), ("erofs", "none")],
)
def test_rootimage_is_reproducible_and_block_padded(
    tmp_path: Path, fmt: str, compression: str
) -> None:
    first = build_rootimage(tmp_path, fmt, compression, "a")
    second = build_rootimage(tmp_path, fmt, compression, "b")
    image = first.path / "root.img"
    assert image.read_bytes() == (second.path / "root.img").read_bytes()
    assert first.info == {"format": fmt, "size": image.stat().st_size}
    assert image.stat().st_size % 4096 == 0
    if fmt == "erofs":
        run_tool(["fsck.erofs", image])


@needs_root
def test_squashfs_owners_and_times_are_fixed(tmp_path: Path) -> None:
    image = build_rootimage(tmp_path, "squashfs", "zstd", "a").path / "root.img"
    listing = run_tool(["unsquashfs", "-lln", "-d", "/", image]).stdout.decode()
    lines = [line for line in listing.splitlines() if line[:1] in "-dlc"]
    assert any("/etc/hostname" in line and line.startswith("-rw-------") for line in lines)
    assert any(line.startswith("crw-rw-rw-") and "/dev/null" in line for line in lines)
    for line in lines:
        assert " 0/0 " in line, line
        assert "2023-11-14 22:13" in line, line  # EPOCH in UTC


@needs_root
def test_squashfs_output_does_not_depend_on_processor_count(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t") / "tree"
    ours = tmp_path / "ours.img"
    make_squashfs(host_tools(tmp_path / "tools"), tree, ours, "zstd", EPOCH)
    single = tmp_path / "single.img"
    run_tool(
        ["mksquashfs", tree, single, "-noappend", "-reproducible", "-mkfs-time", str(EPOCH),
         "-all-time", str(EPOCH), "-all-root", "-comp", "zstd", "-no-progress", "-quiet",
         "-processors", "1"]
    )  # fmt: skip
    assert ours.read_bytes() == single.read_bytes()


@needs_root
def test_squashfs_compression_level_reaches_mksquashfs(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t") / "tree"
    for level in (3, 19):
        make_squashfs(
            host_tools(tmp_path / "tools"),
            tree,
            tmp_path / f"level{level}.img",
            "zstd",
            EPOCH,
            level,
        )
        superblock = run_tool(["unsquashfs", "-s", tmp_path / f"level{level}.img"]).stdout
        assert f"compression-level {level}".encode() in superblock


def verity_of(tmp_path: Path, where: str) -> tuple[StepOutput, StepOutput]:
    rootimage = build_rootimage(tmp_path, "squashfs", "zstd", where)
    ctx = make_ctx(tmp_path / where, make_recipe(tmp_path))
    verity = run_step(VerityStep(), ctx, {"rootimage": rootimage}, tmp_path / where / "verity")
    return rootimage, verity


@needs_root
def test_verity_tree_verifies_and_detects_a_flipped_byte(tmp_path: Path) -> None:
    rootimage, verity = verity_of(tmp_path, "a")
    info = verity.info
    root = rootimage.path / "root.img"
    hashes = verity.path / "verity.img"
    assert info["data_blocks"] * 4096 == root.stat().st_size
    assert (info["data_block_size"], info["hash_block_size"]) == (4096, 4096)
    assert info["hash_algorithm"] == "sha256"
    assert len(info["root_hash"]) == 64 and len(info["salt"]) == 64
    assert hashes.stat().st_size % 4096 == 0
    run_tool(["veritysetup", "verify", root, hashes, info["root_hash"]])
    dump = run_tool(["veritysetup", "dump", hashes]).stdout.decode()
    assert info["salt"] in dump and info["uuid"] in dump

    damaged = tmp_path / "damaged.img"
    shutil.copyfile(root, damaged)
    with open(damaged, "r+b") as stream:
        stream.seek(4096 * (info["data_blocks"] // 2) + 17)
        value = stream.read(1)[0]
        stream.seek(-1, os.SEEK_CUR)
        stream.write(bytes([value ^ 0x40]))
    result = subprocess.run(
        ["veritysetup", "verify", damaged, hashes, info["root_hash"]], capture_output=True
    )
    assert result.returncode != 0


@needs_root
def test_verity_is_reproducible(tmp_path: Path) -> None:
    _, first = verity_of(tmp_path, "a")
    _, second = verity_of(tmp_path, "b")
    assert first.info == second.info
    assert (first.path / "verity.img").read_bytes() == (second.path / "verity.img").read_bytes()


def test_kernel_command_line_appends_boothkey_parameters(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path, fmt="erofs", compression="lz4")
    verity = VerityFacts("ab" * 32, "cd" * 32, "uuid", 42, 4096, 4096, "sha256")
    assert kernel_command_line(recipe, verity) == (
        f"console=ttyS0 quiet boothkey.roothash={'ab' * 32} boothkey.salt={'cd' * 32} "
        "boothkey.datablocks=42 boothkey.fstype=erofs boothkey.init=/sbin/init"
    )
    for bad in ("boothkey.roothash=00", "two words", ""):
        with pytest.raises(InputError, match=r"boot\.cmdline\[1\]"):
            kernel_command_line(make_recipe(tmp_path, cmdline=("quiet", bad)), verity)


def test_os_release_names_the_image(tmp_path: Path) -> None:
    text = os_release(make_recipe(tmp_path))
    assert 'NAME="boothkey-demo"\n' in text
    assert 'VERSION_ID="2026.1"\n' in text
    assert 'ID="boothkey"\n' in text


def test_kernel_package_is_the_versioned_image(tmp_path: Path) -> None:
    meta = locked("linux-image-amd64", "6.1.1")
    real = locked("linux-image-6.1.0-56-amd64", "6.1.1")
    rootfs_only = locked("linux-image-6.1.0-1-amd64", sets=("rootfs",))
    assert kernel_package(make_lock((meta, real, rootfs_only))) == real
    with pytest.raises(InputError, match="exactly one versioned"):
        kernel_package(make_lock((meta,)))
    with pytest.raises(InputError, match="exactly one versioned"):
        kernel_package(make_lock((real, locked("linux-image-6.1.0-57-amd64"))))


def fake_stub(path: Path) -> Path:
    path.write_bytes(
        make_pe([(".text", b"\xc3" * 300), (".sbat", b"sbat,1\n")], 12345, spare_headers=8)
    )
    return path


def test_assemble_uki_lays_sections_after_the_stub(tmp_path: Path) -> None:
    stub = fake_stub(tmp_path / "stub.efi")
    parts = {
        ".osrel": b"NAME=x\n",
        ".cmdline": b"console=ttyS0 boothkey.roothash=00",
        ".initrd": bytes(range(256)) * 50,
        ".linux": b"\x4d\x5a" + bytes(9000),
    }
    files = {}
    for name, data in parts.items():
        files[name] = tmp_path / name.lstrip(".")
        files[name].write_bytes(data)
    out = tmp_path / "uki.efi"
    assemble_uki(host_tools(tmp_path / "tools"), stub, files, out, EPOCH)
    image = read_pe(out)
    stub_end = read_pe(stub).end_of_image
    added = [s for s in image.sections if s.name in parts]
    assert [s.name for s in added] == [".osrel", ".cmdline", ".initrd", ".linux"]
    previous_end = stub_end
    for section in added:
        assert section.virtual_address % 4096 == 0
        assert section.virtual_address >= previous_end
        previous_end = section.virtual_address + section.virtual_size
        assert read_section(out, section.name) == parts[section.name]
    assert image.timestamp == EPOCH
    again = tmp_path / "again.efi"
    assemble_uki(host_tools(tmp_path / "tools"), stub, files, again, EPOCH)
    assert again.read_bytes() == out.read_bytes()


def test_esp_holds_the_loader_and_is_reproducible(tmp_path: Path) -> None:
    loader = tmp_path / "BOOTX64.EFI"
    loader.write_bytes(hashlib.sha256(b"x").digest() * 40000)  # 1.28 MB
    images = []
    for where in ("a", "b"):
        uki = tmp_path / where / "uki"
        uki.mkdir(parents=True)
        shutil.copyfile(loader, uki / "BOOTX64.EFI")
        os.utime(uki / "BOOTX64.EFI", (999, 999))
        ctx = make_ctx(tmp_path / where, make_recipe(tmp_path))
        out = run_step(EspStep(), ctx, {"uki": given("uki", uki)}, tmp_path / where / "esp")
        images.append(out.path / "esp.img")
    assert images[0].read_bytes() == images[1].read_bytes()
    assert images[0].stat().st_size == FAT32_MIN_MIB * MIB
    run_tool(["fsck.fat", "-n", images[0]])
    copied = tmp_path / "copied.efi"
    run_tool(["mcopy", "-n", "-i", images[0], "::/EFI/BOOT/BOOTX64.EFI", copied])
    assert copied.read_bytes() == loader.read_bytes()
    listing = run_tool(["mdir", "-i", images[0], "::/EFI/BOOT"]).stdout.decode()
    assert "2023-11-14" in listing  # EPOCH, not today and not the source file's mtime


def test_esp_grows_with_the_loader(tmp_path: Path) -> None:
    assert esp_size_mib(10 * MIB) == FAT32_MIN_MIB
    assert esp_size_mib(60 * MIB) >= 63
    loader = tmp_path / "big.efi"
    with open(loader, "wb") as stream:
        stream.truncate(40 * MIB)
    image = tmp_path / "esp.img"
    size = make_esp(host_tools(tmp_path / "tools"), loader, image, EPOCH, tmp_path)
    assert size >= 40 * MIB and size % MIB == 0
    run_tool(["fsck.fat", "-n", image])


def _disk_inputs(tmp_path: Path, where: str) -> dict[str, StepOutput]:
    base = tmp_path / where
    for name in ("esp", "rootimage", "verity"):
        (base / name).mkdir(parents=True)
    (base / "esp" / "esp.img").write_bytes(b"E" * (2 * MIB))
    (base / "rootimage" / "root.img").write_bytes(b"R" * (3 * 4096))
    (base / "verity" / "verity.img").write_bytes(b"V" * 4096)
    root_hash = hashlib.sha256(b"root").hexdigest()
    return {
        "esp": given("esp", base / "esp"),
        "rootimage": given("rootimage", base / "rootimage", {"format": "squashfs"}),
        "verity": given("verity", base / "verity", verity_info(root_hash, "00", 3)),
    }


@pytest.mark.parametrize("data_mib", [None, 2])
def test_disk_layout_contents_and_uuids(tmp_path: Path, data_mib: int | None) -> None:
    inputs = _disk_inputs(tmp_path, "a")
    ctx = make_ctx(tmp_path / "a", make_recipe(tmp_path, data_mib=data_mib))
    disk = run_step(DiskStep(), ctx, inputs, tmp_path / "a" / "disk")
    image = disk.path / "image.img"
    info = disk.info
    assert info["size"] == image.stat().st_size
    assert info["sha256"] == sha256_file(image)
    verify = run_tool(["sfdisk", "--verify", image]).stdout.decode()
    assert "No errors detected" in verify
    table = read_gpt(image)
    assert table.disk_guid == info["disk_guid"]
    root_hash: str = inputs["verity"].info["root_hash"]
    expected = [
        ("esp", ESP_TYPE),
        ("root", ROOT_X86_64_TYPE),
        ("root-verity", ROOT_X86_64_VERITY_TYPE),
    ] + ([("booth-data", LINUX_DATA_TYPE)] if data_mib else [])
    assert [(p["name"], p["type"]) for p in info["partitions"]] == expected
    assert [(p.name, p.type_guid) for p in table.partitions] == expected
    by_name = {p["name"]: p for p in info["partitions"]}
    assert by_name["root"]["uuid"].replace("-", "") == root_hash[:32]
    assert by_name["root-verity"]["uuid"].replace("-", "") == root_hash[32:]
    sources = {
        "esp": inputs["esp"].path / "esp.img",
        "root": inputs["rootimage"].path / "root.img",
        "root-verity": inputs["verity"].path / "verity.img",
    }
    with open(image, "rb") as stream:
        for part in info["partitions"]:
            assert part["offset"] % MIB == 0
            stream.seek(part["offset"])
            content = stream.read(part["size"])
            assert hashlib.sha256(content).hexdigest() == part["sha256"]
            if part["name"] in sources:
                assert content == sources[part["name"]].read_bytes()
            else:
                assert content == bytes(data_mib * MIB if data_mib else 0)
    fdisk = run_tool(["fdisk", "-l", image]).stdout.decode()
    assert "Disklabel type: gpt" in fdisk


def test_disk_is_reproducible(tmp_path: Path) -> None:
    images = []
    for where in ("a", "b"):
        ctx = make_ctx(tmp_path / where, make_recipe(tmp_path, data_mib=1))
        disk = run_step(DiskStep(), ctx, _disk_inputs(tmp_path, where), tmp_path / where / "disk")
        images.append(disk)
    assert images[0].info == images[1].info
    assert (images[0].path / "image.img").read_bytes() == (
        images[1].path / "image.img"
    ).read_bytes()


@needs_root
def test_whole_chain_twice_gives_identical_bytes(tmp_path: Path) -> None:
    """tree -> rootimage -> verity -> UKI (stand-in stub and kernel) -> esp -> disk."""
    digests = []
    for where in ("a", "b"):
        base = tmp_path / where
        _, verity = verity_of(tmp_path, where)
        rootimage = given("rootimage", base / "rootimage")
        recipe = make_recipe(tmp_path)
        ctx = make_ctx(base, recipe)
        uki_dir = base / "uki"
        uki_dir.mkdir()
        initrd = base / "initrd.img"
        initrd.write_bytes(b"initrd" * 1000)
        kernel = base / "vmlinuz"
        kernel.write_bytes(b"MZkernel" * 1000)
        cmdline = base / "cmdline.txt"
        cmdline.write_text(kernel_command_line(recipe, verity.facts(VerityFacts)))
        osrel = base / "os-release"
        osrel.write_text(os_release(recipe))
        sections = {".osrel": osrel, ".cmdline": cmdline, ".initrd": initrd, ".linux": kernel}
        assemble_uki(
            host_tools(tmp_path / "tools"),
            fake_stub(base / "stub.efi"),
            sections,
            uki_dir / "BOOTX64.EFI",
            EPOCH,
        )
        esp = run_step(EspStep(), ctx, {"uki": given("uki", uki_dir)}, base / "esp")
        inputs = {"esp": esp, "rootimage": rootimage, "verity": verity}
        disk = run_step(DiskStep(), ctx, inputs, base / "disk")
        digests.append((disk.info, sha256_file(disk.path / "image.img")))
    assert digests[0] == digests[1]


# --- real Debian packages -------------------------------------------------------------
# TEMPORARY: these fetch the kernel and stub with `apt-get download` from the machine's
# configured archive; they are to be switched to the locked, fetched .debs.


@pytest.fixture(scope="module")
def real_boot_debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("debs")
    depends = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=True
    ).stdout
    kernel = next(
        line.split(":", 1)[1].strip()
        for line in depends.splitlines()
        if line.strip().startswith("Depends: linux-image-")
    )
    subprocess.run(
        ["apt-get", "download", kernel, "systemd-boot-efi"], cwd=where, check=True,
        capture_output=True,
    )  # fmt: skip
    debs = {}
    for deb in where.glob("*.deb"):
        debs[deb.name.split("_", 1)[0]] = deb
    return debs


@pytest.mark.slow
def test_uki_from_real_debs(tmp_path: Path, real_boot_debs: dict[str, Path]) -> None:
    kernel_name = next(name for name in real_boot_debs if name.startswith("linux-image-"))
    packages = tuple(
        locked(name, sets=("boot",)) for name in sorted([*real_boot_debs, "linux-image-amd64"])
    )
    lock = make_lock(packages)
    recipe = make_recipe(tmp_path)
    verity = verity_info("12" * 32, "34" * 32, 7)
    results = []
    for where in ("a", "b"):
        base = tmp_path / where
        ctx = make_ctx(base, recipe, lock, real_boot_debs)
        initrd = base / "initrd"
        initrd.mkdir(parents=True)
        (initrd / "initrd.img").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(4096))
        kernel_tree = base / "kernel"
        subprocess.run(["dpkg-deb", "-x", real_boot_debs[kernel_name], kernel_tree], check=True)
        (initrd / "vmlinuz").write_bytes(
            next((kernel_tree / "boot").glob("vmlinuz-*")).read_bytes()
        )
        inputs = {
            "verity": given("verity", base, verity),
            "initrd": given("initrd", initrd, initrd_info(kernel_name[12:])),
        }
        options = options_of(UkiStep(), ctx, inputs)
        assert options["kernel"]["name"] == kernel_name
        results.append(run_step(UkiStep(), ctx, inputs, base / "uki"))
    first, second = results
    uki = first.path / "BOOTX64.EFI"
    assert uki.read_bytes() == (second.path / "BOOTX64.EFI").read_bytes()
    assert first.info["sha256"] == sha256_file(uki)
    assert first.info["kernel_version"] == kernel_name.removeprefix("linux-image-")
    cmdline = read_section(uki, ".cmdline").decode()
    assert cmdline == first.info["cmdline"] == (first.path / "cmdline.txt").read_text()
    assert f"boothkey.roothash={'12' * 32}" in cmdline
    vmlinuz = next((tmp_path / "a" / "kernel" / "boot").glob("vmlinuz-*"))
    assert read_section(uki, ".linux") == vmlinuz.read_bytes()
    assert read_section(uki, ".osrel").startswith(b'NAME="boothkey-demo"')
    image = read_pe(uki)
    assert image.timestamp == EPOCH
    objdump = subprocess.run(["objdump", "-h", uki], capture_output=True, text=True, check=True)
    assert ".linux" in objdump.stdout and ".initrd" in objdump.stdout


def fake_deb(where: Path, name: str, files: Mapping[str, bytes]) -> Path:
    """A minimal .deb holding `files` (paths relative to /), built with dpkg-deb."""
    root = where / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@example.org>\n"
        "Description: test package\n"
    )
    for relative, data in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    deb = where / f"{name}_1.0_amd64.deb"
    run_tool(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", root, deb])
    return deb


def _fake_boot_debs(tmp_path: Path) -> dict[str, Path]:
    stub = fake_stub(tmp_path / "stub.efi").read_bytes()
    return {
        "systemd-boot-efi": fake_deb(
            tmp_path, "systemd-boot-efi", {"usr/lib/systemd/boot/efi/linuxx64.efi.stub": stub}
        ),
        "linux-image-9.9.9-1-amd64": fake_deb(
            tmp_path, "linux-image-9.9.9-1-amd64", {"boot/vmlinuz-9.9.9-1-amd64": b"MZ" * 5000}
        ),
    }


def _uki_inputs(
    tmp_path: Path, initrd_kernel: str, kernel: bytes | None = b"MZ" * 5000
) -> dict[str, StepOutput]:
    """Verity and initrd outputs as the steps leave them; the initrd step keeps the
    matching kernel image beside the initrd (`kernel=None`: it did not)."""
    initrd = tmp_path / "initrd"
    initrd.mkdir()
    (initrd / "initrd.img").write_bytes(b"initrd")
    if kernel is not None:
        (initrd / "vmlinuz").write_bytes(kernel)
    return {
        "verity": given("verity", tmp_path, verity_info("ab" * 32, "01", 1)),
        "initrd": given("initrd", initrd, initrd_info(initrd_kernel)),
    }


def test_uki_step_with_stand_in_packages(tmp_path: Path) -> None:
    debs = _fake_boot_debs(tmp_path)
    lock = make_lock(tuple(locked(name) for name in sorted(debs)))
    ctx = make_ctx(tmp_path, make_recipe(tmp_path), lock, debs)
    out = run_step(UkiStep(), ctx, _uki_inputs(tmp_path, "9.9.9-1-amd64"), tmp_path / "uki")
    uki = out.path / "BOOTX64.EFI"
    assert out.info["kernel_version"] == "9.9.9-1-amd64"
    assert read_section(uki, ".linux") == b"MZ" * 5000
    assert read_section(uki, ".initrd") == b"initrd"
    assert read_section(uki, ".cmdline").decode() == out.info["cmdline"]
    assert sorted(p.name for p in out.path.iterdir()) == ["BOOTX64.EFI", "cmdline.txt"]
    assert list(ctx.scratch.iterdir()) == []  # extracted packages are cleaned up


def test_uki_step_needs_the_initrd_steps_kernel_image(tmp_path: Path) -> None:
    debs = _fake_boot_debs(tmp_path)
    lock = make_lock(tuple(locked(name) for name in sorted(debs)))
    ctx = make_ctx(tmp_path, make_recipe(tmp_path), lock, debs)
    with pytest.raises(BuildError, match="the initrd step produced no kernel image"):
        run_step(UkiStep(), ctx, _uki_inputs(tmp_path, "9.9.9-1-amd64", None), tmp_path / "uki")


def test_uki_step_names_a_missing_stub_package(tmp_path: Path) -> None:
    lock = make_lock((locked("linux-image-9.9.9-1-amd64"),))
    ctx = make_ctx(tmp_path, make_recipe(tmp_path), lock)
    inputs = {
        "verity": given(
            "verity", tmp_path, {"root_hash": "ab" * 32, "salt": "01", "data_blocks": 1}
        )
    }
    with pytest.raises(InputError, match="'systemd-boot-efi' is not in the boot set"):
        options_of(UkiStep(), ctx, inputs)
