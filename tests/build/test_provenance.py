"""SLSA provenance: content, determinism, and the build hook that writes SBOM and
provenance beside the image and pins them in the manifest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sbom_factory import (
    LockedDebs,
    demo_manifest,
    make_locked_debs,
    validate_spdx,
    validate_spdx3,
)

from builder.build.documents import write_sbom_and_provenance
from builder.build.manifest import parse_manifest, read_manifest
from builder.build.provenance import BUILD_TYPE, PREDICATE_TYPE, make_provenance
from builder.build.sbom import purl
from builder.core.canonical import sha256_file
from builder.trust.dsse import STATEMENT_TYPE, image_statement


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> LockedDebs:
    return make_locked_debs(tmp_path_factory.mktemp("debs"))


def test_provenance_statement_names_inputs_dependencies_and_tools(locked: LockedDebs) -> None:
    manifest = demo_manifest(locked.lock)
    statement = make_provenance(manifest, locked.lock)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == image_statement(manifest)["subject"]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE
    assert definition["externalParameters"] == {
        "recipe": {"file": "recipes/demo.yaml", "sha256": "cd" * 32},
        "lock_sha256": "12" * 32,
        "overlays_sha256": "ef" * 32,
    }
    assert definition["internalParameters"]["source_date_epoch"] == locked.lock.source_date_epoch
    suites = [a["suite"] for a in definition["internalParameters"]["archives"]]
    assert suites == ["bookworm", "bookworm-security"]
    dependencies = definition["resolvedDependencies"]
    assert dependencies[1] == {
        "name": "recipes/demo.lock.json",
        "digest": {"sha256": "12" * 32},
        "annotations": {"role": "lock"},
    }
    debs = {d["digest"]["sha256"]: d for d in dependencies if d["annotations"]["role"] != "recipe"}
    for pkg in locked.lock.packages:
        assert debs[pkg.sha256]["uri"] == purl(pkg)
        assert debs[pkg.sha256]["name"] == pkg.filename
        assert debs[pkg.sha256]["annotations"]["suite"] == pkg.suite
    builder = statement["predicate"]["runDetails"]["builder"]
    # Only boothkey itself: the tools that made the bytes are locked packages above.
    assert builder["version"] == {"boothkey": "0.1.0", "boothkey_source_sha256": "0f" * 32}
    # Step outputs are byproducts; DigestSet values are plain hex, as in-toto wants.
    byproducts = statement["predicate"]["runDetails"]["byproducts"]
    assert byproducts == [
        {
            "name": "step:rootfs",
            "digest": {"sha256": "56" * 32},
            "annotations": {"step_id": "34" * 32},
        }
    ]
    for entry in [*byproducts, *dependencies]:
        assert all(re.fullmatch("[0-9a-f]{64}", v) for v in entry["digest"].values()), entry
    # Nothing about when or where: no timestamps, no invocation id.
    assert statement["predicate"]["runDetails"]["metadata"] == {}


def test_provenance_ignores_the_entries_that_list_it(locked: LockedDebs) -> None:
    manifest = demo_manifest(locked.lock)
    listed = dict(manifest, sbom={"file": "x", "sha256": "0" * 64})
    listed["provenance"] = {"file": "y", "sha256": "1" * 64}
    first = make_provenance(manifest, locked.lock)
    assert first == make_provenance(listed, locked.lock)
    assert first != make_provenance(demo_manifest(locked.lock, "ff" * 32), locked.lock)


def test_build_hook_writes_identical_documents_twice_and_lists_them(
    locked: LockedDebs, tmp_path: Path
) -> None:
    written = []
    for run in ("one", "two"):
        manifest = demo_manifest(locked.lock)
        out = tmp_path / run
        out.mkdir()
        write_sbom_and_provenance(
            manifest, locked.lock, out, locked.deb_path, tmp_path / f"cache-{run}"
        )
        parse_manifest(manifest, "hooked manifest")  # still a readable manifest
        for key, name in (
            ("sbom", "demo.spdx.json"),
            ("sbom_spdx3", "demo.spdx3.json"),
            ("sbom_cyclonedx", "demo.cdx.json"),
            ("provenance", "demo.provenance.json"),
        ):
            assert manifest[key] == {"file": name, "sha256": sha256_file(out / name)}
        written.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
        assert validate_spdx(out / "demo.spdx.json").returncode == 0
        assert validate_spdx3(out / "demo.spdx3.json") == []
    assert written[0] == written[1]
    assert sorted(written[0]) == [
        "demo.cdx.json",
        "demo.provenance.json",
        "demo.spdx.json",
        "demo.spdx3.json",
    ]
    assert not list(tmp_path.glob("*/.*.tmp"))


def test_documents_do_not_depend_on_the_listing(locked: LockedDebs, tmp_path: Path) -> None:
    """Running the hook on a manifest that already lists documents (a re-run) changes nothing."""
    manifest = demo_manifest(locked.lock)
    write_sbom_and_provenance(manifest, locked.lock, tmp_path, locked.deb_path)
    keys = ("sbom", "sbom_spdx3", "sbom_cyclonedx", "provenance")
    listed = {key: manifest[key] for key in keys}
    write_sbom_and_provenance(manifest, locked.lock, tmp_path, locked.deb_path)
    assert {key: manifest[key] for key in keys} == listed


@pytest.mark.slow
def test_build_writes_provenance_beside_the_hello_image(
    built_hello_image: tuple[Path, Path],
) -> None:
    image, manifest_path = built_hello_image
    manifest = read_manifest(manifest_path).raw
    path = manifest_path.parent / manifest["provenance"]["file"]
    assert sha256_file(path) == manifest["provenance"]["sha256"]
    statement = json.loads(path.read_bytes())
    assert statement["subject"][0] == {"name": image.name, "digest": {"sha256": sha256_file(image)}}
    resolved = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    digests = {d["digest"]["sha256"] for d in resolved}
    assert {p["sha256"] for p in manifest["packages"]} <= digests
    assert manifest["recipe"]["sha256"] in digests and manifest["lock_sha256"] in digests
    # The tools that made the bytes are locked packages too, listed in the manifest.
    assert {tool["sha256"] for tool in manifest["tools"]} <= digests
    assert {tool["name"] for tool in manifest["tools"]} >= {"squashfs-tools", "libzstd1"}
    assert statement["predicate"]["runDetails"]["builder"]["version"] == {
        "boothkey": manifest["boothkey"],
        "boothkey_source_sha256": manifest["code_sha256"],
    }


REGENERATE = """
import json, os, sys
from pathlib import Path
from builder.source.debcache import DebCache
from builder.source.lockfile import read_lock
from builder.core.paths import deb_cache_dir, default_cache_dir
from builder.build.documents import write_sbom_and_provenance
os.umask(0o077)
manifest = json.loads(Path(sys.argv[1]).read_bytes())
base = {k: v for k, v in manifest.items() if k not in ("sbom", "sbom_spdx3", "sbom_cyclonedx", "provenance")}
debs = DebCache(deb_cache_dir(default_cache_dir()))
write_sbom_and_provenance(base, read_lock(Path(sys.argv[2])), Path(sys.argv[3]),
                          debs.verified_path, Path(sys.argv[4]), Path(sys.argv[5]))
print(json.dumps({k: base[k] for k in ("sbom", "sbom_spdx3", "sbom_cyclonedx", "provenance")}))
"""


@pytest.mark.slow
def test_hello_documents_regenerate_identically_in_another_environment(
    built_hello_image: tuple[Path, Path], tmp_path: Path
) -> None:
    """Another time zone, locale, umask, working directory and an empty licence cache
    give the very bytes the build wrote."""
    image, manifest_path = built_hello_image
    manifest = read_manifest(manifest_path).raw
    project = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH",)}
    env.update(TZ="Pacific/Kiritimati", LC_ALL="C", LANG="C", PYTHONPATH=str(project))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", REGENERATE, str(manifest_path),
         str(project / "recipes" / "hello.lock.json"), str(out), str(tmp_path / "cache"),
         str(image)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    listed = json.loads(done.stdout)
    assert listed == {
        key: manifest[key] for key in ("sbom", "sbom_spdx3", "sbom_cyclonedx", "provenance")
    }
    for entry in listed.values():
        assert (out / entry["file"]).read_bytes() == (
            manifest_path.parent / entry["file"]
        ).read_bytes()
