"""Signing a built image (first signer or co-signer).

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

import hashlib
from pathlib import Path

from builder.build.manifest import Manifest, read_manifest
from builder.core.canonical import CHUNK_SIZE, sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.trust.dsse import image_statement, new_envelope, parse_envelope
from builder.trust.minisign import sign_digest
from builder.trust.signer import Signer


def sign_manifest(manifest_path: Path, key: Signer) -> list[Path]:
    """Sign (or co-sign) the build described by `manifest_path`; return the files written."""
    manifest = read_manifest(manifest_path)
    directory = manifest_path.parent
    image_path = directory / manifest.image.file
    digest = checked_image_blake2b(manifest, image_path, "; not signing")

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


def checked_image_blake2b(manifest: Manifest, image_path: Path, refusal: str = "") -> bytes:
    """The image's BLAKE2b-512 (what minisign signs), after checking its size and sha256
    against the manifest in the same read: never sign or publish an image the manifest
    does not describe. `refusal` ends each message (e.g. "; not signing")."""
    if not image_path.is_file():
        raise InputError(f"{image_path}: the image named by the manifest is not there")
    size = image_path.stat().st_size
    if size != manifest.image.size:
        raise VerificationFailed(
            f"{image_path}: {size} bytes, the manifest says {manifest.image.size}{refusal}"
        )
    sha256, blake2b = hashlib.sha256(), hashlib.blake2b(digest_size=64)
    with open(image_path, "rb", buffering=0) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            sha256.update(chunk)
            blake2b.update(chunk)
    if sha256.hexdigest() != manifest.image.sha256:
        raise VerificationFailed(f"{image_path}: sha256 differs from the manifest{refusal}")
    return blake2b.digest()
