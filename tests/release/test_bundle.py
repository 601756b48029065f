"""builder/release/bundle.py and `build.py bundle`: the deterministic source bundle."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from project_factory import EPOCH, RECIPE, Project, make_project, project_manifest

from builder import cli
from builder.build.manifest import read_manifest, write_manifest
from builder.core.canonical import sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.core.paths import deb_cache_dir
from builder.release.bundle import (
    BundleResult,
    extract_bundle,
    make_bundle,
    read_index,
    record_bundle,
    verify_bundle,
)
from builder.source.debcache import DebCache
from builder.source.fetch import fetch_packages
from builder.source.http import RequestsFetcher
from builder.source.recipe import load_recipe


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "project", tmp_path / "debs")


@pytest.fixture
def bundle(project: Project, tmp_path: Path) -> BundleResult:
    return make_bundle(project.recipe, project.lock, project.deb_path, tmp_path / "out")


def test_bundle_holds_recipe_lock_overlays_keyring_code_and_debs(
    project: Project, bundle: BundleResult
) -> None:
    root = bundle.directory
    assert root.name == "demo-2.0-source"
    assert bundle.tarball == root.with_name("demo-2.0-source.tar")
    assert (root / "recipes" / "demo.yaml").read_text() == RECIPE
    assert (root / "recipes" / "demo.lock.json").read_bytes() == project.lock.to_bytes()
    assert (root / "keys" / "archive.gpg").read_bytes() == b"pretend keyring"
    assert (root / "overlays" / "demo" / "etc" / "motd.j2").is_file()
    assert os.readlink(root / "overlays" / "demo" / "etc" / "issue") == "motd"
    assert (root / "overlays" / "demo" / "var" / "empty").is_dir()
    assert os.stat(root / "overlays" / "demo" / "usr" / "bin" / "hello").st_mode & 0o777 == 0o755
    assert (root / "build.py").is_file() and (root / "builder" / "build" / "pipeline.py").is_file()
    assert not list(root.rglob("__pycache__"))
    for package in project.lock.packages:
        assert sha256_file(root / package.filename) == package.sha256
    index = read_index(root)
    assert (index.name, index.version) == ("demo", "2.0")
    assert index.recipe == root / "recipes" / "demo.yaml"
    assert index.raw["source_date_epoch"] == EPOCH
    assert "python3 build.py rebuild demo.manifest.json" in (root / "README.txt").read_text()
    assert bundle.sha256 == sha256_file(bundle.tarball)
    # The bundle directory is itself a project: the recipe loads from it.
    assert load_recipe(root / "recipes" / "demo.yaml").package_set_digest() == (
        project.recipe.package_set_digest()
    )


def test_tar_is_deterministic_and_normalised(project: Project, bundle: BundleResult) -> None:
    with tarfile.open(bundle.tarball) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names, key=lambda n: n.encode())
        assert names[0] == "demo-2.0-source"
        for member in members:
            assert member.mtime == EPOCH, member.name
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
            assert member.pax_headers == {}
            assert member.type in (tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE)
            if member.isdir():
                assert member.mode == 0o755
            elif member.isfile():
                assert member.mode in (0o644, 0o755)
                extracted = tar.extractfile(member)
                assert extracted is not None
                on_disk = bundle.directory / member.name.split("/", 1)[1]
                assert extracted.read() == on_disk.read_bytes(), member.name
    raw = bundle.tarball.read_bytes()
    assert b"PaxHeader" not in raw and b"mtime=" not in raw
    assert raw[257:265] == b"ustar  \0"  # GNU magic, not POSIX/pax


def test_same_sources_give_the_same_tar_whatever_the_machine_state(
    project: Project, bundle: BundleResult, tmp_path: Path
) -> None:
    # Another checkout at another path, made under umask 077 (other modes for everything),
    # bundled under umask 077 into another directory: the tar bytes are the same.
    other = make_project(tmp_path / "elsewhere" / "checkout", tmp_path / "debs2", umask=0o077)
    # Leftovers of tools run in a checkout are not sources: the overlay step skips them.
    overlay = other.root / "overlays" / "demo"
    (overlay / "usr" / "bin" / "__pycache__").mkdir()
    (overlay / "usr" / "bin" / "__pycache__" / "hello.cpython-311.pyc").write_bytes(b"\0")
    (overlay / "etc" / "stale.pyc").write_bytes(b"\0")
    (overlay / ".mypy_cache").mkdir()
    (overlay / ".mypy_cache" / "CACHEDIR.TAG").write_text(
        "Signature: 8a477f597d28d172789f06886806bc55\n"
    )
    old = os.umask(0o077)
    try:
        again = make_bundle(other.recipe, other.lock, other.deb_path, tmp_path / "out2")
    finally:
        os.umask(old)
    assert again.sha256 == bundle.sha256
    assert again.tarball.read_bytes() == bundle.tarball.read_bytes()
    # Rebuilding in place replaces the old bundle instead of mixing with it.
    (bundle.directory / "stray").write_text("x")
    third = make_bundle(project.recipe, project.lock, project.deb_path, bundle.tarball.parent)
    assert not (third.directory / "stray").exists()
    assert third.sha256 == bundle.sha256
    assert not [p for p in bundle.tarball.parent.iterdir() if p.name.startswith(".")]


def test_a_changed_overlay_changes_the_bundle(project: Project, bundle: BundleResult) -> None:
    (project.root / "overlays" / "demo" / "etc" / "motd.j2").write_text("changed\n")
    again = make_bundle(project.recipe, project.lock, project.deb_path, bundle.tarball.parent)
    assert again.sha256 != bundle.sha256


def test_bundle_directory_serves_as_a_mirror(
    project: Project, bundle: BundleResult, tmp_path: Path
) -> None:
    cache = DebCache(tmp_path / "fresh-cache")
    report = fetch_packages(
        project.lock.packages, [str(bundle.directory)], cache, RequestsFetcher()
    )
    assert len(report.fetched) == len(project.lock.packages)
    for package in project.lock.packages:
        assert cache.check(package).ok


def test_unfetched_package_is_refused_before_writing(project: Project, tmp_path: Path) -> None:
    empty = DebCache(tmp_path / "empty")
    with pytest.raises(InputError, match="not in the cache"):
        make_bundle(project.recipe, project.lock, empty.verified_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_verify_bundle_names_changed_extra_and_missing_files(bundle: BundleResult) -> None:
    root = bundle.directory
    assert verify_bundle(root).name == "demo"
    (root / "overlays" / "demo" / "etc" / "motd.j2").write_text("tampered\n")
    (root / "pool" / "extra.deb").write_bytes(b"x")
    (root / "keys" / "archive.gpg").unlink()
    with pytest.raises(VerificationFailed) as caught:
        verify_bundle(root)
    message = caught.value.message
    assert "overlays/demo/etc/motd.j2: content differs" in message
    assert "pool/extra.deb: not listed" in message
    assert "keys/archive.gpg: missing" in message


def test_extract_gives_back_the_directory(bundle: BundleResult, tmp_path: Path) -> None:
    root = extract_bundle(bundle.tarball, tmp_path / "unpacked")
    assert root == tmp_path / "unpacked" / "demo-2.0-source"
    verify_bundle(root)
    assert os.readlink(root / "overlays" / "demo" / "etc" / "issue") == "motd"
    with pytest.raises(InputError, match="must be empty"):
        extract_bundle(bundle.tarball, tmp_path / "unpacked")


def _evil_tar(path: Path, members: list[tuple[str, bytes, Any]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE or kind == tarfile.LNKTYPE:
                info.linkname = extra
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
            else:
                tar.addfile(info)
    return path


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("b", tarfile.DIRTYPE, None), ("b/../../x", tarfile.REGTYPE, b"x")], "plain relative"),
        ([("/etc/x", tarfile.REGTYPE, b"x")], "plain relative"),
        ([("b", tarfile.DIRTYPE, None), ("c", tarfile.DIRTYPE, None)], "outside the top"),
        (
            [
                ("b", tarfile.DIRTYPE, None),
                ("b/link", tarfile.SYMTYPE, "/tmp"),
                ("b/link/x", tarfile.REGTYPE, b"x"),
            ],
            "through a non-directory",
        ),
        ([("b", tarfile.DIRTYPE, None), ("b/h", tarfile.LNKTYPE, "b")], "only files"),
        ([("b", tarfile.DIRTYPE, None), ("b/dev", tarfile.CHRTYPE, None)], "only files"),
    ],
)
def test_extract_refuses_anything_but_a_plain_tree(
    tmp_path: Path, members: list[tuple[str, bytes, Any]], message: str
) -> None:
    tar = _evil_tar(tmp_path / "evil.tar", members)
    with pytest.raises(InputError, match=message):
        extract_bundle(tar, tmp_path / "dest")
    assert not (tmp_path / "x").exists()


def test_record_bundle_names_it_in_the_manifest(
    project: Project, bundle: BundleResult, tmp_path: Path
) -> None:
    path = tmp_path / "demo.manifest.json"
    write_manifest(path, project_manifest(project))
    record_bundle(path, bundle, project.recipe)
    assert read_manifest(path).raw["bundle"] == {
        "file": "demo-2.0-source.tar",
        "sha256": bundle.sha256,
        "size": bundle.tarball.stat().st_size,
    }


def test_record_bundle_refuses_other_builds_and_signed_manifests(
    project: Project, bundle: BundleResult, tmp_path: Path
) -> None:
    other = project_manifest(project)
    other["lock_sha256"] = "b" * 64
    path = tmp_path / "demo.manifest.json"
    write_manifest(path, other)
    with pytest.raises(InputError, match="lock_sha256"):
        record_bundle(path, bundle, project.recipe)
    write_manifest(path, project_manifest(project))
    (tmp_path / "demo.dsse.json").write_text("{}")
    before = path.read_bytes()
    with pytest.raises(InputError, match="already signed"):
        record_bundle(path, bundle, project.recipe)
    assert path.read_bytes() == before


def _store(cache_dir: Path, project: Project) -> None:
    cache = DebCache(deb_cache_dir(cache_dir))
    for package in project.lock.packages:
        target = cache.path(package.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project.deb_path(package), target)


def test_bundle_command_writes_and_records(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "cache"
    _store(cache_dir, project)
    out = tmp_path / "release"
    write_manifest(out / "demo.manifest.json", project_manifest(project))
    code = cli.main(
        ["bundle", str(project.recipe.path), "--out", str(out), "--cache-dir", str(cache_dir)]
    )
    assert code == 0
    tar = out / "demo-2.0-source.tar"
    printed = capsys.readouterr().out
    assert sha256_file(tar) in printed
    assert read_manifest(out / "demo.manifest.json").raw["bundle"]["sha256"] == sha256_file(tar)
    # --no-manifest leaves the manifest alone.
    before = (out / "demo.manifest.json").read_bytes()
    run: Callable[[list[str]], int] = cli.main
    assert (
        run(
            [
                "bundle",
                str(project.recipe.path),
                "--out",
                str(out),
                "--cache-dir",
                str(cache_dir),
                "--no-manifest",
            ]
        )
        == 0
    )
    assert (out / "demo.manifest.json").read_bytes() == before


def test_bundle_command_reports_unfetched_packages(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "bundle",
            str(project.recipe.path),
            "--out",
            str(tmp_path / "o"),
            "--cache-dir",
            str(tmp_path / "nocache"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"package {project.lock.packages[0].name} version 1.0-1 is not in the cache" in err
