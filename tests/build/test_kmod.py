"""Kernel-module load order: synthetic modules (real ELF with .modinfo) and the locked kernel."""

from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.build.steps.debextract import extract_deb
from builder.build.steps.kmod import (
    KernelModules,
    canonical_module_name,
    load_kernel_modules,
    module_dependencies,
    read_modinfo,
    resolve_load_order,
)
from builder.core.errors import BuildError
from builder.source.lockfile import Lock, LockedPackage
from builder.source.recipe import DEFAULT_INITRD_MODULES

KVER = "6.1.0-99-amd64"


@pytest.fixture(scope="module")
def empty_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty ELF64 relocatable object, as a base for fake modules."""
    path = tmp_path_factory.mktemp("elf") / "empty.o"
    subprocess.run(["as", "-o", str(path)], input=b"", check=True)
    return path


def make_module(
    tree: Path,
    base: Path,
    file_name: str,
    *,
    depends: str = "",
    softdep: str | None = None,
    aliases: tuple[str, ...] = (),
    compress: str = "",
    subdir: str = "drivers",
) -> Path:
    """A .ko (optionally .xz/.zst/.gz) whose .modinfo says what the kernel's would."""
    directory = tree / "lib/modules" / KVER / "kernel" / subdir
    directory.mkdir(parents=True, exist_ok=True)
    fields = [f"depends={depends}", "license=GPL"]
    fields += [f"softdep={softdep}"] if softdep is not None else []
    fields += [f"alias={alias}" for alias in aliases]
    info = directory / f"{file_name}.modinfo"
    info.write_bytes(b"".join(field.encode() + b"\0" for field in fields))
    module = directory / f"{file_name}.ko"
    subprocess.run(
        ["objcopy", "--add-section", f".modinfo={info}", str(base), str(module)], check=True
    )
    info.unlink()
    if compress == "xz":
        module.with_name(module.name + ".xz").write_bytes(lzma.compress(module.read_bytes()))
    elif compress == "gz":
        module.with_name(module.name + ".gz").write_bytes(gzip.compress(module.read_bytes()))
    elif compress == "zst":
        subprocess.run(["zstd", "-q", "--rm", str(module)], check=True)
        return module.with_name(module.name + ".zst")
    else:
        return module
    module.unlink()
    return module.with_name(module.name + "." + compress)


@pytest.fixture
def kernel_tree(tmp_path: Path, empty_object: Path) -> Path:
    """A small kernel: a storage stack, a compressed crypto softdep, and built-ins."""
    make_module(tmp_path, empty_object, "usb-common")
    make_module(tmp_path, empty_object, "usbcore", depends="usb-common", compress="xz")
    make_module(tmp_path, empty_object, "xhci-hcd", depends="usbcore")
    make_module(tmp_path, empty_object, "xhci-pci", depends="xhci-hcd,usbcore")
    make_module(tmp_path, empty_object, "usb-storage", depends="usbcore", compress="gz")
    make_module(tmp_path, empty_object, "libcrc32c", softdep="pre: crc32c")
    make_module(tmp_path, empty_object, "crc32c_generic", aliases=("crc32c", "crypto-crc32c"))
    make_module(tmp_path, empty_object, "crc32c-intel", aliases=("crc32c",))
    make_module(tmp_path, empty_object, "erofs", depends="libcrc32c", subdir="fs")
    (tmp_path / "lib/modules" / KVER / "modules.builtin").write_text(
        "kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio_pci.ko\n"
    )
    return tmp_path


def positions(order: tuple[str, ...]) -> dict[str, int]:
    return {name: index for index, name in enumerate(order)}


def test_index_finds_every_compression_and_builtins(kernel_tree: Path) -> None:
    modules = load_kernel_modules(kernel_tree)
    assert modules.kernel_version == KVER
    assert set(modules.files) == {
        "usb_common",
        "usbcore",
        "xhci_hcd",
        "xhci_pci",
        "usb_storage",
        "libcrc32c",
        "crc32c_generic",
        "crc32c_intel",
        "erofs",
    }
    assert modules.builtin == {"ext4", "virtio_pci"}


def test_modinfo_is_read_from_compressed_modules(kernel_tree: Path) -> None:
    modules = load_kernel_modules(kernel_tree)
    assert modules.files["usbcore"].name == "usbcore.ko.xz"
    assert modules.files["usb_storage"].name == "usb-storage.ko.gz"
    assert module_dependencies(modules.files["xhci_pci"]) == (("xhci_hcd", "usbcore"), ())
    assert read_modinfo(modules.files["usbcore"])["depends"] == ["usb-common"]
    assert module_dependencies(modules.files["usb_storage"]) == (("usbcore",), ())


def test_zstd_compressed_module_is_indexed_but_reading_it_is_refused(
    kernel_tree: Path, empty_object: Path
) -> None:
    # Python 3.11 cannot decompress zstd, and no host zstd may touch the image's bytes.
    make_module(kernel_tree, empty_object, "zmod", compress="zst")
    modules = load_kernel_modules(kernel_tree)
    assert modules.files["zmod"].name == "zmod.ko.zst"
    with pytest.raises(BuildError, match=r"zmod\.ko\.zst: zstd-compressed kernel modules"):
        read_modinfo(modules.files["zmod"])


def test_every_module_follows_its_dependencies(kernel_tree: Path) -> None:
    modules = load_kernel_modules(kernel_tree)
    closure = resolve_load_order(modules, ["xhci-pci", "usb_storage"])
    at = positions(closure.order)
    assert set(closure.order) == {"usb_common", "usbcore", "xhci_hcd", "xhci_pci", "usb_storage"}
    assert at["usb_common"] < at["usbcore"] < at["xhci_hcd"] < at["xhci_pci"]
    assert at["usbcore"] < at["usb_storage"]
    assert closure.skipped == ()
    assert set(closure.files) == set(closure.order)


def test_order_is_deterministic(kernel_tree: Path) -> None:
    modules = load_kernel_modules(kernel_tree)
    first = resolve_load_order(modules, ["erofs", "usb-storage", "xhci_pci"])
    again = resolve_load_order(
        load_kernel_modules(kernel_tree), ["erofs", "usb-storage", "xhci_pci"]
    )
    assert first.order == again.order


def test_softdep_alias_resolves_to_the_generic_driver_first(kernel_tree: Path) -> None:
    closure = resolve_load_order(load_kernel_modules(kernel_tree), ["erofs"])
    assert closure.order == ("crc32c_generic", "libcrc32c", "erofs")


def test_builtin_and_absent_modules_are_skipped_with_a_reason(kernel_tree: Path) -> None:
    closure = resolve_load_order(load_kernel_modules(kernel_tree), ["ext4", "virtio-pci", "nosuch"])
    assert closure.order == ()
    reasons = dict(closure.skipped)
    assert reasons["ext4"] == "built into the kernel"
    assert reasons["virtio-pci"] == "built into the kernel"
    assert "not shipped" in reasons["nosuch"]


def test_missing_hard_dependency_is_a_build_error(kernel_tree: Path, empty_object: Path) -> None:
    make_module(kernel_tree, empty_object, "broken", depends="ghost")
    with pytest.raises(BuildError, match="broken depends on ghost"):
        resolve_load_order(load_kernel_modules(kernel_tree), ["broken"])


def test_dependency_cycle_is_a_build_error(kernel_tree: Path, empty_object: Path) -> None:
    make_module(kernel_tree, empty_object, "chicken", depends="egg")
    make_module(kernel_tree, empty_object, "egg", depends="chicken")
    with pytest.raises(BuildError, match="cycle"):
        resolve_load_order(load_kernel_modules(kernel_tree), ["chicken"])


def test_tree_without_exactly_one_kernel_is_refused(tmp_path: Path, kernel_tree: Path) -> None:
    with pytest.raises(BuildError, match="found: none"):
        load_kernel_modules(tmp_path / "empty")
    shutil.copytree(kernel_tree / "lib/modules" / KVER, kernel_tree / "lib/modules/6.1.0-1-amd64")
    with pytest.raises(BuildError, match="exactly one kernel"):
        load_kernel_modules(kernel_tree)
    assert load_kernel_modules(kernel_tree, KVER).kernel_version == KVER


def test_canonical_names() -> None:
    assert canonical_module_name("usb-storage") == canonical_module_name("usb_storage")


@pytest.mark.slow
def test_default_initrd_modules_resolve_on_the_locked_kernel(
    tmp_path: Path, hello_boot_debs: tuple[Lock, Callable[[LockedPackage], Path]]
) -> None:
    lock, deb_path = hello_boot_debs
    kernel_package = next(
        p for p in lock.in_set("boot") if p.name.startswith("linux-image-") and p.name[12].isdigit()
    )
    extract_deb(deb_path(kernel_package), tmp_path)
    modules: KernelModules = load_kernel_modules(tmp_path)
    closure = resolve_load_order(modules, DEFAULT_INITRD_MODULES)
    assert closure.skipped == ()
    at = positions(closure.order)
    assert at["dm_mod"] < at["dm_bufio"] < at["dm_verity"]
    assert at["usbcore"] < at["xhci_hcd"] < at["xhci_pci"] < at["usb_storage"]
    assert at["virtio_pci"] < at["virtio_blk"]
    # erofs needs libcrc32c, which needs the "crc32c" crypto driver loaded first.
    assert at["crc32c_generic"] < at["libcrc32c"] < at["erofs"]
    assert at["scsi_mod"] < at["sd_mod"]
