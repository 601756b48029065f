"""What the release log records: each entry is one canonical JSON object (sorted keys,
compact, UTF-8), so its bytes, and therefore its leaf hash, follow from its content.

- a release: ``{"kind": "release", "name", "version", "manifest_sha256"
  (sha256 of the manifest file as published), "image": {"sha256", "size"},
  "root_hash" (the dm-verity root hash the booth boots with), "uki_sha256"}``;
- an observer's rebuild statement: ``{"kind": "rebuild-statement", "name",
  "version", "image_sha256", "result", "signers" (key ids in the envelope),
  "statement_sha256"}``, the statement itself published beside the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from builder.core.canonical import canonical_json
from builder.core.errors import InputError

RELEASE = "release"
REBUILD_STATEMENT = "rebuild-statement"
KINDS = (RELEASE, REBUILD_STATEMENT)


def entry_bytes(entry: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(entry))


def parse_entry(data: bytes, shown: str) -> dict[str, Any]:
    """An entry's object; refused unless it is canonical JSON of a known kind."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{shown}: a log entry is canonical JSON: {exc}") from exc
    if not isinstance(value, dict) or value.get("kind") not in KINDS:
        raise InputError(f"{shown}: not a boothkey log entry (kind must be one of {KINDS})")
    if canonical_json(value) != data:
        raise InputError(f"{shown}: the log entry is not in canonical JSON form")
    return value


def describe_entry(entry: Mapping[str, Any]) -> str:
    if entry.get("kind") == RELEASE:
        image = entry.get("image")
        digest = image.get("sha256") if isinstance(image, Mapping) else None
        return f"release {entry.get('name')} {entry.get('version')} (image sha256 {digest})"
    return (
        f"rebuild statement on {entry.get('name')} {entry.get('version')}: "
        f"{entry.get('result')} (statement sha256 {entry.get('statement_sha256')})"
    )
