"""Reproducibility of a whole build under changed environments (recipes/hello.yaml).

The reference is the session's plain build (`built_hello_image`). Each variation
builds the same recipe with its own fresh cache (the locked .debs hard-linked in,
no step reused), through the real CLI in a subprocess, and must give the same
image digest; on a failure the assertion message is the rebuild comparison,
which names the first diverging step and the differing files.

To keep CI time down the variations are grouped into three builds:
- environment: another checkout path, working directory and --out, TZ, locale
  (LC_ALL/LANG/LANGUAGE), umask 077, hostname (own UTS namespace), HOME/USER/
  LOGNAME, one CPU (taskset -c 0), and SOURCE_DATE_EPOCH set to another value
  (the lock's value must rule). The build runs as root (mmdebstrap's root mode
  needs it), so the uid stays 0: only the user's environment changes.
- clock: the whole process tree a year ahead (libfaketime preloaded, FAKETIME=+1y),
  with SOURCE_DATE_EPOCH absent from the environment.
- directory order: the checkout (recipe, lock, overlay) and TMPDIR on disorderfs
  with shuffled directory entries: every step's scratch directory is below TMPDIR
  (the local apt repository mmdebstrap reads, the initrd tree cpio packs, the ESP
  and UKI staging). The step cache itself cannot be on FUSE: `veritysetup format`
  fails there ("Error during update of verity header").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.build.filelist import read_file_list
from builder.build.manifest import read_manifest
from builder.core.paths import deb_cache_dir, default_cache_dir
from builder.core.tools import faketime_env
from builder.observe.compare import compare_file_lists, compare_manifests
from builder.source.debcache import DebCache
from builder.source.lockfile import read_lock

PROJECT = Path(__file__).resolve().parent.parent
BUILD_PY = PROJECT / "build.py"

pytestmark = pytest.mark.slow


def _checkout(dest: Path) -> Path:
    """A copy of what the hello recipe reads (recipe, lock, overlay) at another path."""
    (dest / "recipes").mkdir(parents=True)
    for name in ("hello.yaml", "hello.lock.json"):
        shutil.copy2(PROJECT / "recipes" / name, dest / "recipes" / name)
    shutil.copytree(PROJECT / "overlays" / "hello", dest / "overlays" / "hello", symlinks=True)
    return dest / "recipes" / "hello.yaml"


def _fresh_cache(dest: Path) -> Path:
    """A cache holding only the locked .debs (hard links into the user's verified cache)."""
    lock = read_lock(PROJECT / "recipes" / "hello.lock.json")
    source = DebCache(deb_cache_dir(default_cache_dir()))
    target = DebCache(deb_cache_dir(dest))
    for package in lock.packages:
        path = target.path(package.sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source.verified_path(package), path)
    return dest


def _build(
    argv_prefix: list[str], recipe: Path, out: Path, cache: Path, env: dict[str, str], cwd: Path
) -> Path:
    command = [
        *argv_prefix,
        sys.executable,
        str(BUILD_PY),
        "build",
        "--quiet",
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        str(recipe),
    ]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return out / "hello.manifest.json"


def _assert_same(reference: Path, variant: Path, what: str) -> None:
    published_manifest, rebuilt_manifest = read_manifest(reference), read_manifest(variant)
    published, rebuilt = published_manifest.raw, rebuilt_manifest.raw
    comparison = compare_manifests(published_manifest, rebuilt_manifest)
    if "files" in published and "files" in rebuilt:
        comparison.file_differences = compare_file_lists(
            read_file_list(reference.parent / published["files"]["file"]),
            read_file_list(variant.parent / rebuilt["files"]["file"]),
        )
    assert rebuilt["image"]["sha256"] == published["image"]["sha256"], (
        f"{what}: the image differs from the plain build\n{comparison.to_text()}"
    )
    assert comparison.ok, f"{what}: same image, but\n{comparison.to_text()}"


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env.pop("BOOTHKEY_CACHE", None)
    return env


@pytest.fixture(scope="module")
def reference(built_hello_image: tuple[Path, Path]) -> Path:
    return built_hello_image[1]


def test_environment_variations_give_the_same_image(reference: Path, tmp_path: Path) -> None:
    recipe = _checkout(tmp_path / "some" / "other checkout")
    cache = _fresh_cache(tmp_path / "cache")
    out = tmp_path / "deeply" / "nested" / "output dir"
    workdir = tmp_path / "elsewhere"
    home = tmp_path / "home" / "observer"
    for directory in (workdir, home):
        directory.mkdir(parents=True)
    env = _base_env()
    env.update(
        {
            # A POSIX TZ rule, valid even without tzdata: UTC+12:45, with summer time.
            "TZ": "CHAST-12:45CHADT,M9.5.0/2:45,M4.1.0/3:45",
            "LC_ALL": "fr_FR.UTF-8",
            "LANG": "de_DE.UTF-8",
            "LANGUAGE": "de:fr",
            "HOME": str(home),
            "USER": "observer",
            "LOGNAME": "observer",
            "SOURCE_DATE_EPOCH": "1000000000",
        }
    )
    # A new UTS namespace gets its own host name; umask and CPU set are inherited.
    prefix = [
        "unshare",
        "--uts",
        "sh",
        "-c",
        'hostname boothkey-variant && umask 077 && exec taskset -c 0 "$@"',
        "sh",
    ]
    variant = _build(prefix, recipe, out, cache, env, workdir)
    _assert_same(reference, variant, "other path/TZ/locale/umask/hostname/user/CPU/SDE")


def test_a_clock_a_year_ahead_gives_the_same_image(reference: Path, tmp_path: Path) -> None:
    # libfaketime preloaded through `env` (see builder.core.tools.faketime_env for why not the
    # faketime wrapper); the whole process tree of the build inherits it.
    year_ahead = ["env", *(f"{k}={v}" for k, v in faketime_env("+1y").items())]
    probe = subprocess.run(
        [*year_ahead, sys.executable, "-c", "import time; print(time.time())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(probe.stdout) > time.time() + 300 * 86400, "faketime does not move the clock"
    cache = _fresh_cache(tmp_path / "cache")
    variant = _build(
        year_ahead,
        PROJECT / "recipes" / "hello.yaml",
        tmp_path / "out",
        cache,
        _base_env(),
        PROJECT,
    )
    _assert_same(reference, variant, "clock a year ahead, no SOURCE_DATE_EPOCH")


@contextlib.contextmanager
def _shuffled(source: Path, mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir(parents=True)
    subprocess.run(
        ["disorderfs", "--quiet", "--shuffle-dirents=yes", str(source), str(mountpoint)],
        check=True,
        capture_output=True,
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)


def test_shuffled_directory_order_gives_the_same_image(reference: Path, tmp_path: Path) -> None:
    if shutil.which("disorderfs") is None or not Path("/dev/fuse").exists():
        pytest.fail("disorderfs (Debian package disorderfs) and /dev/fuse are needed")
    _checkout(tmp_path / "checkout")
    cache = _fresh_cache(tmp_path / "cache")
    probe = tmp_path / "tmp" / "probe"
    probe.mkdir(parents=True)
    for number in range(30):
        (probe / f"entry-{number:02d}").touch()
    with (
        _shuffled(tmp_path / "checkout", tmp_path / "shuffled-checkout") as checkout,
        _shuffled(tmp_path / "tmp", tmp_path / "shuffled-tmp") as scratch,
    ):
        orders = {tuple(os.listdir(scratch / "probe")) for _ in range(3)}
        assert len(orders) > 1, "disorderfs does not shuffle directory entries"
        env = _base_env()
        env["TMPDIR"] = str(scratch)  # every step's scratch directory
        variant = _build(
            [], checkout / "recipes" / "hello.yaml", tmp_path / "out", cache, env, PROJECT
        )
    _assert_same(reference, variant, "shuffled directory entries (checkout and scratch)")
