"""The root filesystem, installed by mmdebstrap from exactly the locked .debs.

mmdebstrap, apt and dpkg are the tools tree's (locked), run in the build
sandbox: a user namespace where the build is root, so a rootless build gives
the same owners and bytes as a root one (and neither can make device nodes).

Output `out/tree/`: what Debian's own tools make of the lock's "rootfs"
packages (maintainer scripts run as Debian intends), with merged-/usr, every
mtime clamped to SOURCE_DATE_EPOCH, and the files mmdebstrap copies from the
build host (/etc/hostname, /etc/resolv.conf) or writes about the build
(/etc/apt/sources.list, /etc/apt/apt.conf.d/99mmdebstrap) removed. The
installed package set is compared with the lock: a package installed but not
locked, or locked but not installed, fails the step naming it.

Facts: RootfsFacts, the installed packages by name, version and architecture.
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
from builder.build.steps.localrepo import make_local_repo
from builder.build.steps.normalize import check_no_build_paths, clamp_mtimes
from builder.core.errors import BuildError, ToolError
from builder.core.sandbox import Sandbox
from builder.formats.debarchive import read_control

# The four directories bookworm's merged-/usr turns into symlinks into /usr (amd64).
MERGED_USR = ("bin", "sbin", "lib", "lib64")
# Created before anything is unpacked, whatever the variant (as mmdebstrap's own
# merged-usr hook does): bookworm is merged-/usr, so the tree must be too, and a
# recipe may then lock usr-is-merged (whose preinst checks it) instead of usrmerge,
# which would pull perl into the image.
_MERGED_USR_HOOK = (
    'for d in bin sbin lib lib64; do mkdir -p "$1/usr/$d" && ln -s "usr/$d" "$1/$d"; done'
)
# Files mmdebstrap writes from the host or about the build (the local repository's
# path, the --aptopt settings above), never part of the image.
_HOST_FILES = (
    "etc/apt/sources.list",
    "etc/apt/apt.conf.d/99mmdebstrap",
    "etc/hostname",
    "etc/resolv.conf",
)

Package = tuple[str, str, str]  # (name, version, architecture)


@dataclass(frozen=True)
class RootfsOptions:
    codename: str
    suite: str
    architecture: str
    variant: str
    include: tuple[str, ...]
    packages: tuple[DebInput, ...]


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    architecture: str


@dataclass(frozen=True)
class RootfsFacts:
    packages: tuple[InstalledPackage, ...]


class RootfsStep:
    name: ClassVar[str] = "rootfs"
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("tools",)

    def options(self, ctx: BuildContext, inputs: Mapping[str, StepOutput]) -> RootfsOptions:
        recipe = ctx.recipe
        packages = deb_inputs(ctx.lock.in_set("rootfs"))
        if not packages:
            raise BuildError("step rootfs: the lock has no packages in the rootfs set")
        return RootfsOptions(
            codename=ctx.lock.archive.codename,
            suite=ctx.lock.archive.suite,
            architecture=recipe.distribution.architecture,
            variant=recipe.rootfs.variant,
            include=tuple(recipe.rootfs_roots()),
            packages=packages,
        )

    def run(
        self, options: RootfsOptions, inputs: Mapping[str, StepOutput], env: StepEnv, out: Path
    ) -> RootfsFacts:
        locked = [p.package for p in options.packages]
        variant = options.variant
        repo_dir = Path(tempfile.mkdtemp(prefix="rootfs-repo-", dir=env.scratch))
        tree = out / "tree"
        try:
            env.report(f"installing {len(locked)} packages with mmdebstrap ({variant})")
            repo = make_local_repo(
                locked, env.deb_path, repo_dir, suite=options.suite, codename=options.codename
            )
            run_mmdebstrap(
                tools_sandbox(env, inputs),
                tree,
                log=repo_dir.with_suffix(".log"),
                repo=repo.root,
                codename=options.codename,
                variant=variant,
                include=options.include,
                architecture=options.architecture,
                source_date_epoch=env.source_date_epoch,
            )
            installed = (
                extracted_packages(tree) if variant == "extract" else installed_packages(tree)
            )
            compare_with_lock(installed, {(p.name, p.version, p.architecture) for p in locked})
            for rel in _HOST_FILES:
                (tree / rel).unlink(missing_ok=True)
            check_merged_usr(tree)
            check_no_build_paths(tree, [str(repo_dir), str(env.scratch), str(out)])
            clamp_mtimes(tree, env.source_date_epoch)
        finally:
            shutil.rmtree(repo_dir, ignore_errors=True)
        return RootfsFacts(tuple(InstalledPackage(*entry) for entry in sorted(installed)))


def run_mmdebstrap(
    tools: Sandbox,
    tree: Path,
    *,
    log: Path,
    repo: Path,
    codename: str,
    variant: str,
    include: tuple[str, ...],
    architecture: str,
    source_date_epoch: int,
) -> None:
    """Run the tools tree's mmdebstrap into the directory `tree` (which must not exist),
    installing from the flat repository `repo`.

    Its status output goes to `log`; if it fails, the `BuildError` quotes the
    lines of that log that say why (apt's unmet dependencies, errors).

    For the "extract" variant the fetched .debs are kept in
    /var/cache/apt/archives, for `extracted_packages` to read and remove.
    """
    argv: list[str | Path] = [
        "mmdebstrap",
        f"--variant={variant}",
        f"--architectures={architecture}",
        "--mode=root",
        "--format=directory",
        # No translations, no recommends: the lock decides the package set alone.
        '--aptopt=Acquire::Languages "none"',
        '--aptopt=APT::Install-Recommends "false"',
        # apt's download sandbox chowns its partial/ directories to the HOST's _apt
        # uid, and only when that user can reach the build directory: both vary.
        '--aptopt=APT::Sandbox::User "root"',
        f"--logfile={log}",
    ]
    if include:
        argv.append("--include=" + ",".join(include))
    argv.append(f"--setup-hook={_MERGED_USR_HOOK}")
    if variant == "extract":
        argv.append("--skip=cleanup/apt/cache")
    argv += [codename, tree, f"deb [trusted=yes] copy://{repo} ./"]
    try:
        tools.run(
            argv,
            env={"SOURCE_DATE_EPOCH": str(source_date_epoch)},
            binds=[repo],
            writable=[tree.parent, log.parent],
        )
    except ToolError as exc:
        reasons = _failure_lines(log)
        if not reasons:
            raise
        raise BuildError(
            "step rootfs: mmdebstrap could not install the locked packages:\n  "
            + "\n  ".join(reasons)
        ) from exc


def _failure_lines(log: Path) -> list[str]:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    wanted = [line.strip() for line in lines if _explains_failure(line)]
    return list(dict.fromkeys(wanted))[-20:]


def installed_packages(tree: Path) -> set[Package]:
    """(name, version, architecture) of every package dpkg records as installed in `tree`."""
    status = tree / "var/lib/dpkg/status"
    try:
        text = status.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BuildError("step rootfs: mmdebstrap left no /var/lib/dpkg/status") from exc
    found: set[Package] = set()
    for paragraph in text.split("\n\n"):
        fields = _fields(paragraph)
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            found.add(
                (fields["Package"], fields.get("Version", ""), fields.get("Architecture", ""))
            )
    return found


def extracted_packages(tree: Path) -> set[Package]:
    """(name, version, architecture) of the .debs mmdebstrap extracted (variant "extract"),
    read from the apt cache it was told to keep; the cache is emptied afterwards."""
    cache = tree / "var/cache/apt"
    found: set[Package] = set()
    for deb in sorted((cache / "archives").glob("*.deb")):
        fields = read_control(deb)
        found.add(
            (fields.get("Package", ""), fields.get("Version", ""), fields.get("Architecture", ""))
        )
        deb.unlink()
    for binary in cache.glob("*.bin"):
        binary.unlink()
    return found


def compare_with_lock(installed: set[Package], locked: set[Package]) -> None:
    """Raise `BuildError` naming every package installed but not locked, or locked but not
    installed (with versions)."""
    extra = sorted(installed - locked)
    missing = sorted(locked - installed)
    if not extra and not missing:
        return
    lines = ["step rootfs: the installed packages differ from the lock's rootfs set"]
    if extra:
        lines.append("  installed but not locked: " + ", ".join(_show(p) for p in extra))
    if missing:
        lines.append("  locked but not installed: " + ", ".join(_show(p) for p in missing))
    raise BuildError("\n".join(lines))


def check_merged_usr(tree: Path) -> None:
    """Raise `BuildError` unless /bin, /sbin, /lib (and /lib64 if present) link into /usr."""
    problems = []
    for name in MERGED_USR:
        path = tree / name
        if path.is_symlink():
            if os.readlink(path) not in (f"usr/{name}", f"/usr/{name}"):
                problems.append(f"/{name} -> {os.readlink(path)}")
        elif path.exists() or name != "lib64":
            problems.append(f"/{name} is not a symlink into /usr")
    if problems:
        raise BuildError(
            "step rootfs: the tree is not merged-/usr as bookworm expects: " + "; ".join(problems)
        )


def _explains_failure(line: str) -> bool:
    if "mmdebstrap failed to run" in line:
        return False
    # apt's "pkg : Depends: other but it is not installable" (and continuation lines),
    # dpkg's own errors, e.g. a "custom" set without the programs dpkg needs.
    return (
        line.startswith(("E:", "dpkg: error")) or "Depends:" in line or "not found in PATH" in line
    )


def _fields(paragraph: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in paragraph.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _show(package: Package) -> str:
    name, version, arch = package
    return f"{name} {version} ({arch})"
