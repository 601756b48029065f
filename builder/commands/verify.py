"""`build.py verify IMAGE_OR_DEVICE --manifest M --keys DIR --threshold N [--json]
[--observer-keys DIR --observers K [--observer-statements DIR]]`.

Reads the image (a file, or a block device over the manifest's image size
only), measures it, and lets `builder.observe.verify` judge: image digest, envelope
signatures, GPT partitions, and the root partition's hash tree against the
root hash on the UKI's command line; with --observers, also that K trusted
observers signed "I rebuilt it and got the same image" (`builder.observe.attest`). Exit 0 when everything passed, 3 when a
check failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from builder.build.manifest import Manifest, check_layout, read_manifest
from builder.core.canonical import sha256_bytes
from builder.core.errors import InputError, VerificationFailed
from builder.formats.fat_read import cmdline_params, extract_esp_file, read_range, uki_cmdline
from builder.formats.gpt import GptTable, read_primary_gpt
from builder.formats.verity_tree import BLOCK_SIZE, compute_tree, parse_superblock
from builder.observe.attest import (
    check_observer_threshold,
    check_observers,
    read_rebuild_statements,
)
from builder.observe.verify import (
    DATA_PARTITION,
    BootMeasurement,
    ImageMeasurement,
    VerifyReport,
    check_boot,
    check_image_digest,
    check_partitions,
    check_signatures,
    check_threshold,
)
from builder.trust.dsse import parse_envelope
from builder.trust.keys import load_trusted_keys

_CHUNK = 8 << 20


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check an image or USB key against its signed manifest",
        description="Check that an image file or a USB key holds exactly the published, "
        "signed image: its digest, the signatures, the partitions and the root hash tree.",
    )
    parser.add_argument("image", type=Path, help="image file or block device (read only)")
    parser.add_argument("--manifest", type=Path, required=True, help="NAME.manifest.json")
    parser.add_argument(
        "--envelope",
        type=Path,
        help="signature envelope (default: NAME.dsse.json beside the manifest)",
    )
    parser.add_argument("--keys", type=Path, required=True, help="directory of trusted *.pub.json")
    parser.add_argument("--threshold", type=int, required=True, help="signatures required")
    parser.add_argument(
        "--observer-keys", type=Path, help="directory of trusted observers' *.pub.json"
    )
    parser.add_argument(
        "--observers", type=int, help="distinct observers' 'same image' statements required"
    )
    parser.add_argument(
        "--observer-statements",
        type=Path,
        help="directory of NAME.rebuild.*.dsse.json (default: beside the manifest)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.observer_keys is None) != (args.observers is None):
        raise InputError("--observer-keys and --observers go together")
    report = verify_files(
        args.image,
        args.manifest,
        args.envelope,
        args.keys,
        args.threshold,
        observer_keys=args.observer_keys,
        observers=args.observers or 0,
        observer_statements=args.observer_statements,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(f"Verifying {args.image} against {args.manifest}")
        print(report.to_text())
    sys.stdout.flush()
    if not report.ok:
        failed = [check.name for check in report.checks if not check.ok]
        raise VerificationFailed(f"verification failed: {', '.join(failed)}")
    return 0


def _open_image(path: Path) -> tuple[BinaryIO, int, bool]:
    try:
        stream = open(path, "rb", buffering=0)  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from exc
    mode = stat.S_IFMT(os.fstat(stream.fileno()).st_mode)
    is_device = mode == stat.S_IFBLK
    if not is_device and mode != stat.S_IFREG:
        stream.close()
        raise InputError(f"{path}: neither an image file nor a block device")
    size = stream.seek(0, 2)
    stream.seek(0)
    return stream, size, is_device


@dataclass
class _Region:
    start: int
    end: int
    digest: Any


def digest_stream(
    stream: BinaryIO, size: int, regions: list[_Region], zero: _Region | None = None
) -> str:
    """sha256 of the first `size` bytes, feeding each region's hasher its slice on the way.

    With `zero`, a second whole-image hasher sees that region as zeros; its
    result is stored in `zero.digest` (a hashlib object). One pass, 8 MiB reads.
    """
    whole = hashlib.sha256()
    zeroed = hashlib.sha256() if zero is not None else None
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    offset = 0
    stream.seek(0)
    while offset < size:
        want = min(_CHUNK, size - offset)
        got = stream.readinto(view[:want])  # type: ignore[attr-defined]
        if not got:
            raise VerificationFailed(f"image ends at byte {offset}, {size} expected")
        chunk = view[:got]
        whole.update(chunk)
        end = offset + got
        for region in regions:
            lo, hi = max(region.start, offset), min(region.end, end)
            if lo < hi:
                region.digest.update(chunk[lo - offset : hi - offset])
        if zeroed is not None and zero is not None:
            lo, hi = max(zero.start, offset), min(zero.end, end)
            if lo < hi:
                zeroed.update(chunk[: lo - offset])
                zeroed.update(bytes(hi - lo))
                zeroed.update(chunk[hi - offset :])
            else:
                zeroed.update(chunk)
        offset = end
    if zero is not None:
        zero.digest = zeroed
    return whole.hexdigest()


def measure_image(
    path: Path, manifest: Manifest
) -> tuple[ImageMeasurement, GptTable | None, str, dict[str, str]]:
    """Digest of the image, its GPT, and each GPT partition's digest, in one read."""
    stream, available, is_device = _open_image(path)
    with stream:
        table: GptTable | None = None
        table_error = ""
        try:
            table = read_primary_gpt(stream)
        except VerificationFailed as exc:
            table_error = exc.message
        size = manifest.image.size
        if available < size:
            return ImageMeasurement(available, is_device, None), table, table_error, {}
        regions: dict[str, _Region] = {}
        if table is not None:
            for part in table.partitions:
                if part.offset + part.size <= size:
                    regions[part.name] = _Region(
                        part.offset, part.offset + part.size, hashlib.sha256()
                    )
        zero = None
        data = next((p for p in manifest.partitions if p.name == DATA_PARTITION), None)
        if data is not None:
            zero = _Region(data.offset, data.offset + data.size, None)
        sha = digest_stream(stream, size, list(regions.values()), zero)
    digests = {name: region.digest.hexdigest() for name, region in regions.items()}
    zeroed = zero.digest.hexdigest() if zero is not None and zero.digest is not None else None
    return ImageMeasurement(available, is_device, sha, zeroed), table, table_error, digests


def measure_boot(path: Path, manifest: Manifest, table: GptTable | None) -> BootMeasurement:
    """Read the UKI from the ESP and recompute the root partition's hash tree."""
    if table is None:
        return BootMeasurement(problems=("no readable partition table",))
    esp, root, hashes = table.find("esp"), table.find("root"), table.find("root-verity")
    missing = [n for n, p in (("esp", esp), ("root", root), ("root-verity", hashes)) if p is None]
    if missing or esp is None or root is None or hashes is None:
        return BootMeasurement(problems=(f"partition(s) {', '.join(missing)} not found",))
    try:
        uki = extract_esp_file(path, esp.offset)
        cmdline = uki_cmdline(uki)
    except VerificationFailed as exc:
        return BootMeasurement(problems=(exc.message,))
    params = cmdline_params(cmdline)
    problems: list[str] = []
    try:
        salt = bytes.fromhex(params.get("boothkey.salt", ""))
        data_blocks = int(params.get("boothkey.datablocks", ""))
    except ValueError:
        problems.append("the UKI's command line lacks a valid boothkey.salt or boothkey.datablocks")
        return BootMeasurement(sha256_bytes(uki), cmdline, problems=tuple(problems))
    if data_blocks * BLOCK_SIZE > root.size or data_blocks < 1:
        return BootMeasurement(
            sha256_bytes(uki),
            cmdline,
            problems=(f"boothkey.datablocks={data_blocks} does not fit the root partition",),
        )
    stream, _available, _is_device = _open_image(path)
    with stream:
        try:
            superblock = parse_superblock(b"".join(read_range(stream, hashes.offset, BLOCK_SIZE)))
        except (ValueError, VerificationFailed) as exc:
            problems.append(f"root-verity partition: {exc}")
            superblock = None
        stream.seek(root.offset)
        try:
            tree = compute_tree(stream, data_blocks, salt)
        except ValueError as exc:
            problems.append(f"root partition: {exc}")
            return BootMeasurement(
                sha256_bytes(uki), cmdline, superblock=superblock, problems=tuple(problems)
            )
        stored_size = len(tree.hash_area)
        stored = b""
        if BLOCK_SIZE + stored_size <= hashes.size:
            try:
                stored = b"".join(read_range(stream, hashes.offset + BLOCK_SIZE, stored_size))
            except VerificationFailed as exc:
                problems.append(f"root-verity partition: {exc.message}")
    return BootMeasurement(
        uki_sha256=sha256_bytes(uki),
        cmdline=cmdline,
        tree=tree,
        superblock=superblock,
        stored_tree_matches=stored == tree.hash_area,
        problems=tuple(problems),
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
) -> VerifyReport:
    """The whole verification, without printing (also for `rebuild` and tests).

    With `observer_keys`, the report also checks that `observers` distinct
    trusted observers' rebuild statements (from `observer_statements`, default
    the manifest's directory) say "same" for this image.

    Bad input (an unreadable manifest or one describing an impossible image, an
    unreadable envelope or keys, a threshold of 0) raises `InputError` before anything
    is measured; everything about the image itself lands in the report.
    """
    manifest = read_manifest(manifest_path)
    check_layout(manifest, str(manifest_path))  # an impossible layout is bad input
    trusted = load_trusted_keys(keys_dir)
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
    measured, table, table_error, digests = measure_image(image, manifest)
    checks = [
        check_image_digest(manifest, measured),
        check_signatures(envelope, manifest, trusted, threshold),
        check_partitions(manifest, table, table_error, digests),
        check_boot(manifest, measure_boot(image, manifest, table)),
    ]
    if observer_trusted is not None:
        statements = read_rebuild_statements(
            observer_statements or manifest_path.parent, manifest.name
        )
        checks.append(check_observers(statements, manifest, observer_trusted, observers))
    return VerifyReport(tuple(checks))
