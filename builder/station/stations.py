"""Per-station data partitions and images, made from one built software image.

Every station's image is the software image, byte for byte, except inside
the "booth-data" partition, which holds that station's signed election data
(`election.partition_prefix`) followed by zeros. The GPT and the software
partitions therefore stay identical across stations.

The software image is read once, checked against its manifest, and then
copied per station by the kernel (`shutil.copyfile`), never held in memory.
Its sha256 up to the data partition is computed once and reused for every
station's image digest (sha256 state copy), so a station costs one copy plus
hashing its own data partition and the backup GPT behind it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.build.manifest import (
    DATA_PARTITION,
    Manifest,
    PartitionInfo,
    check_layout,
    read_manifest,
)
from builder.core.canonical import CHUNK_SIZE, pretty_json, update_zeros
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import atomic_output, atomic_path, write_atomic
from builder.station.election import (
    ElectionDefinition,
    Station,
    envelope_bytes,
    partition_prefix,
    sign_payload,
    station_payload,
)
from builder.station.fingerprint import election_fingerprint
from builder.transparency.proof import proof_slot
from builder.trust.signer import Signer

MIB = 1024 * 1024


@dataclass(frozen=True)
class SoftwareImage:
    """A built image checked against its manifest, ready to be copied per station."""

    path: Path
    name: str
    size: int
    data_offset: int
    data_size: int
    prefix_state: Any  # hashlib sha256 object over bytes [0, data_offset)

    def station_file(self, station_id: str) -> str:
        return f"{self.name}-{station_id}.img"


@dataclass(frozen=True)
class StationResult:
    station: Station
    election_fingerprint: str
    payload_sha256: str
    envelope: Path
    data: Path | None
    image: Path | None
    image_sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.station.id,
            "name": self.station.name,
            "election_fingerprint": self.election_fingerprint,
            "payload_sha256": self.payload_sha256,
            "envelope": self.envelope.name,
            "data": self.data.name if self.data else None,
            "image": self.image.name if self.image else None,
            "image_sha256": self.image_sha256,
        }


def data_partition_of(manifest: Manifest) -> PartitionInfo:
    """The "booth-data" partition a manifest lists (`InputError` naming the fix if none)."""
    for partition in manifest.partitions:
        if partition.name == DATA_PARTITION:
            return partition
    raise InputError(
        f"manifest of {manifest.name}: the image has no {DATA_PARTITION} partition "
        "(set data_partition in the recipe)"
    )


def open_software_image(image: Path, manifest_path: Path) -> SoftwareImage:
    """Check `image` is the one `manifest_path` describes (size, sha256, zero data partition)."""
    manifest = read_manifest(manifest_path)
    check_layout(manifest, str(manifest_path))
    data = data_partition_of(manifest)
    offset, size = data.offset, data.size
    try:
        actual_size = image.stat().st_size
    except OSError as exc:
        raise InputError(f"{image}: cannot read image: {exc.strerror}") from exc
    if actual_size != manifest.image.size or offset + size > actual_size:
        raise VerificationFailed(
            f"{image}: {actual_size} bytes, but {manifest_path} says {manifest.image.size}"
        )
    digest = hashlib.sha256()
    prefix_state: Any = None
    data_nonzero = False
    position = 0
    with open(image, "rb", buffering=0) as stream:
        while position < actual_size:
            # Stop reads at the partition's edges so the prefix state is exact.
            if position < offset:
                limit = offset
            elif position < offset + size:
                limit = offset + size
            else:
                limit = actual_size
            chunk = stream.read(min(CHUNK_SIZE, limit - position))
            if not chunk:
                raise VerificationFailed(f"{image}: shorter than its size while reading")
            if offset <= position < offset + size and chunk.strip(b"\0"):
                data_nonzero = True
            digest.update(chunk)
            position += len(chunk)
            if position == offset:
                prefix_state = digest.copy()
    if digest.hexdigest() != manifest.image.sha256:
        raise VerificationFailed(
            f"{image}: sha256 {digest.hexdigest()} is not the "
            f"{manifest.image.sha256} that {manifest_path} gives"
        )
    if data_nonzero:
        raise InputError(
            f"{image}: the {DATA_PARTITION} partition is not empty: give the software image"
        )
    return SoftwareImage(image, manifest.name, actual_size, offset, size, prefix_state)


def _data_parts(envelope: bytes, size: int, log_proof: bytes | None) -> tuple[bytes, bytes]:
    """(election prefix at the partition's start, proof slot at its end or b"")."""
    prefix = partition_prefix(envelope)
    slot = proof_slot(log_proof) if log_proof is not None else b""
    if len(prefix) + len(slot) > size:
        raise InputError(
            f"election data ({len(prefix)} bytes)"
            + (f" with the release log proof slot ({len(slot)} bytes)" if slot else "")
            + f" does not fit the {size}-byte {DATA_PARTITION} partition"
        )
    return prefix, slot


def write_data_partition(
    path: Path, envelope: bytes, size: int, log_proof: bytes | None = None
) -> None:
    """A data partition image of exactly `size` bytes (zeros after the envelope are sparse),
    with the release log's proof bundle in its proof slot when `log_proof` is given."""
    prefix, slot = _data_parts(envelope, size, log_proof)
    with atomic_output(path) as stream:
        stream.write(prefix)
        stream.truncate(size - len(slot))
        stream.seek(size - len(slot))
        stream.write(slot)


def write_station_image(
    software: SoftwareImage, envelope: bytes, path: Path, log_proof: bytes | None = None
) -> str:
    """Copy the software image to `path` with the station's data (and the release log's
    proof bundle, if given) written in; its sha256."""
    prefix, slot = _data_parts(envelope, software.data_size, log_proof)
    digest = software.prefix_state.copy()
    digest.update(prefix)
    update_zeros(digest, software.data_size - len(prefix) - len(slot))
    digest.update(slot)
    with atomic_path(path) as tmp:
        shutil.copyfile(software.path, tmp)
        with open(tmp, "r+b") as stream:
            stream.seek(software.data_offset)
            stream.write(prefix)
            stream.seek(software.data_offset + software.data_size - len(slot))
            stream.write(slot)
            stream.seek(software.data_offset + software.data_size)
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, 0o644)
    return str(digest.hexdigest())


def make_stations(
    definition: ElectionDefinition,
    stations: Sequence[Station],
    keys: Sequence[Signer],
    out_dir: Path,
    *,
    data_size: int | None,
    software: SoftwareImage | None = None,
    jobs: int = 2,
    report: Callable[[str], None] = lambda line: None,
    log_proof: bytes | None = None,
) -> list[StationResult]:
    """For each station: signed envelope, data partition (if `data_size`) and, with
    `software`, a full station image; then `stations.json` listing them all. With
    `log_proof` (a release log proof bundle), every data partition carries it."""
    if not stations:
        raise InputError(f"{definition.path}: no stations: add `stations` or give --stations")
    out_dir.mkdir(parents=True, exist_ok=True)
    signed = []
    for station in stations:
        payload = sign_payload(station_payload(definition, station), keys)
        signed.append((station, envelope_bytes(payload), payload.payload))

    def one(item: tuple[Station, bytes, bytes]) -> StationResult:
        station, envelope, payload = item
        envelope_path = out_dir / f"{station.id}.election.json"
        write_atomic(envelope_path, envelope)
        data_path = None
        if data_size is not None:
            data_path = out_dir / f"{station.id}.data"
            write_data_partition(data_path, envelope, data_size, log_proof)
        image_path, image_sha256 = None, None
        if software is not None:
            image_path = out_dir / software.station_file(station.id)
            image_sha256 = write_station_image(software, envelope, image_path, log_proof)
        report(f"station {station.id}: {election_fingerprint(payload)}")
        return StationResult(
            station,
            election_fingerprint(payload),
            hashlib.sha256(payload).hexdigest(),
            envelope_path,
            data_path,
            image_path,
            image_sha256,
        )

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, signed))
    summary = {
        "election": {"id": definition.id, "name": definition.name},
        "stations": [result.to_json() for result in results],
    }
    write_atomic(out_dir / "stations.json", pretty_json(summary))
    return results
