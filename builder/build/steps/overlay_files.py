"""Laying overlay directories and file rules over a root filesystem tree, safely.

An overlay is a directory whose contents are copied into the tree at the same
relative paths. Regular files get mode 0755 if the overlay file has its owner
exec bit set, else 0644, and owner root:root: git keeps nothing but the exec
bit, so nothing else of the checkout may leak into the image. Files ending in
`.j2` are Jinja2 templates, rendered with the recipe's variables plus `recipe`
(`recipe.name`, `recipe.version`), and written without the suffix. Symlinks
are copied as symlinks; other special files are refused. An overlay file
replaces a file or symlink already at its place (the symlink itself, not what
it points to); a directory there is an error.

Templates run in Jinja2's sandbox (`ImmutableSandboxedEnvironment`: no
`__attribute__`, no changing values) and see nothing but those variables and
Jinja2's pure helpers: no environment, no host files, nothing random.
`{% include %}` and `{% import %}` name a file or template of the same
overlay by its path inside it (`usr/share/booth/header.txt`); symlinks and
anything outside the overlay are not found. Every template problem is an
`InputError` naming the overlay file and line.

Local leftovers are skipped, here and in `overlay_digest`: Python bytecode
(*.pyc, __pycache__/) and directories tagged with a CACHEDIR.TAG (.mypy_cache,
.pytest_cache, ...).

Safety: paths in the tree are resolved as a chroot would (an absolute symlink
/bin -> /usr/bin means <tree>/usr/bin), so merged-/usr links work. A ".." that
would climb above the tree's root (through a tree symlink, relative or
absolute, or in an overlay symlink's target), or a symlink loop, is refused
with an `InputError` naming the overlay file: nothing is ever written outside
the tree.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import jinja2.sandbox

from builder.core.canonical import sha256_file, sha256_json
from builder.core.errors import InputError
from builder.core.fsutil import lstat_or_none
from builder.core.safeload import decode_utf8
from builder.core.sandbox import Sandbox
from builder.source.recipe import FileRule

TEMPLATE_SUFFIX = ".j2"
_MAX_SYMLINKS = 40  # as the kernel's path walk
_GLOB_CHARS = frozenset("*?[")
_BYTECODE_SUFFIXES = (".pyc", ".pyo")
_CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


class Escape(InputError):
    """A path would leave the tree."""


def resolve_in_tree(root: Path, rel: str, *, follow_last: bool = True) -> str:
    """Resolve tree path `rel` inside `root` with chroot semantics; return it as a clean
    relative path with no symlink left in it (but the last component when
    `follow_last` is False).

    Raise `Escape` if a ".." would climb above the root (in `rel` or in a symlink's
    target, relative or absolute: a chroot would clamp it, but no honest tree
    needs that), or on a symlink loop.
    """
    pending = [p for p in rel.split("/") if p not in ("", ".")]
    pending.reverse()
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if not done:
                raise Escape(f"/{rel}: climbs above the root of the tree")
            done.pop()
            continue
        candidate = root.joinpath(*done, part)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            done.append(part)
            continue
        is_last = not pending
        if not stat.S_ISLNK(info.st_mode) or (is_last and not follow_last):
            done.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            raise Escape(f"/{rel}: too many levels of symbolic links")
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        elif _climbs_out(done, target):
            shown = "/" + "/".join([*done, part])
            raise Escape(f"/{rel}: the symlink {shown} -> {target} leads outside the tree")
        for piece in reversed([p for p in target.split("/") if p not in ("", ".")]):
            pending.append(piece)
    return "/".join(done)


def _climbs_out(parent_parts: list[str], target: str) -> bool:
    depth = len(parent_parts)
    for piece in target.split("/"):
        if piece == "..":
            depth -= 1
            if depth < 0:
                return True
        elif piece not in ("", "."):
            depth += 1
    return False


def apply_overlay(
    overlay: Path, tree: Path, variables: Mapping[str, Any], shown: str | None = None
) -> list[str]:
    """Copy the overlay directory `overlay` into `tree`; return the tree paths written.

    `shown` is how error messages name the overlay (default: its path).
    """
    label = shown or str(overlay)
    entries = overlay_entries(overlay, label)
    loader = _OverlayLoader(overlay, label, entries)
    environment = _template_environment(loader)
    written: list[str] = []
    for rel, kind in entries:
        source = overlay / rel
        where = f"{label}/{rel}"
        if kind == "dir":
            _make_directory(tree, _resolve_for(tree, rel, where), where)
            continue
        dest_rel = rel[: -len(TEMPLATE_SUFFIX)] if kind == "template" else rel
        parent, _, name = dest_rel.rpartition("/")
        parent_rel = _resolve_for(tree, parent, where)
        _make_directory(tree, parent_rel, where)
        target_rel = f"{parent_rel}/{name}" if parent_rel else name
        target = tree / target_rel
        existing = lstat_or_none(target)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise InputError(f"{where}: the tree has a directory at /{target_rel}")
        if existing is not None:
            target.unlink()
        if kind == "symlink":
            link = os.readlink(source)
            base = [] if link.startswith("/") or not parent_rel else parent_rel.split("/")
            if _climbs_out(base, link):
                raise Escape(f"{where}: refused: symlink target {link!r} leads outside the tree")
            os.symlink(link, target)
            os.lchown(target, 0, 0)
        else:
            mode = 0o755 if os.stat(source).st_mode & stat.S_IXUSR else 0o644
            if kind == "template":
                data = _render(environment, loader, rel, where, variables)
                _write_new(target, data, mode)
            else:
                _write_new(target, source.read_bytes(), mode)
        written.append(target_rel)
    return written


def _resolve_for(tree: Path, rel: str, where: str) -> str:
    try:
        return resolve_in_tree(tree, rel)
    except Escape as exc:
        raise Escape(f"{where}: refused: {exc.message}") from exc


def overlay_digest(overlay: Path) -> str:
    """What of an overlay directory the overlay step uses: for each entry its path,
    kind, exec bit, content digest or link target. Owners, other mode bits and
    times of the checkout are left out on purpose: they vary between checkouts
    and never reach the image."""
    listing: list[dict[str, Any]] = []
    for rel, kind in overlay_entries(overlay, str(overlay)):
        source = overlay / rel
        entry: dict[str, Any] = {"path": rel, "kind": kind}
        if kind == "symlink":
            entry["target"] = os.readlink(source)
        elif kind in ("file", "template"):
            entry["executable"] = bool(os.stat(source).st_mode & stat.S_IXUSR)
            entry["sha256"] = sha256_file(source)
        listing.append(entry)
    return "sha256:" + sha256_json(listing)


def apply_file_rules(tree: Path, rules: tuple[FileRule, ...], shown: str) -> list[str]:
    """Apply each rule's mode/owner/group to the tree paths it matches; return them.

    A rule path with `*`, `?` or `[` is a glob matched against every path in the
    tree (a `*` never crosses "/"); symlinks are matched themselves, never followed.
    A rule that matches nothing is an `InputError` naming it as `shown`.files[i].
    """
    all_paths: list[str] | None = None
    touched: list[str] = []
    for index, rule in enumerate(rules):
        where = f"{shown}: files[{index}].path"
        if _GLOB_CHARS.intersection(rule.path):
            if all_paths is None:
                all_paths = _tree_paths(tree)
            matches = [p for p in all_paths if _glob_match(p, rule.path.lstrip("/"))]
        else:
            try:
                resolved = resolve_in_tree(tree, rule.path.lstrip("/"), follow_last=False)
            except Escape as exc:
                raise InputError(f"{where}: {exc.message}") from exc
            matches = [resolved] if lstat_or_none(tree / resolved) is not None else []
        if not matches:
            raise InputError(f"{where}: {rule.path!r} matches nothing in the root filesystem")
        for rel in matches:
            target = tree / rel
            info = os.lstat(target)
            is_link = stat.S_ISLNK(info.st_mode)
            if rule.mode is not None and is_link:
                raise InputError(f"{where}: /{rel} is a symlink; a symlink has no mode")
            os.lchown(target, rule.owner, rule.group)
            # chown clears setuid/setgid, so the mode is (re)set after it.
            if not is_link:
                os.chmod(target, stat.S_IMODE(info.st_mode) if rule.mode is None else rule.mode)
            touched.append(rel)
    return sorted(set(touched))


def _glob_match(path: str, pattern: str) -> bool:
    path_parts = path.split("/")
    pattern_parts = pattern.split("/")
    return len(path_parts) == len(pattern_parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts, strict=True)
    )


def _tree_paths(tree: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        relative_dir = os.path.relpath(dirpath, tree)
        prefix = "" if relative_dir == "." else f"{relative_dir}/"
        found.extend(prefix + name for name in (*dirnames, *filenames))
    return sorted(found)


def overlay_entries(overlay: Path, label: str) -> list[tuple[str, str]]:
    """(relative path, kind) of everything in the overlay, parents before children, sorted.

    kind: "dir", "file", "template" (a `.j2` file) or "symlink". Python bytecode and
    cache directories (see `_is_cache_dir`) are left out. Anything else (a device,
    a FIFO) is an `InputError` naming `label`/path. The source bundle lists
    overlays with this too, so it copies exactly what the build reads.
    """
    entries: list[tuple[str, str]] = []
    outputs: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(overlay):
        dirnames[:] = sorted(d for d in dirnames if not _is_cache_dir(os.path.join(dirpath, d)))
        filenames = [f for f in filenames if not f.endswith(_BYTECODE_SUFFIXES)]
        relative_dir = os.path.relpath(dirpath, overlay)
        prefix = "" if relative_dir == "." else f"{relative_dir}/"
        names = sorted(
            [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]
        )
        for name in dirnames:
            if not os.path.islink(os.path.join(dirpath, name)):
                entries.append((prefix + name, "dir"))
        for name in names:
            rel = prefix + name
            info = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISLNK(info.st_mode):
                kind = "symlink"
            elif not stat.S_ISREG(info.st_mode):
                raise InputError(
                    f"{label}/{rel}: overlays may hold files, directories and symlinks only"
                )
            elif name.endswith(TEMPLATE_SUFFIX) and len(name) > len(TEMPLATE_SUFFIX):
                kind = "template"
            else:
                kind = "file"
            output = rel[: -len(TEMPLATE_SUFFIX)] if kind == "template" else rel
            if output in outputs:
                raise InputError(
                    f"{label}/{rel}: both {outputs[output]} and {rel} would write /{output}"
                )
            outputs[output] = rel
            entries.append((rel, kind))
    entries.sort(key=lambda item: PurePosixPath(item[0]).parts)
    return entries


def _is_cache_dir(path: str) -> bool:
    """`__pycache__`, or a directory tagged as a cache (.mypy_cache, .pytest_cache, ...)
    by the Cache Directory Tagging convention: a local leftover, never image content."""
    if os.path.islink(path):
        return False
    if os.path.basename(path) == "__pycache__":
        return True
    try:
        with open(os.path.join(path, "CACHEDIR.TAG"), "rb") as tag:
            return tag.read(len(_CACHEDIR_SIGNATURE)) == _CACHEDIR_SIGNATURE
    except OSError:
        return False


# Jinja2's globals and filters that are not pure functions of their input: random text,
# random choices. A template's output must follow from the overlay and the recipe alone.
_IMPURE_GLOBALS = ("lipsum",)
_IMPURE_FILTERS = ("random",)


def _template_environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,
    )
    for name in _IMPURE_GLOBALS:
        environment.globals.pop(name, None)
    for name in _IMPURE_FILTERS:
        environment.filters.pop(name, None)
    return environment


class _OverlayLoader(jinja2.BaseLoader):
    """The files and templates of one overlay, by their path inside it, and nothing else:
    only what `overlay_entries` lists (so what `overlay_digest` covers), never through a
    symlink."""

    def __init__(self, overlay: Path, label: str, entries: list[tuple[str, str]]) -> None:
        self.overlay = overlay
        self.label = label
        self.readable = {rel for rel, kind in entries if kind in ("file", "template")}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        if template not in self.readable:
            raise jinja2.TemplateNotFound(
                template,
                f"no file {template!r} in the overlay {self.label} (a template may include "
                "only files of its own overlay, named by their path inside it)",
            )
        fd = os.open(self.overlay / template, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as stream:
            data = stream.read()
        filename = self.filename(template)
        return decode_utf8(data, filename), filename, lambda: True

    def filename(self, template: str) -> str:
        """How messages name `template` (also the file name in Jinja2's tracebacks)."""
        return f"{self.label}/{template}"


def _render(
    environment: jinja2.Environment,
    loader: _OverlayLoader,
    rel: str,
    where: str,
    variables: Mapping[str, Any],
) -> bytes:
    try:
        return environment.get_template(rel).render(dict(variables)).encode()
    except InputError:
        raise
    except jinja2.TemplateSyntaxError as exc:
        at = f"{exc.filename or where}: line {exc.lineno}"
        raise InputError(f"{at}: template syntax error: {exc.message}") from exc
    except Exception as exc:
        # Whatever a template's code raises (a sandbox refusal, a missing include, 1/0,
        # a recursion) is a problem of the template, reported at its line.
        at = _template_line(exc, loader) or where
        if isinstance(exc, jinja2.UndefinedError):
            raise InputError(
                f"{at}: undefined template variable: {exc.message} "
                "(define it under `variables:` in the recipe)"
            ) from exc
        if isinstance(exc, jinja2.exceptions.SecurityError):
            raise InputError(f"{at}: refused by the template sandbox: {exc}") from exc
        if isinstance(exc, jinja2.TemplateNotFound):
            raise InputError(f"{at}: template not found: {exc}") from exc
        raise InputError(f"{at}: template error: {type(exc).__name__}: {exc}") from exc


def _template_line(exc: BaseException, loader: _OverlayLoader) -> str | None:
    """ "FILE: line N" of the innermost overlay template running when `exc` was raised
    (Jinja2 rewrites tracebacks to show template lines)."""
    prefix = loader.filename("")
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename.startswith(prefix):
            found = f"{frame.f_code.co_filename}: line {line}"
    return found


def _make_directory(tree: Path, rel: str, where: str) -> None:
    """Create the (already resolved) directory `rel` and missing parents, 0755 root:root."""
    current = tree
    for part in (p for p in rel.split("/") if p):
        current = current / part
        info = lstat_or_none(current)
        if info is None:
            os.mkdir(current, 0o755)
            os.chmod(current, 0o755)
            os.lchown(current, 0, 0)
        elif not stat.S_ISDIR(info.st_mode):
            raise InputError(
                f"{where}: the tree has a non-directory at /{os.path.relpath(current, tree)}"
            )


def _write_new(target: Path, data: bytes, mode: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(target, mode)
    os.chown(target, 0, 0)


def copy_tree(tools: Sandbox, source: Path, destination: Path) -> None:
    """Copy a root filesystem tree keeping owners, modes, devices, hard links and xattrs,
    with the tools tree's cp."""
    if destination.exists():
        raise ValueError(f"{destination}: already exists")
    # --sparse=never: cp's hole detection costs about 2 s of system time on a 145 MB
    # root here, and a root filesystem has no sparse files worth keeping sparse (the
    # bytes, hence the image, are the same either way).
    tools.run(
        ["cp", "-a", "--sparse=never", "--", source, destination],
        binds=[source],
        writable=[destination.parent],
    )
