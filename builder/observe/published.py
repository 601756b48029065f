"""A signed release as published, read and checked whole before a page shows it.

`read_release` takes the files `build`, `bundle`, `sign` and `attest` leave beside
the manifest (NAME.img, NAME.manifest.json, NAME.dsse.json, NAME.img.KEY.minisig,
SHA256SUMS, NAME.spdx.json, NAME.spdx3.json, NAME.cdx.json, NAME.provenance.json,
NAME.rebuild.*.dsse.json) and the signers' public keys, and refuses what a page must not present as a release: an
envelope over another statement, a signature by a key not given or not valid, a
minisign signature that does not match the image, an SBOM or provenance whose digest
is not the manifest's, an image that is not the manifest's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.build.manifest import DATA_PARTITION, Manifest, read_manifest
from builder.core.canonical import sha256_bytes
from builder.core.errors import InputError, VerificationFailed
from builder.observe.attest import judge_statement, read_rebuild_statements
from builder.release.sign import checked_image_blake2b
from builder.station.fingerprint import software_fingerprint
from builder.trust.dsse import Envelope, image_statement, new_envelope, parse_envelope
from builder.trust.keys import PublicKey, load_trusted_keys
from builder.trust.minisign import MinisignSignature, keynum_text, parse_signature, verify_digest

SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class PublishedFile:
    """A small published file the page links to (copied into the site)."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.data)


@dataclass(frozen=True)
class Signer:
    key: PublicKey
    minisig_file: str | None
    minisig: MinisignSignature | None

    @property
    def minisign_keynum(self) -> str:
        return keynum_text(self.key.minisign_keynum)


@dataclass(frozen=True)
class ObserverStatement:
    file: str
    result: str | None  # "same", "different", or None when it says nothing of this image
    note: str  # why it says nothing of this image, or ""
    signers: tuple[str, ...]  # trusted observer names, or key ids when none was checked
    checked: bool  # the signatures were checked against trusted observer keys


@dataclass(frozen=True)
class PackageRow:
    name: str
    version: str
    architecture: str
    sets: tuple[str, ...]
    licence: str


@dataclass(frozen=True)
class PublishedRelease:
    manifest: Manifest
    manifest_file: PublishedFile
    envelope: Envelope
    envelope_file: PublishedFile
    signers: tuple[Signer, ...]
    threshold: int
    observers: tuple[ObserverStatement, ...]
    observers_checked: bool
    packages: tuple[PackageRow, ...]
    sbom: PublishedFile | None
    provenance: PublishedFile | None
    files: tuple[PublishedFile, ...]  # everything the site carries, the above included

    @property
    def software_fingerprint(self) -> str:
        return software_fingerprint(self.manifest.verity.root_hash)

    @property
    def data_partition(self) -> tuple[int, int] | None:
        """(offset, size) of the station data slot, read as zeros when checking a key."""
        for part in self.manifest.partitions:
            if part.name == DATA_PARTITION:
                return part.offset, part.size
        return None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} is missing") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from exc


def _signers(
    directory: Path, manifest: Manifest, envelope: Envelope, trusted: Mapping[str, PublicKey]
) -> tuple[Signer, ...]:
    envelope_name = f"{manifest.name}.dsse.json"
    signers: dict[str, PublicKey] = {}
    for index, (signature, key, valid) in enumerate(envelope.check_each(trusted)):
        where = f"{envelope_name}: signatures[{index}] (key id {signature.keyid})"
        if key is None:
            raise InputError(f"{where}: no such key among the given signers' keys")
        if not valid:
            raise VerificationFailed(f"{where}: the signature by {key.name} is not valid")
        signers.setdefault(key.keyid, key)
    if not signers:
        raise VerificationFailed(f"{envelope_name}: not signed")
    digest = checked_image_blake2b(manifest, directory / manifest.image.file)
    result = []
    for key in sorted(signers.values(), key=lambda k: (k.name, k.keyid)):
        name = f"{manifest.image.file}.{key.name}.minisig"
        path = directory / name
        minisig = None
        if path.exists():
            minisig = parse_signature(_read(path, "a minisign signature"), str(path))
            try:
                verify_digest(minisig, digest, key)
            except VerificationFailed as exc:
                raise VerificationFailed(f"{path}: {exc.message}") from None
        result.append(Signer(key, name if minisig else None, minisig))
    return tuple(result)


def _pinned(directory: Path, manifest: Manifest, key: str) -> PublishedFile | None:
    """The document the manifest lists under `key` ("sbom", "sbom_spdx3",
    "sbom_cyclonedx", "provenance"), checked."""
    entry = manifest.raw.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise InputError(f"{manifest.name}.manifest.json: {key}: expected file and sha256")
    name = Path(entry["file"]).name
    data = _read(directory / name, f"the {key} the manifest lists")
    if sha256_bytes(data) != entry.get("sha256"):
        raise VerificationFailed(f"{directory / name}: sha256 differs from the manifest's {key}")
    return PublishedFile(name, data)


def _licences(sbom: PublishedFile | None) -> dict[tuple[str, str], str]:
    if sbom is None:
        return {}
    try:
        document = json.loads(sbom.data)
        packages = document["packages"]
        return {
            (str(p["name"]), str(p.get("versionInfo", ""))): str(
                p.get("licenseDeclared", "NOASSERTION")
            )
            for p in packages
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{sbom.name}: not an SPDX JSON document ({exc})") from exc


def _packages(manifest: Manifest, sbom: PublishedFile | None) -> tuple[PackageRow, ...]:
    licences = _licences(sbom)
    rows: dict[tuple[str, str, str], PackageRow] = {}
    listed: list[tuple[Any, tuple[str, ...] | None]] = [
        (entry, None) for entry in manifest.raw.get("packages", [])
    ]
    listed += [(entry, ("tools",)) for entry in manifest.raw.get("tools", [])]
    for entry, sets in listed:
        if not isinstance(entry, dict):
            raise InputError(f"{manifest.name}.manifest.json: a package entry is not an object")
        name, version = str(entry.get("name", "")), str(entry.get("version", ""))
        arch = str(entry.get("architecture", ""))
        key = (name, version, arch)
        row_sets = tuple(entry.get("sets", ())) if sets is None else sets
        if key in rows:
            row_sets = tuple(sorted({*rows[key].sets, *row_sets}))
        rows[key] = PackageRow(name, version, arch, row_sets, licences.get((name, version), ""))
    return tuple(rows[key] for key in sorted(rows))


def _observers(
    directory: Path, manifest: Manifest, trusted: Mapping[str, PublicKey] | None
) -> tuple[tuple[ObserverStatement, ...], tuple[PublishedFile, ...]]:
    statements, files = [], []
    for shown, data in read_rebuild_statements(directory, manifest.name):
        name = Path(shown).name
        files.append(PublishedFile(name, data))
        try:
            envelope = parse_envelope(data, name)
            result, note = judge_statement(envelope.statement(), manifest)
        except InputError as exc:
            statements.append(ObserverStatement(name, None, exc.message, (), False))
            continue
        if trusted is None:
            signers = tuple(s.keyid for s in envelope.signatures)
            statements.append(ObserverStatement(name, result, note, signers, False))
            continue
        keys = envelope.trusted_signers(trusted)
        if not keys:
            note = "no valid signature by a trusted observer key"
            result = None
        statements.append(ObserverStatement(name, result, note, tuple(k.name for k in keys), True))
    return tuple(statements), tuple(files)


def _key_files(directory: Path, keys: list[PublicKey], folder: str) -> list[PublishedFile]:
    found = []
    for key in keys:
        for suffix in (".pub.json", ".minisign.pub"):
            path = directory / f"{key.name}{suffix}"
            if path.is_file():
                found.append(PublishedFile(f"{folder}/{key.name}{suffix}", _read(path, "a key")))
    return found


def read_release(
    manifest_path: Path,
    keys_dir: Path,
    observer_keys_dir: Path | None = None,
    threshold: int | None = None,
) -> PublishedRelease:
    """The release described by `manifest_path`, every signature checked against the
    signers' keys in `keys_dir` (and observers' in `observer_keys_dir`, if given)."""
    directory = manifest_path.parent
    manifest = read_manifest(manifest_path)
    manifest_file = PublishedFile(manifest_path.name, _read(manifest_path, "the manifest"))
    envelope_path = directory / f"{manifest.name}.dsse.json"
    envelope_file = PublishedFile(envelope_path.name, _read(envelope_path, "the release envelope"))
    envelope = parse_envelope(envelope_file.data, str(envelope_path))
    if envelope.payload != new_envelope(image_statement(manifest.raw)).payload:
        raise VerificationFailed(f"{envelope_path}: signs another statement than {manifest_path}")
    trusted = load_trusted_keys(keys_dir)
    signers = _signers(directory, manifest, envelope, trusted)
    wanted = len(signers) if threshold is None else threshold
    if not 1 <= wanted <= len(signers):
        raise InputError(f"--threshold {wanted}: the release has {len(signers)} signer(s)")
    observer_keys = None if observer_keys_dir is None else load_trusted_keys(observer_keys_dir)
    observers, statement_files = _observers(directory, manifest, observer_keys)
    sbom = _pinned(directory, manifest, "sbom")
    provenance = _pinned(directory, manifest, "provenance")
    files = [manifest_file, envelope_file, *statement_files]
    files += [
        PublishedFile(s.minisig_file, _read(directory / s.minisig_file, "a minisign signature"))
        for s in signers
        if s.minisig_file
    ]
    sums = directory / SUMS_FILE
    if sums.is_file():
        files.append(PublishedFile(SUMS_FILE, _read(sums, SUMS_FILE)))
    other_sboms = [_pinned(directory, manifest, key) for key in ("sbom_spdx3", "sbom_cyclonedx")]
    files += [doc for doc in (sbom, *other_sboms, provenance) if doc is not None]
    files += _key_files(keys_dir, [s.key for s in signers], "keys")
    if observer_keys_dir is not None and observer_keys is not None:
        files += _key_files(observer_keys_dir, list(observer_keys.values()), "observer-keys")
    return PublishedRelease(
        manifest=manifest,
        manifest_file=manifest_file,
        envelope=envelope,
        envelope_file=envelope_file,
        signers=signers,
        threshold=wanted,
        observers=observers,
        observers_checked=observer_keys is not None,
        packages=_packages(manifest, sbom),
        sbom=sbom,
        provenance=provenance,
        files=tuple(sorted({f.name: f for f in files}.values(), key=lambda f: f.name)),
    )


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the page's script reads it."""
    return {
        "payloadType": envelope.payload_type,
        "payload": base64.b64encode(envelope.payload).decode(),
        "signatures": [
            {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in envelope.signatures
        ],
    }
