"""The recipe: a YAML file parsed once, at the edge, into frozen typed objects.

Every problem is reported with the file and the path inside it
(`recipes/booth.yaml: packages[3]: ...`), all at once; unknown keys are errors.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.core.canonical import sha256_json
from builder.core.errors import InputError, ValidationErrors
from builder.core.jsonfields import FieldReader, kind_of
from builder.core.safeload import decode_utf8, load_yaml, read_limited
from builder.core.text import contact_problem, licence_problem, text_problem
from builder.trust.pkcs11_uri import SCHEME, parse_token_uri

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
ROOTFS_FORMATS = ("squashfs", "erofs")
COMPRESSIONS = {"squashfs": ("zstd", "xz", "gzip", "lz4", "lzo"), "erofs": ("lz4", "lz4hc", "none")}
# mmdebstrap variants whose package set boothkey can lock exactly:
# essential = Essential:yes closure + packages; extract/custom = packages' closure only.
VARIANTS = ("essential", "extract", "custom")
# Compressors whose level can be chosen, with the range the tool accepts.
COMPRESSION_LEVELS = {
    ("squashfs", "zstd"): (1, 22),
    ("squashfs", "gzip"): (1, 9),
    ("erofs", "lz4hc"): (0, 12),
}
# Packages the boot step extracts (never installs): the UKI stub, and the initrd's tools.
DEFAULT_BOOT_PACKAGES = ("systemd-boot-efi", "busybox-static", "dmsetup")
DEFAULT_INITRD_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "xhci_pci",
    "xhci_hcd",
    "ehci_pci",
    # Older machines' USB 1.1 controllers (keyboards on some booth PCs).
    "ohci_pci",
    "uhci_hcd",
    "usb_storage",
    "uas",
    "sd_mod",
    "squashfs",
    "erofs",
    "overlay",
    "dm_verity",
    "usbhid",
    "hid_generic",
    # USB printers (/dev/usb/lp0) for the ballot: nothing loads modules after the initrd.
    "usblp",
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]+$")
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The kernel command line is the recipe's boot.cmdline, then the parameters the build
# writes; the UKI's signature covers all of it. A recipe word is one kernel parameter,
# NAME or NAME=VALUE, read the same way by the kernel, the initrd's shell and the booth:
# printable ASCII without spaces or '"' (the kernel's quoting, which the others ignore).
_CMDLINE_WORD_RE = re.compile(r"^[!#-~]+\Z")
# Lower case: the kernel hands a NAME=VALUE it does not know to init as an environment
# variable (LD_PRELOAD=..., PATH=...) and a word starting with '-' (`--`, `-s`) to init
# as an argument; kernel parameters themselves are lower case (`8250.nr_uarts`).
_CMDLINE_NAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]*\Z")
# Parameters that decide what runs, so only the build may set them: a name, or a prefix
# ending in ".". Compared with '-' read as '_', as the kernel does.
CMDLINE_REFUSED = {
    "boothkey.": "boothkey.* parameters are the build's (the initrd and the booth obey them)",
    # what the kernel starts, and from where
    "init": "the program the kernel starts is boot.init",
    "rdinit": "the initrd's program is boothkey's",
    "initrd": "the initrd is the one built into the UKI",
    "noinitrd": "the initrd verifies the root file system",
    "root": "the initrd finds and verifies the root file system",
    "rootfstype": "the initrd finds and verifies the root file system",
    "rootflags": "the initrd finds and verifies the root file system",
    "dm_mod.create": "the initrd sets up the device mapper",
    # run programs, or change which ones run
    "sysctl.": "sysctl settings can make the kernel run programs (kernel.core_pattern, ...)",
    "systemd.": "systemd.* parameters choose what systemd runs",
    # words init takes as a runlevel (a single-user shell)
    "single": "init would start a single-user shell",
    "s": "init would start a single-user shell",
    "emergency": "init would start an emergency shell",
    "rescue": "init would start a rescue shell",
}
# x86's COMMAND_LINE_SIZE, with its terminating NUL.
MAX_COMMAND_LINE = 2047
# The longest the build's parameters get (see builder/build/steps/uki.py).
_BUILD_PARAMETERS_MAX = len(
    f"boothkey.roothash={'0' * 64} boothkey.salt={'0' * 64} "
    f"boothkey.datablocks={2**64} boothkey.fstype={max(ROOTFS_FORMATS, key=len)} "
    "boothkey.init="
)
# boot.init: one absolute, normalised path; spelled so that it stays one word.
_INIT_PATH_RE = re.compile(r"^(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)+\Z")


@dataclass(frozen=True)
class Distribution:
    """The Debian archive a recipe is locked against.

    `updates` are extra suites (e.g. `bookworm-updates`, `bookworm-security`) whose
    packages join the base suite's: for each name the highest version wins, as apt
    does with default pins. Every suite is verified with the same `keyring`.
    """

    suite: str
    architecture: str
    components: tuple[str, ...]
    keyring: Path
    updates: tuple[str, ...] = ()

    @property
    def suites(self) -> tuple[str, ...]:
        """The base suite, then the update suites in recipe order."""
        return (self.suite, *self.updates)


@dataclass(frozen=True)
class FileRule:
    """Mode and owner for one path (or a glob) inside the root filesystem after overlays."""

    path: str
    mode: int | None
    owner: int
    group: int


@dataclass(frozen=True)
class RootfsOptions:
    format: str = "squashfs"
    compression: str = "zstd"
    variant: str = "essential"
    compression_level: int | None = None  # None: the tool's default


@dataclass(frozen=True)
class BootOptions:
    cmdline: tuple[str, ...] = ()
    initrd_modules: tuple[str, ...] = DEFAULT_INITRD_MODULES
    packages: tuple[str, ...] = DEFAULT_BOOT_PACKAGES
    init: str = "/sbin/init"


@dataclass(frozen=True)
class DataPartition:
    """A fixed-size partition for per-station data, zero-filled in the software image."""

    size_mib: int


@dataclass(frozen=True)
class SecureBootOptions:
    """The UKI's signing key: a PEM file (`key`), or an RSA key on a PKCS#11 token
    (`token`, an RFC 7512 URI, and then `key` is None); and its certificate."""

    key: Path | None
    certificate: Path
    token: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. Paths are absolute (resolved against the recipe's directory's
    project root: the directory holding `recipes/`)."""

    path: Path
    name: str
    version: str
    distribution: Distribution
    kernel: str
    packages: tuple[str, ...]
    overlays: tuple[Path, ...]
    variables: Mapping[str, Any]
    files: tuple[FileRule, ...]
    rootfs: RootfsOptions
    boot: BootOptions
    source_date_epoch: int | None
    secure_boot: SecureBootOptions | None = None
    data_partition: DataPartition | None = None
    # Who publishes the image (an election authority), named as the image's supplier
    # in the SBOM; None: not said.
    supplier: str | None = None
    # How to reach the supplier (an e-mail address or an http(s) URL), written beside
    # its name in the SBOM; None: not said.
    supplier_contact: str | None = None
    # The licence (SPDX expression) and copyright of what the recipe itself adds (its
    # overlays): the image's own entries in the SBOMs.
    licence: str | None = None
    copyright: str | None = None
    project_dir: Path = field(default=Path("."))

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f"{self.name}.lock.json")

    def package_set_inputs(self) -> dict[str, Any]:
        """The recipe fields that decide which packages get locked."""
        return {
            "suite": self.distribution.suite,
            "updates": list(self.distribution.updates),
            "architecture": self.distribution.architecture,
            "components": list(self.distribution.components),
            "variant": self.rootfs.variant,
            "packages": list(self.packages),
            "kernel": self.kernel,
            "boot_packages": list(self.boot.packages),
        }

    def package_set_digest(self) -> str:
        return "sha256:" + sha256_json(self.package_set_inputs())

    def rootfs_roots(self) -> tuple[str, ...]:
        """Packages the root filesystem installs explicitly (mmdebstrap --include)."""
        return self.packages

    def boot_roots(self) -> tuple[str, ...]:
        """Packages the boot step extracts: the kernel and the boot tools."""
        return (self.kernel, *self.boot.packages)


def _project_dir(recipe_path: Path) -> Path:
    parent = recipe_path.parent
    return parent.parent if parent.name == "recipes" else parent


def load_recipe(path: Path | str) -> Recipe:
    """Read and validate a recipe file; raise `InputError` naming every problem."""
    recipe_path = Path(path).absolute()
    shown = str(path)
    try:
        data = read_limited(recipe_path)
    except OSError as exc:
        raise InputError(f"{shown}: cannot read recipe: {exc.strerror}") from exc
    raw = load_yaml(decode_utf8(data, shown), shown)
    return parse_recipe(raw, recipe_path, shown)


def parse_recipe(raw: Any, recipe_path: Path, shown: str) -> Recipe:
    reader = FieldReader(shown)
    project = _project_dir(recipe_path)
    top = reader.mapping(
        raw,
        "",
        {
            "name": True,
            "version": True,
            "distribution": True,
            "kernel": False,
            "packages": True,
            "overlays": False,
            "variables": False,
            "files": False,
            "rootfs": False,
            "boot": False,
            "source_date_epoch": False,
            "secure_boot": False,
            "data_partition": False,
            "supplier": False,
            "supplier_contact": False,
            "licence": False,
            "copyright": False,
        },
    )
    if not isinstance(raw, dict):
        # Nothing below the top level can be read; naming its keys as missing would mislead.
        raise ValidationErrors(reader.problems)
    name = reader.string(top.get("name"), "name", _NAME_RE) if "name" in top else ""
    version = ""
    if "version" in top:
        version_raw = top["version"]
        if isinstance(version_raw, int | float) and not isinstance(version_raw, bool):
            reader.error("version", f'write the version as a quoted string, e.g. "{version_raw}"')
        else:
            version = reader.string(version_raw, "version")

    distribution = _distribution(reader, top.get("distribution", {}), project)
    kernel = reader.string(top.get("kernel", "linux-image-amd64"), "kernel", _PACKAGE_RE)
    packages = reader.string_list(top.get("packages", []), "packages", _PACKAGE_RE)
    overlays = _overlays(reader, top.get("overlays", []), project)
    variables = _variables(reader, top.get("variables", {}))
    files = _files(reader, top.get("files", []))
    rootfs = _rootfs(reader, top.get("rootfs", {}))
    boot = _boot(reader, top.get("boot", {}))
    if boot.init:
        length = len(" ".join(boot.cmdline)) + 1 + _BUILD_PARAMETERS_MAX + len(boot.init)
        if length > MAX_COMMAND_LINE:
            reader.error(
                "boot.cmdline",
                f"with the build's parameters the kernel command line could reach {length} "
                f"bytes; the kernel keeps {MAX_COMMAND_LINE}",
            )
    epoch = top.get("source_date_epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        reader.error("source_date_epoch", f"expected a non-negative integer, got {kind_of(epoch)}")
        epoch = None
    secure_boot = None
    if "secure_boot" in top:
        sb = reader.mapping(top["secure_boot"], "secure_boot", {"key": True, "certificate": True})
        if "key" in sb and "certificate" in sb:
            key = reader.string(sb["key"], "secure_boot.key")
            token = None
            if key.startswith(SCHEME):
                try:
                    token = parse_token_uri(key).text
                except InputError as exc:
                    reader.error("secure_boot.key", exc.message)
            secure_boot = SecureBootOptions(
                # The private key may be absent: an observer rebuilds with the published
                # signature instead (see builder/build/steps/sbsign.py), so it is checked when used.
                key=None if key.startswith(SCHEME) else (project / key).resolve(),
                certificate=_existing_file(
                    reader, sb["certificate"], "secure_boot.certificate", project
                ),
                token=token,
            )

    data_partition = None
    if "data_partition" in top:
        dp = reader.mapping(top["data_partition"], "data_partition", {"size_mib": True})
        size = dp.get("size_mib")
        if "size_mib" in dp:
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1024:
                reader.error("data_partition.size_mib", f"expected 1..1024 MiB, got {size!r}")
            else:
                data_partition = DataPartition(size)

    supplier = None
    if "supplier" in top:
        supplier = reader.string(top["supplier"], "supplier") or None
        if supplier is not None:
            # Shown to people: the election-text rule, and no parentheses (SPDX keeps
            # them for a contact address).
            problem = text_problem(supplier)
            if problem is None and ("(" in supplier or ")" in supplier):
                problem = "has a parenthesis"
            if problem is not None:
                reader.error("supplier", f"{supplier!r} {problem}")
                supplier = None

    contact = None
    if "supplier_contact" in top:
        contact = reader.string(top["supplier_contact"], "supplier_contact") or None
        problem = None if contact is None else contact_problem(contact)
        if problem is None and contact is not None and supplier is None:
            problem = "is given without a supplier"
        if problem is not None:
            reader.error("supplier_contact", f"{contact!r} {problem}")
            contact = None

    licence = None
    if "licence" in top:
        licence = reader.string(top["licence"], "licence") or None
        problem = None if licence is None else licence_problem(licence)
        if problem is not None:
            reader.error("licence", f"{licence!r} {problem}")
            licence = None
    notice = None
    if "copyright" in top:
        notice = reader.string(top["copyright"], "copyright") or None
        problem = None if notice is None else text_problem(notice)
        if problem is not None:
            reader.error("copyright", f"{notice!r} {problem}")
            notice = None

    if reader.problems:
        raise ValidationErrors(reader.problems)
    return Recipe(
        path=recipe_path,
        name=name,
        version=version,
        distribution=distribution,
        kernel=kernel,
        packages=packages,
        overlays=tuple(overlays),
        variables=variables,
        files=files,
        rootfs=rootfs,
        boot=boot,
        source_date_epoch=epoch,
        secure_boot=secure_boot,
        data_partition=data_partition,
        supplier=supplier,
        supplier_contact=contact,
        licence=licence,
        copyright=notice,
        project_dir=project,
    )


def _overlays(reader: FieldReader, raw: Any, project: Path) -> tuple[Path, ...]:
    """Overlay directories inside the project (for a source bundle: inside the bundle),
    as `project`/their real path relative to it: nothing of the host outside the project
    may go into an image, not even through a symlink."""
    real_project = project.resolve()
    overlays: list[Path] = []
    for index, entry in enumerate(reader.string_list(raw, "overlays")):
        if not entry:
            continue
        where = f"overlays[{index}]"
        if entry.startswith("/"):
            reader.error(where, f"{entry!r} must be a path relative to the project {project}")
            continue
        directory = (project / entry).resolve()
        if not directory.is_relative_to(real_project):
            reader.error(where, f"{entry!r} leads outside the project {project}; refused")
        elif directory == real_project:
            reader.error(where, f"{entry!r} is the whole project; name a directory inside it")
        elif not directory.is_dir():
            reader.error(where, f"no such directory {entry!r} (relative to {project})")
        else:
            overlays.append(project / directory.relative_to(real_project))
    return tuple(overlays)


def _existing_file(reader: FieldReader, value: Any, where: str, project: Path) -> Path:
    text = reader.string(value, where)
    candidate = (project / text).resolve() if text else project
    if text and not candidate.is_file():
        reader.error(where, f"no such file {text!r} (relative to {project})")
    return candidate


def _distribution(reader: FieldReader, raw: Any, project: Path) -> Distribution:
    where = "distribution"
    dist = reader.mapping(
        raw,
        where,
        {
            "suite": True,
            "updates": False,
            "architecture": False,
            "components": False,
            "keyring": False,
        },
    )
    suite = reader.string(dist.get("suite"), f"{where}.suite", _NAME_RE) if "suite" in dist else ""
    updates = reader.string_list(dist.get("updates", []), f"{where}.updates", _NAME_RE)
    for index, extra in enumerate(updates):
        if extra and extra == suite:
            reader.error(f"{where}.updates[{index}]", f"{extra!r} is already the base suite")
    architecture = reader.choice(
        dist.get("architecture", "amd64"), f"{where}.architecture", ("amd64",)
    )
    components = reader.string_list(
        dist.get("components", ["main"]), f"{where}.components", _NAME_RE
    )
    if not components and isinstance(dist.get("components"), list):
        reader.error(f"{where}.components", "needs at least one component")
    keyring = DEFAULT_KEYRING
    if dist.get("keyring") is not None:
        keyring = _existing_file(reader, dist["keyring"], f"{where}.keyring", project)
    return Distribution(suite, architecture, components, keyring, updates)


def _variables(reader: FieldReader, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        reader.error("variables", f"expected a mapping, got {kind_of(raw)}")
        return {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _VAR_RE.match(key):
            reader.error(f"variables.{key}", "variable names are letters, digits and _")
        if not _plain_value(value):
            reader.error(
                f"variables.{key}", "values are strings, numbers, booleans, lists or mappings"
            )
    frozen: Mapping[str, Any] = _freeze(raw)
    return frozen


def _plain_value(value: Any) -> bool:
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, list):
        return all(_plain_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_value(v) for k, v in value.items())
    return False


def _freeze(value: Any) -> Any:
    from types import MappingProxyType

    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _files(reader: FieldReader, raw: Any) -> tuple[FileRule, ...]:
    if not isinstance(raw, list):
        reader.error("files", f"expected a list, got {kind_of(raw)}")
        return ()
    rules: list[FileRule] = []
    for index, item in enumerate(raw):
        where = f"files[{index}]"
        entry = reader.mapping(
            item, where, {"path": True, "mode": False, "owner": False, "group": False}
        )
        path = reader.string(entry.get("path"), f"{where}.path") if "path" in entry else ""
        if path and (not path.startswith("/") or ".." in path.split("/")):
            reader.error(f"{where}.path", f"{path!r} must be absolute and must not contain '..'")
        mode: int | None = None
        if "mode" in entry:
            mode_raw = entry["mode"]
            if isinstance(mode_raw, str) and re.fullmatch(r"0?[0-7]{3,4}", mode_raw):
                mode = int(mode_raw, 8)
            else:
                reader.error(
                    f"{where}.mode", f'expected an octal string like "0755", got {mode_raw!r}'
                )
        ids = []
        for key in ("owner", "group"):
            value = entry.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
                reader.error(f"{where}.{key}", f"expected a numeric id, got {value!r}")
                value = 0
            ids.append(value)
        rules.append(FileRule(path, mode, ids[0], ids[1]))
    return tuple(rules)


def _rootfs(reader: FieldReader, raw: Any) -> RootfsOptions:
    entry = reader.mapping(
        raw,
        "rootfs",
        {"format": False, "compression": False, "compression_level": False, "variant": False},
    )
    fmt = reader.choice(entry.get("format", "squashfs"), "rootfs.format", ROOTFS_FORMATS)
    default_compression = COMPRESSIONS.get(fmt, ("zstd",))[0]
    compression = reader.string(entry.get("compression", default_compression), "rootfs.compression")
    if fmt in COMPRESSIONS and compression and compression not in COMPRESSIONS[fmt]:
        reader.error(
            "rootfs.compression",
            f"{compression!r} is not available for {fmt} (choose: {', '.join(COMPRESSIONS[fmt])})",
        )
    variant = reader.choice(entry.get("variant", "essential"), "rootfs.variant", VARIANTS)
    level = entry.get("compression_level")
    if level is not None:
        bounds = COMPRESSION_LEVELS.get((fmt, compression))
        if bounds is None:
            reader.error("rootfs.compression_level", f"{fmt} {compression} has no level to choose")
            level = None
        elif isinstance(level, bool) or not isinstance(level, int):
            reader.error("rootfs.compression_level", f"expected an integer, got {kind_of(level)}")
            level = None
        elif not bounds[0] <= level <= bounds[1]:
            reader.error(
                "rootfs.compression_level",
                f"{level} is outside {bounds[0]}..{bounds[1]} for {fmt} {compression}",
            )
            level = None
    return RootfsOptions(fmt, compression, variant, level)


def _boot(reader: FieldReader, raw: Any) -> BootOptions:
    entry = reader.mapping(
        raw, "boot", {"cmdline": False, "initrd_modules": False, "packages": False, "init": False}
    )
    cmdline = reader.string_list(entry.get("cmdline", []), "boot.cmdline", unique=False)
    for index, word in enumerate(cmdline):
        problem = _cmdline_word_problem(word) if word else None
        if problem is not None:
            reader.error(f"boot.cmdline[{index}]", f"{word!r}: {problem}")
    modules = reader.string_list(
        entry.get("initrd_modules", list(DEFAULT_INITRD_MODULES)),
        "boot.initrd_modules",
        re.compile(r"^[A-Za-z0-9_-]+$"),
    )
    packages = reader.string_list(
        entry.get("packages", list(DEFAULT_BOOT_PACKAGES)), "boot.packages", _PACKAGE_RE
    )
    init = reader.string(entry.get("init", "/sbin/init"), "boot.init")
    if init and not init.startswith("/"):
        reader.error("boot.init", f"{init!r} must be an absolute path")
    elif init and (not _INIT_PATH_RE.match(init) or posixpath.normpath(init) != init):
        reader.error(
            "boot.init",
            f"{init!r} must be one normalised absolute path (no '.' or '..' parts) of "
            "letters, digits and . _ + -",
        )
    return BootOptions(cmdline, modules, packages, init)


def _cmdline_word_problem(word: str) -> str | None:
    """Why `word` may not be a boot.cmdline entry, or None if it may."""
    if not _CMDLINE_WORD_RE.match(word):
        return 'must be one word of printable ASCII, without spaces, control characters or "'
    name = word.split("=", 1)[0]
    if not _CMDLINE_NAME_RE.match(name):
        return (
            "kernel parameter names are lower case letters, digits and _ . - (the kernel "
            "passes other words to init, as arguments or environment variables)"
        )
    if name.isdigit():
        return "init would take it as a runlevel"
    key = name.replace("-", "_")
    for refused, reason in CMDLINE_REFUSED.items():
        if key == refused or (refused.endswith(".") and key.startswith(refused)):
            return f"not for a recipe: {reason}"
    return None
