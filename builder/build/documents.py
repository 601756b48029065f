"""The documents a build publishes beside the image and lists in its manifest: the
SBOM (`NAME.spdx.json`, made by `builder.build.sbom`) and the provenance
(`NAME.provenance.json`, made by `builder.build.provenance`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.build.copyright import package_licences
from builder.build.dependencies import package_dependencies
from builder.build.provenance import make_provenance
from builder.build.sbom import make_sbom
from builder.core.canonical import pretty_json, sha256_bytes
from builder.core.fsutil import write_atomic
from builder.source.lockfile import Lock, LockedPackage

# Manifest entries that list the documents written here; never inputs to them.
LISTED_DOCUMENTS = ("sbom", "provenance")


def write_sbom_and_provenance(
    manifest: dict[str, Any],
    lock: Lock,
    out_dir: Path,
    deb_path: Callable[[LockedPackage], Path],
    cache_dir: Path | None = None,
) -> None:
    """Write OUT/NAME.spdx.json and OUT/NAME.provenance.json for a finished build and
    list both in `manifest` (keys "sbom" and "provenance": file name and sha256).

    Called by `build` once the manifest data is made and before it is written.
    Neither document depends on the manifest's own digest, nor on the other
    one. Licences are read offline from the verified .debs (`deb_path`);
    `cache_dir` keeps what was read, keyed by each .deb's sha256.
    """
    base = {key: value for key, value in manifest.items() if key not in LISTED_DOCUMENTS}
    licences = package_licences(lock.packages, deb_path, cache_dir)
    dependencies = package_dependencies(lock.packages, deb_path)
    documents = {
        "sbom": (
            f"{manifest['name']}.spdx.json",
            make_sbom(base, lock, licences, dependencies),
        ),
        "provenance": (f"{manifest['name']}.provenance.json", make_provenance(base, lock)),
    }
    for key, (file_name, document) in documents.items():
        data = pretty_json(document)
        write_atomic(out_dir / file_name, data)
        manifest[key] = {"file": file_name, "sha256": sha256_bytes(data)}
