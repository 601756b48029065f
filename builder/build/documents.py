"""The documents a build publishes beside the image and lists in its manifest: the
SBOMs (`NAME.spdx.json`, SPDX 2.3, `NAME.spdx3.json`, SPDX 3.0.1, and `NAME.cdx.json`,
CycloneDX 1.6, written from one model: `builder.build.sbom_model`) and the provenance (`NAME.provenance.json`, made by
`builder.build.provenance`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.build.copyright import package_licences
from builder.build.cyclonedx import write_cyclonedx
from builder.build.dependencies import deb_facts, package_dependencies
from builder.build.provenance import make_provenance
from builder.build.sbom import write_spdx2
from builder.build.sbom_model import make_model
from builder.build.spdx3 import write_spdx3
from builder.core.canonical import pretty_json, sha256_bytes
from builder.core.fsutil import write_atomic
from builder.source.lockfile import Lock, LockedPackage

# Manifest entries that list the documents written here; never inputs to them.
LISTED_DOCUMENTS = ("sbom", "sbom_spdx3", "sbom_cyclonedx", "provenance")


def _sha512_file(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_sbom_and_provenance(
    manifest: dict[str, Any],
    lock: Lock,
    out_dir: Path,
    deb_path: Callable[[LockedPackage], Path],
    cache_dir: Path | None = None,
    image: Path | None = None,
) -> None:
    """Write OUT/NAME.spdx.json, OUT/NAME.spdx3.json, OUT/NAME.cdx.json and
    OUT/NAME.provenance.json for a finished build and list them in `manifest` (keys
    "sbom", "sbom_spdx3", "sbom_cyclonedx" and "provenance": file name and sha256).

    Called by `build` once the manifest data is made and before it is written.
    No document depends on the manifest's own digest, nor on another one. Licences,
    dependencies, sha512s and maintainers are read offline from the verified .debs
    (`deb_path`); `cache_dir` keeps the licences read, keyed by each .deb's sha256.
    `image` is the built image, read for its sha512 (the SPDX 3 document's; without
    it that document gives the image's sha256 only).
    """
    base = {key: value for key, value in manifest.items() if key not in LISTED_DOCUMENTS}
    licences = package_licences(lock.packages, deb_path, cache_dir)
    dependencies = package_dependencies(lock.packages, deb_path)
    facts = deb_facts(lock.packages, deb_path)
    image_sha512 = _sha512_file(image) if image is not None else None
    model = make_model(base, lock, licences, dependencies, facts, image_sha512)
    name = manifest["name"]
    documents = {
        "sbom": (f"{name}.spdx.json", write_spdx2(model)),
        "sbom_spdx3": (f"{name}.spdx3.json", write_spdx3(model)),
        "sbom_cyclonedx": (f"{name}.cdx.json", write_cyclonedx(model)),
        "provenance": (f"{name}.provenance.json", make_provenance(base, lock)),
    }
    for key, (file_name, document) in documents.items():
        data = pretty_json(document)
        write_atomic(out_dir / file_name, data)
        manifest[key] = {"file": file_name, "sha256": sha256_bytes(data)}
