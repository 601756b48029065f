"""The Unified Kernel Image: systemd's EFI stub + os-release + cmdline + kernel + initrd.

The stub comes from the locked `systemd-boot-efi` package and the kernel from
the locked, versioned `linux-image-*` package, never from the host. Sections
are added with objcopy, laid out one after another from the first page past
the stub's own image (as systemd's ukify does), so a bigger kernel or initrd
can never overlap another section. objcopy writes the clock into the PE
header; `builder.formats.pe.normalise_pe` replaces it with SOURCE_DATE_EPOCH and
recomputes the CheckSum.

The kernel command line carries the dm-verity root hash, so whoever signs the
UKI signs the root filesystem too.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from builder.build.steps.base import BuildContext, DebInput, StepEnv, StepOutput, tools_sandbox
from builder.build.steps.debextract import extract_deb
from builder.build.steps.initrd import KERNEL_IMAGE, InitrdFacts
from builder.build.steps.verity import VerityFacts
from builder.core.canonical import sha256_file
from builder.core.errors import BuildError, InputError
from builder.core.sandbox import Sandbox
from builder.formats.pe import normalise_pe, read_pe
from builder.source.lockfile import Lock, LockedPackage
from builder.source.recipe import Recipe

STUB_PACKAGE = "systemd-boot-efi"
STUB_PATH = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"
PAGE = 4096
# systemd 252's stub reads .linux, .initrd, .cmdline, .osrel, .splash, .dtb, .pcrsig and
# .pcrpkey; boothkey fills these four, laid out in this order. .linux goes last, as
# ukify does, because it is the one most likely to grow.
UKI_SECTIONS = (".osrel", ".cmdline", ".initrd", ".linux")
_VERSIONED_KERNEL_RE = re.compile(r"^linux-image-[0-9]")
_BOOTHKEY_PARAM_RE = re.compile(r"^boothkey\.")


def _round_up(value: int, alignment: int = PAGE) -> int:
    return -(-value // alignment) * alignment


def boot_package(lock: Lock, name: str) -> LockedPackage:
    """The locked package `name` from the lock's "boot" set."""
    for package in lock.packages:
        if package.name == name and "boot" in package.sets:
            return package
    raise InputError(
        f"lock for recipe {lock.recipe_name!r}: package {name!r} is not in the boot set; "
        "add it to boot.packages and run `build.py lock` again"
    )


def kernel_package(lock: Lock) -> LockedPackage:
    """The versioned linux-image-* package (the one that ships /boot/vmlinuz-*)."""
    candidates = [
        package
        for package in lock.packages
        if "boot" in package.sets
        and _VERSIONED_KERNEL_RE.match(package.name)
        and not package.name.endswith("-dbg")
    ]
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates) or "none"
        raise InputError(
            f"lock for recipe {lock.recipe_name!r}: expected exactly one versioned "
            f"linux-image-* package in the boot set, found {names}"
        )
    return candidates[0]


def kernel_command_line(recipe: Recipe, verity: VerityFacts) -> str:
    """recipe.boot.cmdline plus the boothkey.* parameters the initrd reads."""
    for index, argument in enumerate(recipe.boot.cmdline):
        if not argument or any(c.isspace() for c in argument):
            raise InputError(
                f"{recipe.path}: boot.cmdline[{index}]: {argument!r} must be one word "
                "without spaces"
            )
        if _BOOTHKEY_PARAM_RE.match(argument):
            raise InputError(
                f"{recipe.path}: boot.cmdline[{index}]: {argument!r}: boothkey.* parameters "
                "are set by the build"
            )
    generated = [
        f"boothkey.roothash={verity.root_hash}",
        f"boothkey.salt={verity.salt}",
        f"boothkey.datablocks={verity.data_blocks}",
        f"boothkey.fstype={recipe.rootfs.format}",
        f"boothkey.init={recipe.boot.init}",
    ]
    return " ".join([*recipe.boot.cmdline, *generated])


def _os_release_value(value: str) -> str:
    escaped = "".join("\\" + c if c in '"\\`$' else c for c in value)
    return f'"{escaped}"'


def os_release(recipe: Recipe) -> str:
    """The .osrel section: identifies the image to boot menus and to the booted system."""
    fields = [
        ("NAME", f"boothkey-{recipe.name}"),
        ("ID", "boothkey"),
        ("PRETTY_NAME", f"boothkey {recipe.name} {recipe.version}"),
        ("VERSION_ID", recipe.version),
        ("IMAGE_ID", recipe.name),
        ("IMAGE_VERSION", recipe.version),
    ]
    return "".join(f"{key}={_os_release_value(value)}\n" for key, value in fields)


def section_layout(stub: Path, sizes: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """VMAs for new sections: page-aligned, one after another, after the stub's image."""
    image = read_pe(stub)
    if image.is_signed:
        raise BuildError(f"{stub}: the EFI stub is already signed; use the unsigned stub")
    next_rva = _round_up(image.end_of_image)
    layout = []
    for name, size in sizes:
        if image.section(name) is not None:
            raise BuildError(f"{stub}: the stub already has a {name} section")
        layout.append((name, image.image_base + next_rva))
        next_rva = _round_up(next_rva + max(size, 1))
    return layout


def assemble_uki(
    tools: Sandbox,
    stub: Path,
    sections: Mapping[str, Path],
    output: Path,
    timestamp: int,
) -> None:
    """Write `output`: `stub` plus `sections` ({name: file}), header normalised.

    Sections are laid out in UKI_SECTIONS order (others after, sorted).
    """
    order = [n for n in UKI_SECTIONS if n in sections]
    order += sorted(n for n in sections if n not in UKI_SECTIONS)
    layout = section_layout(stub, [(name, sections[name].stat().st_size) for name in order])
    argv: list[str | Path] = ["objcopy"]
    for name, vma in layout:
        argv += [
            "--add-section",
            f"{name}={sections[name]}",
            "--change-section-vma",
            f"{name}={vma:#x}",
        ]
    argv += [stub, output]
    tools.run(argv, binds=[stub, *sections.values()], writable=[output.parent])
    normalise_pe(output, timestamp)


@dataclass(frozen=True)
class UkiOptions:
    kernel: DebInput  # named for the record: its image comes from the initrd step
    stub: DebInput
    cmdline: str
    os_release: str
    sections: tuple[str, ...] = UKI_SECTIONS


@dataclass(frozen=True)
class UkiFacts:
    cmdline: str
    sha256: str
    kernel_version: str


class UkiStep:
    name: ClassVar[str] = "uki"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools", "verity", "initrd")

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> UkiOptions:
        return UkiOptions(
            kernel=DebInput.of(kernel_package(ctx.lock)),
            stub=DebInput.of(boot_package(ctx.lock, STUB_PACKAGE)),
            cmdline=kernel_command_line(ctx.recipe, inputs["verity"].facts(VerityFacts)),
            os_release=os_release(ctx.recipe),
        )

    def run(
        self, options: UkiOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> UkiFacts:
        initrd = inputs["initrd"].path / "initrd.img"
        if not initrd.is_file():
            raise BuildError(f"step uki: the initrd step produced no {initrd}")
        # The initrd step unpacked the kernel package for its modules and keeps the
        # matching kernel image beside the initrd.
        kernel = inputs["initrd"].path / KERNEL_IMAGE
        kernel_version = inputs["initrd"].facts(InitrdFacts).kernel_version
        if not kernel.is_file():
            raise BuildError("step uki: the initrd step produced no kernel image")
        work = Path(tempfile.mkdtemp(prefix="uki-", dir=env.scratch))
        try:
            stub = work / "stub"
            extract_deb(env.deb_path(options.stub.package), stub, members=(f"./{STUB_PATH}",))
            stub_file = stub / STUB_PATH
            if not stub_file.is_file():
                raise InputError(f"{STUB_PACKAGE}: the package ships no /{STUB_PATH}")
            (work / "cmdline.txt").write_text(options.cmdline, encoding="utf-8")
            (work / "os-release").write_text(options.os_release, encoding="utf-8")
            env.report(f"assembling the UKI (kernel {kernel_version})")
            assemble_uki(
                tools_sandbox(env, inputs),
                stub_file,
                {
                    ".osrel": work / "os-release",
                    ".cmdline": work / "cmdline.txt",
                    ".initrd": initrd,
                    ".linux": kernel,
                },
                out / "BOOTX64.EFI",
                env.source_date_epoch,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        (out / "cmdline.txt").write_text(options.cmdline, encoding="utf-8")
        return UkiFacts(options.cmdline, sha256_file(out / "BOOTX64.EFI"), kernel_version)
