"""Content-addressed cache of step outputs.

Layout: `<root>/<id[:2]>/<id>/out/` (the step's files) and `record.json`
(name, id, info, content digest). Entries are built in a private temp
directory and renamed into place, so a killed build never leaves a partial
entry; a per-id `flock` keeps two builds sharing the cache from doing the same
work twice; every entry is re-hashed before use and a corrupted one is thrown
away and rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .canonical import pretty_json
from .steps.base import StepOutput
from .treedigest import tree_digest

RECORD_FORMAT = 1


@dataclass(frozen=True)
class PruneReport:
    removed: int
    kept: int
    freed_bytes: int


class StepCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _entry(self, step_id: str) -> Path:
        return self.root / step_id[:2] / step_id

    @contextlib.contextmanager
    def _locked(self, step_id: str) -> Iterator[None]:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{step_id}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def lookup(self, name: str, step_id: str) -> StepOutput | None:
        """A verified cached output, or None. A corrupted entry is removed."""
        entry = self._entry(step_id)
        record_path = entry / "record.json"
        if not record_path.is_file():
            return None
        try:
            record = json.loads(record_path.read_bytes())
            ok = (
                record.get("format") == RECORD_FORMAT
                and record.get("id") == step_id
                and record.get("step") == name
                and tree_digest(entry / "out", mtimes=True) == record.get("content_digest")
            )
        except (OSError, ValueError):
            ok = False
        if not ok:
            self._discard(entry)
            return None
        os.utime(record_path)  # last use, for `cache prune`
        return StepOutput(
            name=name,
            step_id=step_id,
            path=entry / "out",
            info=record["info"],
            content_digest=record["content_digest"],
        )

    def get_or_build(
        self, name: str, step_id: str, build: Callable[[Path], dict[str, Any]]
    ) -> tuple[StepOutput, bool]:
        """The cached output of `step_id`, building it with `build(out_dir)` if needed.

        Returns the output and whether it came from the cache.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(step_id):
            cached = self.lookup(name, step_id)
            if cached is not None:
                return cached, True
            staging = self.root / ".tmp" / f"{step_id}.{os.getpid()}"
            self._discard(staging)
            (staging / "out").mkdir(parents=True)
            try:
                info = build(staging / "out")
                digest = tree_digest(staging / "out", mtimes=True)
                record = {
                    "format": RECORD_FORMAT,
                    "step": name,
                    "id": step_id,
                    "info": info,
                    "content_digest": digest,
                }
                (staging / "record.json").write_bytes(pretty_json(record))
                entry = self._entry(step_id)
                entry.parent.mkdir(parents=True, exist_ok=True)
                self._discard(entry)
                os.rename(staging, entry)
            except BaseException:
                self._discard(staging)
                raise
            return StepOutput(name, step_id, entry / "out", info, digest), False

    def _discard(self, path: Path) -> None:
        if not path.exists():
            return
        trash = self.root / ".trash" / f"{path.name}.{os.getpid()}.{time.monotonic_ns()}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def entries(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) == 2 and shard.is_dir():
                yield from sorted(p for p in shard.iterdir() if p.is_dir())

    def prune(self, max_age_days: float | None) -> PruneReport:
        """Remove entries unused for `max_age_days` (all entries when None)."""
        removed = kept = freed = 0
        cutoff = None if max_age_days is None else time.time() - max_age_days * 86400
        for entry in list(self.entries()):
            record = entry / "record.json"
            try:
                last_use = record.stat().st_mtime
            except OSError:
                last_use = 0.0
            if cutoff is not None and last_use >= cutoff:
                kept += 1
                continue
            with self._locked(entry.name):
                freed += _tree_size(entry)
                self._discard(entry)
            removed += 1
        shutil.rmtree(self.root / ".tmp", ignore_errors=True)
        shutil.rmtree(self.root / ".trash", ignore_errors=True)
        return PruneReport(removed, kept, freed)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
