"""The local flat apt repository of exactly the locked .debs."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from archive_factory import FakeDeb, make_deb
from step_factory import locked, locked_fake

from builder.build.steps.localrepo import make_local_repo
from builder.core.errors import InputError
from builder.source.lockfile import LockedPackage


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[FakeDeb]:
    directory = tmp_path_factory.mktemp("repo-debs")
    return [
        make_deb(directory, "zed", "1:2.0-1", depends="alpha (>= 1)"),
        make_deb(directory, "alpha", "1.0", arch="all", files={"/usr/share/alpha": b"a\n"}),
    ]


def build(debs: list[FakeDeb], root: Path) -> Path:
    packages = {locked_fake(d): d.path for d in debs}
    make_local_repo(packages, packages.__getitem__, root, suite="stable", codename="bookworm")
    return root


def test_packages_index_lists_each_deb_with_digest(tmp_path: Path, debs: list[FakeDeb]) -> None:
    root = build(debs, tmp_path / "repo")

    stanzas = (root / "Packages").read_text().split("\n\n")

    assert [s.splitlines()[0] for s in stanzas] == ["Package: alpha", "Package: zed"]
    zed = stanzas[1]
    assert "Version: 1:2.0-1\n" in zed
    assert "Depends: alpha (>= 1)\n" in zed
    deb = root / "zed_2.0-1_amd64.deb"
    assert f"Filename: ./{deb.name}\n" in zed
    assert f"Size: {deb.stat().st_size}\n" in zed
    assert zed.endswith(f"SHA256: {hashlib.sha256(deb.read_bytes()).hexdigest()}\n")
    assert deb.read_bytes() == debs[0].path.read_bytes()


def test_release_names_suite_codename_and_index_digest(tmp_path: Path, debs: list[FakeDeb]) -> None:
    root = build(debs, tmp_path / "repo")

    release = (root / "Release").read_text()
    index = (root / "Packages").read_bytes()

    assert "Suite: stable\n" in release
    assert "Codename: bookworm\n" in release
    assert f" {hashlib.sha256(index).hexdigest()} {len(index)} Packages\n" in release
    assert "Date" not in release


def test_same_lock_same_index_bytes_anywhere(tmp_path: Path, debs: list[FakeDeb]) -> None:
    one = build(debs, tmp_path / "one")
    two = build(list(reversed(debs)), tmp_path / "elsewhere" / "two")
    for name in ("Packages", "Release"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
        assert str(tmp_path).encode() not in (one / name).read_bytes()


def test_apt_reads_the_repository(tmp_path: Path, debs: list[FakeDeb]) -> None:
    root = build(debs, tmp_path / "repo")
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d"):
        (state / sub).mkdir(parents=True)
    (state / "etc/sources.list").write_text(f"deb [trusted=yes] copy://{root} ./\n")
    (state / "status").write_text("")
    options = [
        f"-oDir::State={state}",
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::State::status={state / 'status'}",
        f"-oDir::Cache={state / 'cache'}",
        f"-oDir::Etc={state / 'etc'}",
        "-oAPT::Architecture=amd64",
        "-oDebug::NoLocking=1",
    ]
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"}
    subprocess.run(["apt-get", *options, "update"], check=True, env=env, capture_output=True)
    shown = subprocess.run(
        ["apt-cache", *options, "policy", "zed"], check=True, env=env, capture_output=True
    ).stdout.decode()
    assert "Candidate: 1:2.0-1" in shown


def test_control_mismatch_with_the_lock_is_refused(tmp_path: Path, debs: list[FakeDeb]) -> None:
    alpha = debs[1]
    wrong = locked("alpha", "1.1", "all", alpha.path)
    with pytest.raises(InputError, match=r"alpha: the \.deb says Version: '1\.0'"):
        make_local_repo([wrong], lambda p: alpha.path, tmp_path / "repo", suite="s", codename="c")


def test_non_empty_directory_is_a_programming_error(tmp_path: Path, debs: list[FakeDeb]) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "junk").write_text("x")
    packages: dict[LockedPackage, Path] = {}
    with pytest.raises(ValueError, match="not empty"):
        make_local_repo(packages, packages.__getitem__, tmp_path / "repo", suite="s", codename="c")
