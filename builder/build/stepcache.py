"""Content-addressed cache of step outputs.

Layout under the root:

    <id[:2]>/<id>/out/          the step's files
    <id[:2]>/<id>/record.json   format, step, id, info, content_digest, entry_digest
    .locks/<id>.lock            the id's build lock: held exclusively to check, build or remove it
    .locks/<id>.use             the id's use lock: shared while a build uses the entry,
                                exclusive (taken under the build lock) to remove it
    .tmp/<id>.<random>/         a running build's staging directory (its owner holds both
                                the build lock and an flock on the directory)
    .trash/                     directories being deleted (flock'ed by whoever deletes them)

`content_digest` is `tree_digest(out, mtimes=True)`: content, modes, owners, links,
xattrs and mtimes. `entry_digest` is "sha256:" + the sha256 of the canonical JSON of
{format, step, id, info, content_digest}, so the record's facts are covered too.

What a caller may rely on:

- An entry is used only once it has been verified whole: record.json is a regular
  file holding exactly the keys above with their types, and both digests match.
  Anything else (old formats included) is discarded and the step rebuilt.
- An entry is built in a staging directory and renamed into place, so a killed build
  leaves no partial entry. A build whose staging directory was removed or replaced
  under it fails with BuildError and caches nothing.
- Two builds never build one id at once: the second waits, then reuses the entry.
- Inside `with cache.session():`, each entry `get_or_build` or `lookup` returned stays
  locked shared until the block ends, so no `prune` (in any process) removes it.
  Outside a session nothing keeps an entry in place once the call has returned.
- `prune` never waits: it skips entries that are in use or being checked or built,
  the staging directories of live builds, and trash another process is deleting.

Verification detects damage and edits by hand; someone who may write to the cache can
still rewrite a tree together with both digests, and a tree changed after it was
verified is not checked again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.build.steps.base import StepOutput
from builder.core.canonical import pretty_json, sha256_json
from builder.core.errors import BuildError
from builder.core.treedigest import tree_digest

# 2: entry_digest over the record's facts; tree digests cover xattrs.
RECORD_FORMAT = 2

_RECORD_KEYS = frozenset({"format", "step", "id", "info", "content_digest", "entry_digest"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_STEP_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PruneReport:
    removed: int
    kept: int  # includes `in_use`
    freed_bytes: int
    in_use: int = 0  # old enough to go, but a running build is using or building them


@dataclass(frozen=True)
class _Record:
    """A record.json, parsed strictly."""

    step: str
    step_id: str
    info: dict[str, Any]
    content_digest: str

    def entry_digest(self) -> str:
        facts = {
            "format": RECORD_FORMAT,
            "step": self.step,
            "id": self.step_id,
            "info": self.info,
            "content_digest": self.content_digest,
        }
        return "sha256:" + sha256_json(facts)

    def to_json(self) -> bytes:
        return pretty_json(
            {
                "format": RECORD_FORMAT,
                "step": self.step,
                "id": self.step_id,
                "info": self.info,
                "content_digest": self.content_digest,
                "entry_digest": self.entry_digest(),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> _Record:
        """The record in `raw`; ValueError if it is not exactly what `to_json` writes."""
        data = _strict_json(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if set(data) != _RECORD_KEYS:
            raise ValueError(f"keys {sorted(data)}, expected {sorted(_RECORD_KEYS)}")
        fmt, step, step_id = data["format"], data["step"], data["id"]
        info, content_digest = data["info"], data["content_digest"]
        if type(fmt) is not int or fmt != RECORD_FORMAT:
            raise ValueError(f"format {fmt!r}, expected {RECORD_FORMAT}")
        if not isinstance(step, str) or not isinstance(step_id, str):
            raise ValueError("step and id must be strings")
        if not isinstance(info, dict):
            raise ValueError("info must be an object")
        if not isinstance(content_digest, str) or not _DIGEST.fullmatch(content_digest):
            raise ValueError("content_digest must be a sha256 digest")
        record = cls(step, step_id, info, content_digest)
        if data["entry_digest"] != record.entry_digest():
            raise ValueError("entry_digest does not match the record's facts")
        return record


class _Flock:
    """An flock through a private open file description, so that two threads of one
    process exclude each other just as two processes do. Closing releases it."""

    def __init__(self, path: Path, *, directory: bool = False) -> None:
        flags = os.O_CLOEXEC | os.O_NOFOLLOW
        flags |= (os.O_RDONLY | os.O_DIRECTORY) if directory else (os.O_RDWR | os.O_CREAT)
        self._fd = os.open(path, flags, 0o644)

    def take(self, operation: int) -> bool:
        """Lock (`fcntl.LOCK_EX`/`LOCK_SH`, maybe `| LOCK_NB`); False if it would block."""
        try:
            fcntl.flock(self._fd, operation)
        except BlockingIOError:
            return False
        return True

    def identity(self) -> tuple[int, int]:
        info = os.fstat(self._fd)
        return info.st_dev, info.st_ino

    def close(self) -> None:
        os.close(self._fd)


class StepCache:
    """The step cache under `root` (see the module docstring for what it guarantees)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._held: dict[str, _Flock] | None = None  # use locks kept by the open session

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Keep every entry returned inside the block in place until the block ends.

        Wrap everything that reads step outputs' files (the pipeline and the copying of
        its results) in one session. One session at a time per StepCache object.
        """
        if self._held is not None:
            raise RuntimeError("this StepCache already has a session open")
        self._held = {}
        try:
            yield
        finally:
            held, self._held = self._held, None
            for lock in held.values():
                lock.close()

    def lookup(self, name: str, step_id: str) -> StepOutput | None:
        """A verified cached output, or None. A damaged entry is removed once no
        build uses it (this waits for them)."""
        _check_step_id(step_id)
        if not os.path.lexists(self._entry(step_id)):
            return None
        with self._locked(step_id, "lock", fcntl.LOCK_EX):
            output = self._verified(name, step_id)
            if output is None:
                self._remove_damaged(step_id)
            else:
                self._hold(step_id)
            return output

    def get_or_build(
        self, name: str, step_id: str, build: Callable[[Path], dict[str, Any]]
    ) -> tuple[StepOutput, bool]:
        """The cached output of `step_id`, building it with `build(out_dir)` if needed.

        Returns the output and whether it came from the cache. The output's info is
        what a later cache hit returns (JSON: tuples become lists).
        """
        _check_step_id(step_id)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(step_id, "lock", fcntl.LOCK_EX):
            output = self._verified(name, step_id)
            cached = output is not None
            if output is None:
                self._remove_damaged(step_id)
                output = self._build(name, step_id, build)
            self._hold(step_id)
            return output, cached

    def entries(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) == 2 and shard.is_dir():
                yield from sorted(p for p in shard.iterdir() if p.is_dir())

    def prune(self, max_age_days: float | None) -> PruneReport:
        """Remove entries unused for `max_age_days` (all entries when None) that no
        running build holds, and what killed builds and deletions left behind."""
        removed = kept = in_use = freed = 0
        cutoff = None if max_age_days is None else time.time() - max_age_days * 86400
        for entry in list(self.entries()):
            try:
                last_use = os.lstat(entry / "record.json").st_mtime
            except OSError:
                last_use = 0.0
            if cutoff is not None and last_use >= cutoff:
                kept += 1
                continue
            size = self._remove_unused(entry)
            if size is None:
                kept += 1
                in_use += 1
            else:
                removed += 1
                freed += size
        self._sweep(self.root / ".tmp", owned_by_id=True)
        self._sweep(self.root / ".trash", owned_by_id=False)
        return PruneReport(removed, kept, freed, in_use)

    def _entry(self, step_id: str) -> Path:
        return self.root / step_id[:2] / step_id

    @contextlib.contextmanager
    def _locked(self, name: str, kind: str, operation: int) -> Iterator[bool]:
        """Yield whether `.locks/<name>.<kind>` could be locked (always, when blocking)."""
        lock = self._open_lock(name, kind)
        try:
            yield lock.take(operation)
        finally:
            lock.close()

    def _open_lock(self, name: str, kind: str) -> _Flock:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return _Flock(locks / f"{name}.{kind}")

    def _hold(self, step_id: str) -> None:
        if self._held is None or step_id in self._held:
            return
        lock = self._open_lock(step_id, "use")
        # Never waits: only a holder of the build lock, which we hold, takes it exclusively.
        lock.take(fcntl.LOCK_SH)
        self._held[step_id] = lock

    def _verified(self, name: str, step_id: str) -> StepOutput | None:
        """The entry if it is whole and its record says what it should; else None."""
        entry = self._entry(step_id)
        try:
            if not stat.S_ISDIR(os.lstat(entry).st_mode):
                return None
            record = _Record.from_json(_read_regular_file(entry / "record.json"))
            if record.step != name or record.step_id != step_id:
                return None
            if tree_digest(entry / "out", mtimes=True) != record.content_digest:
                return None
        except (OSError, ValueError, RecursionError):  # a tree nested absurdly deep, too
            return None
        os.utime(entry / "record.json")  # last use, for `cache prune`
        return StepOutput(name, step_id, entry / "out", record.info, record.content_digest)

    def _remove_damaged(self, step_id: str) -> None:
        """Remove whatever lies at the entry's place; the caller holds the build lock."""
        entry = self._entry(step_id)
        if not os.path.lexists(entry):
            return
        if self._held is not None and step_id in self._held:  # our own hold would block us
            self._held.pop(step_id).close()
        # Waits for builds that took the entry before it was damaged to finish with it.
        with self._locked(step_id, "use", fcntl.LOCK_EX):
            self._discard(entry)

    def _build(
        self, name: str, step_id: str, build: Callable[[Path], dict[str, Any]]
    ) -> StepOutput:
        """Build into a staging directory and rename it into place; the caller holds
        the build lock, and nothing lies at the entry's place."""
        staging = self.root / ".tmp" / f"{step_id}.{secrets.token_hex(8)}"
        staging.mkdir(parents=True)
        guard = _Flock(staging, directory=True)
        try:
            guard.take(fcntl.LOCK_EX)
            out = staging / "out"
            out.mkdir()
            out_identity = _identity(out)
            info = build(out)
            _check_staging(name, staging, guard, out, out_identity)
            record = _Record(
                name, step_id, _as_json_object(name, info), tree_digest(out, mtimes=True)
            )
            (staging / "record.json").write_bytes(record.to_json())
            _check_staging(name, staging, guard, out, out_identity)
            entry = self._entry(step_id)
            entry.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, entry)
        except BaseException:
            self._discard(staging)
            raise
        finally:
            guard.close()
        return StepOutput(name, step_id, entry / "out", record.info, record.content_digest)

    def _remove_unused(self, entry: Path) -> int | None:
        """Remove `entry` unless a build holds it; its size, or None if kept."""
        with self._locked(entry.name, "lock", fcntl.LOCK_EX | fcntl.LOCK_NB) as free:
            if not free:
                return None
            with self._locked(entry.name, "use", fcntl.LOCK_EX | fcntl.LOCK_NB) as unused:
                if not unused:
                    return None
                size = _tree_size(entry)
                self._discard(entry)
                return size

    def _sweep(self, directory: Path, *, owned_by_id: bool) -> None:
        """Remove the leftovers in `directory` whose owner is gone."""
        if not directory.is_dir():
            return
        for child in sorted(directory.iterdir()):
            with contextlib.ExitStack() as stack:
                owner = child.name.split(".", 1)[0]
                if owned_by_id and _STEP_ID.fullmatch(owner):
                    build_lock = stack.enter_context(
                        self._locked(owner, "lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
                    )
                    if not build_lock:
                        continue
                try:
                    is_dir = stat.S_ISDIR(os.lstat(child).st_mode)
                    guard = _Flock(child, directory=True) if is_dir else None
                except FileNotFoundError:  # another prune got there first
                    continue
                if guard is not None:
                    stack.callback(guard.close)
                    if not guard.take(fcntl.LOCK_EX | fcntl.LOCK_NB):
                        continue
                self._discard(child)

    def _discard(self, path: Path) -> None:
        """Move `path` into the trash, then delete it there."""
        if not os.path.lexists(path):
            return
        trash = self.root / ".trash"
        trash.mkdir(parents=True, exist_ok=True)
        target = trash / f"{path.name}.{secrets.token_hex(8)}"
        try:
            os.rename(path, target)
        except FileNotFoundError:  # another prune got there first
            return
        if not stat.S_ISDIR(os.lstat(target).st_mode):
            target.unlink()
            return
        try:
            guard = _Flock(target, directory=True)
        except FileNotFoundError:
            return
        try:
            # Tells `prune` it is being deleted; ours to delete whatever the answer (a
            # staging directory is still locked by its failed build, in this process).
            guard.take(fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(target, ignore_errors=True)
        finally:
            guard.close()


def _check_step_id(step_id: str) -> None:
    if not _STEP_ID.fullmatch(step_id):
        raise ValueError(f"not a step id: {step_id!r}")


def _check_staging(
    name: str, staging: Path, guard: _Flock, out: Path, out_identity: tuple[int, int]
) -> None:
    try:
        intact = _identity(staging) == guard.identity() and _identity(out) == out_identity
    except FileNotFoundError:
        intact = False
    if not intact:
        raise BuildError(
            f"step {name}: its staging directory {staging} was removed or replaced during "
            "the build; nothing was cached"
        )


def _identity(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def _as_json_object(name: str, info: Any) -> dict[str, Any]:
    """`info` as a later cache hit will return it."""
    if not isinstance(info, dict):
        raise ValueError(f"step {name} returned {type(info).__name__} facts, not a dict")
    parsed: dict[str, Any] = json.loads(json.dumps(info, allow_nan=False))
    return parsed


def _read_regular_file(path: Path) -> bytes:
    # O_NONBLOCK: a FIFO put in its place must not hang the build.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file")
        return stream.read()


def _strict_json(raw: bytes) -> Any:
    """JSON with no duplicate keys and no NaN or Infinity; ValueError otherwise."""

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constants(word: str) -> Any:
        raise ValueError(f"{word} is not JSON")

    try:
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=unique_keys, parse_constant=no_constants
        )
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
