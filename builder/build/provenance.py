"""SLSA v1 build provenance for a built image (an in-toto Statement v1).

Subjects are the ones the release signatures use (image, each partition, the
UKI: `builder.trust.dsse.image_statement`). The build definition names the recipe,
lock and overlay digests; every locked .deb is a resolved dependency by
sha256 and package URL (the tools tree's packages among them, since every
byte-producing program ran from it); the builder is boothkey, by version and
source digest. No start or finish time and no host identity are
recorded, so the statement is a pure function of the build's inputs and
outputs and two builds of the same image give identical bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from builder.build.sbom import purl
from builder.source.lockfile import Lock
from builder.trust.dsse import STATEMENT_TYPE, image_statement

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:boothkey:build-type:image:v1"
BUILDER_ID = "urn:boothkey:builder:build.py"


def make_provenance(manifest: Mapping[str, Any], lock: Lock) -> dict[str, Any]:
    """The SLSA provenance statement (a JSON-able dict) for the build `manifest` describes.

    `manifest` is the build's manifest data; entries that list the provenance
    itself are ignored, so adding them later does not change this statement.
    """
    recipe = manifest["recipe"]
    dependencies: list[dict[str, Any]] = [
        {
            "name": recipe["file"],
            "digest": {"sha256": recipe["sha256"]},
            "annotations": {"role": "recipe"},
        },
        {
            "name": lock_file_name(manifest),
            "digest": {"sha256": manifest["lock_sha256"]},
            "annotations": {"role": "lock"},
        },
    ]
    for pkg in sorted(lock.packages, key=lambda p: (p.name, p.architecture)):
        dependencies.append(
            {
                "name": pkg.filename,
                "uri": purl(pkg),
                "digest": {"sha256": pkg.sha256},
                "annotations": {
                    "role": "debian-package",
                    "sets": list(pkg.sets),
                    "suite": pkg.suite,
                },
            }
        )
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "recipe": {"file": recipe["file"], "sha256": recipe["sha256"]},
                "lock_sha256": manifest["lock_sha256"],
                "overlays_sha256": manifest["overlays_sha256"],
            },
            "internalParameters": {
                "source_date_epoch": manifest["source_date_epoch"],
                "package_set_digest": recipe["package_set_digest"],
                # Every suite the lock was resolved against (base and update suites).
                "archives": [
                    {
                        "suite": archive.suite,
                        "codename": archive.codename,
                        "date": archive.date,
                        "inrelease_sha256": archive.inrelease_sha256,
                        "signing_key": archive.signing_key,
                    }
                    for archive in lock.archives
                ],
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                # The tools that made the bytes are resolvedDependencies (the lock's
                # "tools" set), not the host's: only boothkey itself is named here.
                "version": {
                    "boothkey": str(manifest.get("boothkey", "")),
                    "boothkey_source_sha256": str(manifest.get("code_sha256", "")),
                },
            },
            "metadata": {},
            "byproducts": [
                {
                    "name": f"step:{step['name']}",
                    # in-toto DigestSet values are plain lowercase hex.
                    "digest": {"sha256": str(step["content_digest"]).removeprefix("sha256:")},
                    "annotations": {"step_id": step["id"]},
                }
                for step in manifest.get("steps", [])
            ],
        },
    }
    subjects = image_statement(manifest)["subject"]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def lock_file_name(manifest: Mapping[str, Any]) -> str:
    """The lock's path as the recipe's project sees it: NAME.lock.json beside the recipe."""
    return str(PurePosixPath(manifest["recipe"]["file"]).with_name(f"{manifest['name']}.lock.json"))
