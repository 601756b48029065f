"""Was this release published in the release log? The check `verify` runs on a proof
bundle (a file, or the one in the key's proof slot), pure: bundle bytes, the manifest,
the log's key and the trusted witnesses in, a `Check` out."""

from __future__ import annotations

from pathlib import Path

from builder.build.manifest import DATA_PARTITION, Manifest
from builder.core.errors import InputError, VerificationFailed
from builder.observe.report import Check
from builder.transparency.entries import RELEASE, parse_entry
from builder.transparency.note import NoteKey
from builder.transparency.proof import (
    PROOF_SLOT_SIZE,
    bundle_from_slot,
    parse_bundle,
    verify_bundle,
)
from builder.transparency.witnesses import WitnessKeys

NAME = "release log"


def check_published(
    bundle: bytes | None,
    shown: str,
    manifest: Manifest,
    manifest_sha256: str,
    log_key: NoteKey,
    witnesses: WitnessKeys,
    threshold: int,
) -> Check:
    if bundle is None:
        return Check(NAME, False, f"no proof bundle: {shown} holds none")
    try:
        result = verify_bundle(parse_bundle(bundle, shown), log_key, witnesses, threshold, shown)
        entry = parse_entry(result.entry, f"{shown}: entry")
    except (InputError, VerificationFailed) as exc:
        return Check(NAME, False, exc.message)
    image = entry.get("image")
    wanted = {
        "kind": RELEASE,
        "name": manifest.name,
        "version": manifest.version,
        "manifest_sha256": manifest_sha256,
        "image": {"sha256": manifest.image.sha256, "size": manifest.image.size},
        "root_hash": manifest.verity.root_hash,
        "uki_sha256": manifest.uki_sha256,
    }
    differing = [key for key, value in wanted.items() if entry.get(key) != value]
    details = (f"checkpoint: {result.checkpoint.describe()}", *result.details)
    if differing:
        return Check(
            NAME,
            False,
            f"the proven log entry {result.index} is about another release "
            f"({entry.get('name')} {entry.get('version')}, image {image}); "
            f"differs in {', '.join(differing)}",
            details,
        )
    return Check(NAME, True, result.summary(), details)


def read_proof_slot(image: Path, manifest: Manifest) -> bytes | None:
    """The bundle in the proof slot of the image's or key's booth-data partition."""
    for partition in manifest.partitions:
        if partition.name == DATA_PARTITION and partition.size >= PROOF_SLOT_SIZE:
            with open(image, "rb") as stream:
                stream.seek(partition.offset + partition.size - PROOF_SLOT_SIZE)
                slot = stream.read(PROOF_SLOT_SIZE)
            return bundle_from_slot(slot, f"{image}: {DATA_PARTITION} proof slot")
    return None
