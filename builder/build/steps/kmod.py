"""Kernel-module closure and load order, read from the locked kernel's own .ko files.

The initrd loads modules with busybox `insmod`, which resolves nothing, so
boothkey computes the order here: every module after the modules it
`depends=` on and after its `softdep=pre:` modules, as `modinfo` reports them
from each module's `.modinfo` section. Modules the kernel has built in
(`modules.builtin`) need no loading and are skipped.
"""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.build.steps.elfdeps import read_section
from builder.core.errors import BuildError

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
_MODULE_DIRS = ("lib/modules", "usr/lib/modules")


def canonical_module_name(name: str) -> str:
    """The kernel's own spelling: `usb-storage` and `usb_storage` are the same module."""
    return name.replace("-", "_")


@dataclass(frozen=True)
class KernelModules:
    """The modules shipped for one kernel version inside an extracted tree."""

    kernel_version: str
    directory: Path  # .../lib/modules/<kernel_version>
    files: Mapping[str, Path]  # canonical module name -> .ko file
    builtin: frozenset[str]  # canonical names of modules built into the kernel image


@dataclass(frozen=True)
class ModuleClosure:
    """Modules to load, in an order where each follows everything it needs."""

    order: tuple[str, ...]  # canonical names
    files: Mapping[str, Path]  # canonical name -> .ko file, for every name in `order`
    skipped: tuple[tuple[str, str], ...]  # (requested name, reason) for modules not loaded


def find_kernel_versions(tree: Path) -> tuple[str, ...]:
    """Kernel versions with a module directory inside an extracted tree, sorted."""
    versions: set[str] = set()
    for sub in _MODULE_DIRS:
        base = tree / sub
        if base.is_dir() and not base.is_symlink():
            versions.update(entry.name for entry in base.iterdir() if (entry / "kernel").is_dir())
    return tuple(sorted(versions))


def load_kernel_modules(tree: Path, kernel_version: str | None = None) -> KernelModules:
    """Index the modules of the (only, or the named) kernel inside `tree`."""
    versions = find_kernel_versions(tree)
    if kernel_version is None:
        if len(versions) != 1:
            found = ", ".join(versions) or "none"
            raise BuildError(f"{tree}: expected exactly one kernel's modules, found: {found}")
        kernel_version = versions[0]
    elif kernel_version not in versions:
        raise BuildError(f"{tree}: no modules for kernel {kernel_version}")
    directory = next(
        tree / sub / kernel_version
        for sub in _MODULE_DIRS
        if (tree / sub / kernel_version / "kernel").is_dir()
    )
    files: dict[str, Path] = {}
    for path in sorted((directory / "kernel").rglob("*.ko*")):
        stem = _module_stem(path.name)
        if stem is not None and path.is_file():
            files.setdefault(canonical_module_name(stem), path)
    builtin: set[str] = set()
    builtin_list = directory / "modules.builtin"
    if builtin_list.is_file():
        for line in builtin_list.read_text().splitlines():
            stem = _module_stem(line.rsplit("/", 1)[-1].strip())
            if stem:
                builtin.add(canonical_module_name(stem))
    return KernelModules(kernel_version, directory, files, frozenset(builtin))


def _module_stem(filename: str) -> str | None:
    for suffix in MODULE_SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


def read_module(path: Path) -> bytes:
    """The uncompressed ELF bytes of a .ko, .ko.xz, .ko.zst or .ko.gz file."""
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(path.read_bytes())
    if path.name.endswith(".ko.zst"):
        # Python 3.11 has no zstd module, and no host tool may touch the image's bytes.
        raise BuildError(
            f"{path.name}: zstd-compressed kernel modules are not supported; use a kernel "
            "whose modules are uncompressed, xz or gzip (as Debian's are)"
        )
    return path.read_bytes()


def read_modinfo(path: Path) -> dict[str, list[str]]:
    """The `.modinfo` key=value pairs of a module (keys may repeat, e.g. `alias`)."""
    section = read_section(read_module(path), ".modinfo", str(path))
    info: dict[str, list[str]] = {}
    for item in (section or b"").split(b"\0"):
        if b"=" in item:
            key, value = item.decode("utf-8", errors="replace").split("=", 1)
            info.setdefault(key, []).append(value)
    return info


def module_dependencies(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(hard dependencies, soft pre-dependencies) of a module, canonical names."""
    info = read_modinfo(path)
    depends = [
        canonical_module_name(name)
        for value in info.get("depends", [])
        for name in value.split(",")
        if name
    ]
    pre: list[str] = []
    for value in info.get("softdep", []):
        # Format: "pre: a b post: c" (either part optional).
        section = ""
        for word in value.split():
            if word.endswith(":"):
                section = word[:-1]
            elif section == "pre":
                pre.append(canonical_module_name(word))
    return tuple(depends), tuple(pre)


def resolve_load_order(modules: KernelModules, requested: Iterable[str]) -> ModuleClosure:
    """The closure of `requested` over depends= and softdep pre:, in a valid load order.

    The order is deterministic: requested modules are visited in the order
    given, dependencies depth-first in the order the module lists them.
    Requested modules that are built in or absent are skipped (and reported);
    a missing hard dependency is a broken kernel package and raises `BuildError`.
    A soft dependency may name an alias rather than a module (libcrc32c's
    `pre: crc32c` means the crypto driver "crc32c"); it resolves to the
    module `<alias>_generic`, or else to every `<alias>_*` module declaring
    that alias. Soft dependencies that resolve to nothing are ignored, as
    modprobe does.
    """
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"
    skipped: list[tuple[str, str]] = []

    def visit(name: str, required_by: str | None, soft: bool) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            if soft:
                return  # a softdep cycle; the hard order still holds
            raise BuildError(f"kernel {modules.kernel_version}: module dependency cycle at {name}")
        if name not in modules.files:
            if soft:
                for provider in _alias_providers(modules, name):
                    visit(provider, required_by, soft=True)
                return
            if name in modules.builtin:
                return
            raise BuildError(
                f"kernel {modules.kernel_version}: module {required_by} depends on {name}, "
                "which the kernel package does not ship"
            )
        state[name] = "visiting"
        depends, pre = module_dependencies(modules.files[name])
        for dependency in pre:
            visit(dependency, name, soft=True)
        for dependency in depends:
            visit(dependency, name, soft=False)
        state[name] = "done"
        order.append(name)

    for raw in requested:
        name = canonical_module_name(raw)
        if name in modules.files:
            visit(name, None, soft=False)
        elif name in modules.builtin:
            skipped.append((raw, "built into the kernel"))
        else:
            skipped.append((raw, f"not shipped by kernel {modules.kernel_version}"))
    files = {name: modules.files[name] for name in order}
    return ModuleClosure(tuple(order), files, tuple(skipped))


def _alias_providers(modules: KernelModules, alias: str) -> tuple[str, ...]:
    """Modules that provide a crypto-style alias, found by the kernel's naming convention.

    Reading every module's .modinfo to build a full alias index would cost
    seconds per build; crypto drivers are named `<alias>_<implementation>`.
    """
    candidates = sorted(name for name in modules.files if name.startswith(f"{alias}_"))
    providers = [
        name for name in candidates if alias in read_modinfo(modules.files[name]).get("alias", [])
    ]
    generic = f"{alias}_generic"
    return (generic,) if generic in providers else tuple(providers)
