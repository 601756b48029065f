"""The "initrd" step: boothkey's own small initrd, made only from locked packages.

It holds busybox (busybox-static), dmsetup with its libraries and dynamic
loader, the closure of `recipe.boot.initrd_modules` from the locked kernel
(decompressed, loaded in dependency order), and `/init` (builder/build/steps/initrd_init.sh),
which verifies and mounts the root. The archive is cpio "newc" with sorted
names, owner 0:0 and every mtime at SOURCE_DATE_EPOCH, written by boothkey
itself (builder/formats/cpio.py), compressed with the tools tree's zstd (which Debian's
kernel unpacks), so the same inputs give the same bytes on any host.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from builder.build.steps.base import (
    BuildContext,
    DebInput,
    StepEnv,
    StepOutput,
    deb_inputs,
    tools_sandbox,
)
from builder.build.steps.debextract import extract_deb
from builder.build.steps.elfdeps import library_closure, resolve_in_tree
from builder.build.steps.kmod import load_kernel_modules, read_module, resolve_load_order
from builder.core.canonical import sha256_bytes, sha256_file
from builder.core.errors import BuildError
from builder.core.fsutil import write_atomic
from builder.core.sandbox import Sandbox
from builder.formats.cpio import newc_archive

INIT_SCRIPT = Path(__file__).resolve().with_name("initrd_init.sh")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
DMSETUP_PATHS = ("/sbin/dmsetup", "/usr/sbin/dmsetup")
MODULE_DIR = "lib/modules/boothkey"
# The step's second output: the kernel image matching the initrd's modules.
KERNEL_IMAGE = "vmlinuz"
# Directories /init mounts on or needs before busybox installs its applets.
SKELETON_DIRS = ("bin", "dev", "lib/modules/boothkey", "newroot", "proc", "run", "sys")
ZSTD_LEVEL = 19


@dataclass(frozen=True)
class InitrdOptions:
    packages: tuple[DebInput, ...]  # the lock's boot set, unpacked in this order
    modules: tuple[str, ...]
    init_sha256: str  # initrd_init.sh (boothkey's own source, also in every id)
    compression: str = f"zstd-{ZSTD_LEVEL}"


@dataclass(frozen=True)
class SkippedModule:
    name: str
    reason: str


@dataclass(frozen=True)
class InitrdFacts:
    kernel_version: str
    modules: tuple[str, ...]
    skipped_modules: tuple[SkippedModule, ...]
    sha256: str
    size: int


class InitrdStep:
    name: ClassVar[str] = "initrd"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools",)

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> InitrdOptions:
        packages = deb_inputs(ctx.lock.in_set("boot"))
        if not packages:
            raise BuildError(f"{ctx.lock.recipe_name}: the lock has no packages in the boot set")
        return InitrdOptions(
            packages=packages,
            modules=tuple(ctx.recipe.boot.initrd_modules),
            init_sha256=sha256_file(INIT_SCRIPT),
        )

    def run(
        self, options: InitrdOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> InitrdFacts:
        env.scratch.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="initrd-", dir=env.scratch))
        try:
            staging = work / "packages"
            for package in options.packages:
                extract_deb(env.deb_path(package.package), staging)
            image = work / "initrd"
            contents = assemble_initrd_tree(staging, image, options.modules)
            data = pack_initrd(tools_sandbox(env, inputs), image, env.source_date_epoch)
            # The kernel these modules belong to, for the UKI: one unpacking of the
            # kernel package serves both, so they cannot disagree.
            copy_kernel_image(staging, contents.kernel_version, out / KERNEL_IMAGE)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        write_atomic(out / "initrd.img", data)
        for name, reason in contents.skipped_modules:
            env.report(f"initrd: module {name} skipped: {reason}")
        return InitrdFacts(
            kernel_version=contents.kernel_version,
            modules=tuple(contents.modules),
            skipped_modules=tuple(SkippedModule(n, r) for n, r in contents.skipped_modules),
            sha256=sha256_bytes(data),
            size=len(data),
        )


def copy_kernel_image(staging: Path, kernel_version: str, target: Path) -> None:
    """Copy /boot/vmlinuz-KERNEL_VERSION from the unpacked boot packages to `target`."""
    found = staging / "boot" / f"vmlinuz-{kernel_version}"
    if not found.is_file():
        raise BuildError(
            f"the kernel package ships modules for {kernel_version} but no /boot/vmlinuz-"
            f"{kernel_version}"
        )
    shutil.copyfile(found, target)
    target.chmod(0o644)


@dataclass(frozen=True)
class InitrdContents:
    kernel_version: str
    modules: tuple[str, ...]  # load order, canonical names
    skipped_modules: tuple[tuple[str, str], ...]  # (requested name, reason)


def assemble_initrd_tree(staging: Path, image: Path, modules: tuple[str, ...]) -> InitrdContents:
    """Lay out the initrd's files under `image` from the boot packages extracted in `staging`."""
    for directory in SKELETON_DIRS:
        (image / directory).mkdir(parents=True, exist_ok=True)
    busybox = _first_existing(staging, BUSYBOX_PATHS, "busybox (package busybox-static)")
    dmsetup = _first_existing(staging, DMSETUP_PATHS, "dmsetup (package dmsetup)")
    if library_closure(staging, busybox):
        raise BuildError(f"{busybox} in the boot packages is not static; use busybox-static")
    _copy_file(staging, busybox, image / "bin/busybox", 0o755)
    _copy_file(staging, dmsetup, image / "bin/dmsetup", 0o755)
    for library in library_closure(staging, dmsetup):
        _copy_file(staging, library, image / library.lstrip("/"), 0o755)
    kernel = load_kernel_modules(staging)
    _check_kernel_config(staging, kernel.kernel_version)
    closure = resolve_load_order(kernel, modules)
    for name in closure.order:
        target = image / MODULE_DIR / f"{name}.ko"
        target.write_bytes(read_module(closure.files[name]))
        target.chmod(0o644)
    order_file = image / MODULE_DIR / "load-order"
    order_file.write_text("".join(f"{name}\n" for name in closure.order))
    order_file.chmod(0o644)
    init = image / "init"
    shutil.copyfile(INIT_SCRIPT, init)
    init.chmod(0o755)
    return InitrdContents(kernel.kernel_version, closure.order, closure.skipped)


def pack_initrd(tools: Sandbox, image: Path, source_date_epoch: int) -> bytes:
    """cpio newc (sorted, 0:0, mtimes = epoch) of `image`, zstd-compressed; deterministic."""
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(image):
        dirnames.sort()
        for entry in (*dirnames, *filenames):
            full = Path(dirpath) / entry
            names.append(full.relative_to(image).as_posix())
            if full.is_dir() and not full.is_symlink():
                full.chmod(0o755)
    for name in names:
        os.utime(image / name, (source_date_epoch, source_date_epoch), follow_symlinks=False)
    os.utime(image, (source_date_epoch, source_date_epoch))
    archive = newc_archive(image, sorted(names, key=lambda n: n.encode()))
    # One thread: zstd's multi-threaded framing may depend on the core count.
    return tools.run(["zstd", f"-{ZSTD_LEVEL}", "-T1", "-q", "-c"], stdin=archive).stdout


def _check_kernel_config(staging: Path, kernel_version: str) -> None:
    """Refuse a kernel that could not unpack a zstd initrd (its /boot/config says so)."""
    config = staging / "boot" / f"config-{kernel_version}"
    if not config.is_file():
        return  # a kernel package without its config; the boot test is the judge then
    if "CONFIG_RD_ZSTD=y" not in config.read_text(errors="replace").splitlines():
        raise BuildError(
            f"kernel {kernel_version} cannot unpack a zstd-compressed initrd (CONFIG_RD_ZSTD "
            "is not set in its /boot/config); choose another kernel package"
        )


def _first_existing(staging: Path, candidates: tuple[str, ...], what: str) -> str:
    for candidate in candidates:
        if resolve_in_tree(staging, candidate) is not None:
            return candidate
    raise BuildError(f"{what} not found in the boot packages (looked for {', '.join(candidates)})")


def _copy_file(staging: Path, source: str, target: Path, mode: int) -> None:
    real = resolve_in_tree(staging, source)
    if real is None:
        raise BuildError(f"{source} not found in the boot packages")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(staging / real.lstrip("/"), target)
    target.chmod(mode)
