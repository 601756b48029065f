"""Pure verification: measured facts, manifest and trusted keys in, a report out.

Nothing here reads a file or a device; `builder.commands.verify` measures the
image (digests, GPT, UKI command line, recomputed hash tree) and hands the
results to these functions. Each check says in plain words what matched and
what did not. The manifest's own layout is checked before any of this
(`manifest.check_layout`): a manifest describing an impossible image is bad
input, never half a report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.build.manifest import DATA_PARTITION, Manifest, check_layout, read_manifest
from builder.core.canonical import sha256_bytes
from builder.core.errors import InputError
from builder.formats.fat_read import cmdline_params
from builder.formats.gpt import GptTable
from builder.observe.attest import (
    check_observer_threshold,
    check_observers,
    read_rebuild_statements,
)
from builder.observe.log_proof import check_published, read_proof_slot
from builder.observe.measure import BootMeasurement, ImageMeasurement, measure_boot, measure_image
from builder.observe.report import Check, VerifyReport
from builder.transparency.note import SIG_ED25519, NoteKey
from builder.transparency.witnesses import (
    check_witness_threshold,
    load_witness_keys,
    read_vkey_file,
)
from builder.trust.dsse import Envelope, image_statement, parse_envelope
from builder.trust.keys import PublicKey, Revocation, load_revoked, load_trusted_keys


def check_threshold(trusted: Mapping[str, PublicKey], threshold: int) -> None:
    """Refuse verification settings that could never mean anything."""
    if threshold < 1:
        raise InputError(f"--threshold {threshold}: at least one signature must be required")
    if not trusted:
        raise InputError("no trusted keys: the key directory holds no *.pub.json file")
    if threshold > len(trusted):
        raise InputError(
            f"--threshold {threshold} can never be met with {len(trusted)} trusted key(s)"
        )


def check_image_digest(manifest: Manifest, measured: ImageMeasurement) -> Check:
    name = "image digest"
    want = manifest.image
    if measured.available < want.size:
        return Check(
            name, False, f"the image holds {measured.available} bytes, the manifest {want.size}"
        )
    if not measured.is_device and measured.available != want.size:
        return Check(
            name,
            False,
            f"the image file is {measured.available} bytes, the manifest says {want.size}",
        )
    if measured.sha256 == want.sha256:
        return Check(name, True, f"sha256 {want.sha256} matches the manifest")
    if measured.sha256_data_zeroed == want.sha256:
        return Check(
            name,
            True,
            f"sha256 {want.sha256} matches the manifest once the {DATA_PARTITION} partition "
            "(station data, not part of the published software) is read as zeros",
        )
    return Check(
        name,
        False,
        "the image's bytes differ from the manifest",
        (f"expected sha256 {want.sha256}", f"found    sha256 {measured.sha256}"),
    )


def check_signatures(
    envelope: Envelope,
    manifest: Manifest,
    trusted: Mapping[str, PublicKey],
    threshold: int,
    revoked: Mapping[str, Revocation] | None = None,
) -> Check:
    """At least `threshold` distinct trusted keys signed a statement equal to the manifest's,
    and no revoked key signed it (whatever the others: a revoked key's signature means the
    release must be re-published without it)."""
    name = "signatures"
    revoked = revoked or {}
    trusted = {keyid: key for keyid, key in trusted.items() if keyid not in revoked}
    check_threshold(trusted, threshold)
    details: list[str] = []
    try:
        statement = envelope.statement()
    except InputError as exc:
        return Check(name, False, exc.message)
    if statement != image_statement(manifest.raw):
        return Check(
            name,
            False,
            "the signed statement does not describe this manifest (the manifest or the envelope "
            "was altered, or they belong to different builds)",
        )
    counted: set[str] = set()
    revoked_signers: list[str] = []
    for signature, key, valid in envelope.check_each(trusted):
        if signature.keyid in revoked:
            revocation = revoked[signature.keyid]
            revoked_signers.append(revocation.name)
            details.append(
                f"REVOKED key {revocation.name} ({signature.keyid[:16]}) signed this release: "
                f"{revocation.reason}"
            )
        elif key is None:
            details.append(
                f"ignored: signature by a key not in the trusted set ({signature.keyid[:16]})"
            )
        elif not valid:
            details.append(f"INVALID signature claiming to be by {key.name} ({key.keyid[:16]})")
        elif key.keyid in counted:
            details.append(f"ignored: {key.name} signed more than once (counted once)")
        else:
            details.append(f"valid signature by {key.name} ({key.keyid[:16]})")
            counted.add(key.keyid)
    count = len(counted)
    summary = f"{count} distinct trusted signer(s), {threshold} required"
    if revoked_signers:
        summary = f"signed by revoked key(s) {', '.join(revoked_signers)}; " + summary
    return Check(name, count >= threshold and not revoked_signers, summary, tuple(details))


def check_partitions(
    manifest: Manifest, table: GptTable | None, table_error: str, digests: Mapping[str, str]
) -> Check:
    """The GPT lists exactly the manifest's partitions, where it says, with the same bytes.
    Expects a manifest whose layout was checked (`manifest.check_layout`)."""
    name = "partitions"
    if table is None:
        return Check(name, False, table_error)
    problems: list[str] = []
    details: list[str] = []
    found = {p.name: p for p in table.partitions}
    for want in manifest.partitions:
        have = found.pop(want.name, None)
        if have is None:
            problems.append(f"{want.name}: missing from the partition table")
            continue
        # One verdict per partition: "matches" only when nothing about it differs.
        differences = [
            f"{want.name}: {field_name} is {actual}, manifest says {wanted}"
            for field_name, wanted, actual in (
                ("type", want.type.upper(), have.type_guid.upper()),
                ("uuid", want.uuid.upper(), have.uuid.upper()),
                ("offset", want.offset, have.offset),
                ("size", want.size, have.size),
            )
            if wanted != actual
        ]
        digest = digests.get(want.name)
        if want.name == DATA_PARTITION and digest != want.sha256:
            details.append(f"{want.name}: holds station data (not compared)")
        elif digest != want.sha256:
            differences.append(
                f"{want.name}: content differs (sha256 {digest}, manifest {want.sha256})"
            )
        elif not differences:
            details.append(f"{want.name}: matches (offset {want.offset}, {want.size} bytes)")
        problems.extend(differences)
    problems.extend(f"{extra}: not in the manifest" for extra in sorted(found))
    if problems:
        return Check(
            name,
            False,
            f"{len(problems)} difference(s) from the manifest",
            tuple(problems + details),
        )
    return Check(name, True, f"all {len(manifest.partitions)} partitions match", tuple(details))


def check_boot(manifest: Manifest, boot: BootMeasurement) -> Check:
    """The UKI is the published one and its root hash is what the root partition hashes to."""
    name = "root hash tree"
    problems = list(boot.problems)
    details: list[str] = []
    if boot.uki_sha256 is not None:
        if boot.uki_sha256 == manifest.uki_sha256:
            details.append(f"UKI sha256 {boot.uki_sha256} matches the manifest")
        else:
            problems.append(f"UKI sha256 is {boot.uki_sha256}, manifest says {manifest.uki_sha256}")
    params = cmdline_params(boot.cmdline or "")
    root_hash = params.get("boothkey.roothash")
    if boot.cmdline is not None and root_hash is None:
        problems.append("the UKI's kernel command line has no boothkey.roothash=")
    if root_hash is not None and root_hash != manifest.verity.root_hash:
        problems.append(
            f"the UKI's command line names root hash {root_hash}, "
            f"the manifest {manifest.verity.root_hash}"
        )
    salt = params.get("boothkey.salt")
    if salt is not None and salt != manifest.verity.salt:
        problems.append(
            f"the UKI's command line names salt {salt}, the manifest {manifest.verity.salt}"
        )
    if boot.superblock is not None:
        sb = boot.superblock
        if sb.salt.hex() != manifest.verity.salt or sb.data_blocks != manifest.verity.data_blocks:
            problems.append("the verity superblock's salt or block count differs from the manifest")
    if boot.tree is not None and root_hash is not None:
        if boot.tree.root_hash == root_hash:
            details.append(f"root partition hashes to root hash {root_hash}")
        else:
            problems.append(
                f"root partition hashes to {boot.tree.root_hash}, "
                f"but the UKI expects {root_hash}: the root filesystem was altered"
            )
        if not boot.stored_tree_matches:
            problems.append("the hash partition's stored tree differs from the recomputed tree")
    if problems:
        return Check(
            name,
            False,
            "the root filesystem is not the one the UKI trusts"
            if boot.tree is not None
            else "could not be checked",
            tuple(problems + details),
        )
    return Check(
        name,
        True,
        "the root filesystem recomputes to the root hash on the UKI's command line",
        tuple(details),
    )


def verify_files(
    image: Path,
    manifest_path: Path,
    envelope_path: Path | None,
    keys_dir: Path,
    threshold: int,
    observer_keys: Path | None = None,
    observers: int = 0,
    observer_statements: Path | None = None,
    log: LogTrust | None = None,
) -> VerifyReport:
    """The whole verification, without printing (also for `rebuild` and tests).

    With `observer_keys`, the report also checks that `observers` distinct
    trusted observers' rebuild statements (from `observer_statements`, default
    the manifest's directory) say "same" for this image. With `log`, it checks that
    the release was published in the release log (`builder.observe.log_proof`):
    from `log.proof`, else from the proof slot on the image or key.

    Bad input (an unreadable manifest or one describing an impossible image, an
    unreadable envelope or keys, a threshold of 0) raises `InputError` before anything
    is measured; everything about the image itself lands in the report.
    """
    manifest = read_manifest(manifest_path)
    check_layout(manifest, str(manifest_path))  # an impossible layout is bad input
    revoked = load_revoked(keys_dir)
    trusted = {
        keyid: key for keyid, key in load_trusted_keys(keys_dir).items() if keyid not in revoked
    }
    check_threshold(trusted, threshold)
    observer_trusted = load_trusted_keys(observer_keys) if observer_keys is not None else None
    if observer_trusted is not None:
        check_observer_threshold(observer_trusted, observers)
    if envelope_path is None:
        envelope_path = manifest_path.with_name(f"{manifest.name}.dsse.json")
    try:
        envelope_bytes = envelope_path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"{envelope_path}: cannot read the signature envelope: {exc.strerror}"
        ) from exc
    envelope = parse_envelope(envelope_bytes, str(envelope_path))
    log_trust = load_log_trust(log) if log is not None else None
    measured, table, table_error, digests = measure_image(image, manifest)
    checks = [
        check_image_digest(manifest, measured),
        check_signatures(envelope, manifest, trusted, threshold, revoked),
        check_partitions(manifest, table, table_error, digests),
        check_boot(manifest, measure_boot(image, manifest, table)),
    ]
    if observer_trusted is not None:
        statements = read_rebuild_statements(
            observer_statements or manifest_path.parent, manifest.name
        )
        checks.append(check_observers(statements, manifest, observer_trusted, observers))
    if log is not None and log_trust is not None:
        if log.proof is not None:
            bundle: bytes | None = read_input(log.proof, "proof bundle")
            shown = str(log.proof)
        else:
            bundle = read_proof_slot(image, manifest)
            shown = f"{image} ({DATA_PARTITION} proof slot)"
        log_key, witnesses = log_trust
        manifest_sha256 = sha256_bytes(read_input(manifest_path, "manifest"))
        checks.append(
            check_published(
                bundle, shown, manifest, manifest_sha256, log_key, witnesses, log.threshold
            )
        )
    return VerifyReport(tuple(checks))


@dataclass(frozen=True)
class LogTrust:
    """What `verify` needs to check publication: the log's vkey file, the trusted
    witnesses' directory and threshold, and the proof bundle (None: from the key)."""

    log_key: Path
    witnesses: Path
    threshold: int
    proof: Path | None = None


def load_log_trust(log: LogTrust) -> tuple[NoteKey, dict[tuple[str, bytes], NoteKey]]:
    log_key = read_vkey_file(log.log_key)
    if log_key.sig_type != SIG_ED25519:
        raise InputError(f"{log.log_key}: not a log key (signature type 0x01)")
    witnesses = load_witness_keys(log.witnesses)
    check_witness_threshold(witnesses, log.threshold)
    return log_key, witnesses


def read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc.strerror}") from exc
