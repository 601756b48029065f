"""Factories for release-log tests: fixed keys (seeded, so notes are reproducible) and a
log holding releases of synthetic manifests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from manifest_factory import manifest, verity

from builder.release.log import append, init_log, make_checkpoint, prove
from builder.transparency.cosignature import cosign
from builder.transparency.note import SIG_COSIGNATURE, note_key_of
from builder.transparency.proof import ProofBundle
from builder.trust.keys import SigningKey

ORIGIN = "example.org/election-2030/log"


def fixed_key(name: str) -> SigningKey:
    seed = hashlib.sha256(f"boothkey test key {name}".encode()).digest()
    return SigningKey(name, Ed25519PrivateKey.from_private_bytes(seed))


def fake_manifest(directory: Path, name: str, version: str) -> Path:
    """A manifest `read_manifest` accepts, for an image that need not exist."""
    digest = hashlib.sha256(f"{name} {version}".encode()).hexdigest()
    raw = manifest(
        name=name,
        version=version,
        epoch=1767225600,
        image_size=1048576,
        image_sha256=digest,
        partitions=[],
        uki_sha256=hashlib.sha256(digest.encode()).hexdigest(),
        cmdline="quiet",
        verity_info=verity(hashlib.sha256(b"root" + digest.encode()).hexdigest(), "00" * 32, 1),
    )
    path = directory / f"{name}-{version}.manifest.json"
    path.write_text(json.dumps(raw, sort_keys=True))
    return path


def make_log(directory: Path, releases: int, log_key: SigningKey | None = None) -> Path:
    """A log at `directory` with `releases` releases of "booth" and a checkpoint over them."""
    key = log_key or fixed_key("authority")
    init_log(directory, key, ORIGIN)
    manifests = directory.parent / f"{directory.name}-manifests"
    manifests.mkdir(exist_ok=True)
    for number in range(releases):
        append(directory, fake_manifest(manifests, "booth", f"2030.{number}"))
    make_checkpoint(directory, key)
    return directory


def witness_vkey(name: str) -> str:
    """The verifier key of test witness `name` (key `fixed_key(name)`), as it publishes it."""
    return note_key_of(fixed_key(name), name, SIG_COSIGNATURE).vkey()


def cosigned_bundle(
    directory: Path, index: int, witnesses: Sequence[str], timestamp: int = 1767225600
) -> ProofBundle:
    """The proof bundle of entry `index` of the log at `directory`, its checkpoint
    cosigned by each named test witness."""
    bundle = prove(directory, index)
    note = bundle.checkpoint
    lines = [cosign(note.text, name, fixed_key(name), timestamp) for name in witnesses]
    return replace(bundle, checkpoint=note.with_signatures(lines))
