"""`build.py sign MANIFEST --key KEY`: sign a built image (first signer or co-signer).

Beside the manifest it writes:

- `NAME.dsse.json`: the DSSE envelope over the in-toto statement; a co-signer
  adds a signature to it (the payload must be byte-identical, else refused);
- `NAME.img.KEYNAME.minisig`: this signer's minisign signature of the image,
  and `NAME.img.minisig`, a copy of the first signer's, so that
  `minisign -Vm NAME.img -p keys/KEYNAME.minisign.pub` works as is;
- `SHA256SUMS`: image and manifest, for `sha256sum -c SHA256SUMS`. It lists
  only files that co-signers never change, so it is identical for every signer.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from builder.build.manifest import Manifest, read_manifest
from builder.commands.options import add_signing_key
from builder.core.canonical import CHUNK_SIZE, sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.trust.dsse import image_statement, new_envelope, parse_envelope
from builder.trust.keys import SigningKey, default_private_dir, load_private_key, read_passphrase
from builder.trust.minisign import sign_digest


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sign", help="sign a built image's manifest (DSSE + minisign); co-signers add theirs"
    )
    parser.add_argument("manifest", type=Path, help="NAME.manifest.json (the image beside it)")
    add_signing_key(parser)
    parser.set_defaults(run=run)


def resolve_key_path(key: str, private_dir: Path | None) -> tuple[Path, str]:
    """(path, key name) for `--key`: an existing file, else NAME in the private key directory."""
    candidate = Path(key)
    if candidate.is_file():
        name = candidate.name.removesuffix(".key")
        return candidate, name
    path = (private_dir or default_private_dir()) / f"{key}.key"
    if not path.is_file():
        raise InputError(
            f"--key {key}: no such key file {path} (create one with `build.py keygen`)"
        )
    return path, key


def sign_manifest(manifest_path: Path, key: SigningKey) -> list[Path]:
    """Sign (or co-sign) the build described by `manifest_path`; return the files written."""
    manifest = read_manifest(manifest_path)
    directory = manifest_path.parent
    image_path = directory / manifest.image.file
    digest = _checked_image_blake2b(manifest, image_path)

    envelope_path = directory / f"{manifest.name}.dsse.json"
    fresh = new_envelope(image_statement(manifest.raw))
    first_signer = not envelope_path.exists()
    if first_signer:
        envelope = fresh
    else:
        envelope = parse_envelope(envelope_path.read_bytes(), str(envelope_path))
        if envelope.payload != fresh.payload:
            raise InputError(
                f"{envelope_path}: signs a different statement than {manifest_path} gives "
                "(another build?); remove it only if this manifest replaces that build"
            )
    signed = envelope.add_signature(key)
    written = []
    if signed is not envelope or first_signer:
        write_atomic(envelope_path, signed.to_bytes())
        written.append(envelope_path)

    minisig = sign_digest(
        key,
        digest,
        trusted_comment=(
            f"boothkey {manifest.name} {manifest.version} {manifest.image.file} "
            f"sha256:{manifest.image.sha256} key:{key.name}"
        ),
        untrusted_comment=f"signature of {manifest.image.file} by boothkey key {key.name}",
    )
    own = directory / f"{manifest.image.file}.{key.name}.minisig"
    write_atomic(own, minisig)
    written.append(own)
    default = directory / f"{manifest.image.file}.minisig"
    if first_signer or not default.exists():
        write_atomic(default, minisig)
        written.append(default)

    sums = directory / "SHA256SUMS"
    lines = sorted(
        [
            (manifest.image.file, manifest.image.sha256),
            (manifest_path.name, sha256_file(manifest_path)),
        ]
    )
    write_atomic(sums, "".join(f"{sha}  {name}\n" for name, sha in lines).encode())
    written.append(sums)
    return written


def _checked_image_blake2b(manifest: Manifest, image_path: Path) -> bytes:
    """The image's BLAKE2b-512 (what minisign signs), after checking its size and sha256
    against the manifest in the same read: never sign an image the manifest does not describe."""
    if not image_path.is_file():
        raise InputError(f"{image_path}: the image named by the manifest is not there")
    if image_path.stat().st_size != manifest.image.size:
        raise VerificationFailed(f"{image_path}: size differs from the manifest; not signing")
    sha256, blake2b = hashlib.sha256(), hashlib.blake2b(digest_size=64)
    with open(image_path, "rb", buffering=0) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            sha256.update(chunk)
            blake2b.update(chunk)
    if sha256.hexdigest() != manifest.image.sha256:
        raise VerificationFailed(f"{image_path}: sha256 differs from the manifest; not signing")
    return blake2b.digest()


def run(args: argparse.Namespace) -> int:
    path, name = resolve_key_path(args.key, args.private_dir)
    passphrase = read_passphrase(f"Passphrase for key {name}: ")
    key = load_private_key(path, name, passphrase)
    for written in sign_manifest(args.manifest, key):
        print(f"wrote {written}")
    return 0
