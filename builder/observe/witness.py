"""A witness: an observer who cosigns the release log's checkpoints, each only if it is
consistent with every checkpoint this witness cosigned before (`build.py witness`).

The witness keeps a state file (JSON): the log's verifier key, and the last
checkpoint it cosigned, whole, as evidence. For a newer checkpoint it reads
the log's published consistency proof (`consistency/OLD-NEW`) and checks it
with RFC 9162's algorithm; a checkpoint of the same size with another root
(a fork), a smaller one (a rollback) or one the proof does not link (a
rewritten history) is refused with both signed checkpoints in the message,
so whoever reads it holds the evidence. Only then does it sign a C2SP
cosignature/v1 line, timestamped with the `timestamp` it is given (the
command takes `--time`, else the clock, as the specification means it).

The source is a log directory or an http(s) URL where one is published; only
this reads the network, through `builder.source.http`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.core.canonical import pretty_json
from builder.core.errors import FetchError, InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.release.log import consistency_name, parse_proof
from builder.source.http import Fetcher, RequestsFetcher
from builder.transparency.checkpoint import Checkpoint, parse_checkpoint
from builder.transparency.cosignature import cosign, timestamp_of
from builder.transparency.merkle import verify_consistency
from builder.transparency.note import (
    SIG_COSIGNATURE,
    Note,
    NoteKey,
    note_key_of,
    parse_note,
    parse_vkey,
    verify_note,
)
from builder.trust.keys import SigningKey

STATE_FORMAT = "boothkey-witness-state/v1"
MAX_FILE = 1024 * 1024


class WitnessRefused(VerificationFailed):
    """The checkpoint is not consistent with what this witness has seen."""


def read_source(source: str, name: str, fetcher: Fetcher | None = None) -> bytes | None:
    """File `name` of the published log at `source` (directory or URL); None if absent."""
    if source.startswith(("http://", "https://")):
        url = source.rstrip("/") + "/" + name
        try:
            return (fetcher or RequestsFetcher(timeout=30.0)).fetch_bytes(url, MAX_FILE)
        except FetchError as exc:
            if "404" in exc.message:
                return None
            raise
    path = Path(source) / name
    if not path.exists():
        return None
    return path.read_bytes()


@dataclass(frozen=True)
class WitnessState:
    log_key: NoteKey
    last: Note | None  # the last checkpoint cosigned, as the log signed it

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "log_key": self.log_key.vkey(),
            "last_cosigned": self.last.to_text() if self.last else None,
        }


def read_state(path: Path, log_vkey: str | None) -> WitnessState:
    """The state file; a new one needs `log_vkey`. A different `log_vkey` is refused."""
    if not path.exists():
        if log_vkey is None:
            raise InputError(f"{path}: no witness state yet: give --log-key (the log's vkey)")
        return WitnessState(parse_vkey(log_vkey, "--log-key"), None)
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a witness state file: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
        raise InputError(f"{path}: not a {STATE_FORMAT} file")
    key = parse_vkey(str(raw.get("log_key")), f"{path}: log_key")
    if log_vkey is not None and parse_vkey(log_vkey, "--log-key") != key:
        raise InputError(f"--log-key differs from the log key in {path}")
    last_text = raw.get("last_cosigned")
    last = parse_note(last_text.encode(), f"{path}: last_cosigned") if last_text else None
    return WitnessState(key, last)


def _evidence(seen: Note, offered: Note) -> str:
    return (
        "\n--- checkpoint this witness cosigned before ---\n"
        + seen.to_text()
        + "--- checkpoint offered now ---\n"
        + offered.to_text()
    )


def judge(state: WitnessState, offered: Note, proof: list[bytes] | None, shown: str) -> Checkpoint:
    """The offered checkpoint, if the log signed it and it extends the last one cosigned."""
    verify_note(offered, state.log_key, shown)
    new = parse_checkpoint(offered.text, shown)
    if new.origin != state.log_key.name:
        raise InputError(f"{shown}: checkpoint of log {new.origin!r}, not {state.log_key.name!r}")
    if state.last is None:
        return new
    old = parse_checkpoint(state.last.text, "witness state")
    if new.size < old.size:
        raise WitnessRefused(
            f"REFUSED: the log went back from {old.size} to {new.size} entries (a rollback or "
            "a second, forked log)" + _evidence(state.last, offered)
        )
    if new.size == old.size:
        if new.root_hash != old.root_hash:
            raise WitnessRefused(
                f"REFUSED: FORK: two checkpoints of size {new.size} with different roots, both "
                "signed by the log" + _evidence(state.last, offered)
            )
        return new
    if proof is None:
        raise WitnessRefused(
            f"REFUSED: the log publishes no consistency proof from size {old.size} to "
            f"{new.size} (consistency/{old.size}-{new.size})" + _evidence(state.last, offered)
        )
    try:
        verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    except VerificationFailed as exc:
        raise WitnessRefused(
            f"REFUSED: the checkpoint of size {new.size} is not consistent with the one of "
            f"size {old.size} this witness cosigned: {exc.message}" + _evidence(state.last, offered)
        ) from exc
    return new


def witness(
    source: str,
    key: SigningKey,
    name: str,
    state_path: Path,
    timestamp: int,
    log_vkey: str | None = None,
    fetcher: Fetcher | None = None,
) -> tuple[Note, Checkpoint, NoteKey]:
    """Cosign the newest checkpoint at `source`; returns (the checkpoint with this
    witness's cosignature, the checkpoint, the witness's verifier key). The state file
    is updated only after everything verified."""
    state = read_state(state_path, log_vkey)
    data = read_source(source, "checkpoint", fetcher)
    if data is None:
        raise InputError(f"{source}: no checkpoint published there")
    shown = f"{source.rstrip('/')}/checkpoint"
    offered = parse_note(data, shown)
    proof = None
    if state.last is not None:
        old = parse_checkpoint(state.last.text, "witness state")
        new_size = parse_checkpoint(offered.text, shown).size
        if new_size > old.size:
            proof_name = f"consistency/{consistency_name(old.size, new_size)}"
            raw = read_source(source, proof_name, fetcher)
            proof = parse_proof(raw, proof_name) if raw is not None else None
    checkpoint = judge(state, offered, proof, shown)
    witness_key = note_key_of(key, name, SIG_COSIGNATURE)
    if state.last is not None:
        previous = [
            stamp
            for sig in state.last.signatures
            if sig.is_by(witness_key) and (stamp := timestamp_of(sig)) is not None
        ]
        if previous and timestamp < max(previous):
            raise InputError(
                f"--time {timestamp} is before this witness's last cosignature ({max(previous)})"
            )
    line = cosign(offered.text, name, key, timestamp)
    log_signed = Note(offered.text, tuple(s for s in offered.signatures if s.is_by(state.log_key)))
    cosigned = log_signed.with_signatures([line])
    write_atomic(state_path, pretty_json(WitnessState(state.log_key, cosigned).to_json()))
    return cosigned, checkpoint, witness_key
