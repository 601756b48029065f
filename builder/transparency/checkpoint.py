"""C2SP tlog-checkpoint bodies (c2sp.org/tlog-checkpoint): the note text that states a
log's tree head.

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <root hash, base64>\\n
    [extension lines, each non-empty]
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from builder.core.errors import InputError
from builder.transparency.merkle import HASH_SIZE

_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))

    def describe(self) -> str:
        return f"{self.origin} size {self.size} root {base64.b64encode(self.root_hash).decode()}"


def parse_checkpoint(text: str, shown: str) -> Checkpoint:
    """Parse a checkpoint's note text (not its signatures)."""
    if not text.endswith("\n"):
        raise InputError(f"{shown}: a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise InputError(f"{shown}: a checkpoint has an origin, a size and a root hash line")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise InputError(f"{shown}: the origin line is empty")
    if not _SIZE_RE.fullmatch(size_text) or int(size_text) >= 2**63:
        raise InputError(f"{shown}: tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise InputError(f"{shown}: the root hash is not base64") from exc
    if len(root) != HASH_SIZE:
        raise InputError(f"{shown}: the root hash is {len(root)} bytes, not {HASH_SIZE}")
    if any(not line for line in extensions):
        raise InputError(f"{shown}: an extension line is empty")
    checkpoint = Checkpoint(origin, int(size_text), root, tuple(extensions))
    if checkpoint.body() != text:
        raise InputError(f"{shown}: the checkpoint is not in its canonical form")
    return checkpoint
