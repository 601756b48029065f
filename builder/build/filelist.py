"""The root filesystem file list (`NAME.files.json`): what the overlay step's tree
holds, one `tree_listing` entry (with mtimes) per file, written beside the manifest by
`build` and compared file by file by `rebuild`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.core.canonical import canonical_json, sha256_bytes
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.core.treedigest import tree_listing

FILE_LIST_FORMAT = 1
# The step whose output tree is the root filesystem that goes into the image.
FILE_LIST_STEP = "overlay"
# Where that step keeps the file list, beside its `tree/`.
FILE_LIST_NAME = "files.json"


def file_list_bytes(tree: Path) -> bytes:
    """The file list of `tree` as published (see `file_list_data`)."""
    return file_list_data(tree_listing(tree, mtimes=True))


def file_list_data(entries: list[dict[str, Any]]) -> bytes:
    """A file list from `tree_listing` entries: JSON, one canonical entry per line, so it
    is both deterministic and readable with `diff`."""
    lines = [canonical_json(entry) for entry in entries]
    head = canonical_json({"format": FILE_LIST_FORMAT, "step": FILE_LIST_STEP})[:-1]
    return head + b',"entries":[\n' + b",\n".join(lines) + b"\n]}\n"


def write_file_list(tree: Path, path: Path) -> str:
    """Write the file list of `tree` to `path` atomically; return its sha256."""
    data = file_list_bytes(tree)
    write_atomic(path, data)
    return sha256_bytes(data)


def read_file_list(path: Path, expected_sha256: str | None = None) -> list[dict[str, Any]]:
    """The entries of a published file list; `VerificationFailed` if its digest is not
    `expected_sha256`, `InputError` if it is unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file list: {exc.strerror}") from exc
    if expected_sha256 is not None and sha256_bytes(data) != expected_sha256:
        raise VerificationFailed(f"{path}: sha256 differs from the one the manifest gives")
    try:
        raw = json.loads(data)
        entries = raw["entries"]
        if raw.get("format") != FILE_LIST_FORMAT or not isinstance(entries, list):
            raise ValueError("unknown format")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a boothkey file list: {exc}") from exc
    return [entry for entry in entries if isinstance(entry, dict)]
