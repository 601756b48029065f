"""The authority's append-only release log, kept as plain files that can be published as
a static directory (`build.py log ...`).

    DIR/log.vkey               the log's C2SP verifier key; its name is the log's origin
    DIR/entries/NNNNNNNNNN.json  entry N, canonical JSON (`transparency.entries`), never rewritten
    DIR/statements/SHA256.dsse.json  observers' rebuild statements that entries name
    DIR/checkpoint             the newest signed checkpoint, with the witnesses' cosignatures
    DIR/checkpoints/SIZE       every checkpoint the log signed, as signed
    DIR/consistency/OLD-NEW    consistency proof from every earlier checkpoint to each new one
                               (one base64 hash a line), so witnesses need nothing but files

Every change happens under an exclusive lock (`DIR/.lock`). An entry is written
to a temporary file, synced, and linked to its final name, which fails if
the name exists: an existing entry's bytes are never replaced. A crash leaves
at most a stray temporary file (ignored) or one more entry than the newest
checkpoint covers, which the next checkpoint covers. Before signing, the log
recomputes every earlier checkpoint's root from the entry files and refuses
to sign if one differs: it never signs a history inconsistent with its own.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.build.manifest import read_manifest
from builder.core.canonical import sha256_bytes
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.transparency.checkpoint import Checkpoint, parse_checkpoint
from builder.transparency.cosignature import verify_cosignature
from builder.transparency.entries import (
    REBUILD_STATEMENT,
    RELEASE,
    describe_entry,
    entry_bytes,
    parse_entry,
)
from builder.transparency.merkle import consistency_proof, inclusion_proof, leaf_hash, root_hash
from builder.transparency.note import (
    SIG_ED25519,
    Note,
    NoteKey,
    check_note_name,
    note_key_of,
    parse_note,
    parse_vkey,
    sign_note,
    verify_note,
)
from builder.transparency.proof import ProofBundle
from builder.transparency.witnesses import WitnessKeys
from builder.trust.dsse import parse_envelope
from builder.trust.keys import SigningKey

REBUILD_PREDICATE = "urn:boothkey:rebuild:v1"  # builder.observe.attest.PREDICATE_TYPE
VKEY_FILE = "log.vkey"
_ENTRY_RE = re.compile(r"^([0-9]{10})\.json\Z")


def entry_name(index: int) -> str:
    return f"{index:010d}.json"


def consistency_name(old: int, new: int) -> str:
    return f"{old}-{new}"


def format_proof(hashes: Sequence[bytes]) -> bytes:
    return "".join(base64.b64encode(h).decode() + "\n" for h in hashes).encode()


def parse_proof(data: bytes, shown: str) -> list[bytes]:
    try:
        return [base64.b64decode(line, validate=True) for line in data.decode().splitlines()]
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{shown}: a proof is one base64 hash a line") from exc


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Write `path`, which must not exist: temp file, fsync, hard link (fails if the name
    exists, so nothing is ever replaced), then sync the directory."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise InputError(f"{path}: already exists; the log never rewrites a file") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class LogState:
    """What is on disk: the log's key, its entries in order, its newest checkpoint."""

    directory: Path
    key: NoteKey
    entries: tuple[bytes, ...]
    checkpoint: Note | None

    @property
    def leaves(self) -> list[bytes]:
        return [leaf_hash(entry) for entry in self.entries]

    def newest(self) -> Checkpoint | None:
        if self.checkpoint is None:
            return None
        return parse_checkpoint(self.checkpoint.text, str(self.directory / "checkpoint"))


def read_log_key(directory: Path) -> NoteKey:
    path = directory / VKEY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: not a release log (no readable {VKEY_FILE})") from exc
    key = parse_vkey(text, str(path))
    if key.sig_type != SIG_ED25519:
        raise InputError(f"{path}: a log key signs notes (type 0x01)")
    return key


def read_log(directory: Path) -> LogState:
    """Read and check the log: entries numbered 0..n-1 without a gap, each a valid entry;
    the newest checkpoint signed by the log's key."""
    key = read_log_key(directory)
    entries_dir = directory / "entries"
    numbered: dict[int, Path] = {}
    for path in entries_dir.iterdir() if entries_dir.is_dir() else ():
        if path.name.startswith("."):
            continue  # a temporary file left by an interrupted append
        match = _ENTRY_RE.match(path.name)
        if match is None:
            raise InputError(f"{path}: not a log entry file name (NNNNNNNNNN.json)")
        numbered[int(match.group(1))] = path
    if sorted(numbered) != list(range(len(numbered))):
        missing = sorted(set(range(max(numbered, default=-1) + 1)) - set(numbered))
        raise VerificationFailed(
            f"{entries_dir}: entries {', '.join(map(str, missing))} are missing: the log "
            "was damaged (an entry was removed)"
        )
    entries = []
    for index in range(len(numbered)):
        data = numbered[index].read_bytes()
        parse_entry(data, str(numbered[index]))
        entries.append(data)
    checkpoint = None
    path = directory / "checkpoint"
    if path.exists():
        checkpoint = parse_note(path.read_bytes(), str(path))
        verify_note(checkpoint, key, str(path))
    return LogState(directory, key, tuple(entries), checkpoint)


def init_log(directory: Path, key: SigningKey, origin: str) -> NoteKey:
    """Start an empty log named `origin`, signed by `key`; its first checkpoint is size 0."""
    check_note_name(origin, "--origin")
    if (directory / VKEY_FILE).exists():
        raise InputError(f"{directory}: already holds a release log")
    for sub in ("entries", "statements", "checkpoints", "consistency"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    note_key = note_key_of(key, origin)
    with _locked(directory):
        _write_new(directory / VKEY_FILE, (note_key.vkey() + "\n").encode())
        _sign_checkpoint(read_log(directory), key)
    return note_key


def release_entry(manifest_path: Path) -> dict[str, Any]:
    manifest = read_manifest(manifest_path)
    return {
        "kind": RELEASE,
        "name": manifest.name,
        "version": manifest.version,
        "manifest_sha256": sha256_bytes(manifest_path.read_bytes()),
        "image": {"sha256": manifest.image.sha256, "size": manifest.image.size},
        "root_hash": manifest.verity.root_hash,
        "uki_sha256": manifest.uki_sha256,
    }


def statement_entry(data: bytes, shown: str) -> dict[str, Any]:
    envelope = parse_envelope(data, shown)
    statement = envelope.statement()
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict) or not isinstance(predicate.get("image"), dict):
        raise InputError(f"{shown}: not an observer's rebuild statement ({REBUILD_PREDICATE})")
    image = predicate["image"]
    if statement.get("predicateType") != REBUILD_PREDICATE:
        raise InputError(f"{shown}: not an observer's rebuild statement ({REBUILD_PREDICATE})")
    return {
        "kind": REBUILD_STATEMENT,
        "name": image.get("name"),
        "version": image.get("version"),
        "image_sha256": image.get("sha256"),
        "result": predicate.get("result"),
        "signers": sorted({signature.keyid for signature in envelope.signatures}),
        "statement_sha256": sha256_bytes(data),
    }


def append(directory: Path, item: Path) -> tuple[int, str]:
    """Append a release manifest or an observer's statement; (its index, a description)."""
    try:
        data = item.read_bytes()
    except OSError as exc:
        raise InputError(f"{item}: cannot read: {exc.strerror}") from exc
    is_statement = b'"payloadType"' in data
    entry = statement_entry(data, str(item)) if is_statement else release_entry(item)
    encoded = entry_bytes(entry)
    with _locked(directory):
        state = read_log(directory)
        if encoded in state.entries:
            index = state.entries.index(encoded)
            raise InputError(f"{item}: already in the log at index {index}")
        if is_statement:
            path = directory / "statements" / f"{entry['statement_sha256']}.dsse.json"
            if not path.exists():
                _write_new(path, data)
        index = len(state.entries)
        _write_new(directory / "entries" / entry_name(index), encoded)
    return index, describe_entry(entry)


def _signed_sizes(directory: Path) -> list[int]:
    found = []
    for path in (directory / "checkpoints").iterdir():
        if path.name.isdigit():
            found.append(int(path.name))
    return sorted(found)


def _sign_checkpoint(state: LogState, key: SigningKey) -> Checkpoint:
    directory = state.directory
    if note_key_of(key, state.key.name).key_id != state.key.key_id:
        raise InputError(f"--key {key.name}: not the key of log {state.key.name} ({VKEY_FILE})")
    leaves = state.leaves
    earlier = _signed_sizes(directory)
    for size in earlier:
        path = directory / "checkpoints" / str(size)
        old = parse_checkpoint(parse_note(path.read_bytes(), str(path)).text, str(path))
        if size > len(leaves) or root_hash(leaves[:size]) != old.root_hash:
            raise VerificationFailed(
                f"{path}: the entries no longer give this checkpoint's root: an entry was "
                "changed, removed or reordered; the log refuses to sign a rewritten history"
            )
    checkpoint = Checkpoint(state.key.name, len(leaves), root_hash(leaves))
    note = sign_note(checkpoint.body(), state.key.name, key)
    target = directory / "checkpoints" / str(checkpoint.size)
    if not target.exists():
        _write_new(target, note.to_bytes())
    for size in earlier:
        proof_path = directory / "consistency" / consistency_name(size, checkpoint.size)
        if size < checkpoint.size and not proof_path.exists():
            _write_new(proof_path, format_proof(consistency_proof(leaves, size)))
    current = state.checkpoint
    if current is None or current.text != note.text:
        write_atomic(directory / "checkpoint", note.to_bytes())
    return checkpoint


def make_checkpoint(directory: Path, key: SigningKey) -> Checkpoint:
    """Sign a checkpoint over every entry (and consistency proofs from every earlier one)."""
    with _locked(directory):
        return _sign_checkpoint(read_log(directory), key)


def find_release(state: LogState, manifest_path: Path) -> int:
    digest = sha256_bytes(manifest_path.read_bytes())
    for index, data in enumerate(state.entries):
        entry = parse_entry(data, f"entry {index}")
        if entry.get("kind") == RELEASE and entry.get("manifest_sha256") == digest:
            return index
    raise InputError(f"{manifest_path}: this manifest is not in the log")


def prove(directory: Path, index: int | None, manifest: Path | None = None) -> ProofBundle:
    """The proof bundle of entry `index` (or of `manifest`'s release) against the newest
    checkpoint, with whatever cosignatures it has collected."""
    state = read_log(directory)
    if manifest is not None:
        index = find_release(state, manifest)
    if index is None:
        raise InputError("give --entry N or --manifest M")
    newest = state.newest()
    if state.checkpoint is None or newest is None:
        raise InputError(f"{directory}: no checkpoint yet (run `build.py log checkpoint`)")
    if not 0 <= index < newest.size:
        raise InputError(
            f"--entry {index}: the newest checkpoint covers entries 0 to {newest.size - 1} "
            "(make a checkpoint first)"
        )
    leaves = state.leaves[: newest.size]
    if root_hash(leaves) != newest.root_hash:
        raise VerificationFailed(f"{directory}: the entries do not give the checkpoint's root")
    return ProofBundle(
        index, state.entries[index], tuple(inclusion_proof(leaves, index)), state.checkpoint
    )


def consistency(directory: Path, old: int, new: int | None) -> list[bytes]:
    """The consistency proof from size `old` to size `new` (default: the newest checkpoint)."""
    state = read_log(directory)
    newest = state.newest()
    size = new if new is not None else (newest.size if newest else len(state.entries))
    if not 0 <= old <= size <= len(state.entries):
        raise InputError(f"sizes {old} to {size}: the log has {len(state.entries)} entries")
    return consistency_proof(state.leaves[:size], old)


def add_cosignatures(
    directory: Path, cosigned: Sequence[Path], witnesses: WitnessKeys | None = None
) -> list[str]:
    """Merge witnesses' cosignature lines (each file: the checkpoint with them) into
    DIR/checkpoint; files for another checkpoint are refused. With `witnesses`, every
    line must be a valid cosignature by one of them, else nothing is merged. Returns the
    names added."""
    with _locked(directory):
        state = read_log(directory)
        if state.checkpoint is None:
            raise InputError(f"{directory}: no checkpoint to cosign")
        note = state.checkpoint
        added: list[str] = []
        for path in cosigned:
            try:
                theirs = parse_note(path.read_bytes(), str(path))
            except OSError as exc:
                raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
            if theirs.text != note.text:
                raise InputError(f"{path}: cosigns another checkpoint than {directory}/checkpoint")
            extra = [sig for sig in theirs.signatures if not sig.is_by(state.key)]
            if witnesses is not None:
                for sig in extra:
                    witness = witnesses.get((sig.name, sig.key_id))
                    if witness is None:
                        raise InputError(
                            f"{path}: a cosignature by {sig.name} (key id {sig.key_id.hex()}), "
                            "not one of the given witnesses; nothing merged"
                        )
                    if verify_cosignature(note.text, sig, witness) is None:
                        raise InputError(
                            f"{path}: the cosignature by {sig.name} does not verify with its "
                            "key; nothing merged"
                        )
            before = len(note.signatures)
            note = note.with_signatures(extra)
            added += [sig.name for sig in note.signatures[before:]]
        write_atomic(directory / "checkpoint", note.to_bytes())
        return added
