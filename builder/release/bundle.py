"""The source bundle: everything needed to rebuild an image, offline, in one place.

`make_bundle` writes `OUT/NAME-VERSION-source/` and the same content as one
deterministic tar, `OUT/NAME-VERSION-source.tar` (sorted names, GNU format,
every mtime = the lock's SOURCE_DATE_EPOCH, owner 0:0 without names, modes
0755/0644 from the exec bit only). Inside, relative to the bundle root:

  README.txt, index.json          how to rebuild; every file with its sha256
  recipes/NAME.yaml, NAME.lock.json, the recipe's overlays at their project paths
  keyring/ (or the recipe's own keyring path)   the archive keyring the lock was made with
  build.py, builder/, pyproject.toml, setup      the boothkey source that built it
  pool/...                        every locked .deb at its pool path

so the bundle directory is a project root (`build.py build BUNDLE/recipes/NAME.yaml`
works) and a Debian mirror (`build.py fetch --mirror BUNDLE`). The same
recipe, lock and .debs always give the same tar bytes, whatever the umask,
path, clock or directory order of the machine that makes it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import __version__
from builder.build.manifest import read_manifest, write_manifest
from builder.build.steps.overlay_files import overlay_entries
from builder.core.canonical import canonical_json, sha256_bytes, sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import atomic_output
from builder.source.lockfile import Lock, LockedPackage
from builder.source.recipe import Recipe

BUNDLE_FORMAT = 1
INDEX_NAME = "index.json"
README_NAME = "README.txt"
KEYRING_DIR = "keyring"
_BOOTHKEY_ROOT = Path(__file__).resolve().parents[2]
# boothkey's own source as `pipeline.code_digest` sees it, plus what runs and installs it.
_CODE_TOP_FILES = ("build.py", "pyproject.toml", "setup")
_CODE_SUFFIXES = (".py", ".sh", ".j2")


@dataclass(frozen=True)
class Member:
    """One entry of the bundle: a directory, a file (copied from `source`, or `data`), or
    a symlink (`target`)."""

    path: str
    kind: str  # "dir" | "file" | "symlink"
    source: Path | None = None
    data: bytes | None = None
    executable: bool = False
    target: str = ""


@dataclass(frozen=True)
class BundleResult:
    directory: Path
    tarball: Path
    sha256: str  # of the tar
    size: int  # of the tar, in bytes
    files: int  # regular files in the bundle


@dataclass(frozen=True)
class BundleIndex:
    """index.json of a bundle, read back."""

    root: Path
    name: str
    version: str
    recipe: Path
    lock_sha256: str
    raw: dict[str, Any]


def bundle_stem(recipe: Recipe) -> str:
    return f"{recipe.name}-{recipe.version}-source"


def make_bundle(
    recipe: Recipe, lock: Lock, deb_path: Callable[[LockedPackage], Path], out_dir: Path
) -> BundleResult:
    """Write the bundle directory and tar for `recipe` into `out_dir`, replacing old ones.

    `deb_path(package)` gives a verified cached .deb (`DebCache.verified_path`), so a
    package that was not fetched raises `InputError` before anything is written.
    """
    members = _members(recipe, lock, deb_path)
    stem = bundle_stem(recipe)
    directory = out_dir / stem
    tarball = out_dir / f"{stem}.tar"
    _write_directory(members, directory)
    _write_tar(members, directory, stem, lock.source_date_epoch, tarball)
    return BundleResult(
        directory=directory,
        tarball=tarball,
        sha256=sha256_file(tarball),
        size=tarball.stat().st_size,
        files=sum(1 for m in members if m.kind == "file"),
    )


def record_bundle(manifest_path: Path, result: BundleResult, recipe: Recipe) -> None:
    """Name the bundle (file, sha256, size) in the build's manifest, so a release pins it.

    Refused when the manifest belongs to another recipe or lock, or is already signed:
    adding a key would change the signed bytes.
    """
    manifest = read_manifest(manifest_path)
    raw = dict(manifest.raw)
    envelope = manifest_path.with_name(f"{manifest.name}.dsse.json")
    if envelope.exists():
        raise InputError(
            f"{manifest_path}: already signed ({envelope.name} exists); make the bundle "
            "before signing, or pass --no-manifest"
        )
    expected = {
        "name": recipe.name,
        "version": recipe.version,
        "lock_sha256": sha256_file(recipe.lock_path),
        "recipe.sha256": sha256_file(recipe.path),
    }
    found = {
        "name": raw.get("name"),
        "version": raw.get("version"),
        "lock_sha256": raw.get("lock_sha256"),
        "recipe.sha256": raw.get("recipe", {}).get("sha256"),
    }
    wrong = [key for key in expected if expected[key] != found[key]]
    if wrong:
        raise InputError(
            f"{manifest_path}: was built from another recipe or lock than {recipe.path.name} "
            f"({', '.join(wrong)} differ); build again, or pass --no-manifest"
        )
    raw["bundle"] = {"file": result.tarball.name, "sha256": result.sha256, "size": result.size}
    write_manifest(manifest_path, raw)


def read_index(root: Path) -> BundleIndex:
    """Read `root/index.json` (no content checks; see `verify_bundle`)."""
    path = root / INDEX_NAME
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise InputError(f"{root}: not a boothkey source bundle (no {INDEX_NAME})") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != BUNDLE_FORMAT:
        raise InputError(f"{path}: not a bundle index of format {BUNDLE_FORMAT}")
    try:
        recipe = _safe_relative(str(raw["recipe"]), str(path))
        return BundleIndex(
            root, str(raw["name"]), str(raw["version"]), root / recipe, str(raw["lock_sha256"]), raw
        )
    except KeyError as exc:
        raise InputError(f"{path}: {exc.args[0]}: missing") from exc


def verify_bundle(root: Path) -> BundleIndex:
    """Check that `root` holds exactly the files its index lists, with their digests.

    Raises `VerificationFailed` naming every missing, changed or extra file.
    """
    index = read_index(root)
    listed: dict[str, dict[str, Any]] = {}
    for entry in index.raw.get("files", []):
        listed[_safe_relative(str(entry.get("path")), str(root / INDEX_NAME))] = entry
    problems = []
    present = {INDEX_NAME}
    for rel, kind in _walk(root):
        present.add(rel)
        entry = listed.get(rel)
        if rel == INDEX_NAME:
            continue
        if entry is None:
            problems.append(f"{rel}: not listed in {INDEX_NAME}")
        elif entry.get("type") != kind:
            problems.append(f"{rel}: is a {kind}, the index says {entry.get('type')}")
        elif kind == "file" and sha256_file(root / rel) != entry.get("sha256"):
            problems.append(f"{rel}: content differs from its sha256 in {INDEX_NAME}")
        elif kind == "symlink" and os.readlink(root / rel) != entry.get("target"):
            problems.append(f"{rel}: link target differs from {INDEX_NAME}")
    problems += [f"{rel}: missing" for rel in sorted(listed.keys() - present)]
    lock_entry = listed.get(str(index.raw.get("lock")), {})
    if lock_entry.get("sha256") != index.lock_sha256:
        problems.append(f"{index.raw.get('lock')}: not the lock the index names")
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise VerificationFailed(f"{root}: the bundle is damaged:\n  " + "\n  ".join(shown))
    return index


def extract_bundle(tarball: Path, dest: Path) -> Path:
    """Unpack a bundle tar into the empty or missing directory `dest`; return the bundle root.

    Only directories, regular files and symlinks below one top directory are accepted;
    nothing is ever written through a symlink or outside `dest`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InputError(f"{dest}: must be empty to unpack a bundle into")
    top: str | None = None
    try:
        with tarfile.open(tarball, mode="r:") as tar:
            for info in tar:
                rel = _safe_relative(info.name.rstrip("/"), str(tarball))
                first = rel.split("/", 1)[0]
                if top is None:
                    top = first
                if first != top:
                    raise InputError(f"{tarball}: {info.name}: outside the top directory {top}")
                target = dest / rel
                _check_parents(dest, rel, str(tarball))
                if info.isdir():
                    target.mkdir(mode=0o755, exist_ok=True)
                elif info.isfile():
                    source = tar.extractfile(info)
                    if source is None:
                        raise InputError(f"{tarball}: {info.name}: unreadable member")
                    mode = 0o755 if info.mode & stat.S_IXUSR else 0o644
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                    with source, os.fdopen(os.open(target, flags, mode), "wb") as out:
                        shutil.copyfileobj(source, out)
                elif info.issym():
                    os.symlink(info.linkname, target)
                else:
                    raise InputError(
                        f"{tarball}: {info.name}: only files, directories and "
                        "symlinks may be in a bundle"
                    )
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{tarball}: cannot unpack: {exc}") from exc
    if top is None:
        raise InputError(f"{tarball}: empty archive")
    return dest / top


def _members(recipe: Recipe, lock: Lock, deb_path: Callable[[LockedPackage], Path]) -> list[Member]:
    project = recipe.project_dir
    members: dict[str, Member] = {}

    def add(member: Member) -> None:
        old = members.get(member.path)
        if old is not None and old != member:
            raise InputError(f"bundle: two different files want the path {member.path}")
        members[member.path] = member

    def project_path(path: Path, what: str) -> str:
        try:
            return path.relative_to(project).as_posix()
        except ValueError as exc:
            raise InputError(
                f"{recipe.path.name}: {what} {path} is outside the project {project}; "
                "a bundle holds only files inside it"
            ) from exc

    recipe_rel = project_path(recipe.path, "the recipe")
    lock_rel = project_path(recipe.lock_path, "the lock")
    add(_file(recipe_rel, recipe.path))
    add(_file(lock_rel, recipe.lock_path))
    for overlay in recipe.overlays:
        base = project_path(overlay, "overlay")
        add(Member(base, "dir"))
        # Exactly what the overlay step reads: bytecode and tagged cache directories
        # (.mypy_cache...) left in a checkout would make bundles differ between machines.
        for rel, kind in overlay_entries(overlay, base):
            add(_entry(f"{base}/{rel}", overlay / rel, "file" if kind == "template" else kind))
    keyring = recipe.distribution.keyring
    try:
        keyring_rel = keyring.relative_to(project).as_posix()
    except ValueError:
        keyring_rel = f"{KEYRING_DIR}/{keyring.name}"
    add(_file(keyring_rel, keyring))
    if recipe.secure_boot is not None:
        # The certificate is public and lets an observer check the published signature;
        # the private key never goes into a bundle.
        cert = recipe.secure_boot.certificate
        add(_file(project_path(cert, "the Secure Boot certificate"), cert))
    for rel in _CODE_TOP_FILES:
        if (_BOOTHKEY_ROOT / rel).is_file():
            add(_file(rel, _BOOTHKEY_ROOT / rel))
    for rel, kind in _walk(_BOOTHKEY_ROOT / "builder"):
        if kind == "file" and Path(rel).suffix in _CODE_SUFFIXES and "__pycache__" not in rel:
            add(_file(f"builder/{rel}", _BOOTHKEY_ROOT / "builder" / rel))
    by_file: dict[str, str] = {}
    for package in lock.packages:
        if by_file.setdefault(package.filename, package.sha256) != package.sha256:
            raise InputError(f"{recipe.lock_path.name}: two packages at {package.filename}")
        add(Member(package.filename, "file", source=deb_path(package)))
    add(Member(README_NAME, "file", data=_readme(recipe, recipe_rel, keyring_rel).encode()))
    for path in list(members):  # every parent directory, explicitly
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in members:
                members[parent] = Member(parent, "dir")
            elif members[parent].kind != "dir":
                raise InputError(f"bundle: {parent} is both a file and a directory")
    index = _index(recipe, lock, recipe_rel, lock_rel, keyring_rel, members)
    members[INDEX_NAME] = Member(INDEX_NAME, "file", data=index)
    return [members[key] for key in sorted(members, key=lambda p: p.encode())]


def _file(rel: str, source: Path) -> Member:
    if not source.is_file():
        raise InputError(f"{source}: not a regular file, cannot go into the bundle")
    return Member(rel, "file", source=source, executable=_executable(source))


def _entry(rel: str, source: Path, kind: str) -> Member:
    if kind == "dir":
        return Member(rel, "dir")
    if kind == "symlink":
        return Member(rel, "symlink", target=os.readlink(source))
    return _file(rel, source)


def _executable(path: Path) -> bool:
    return bool(os.stat(path).st_mode & stat.S_IXUSR)


def _walk(root: Path) -> Iterator[tuple[str, str]]:
    """(relative path, kind) of everything below `root`, sorted; refuses special files."""
    for name in sorted(os.listdir(root), key=os.fsencode):
        full = root / name
        info = os.lstat(full)
        if stat.S_ISLNK(info.st_mode):
            yield name, "symlink"
        elif stat.S_ISDIR(info.st_mode):
            yield name, "dir"
            for rel, kind in _walk(full):
                yield f"{name}/{rel}", kind
        elif stat.S_ISREG(info.st_mode):
            yield name, "file"
        else:
            raise InputError(f"{full}: a special file cannot go into a bundle")


def _index(
    recipe: Recipe,
    lock: Lock,
    recipe_rel: str,
    lock_rel: str,
    keyring_rel: str,
    members: dict[str, Member],
) -> bytes:
    files: list[dict[str, Any]] = []
    for path in sorted(members, key=lambda p: p.encode()):
        member = members[path]
        entry: dict[str, Any] = {"path": path, "type": member.kind}
        if member.kind == "file":
            if member.data is not None:
                entry["sha256"], entry["size"] = sha256_bytes(member.data), len(member.data)
            elif member.source is not None:
                entry["sha256"] = sha256_file(member.source)
                entry["size"] = member.source.stat().st_size
            entry["executable"] = member.executable
        elif member.kind == "symlink":
            entry["target"] = member.target
        files.append(entry)
    index = {
        "format": BUNDLE_FORMAT,
        "name": recipe.name,
        "version": recipe.version,
        "boothkey": __version__,
        "recipe": recipe_rel,
        "lock": lock_rel,
        "lock_sha256": sha256_file(recipe.lock_path),
        "archive_keyring": keyring_rel,
        "source_date_epoch": lock.source_date_epoch,
        "packages": len(lock.packages),
        "files": files,
    }
    return canonical_json(index) + b"\n"


def _readme(recipe: Recipe, recipe_rel: str, keyring_rel: str) -> str:
    name = recipe.name
    return f"""boothkey source bundle: {name} {recipe.version}

Everything needed to rebuild the image {name}.img without a network:
  {recipe_rel}  the recipe, and its lock beside it (every package by sha256)
  overlays/...  the files laid over the root filesystem
  {keyring_rel}  the Debian archive keyring the lock was verified with
  build.py, builder/, setup, pyproject.toml  the boothkey source that built it
  pool/...  every locked .deb; this directory serves as a Debian mirror
  index.json  every file of this bundle with its sha256

Rebuild and compare with the published build (exit 0: same, 3: different):
  python3 build.py rebuild {name}.manifest.json --bundle {bundle_stem(recipe)}.tar

Or by hand, inside this directory:
  ./setup
  .venv/bin/python build.py fetch --mirror "$PWD" --cache-dir cache {recipe_rel}
  .venv/bin/python build.py build --cache-dir cache --out out {recipe_rel}
  sha256sum out/{name}.img   # the published manifest's image.sha256
"""


def _write_directory(members: list[Member], directory: Path) -> None:
    """Write the members under a temp name beside `directory`, then rename it into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    _remove(staging)
    staging.mkdir(mode=0o755)
    try:
        os.chmod(staging, 0o755)
        for member in members:
            target = staging / member.path
            if member.kind == "dir":
                target.mkdir()
                os.chmod(target, 0o755)
            elif member.kind == "symlink":
                os.symlink(member.target, target)
            elif member.data is not None:
                target.write_bytes(member.data)
                os.chmod(target, 0o644)
            else:
                assert member.source is not None
                shutil.copyfile(member.source, target)
                os.chmod(target, 0o755 if member.executable else 0o644)
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        if directory.exists():
            os.rename(directory, old)
        os.rename(staging, directory)
        _remove(old)
    except BaseException:
        _remove(staging)
        raise


def _write_tar(members: list[Member], directory: Path, top: str, epoch: int, tarball: Path) -> None:
    def header(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = epoch
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with (
        atomic_output(tarball) as stream,
        tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tar.addfile(header(top, tarfile.DIRTYPE, 0o755))
        for member in members:
            name = f"{top}/{member.path}"
            if member.kind == "dir":
                tar.addfile(header(name, tarfile.DIRTYPE, 0o755))
            elif member.kind == "symlink":
                info = header(name, tarfile.SYMTYPE, 0o777)
                info.linkname = member.target
                tar.addfile(info)
            else:
                info = header(name, tarfile.REGTYPE, 0o755 if member.executable else 0o644)
                path = directory / member.path
                info.size = path.stat().st_size
                with open(path, "rb") as content:
                    tar.addfile(info, content)


def _safe_relative(name: str, shown: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InputError(f"{shown}: {name!r} is not a plain relative path")
    return name


def _check_parents(dest: Path, rel: str, shown: str) -> None:
    current = dest
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError as exc:
            raise InputError(f"{shown}: {rel}: its directory comes later or not at all") from exc
        if not stat.S_ISDIR(mode):
            raise InputError(f"{shown}: {rel}: would be written through a non-directory")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
