"""The same bytes on any Linux host: the committed golden digests, reproduced on this
host as root, inside a Debian 13 (trixie) system, inside a system without Debian's
tools, and as an unprivileged user.

Each build runs the real CLI on a copy of the sources, with its own step cache and
the locked .debs linked in from the session's cache, so nothing is shared but the
verified .debs. The trixie and tool-less systems are made with the host's
mmdebstrap from the mirror in the machine's apt configuration (test set-up only:
the builds inside them use nothing of the host but the kernel).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builder.core.canonical import sha256_file
from builder.core.paths import deb_cache_dir
from builder.core.sandbox import Sandbox
from builder.source.lockfile import Lock, LockedPackage
from builder.source.mirrors import default_mirrors

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parent.parent
GOLDEN = PROJECT / "tests" / "golden" / "images.json"
# What boothkey needs of an observer's system: Python 3 and its four libraries.
OBSERVER_PACKAGES = (
    "python3",
    "python3-yaml",
    "python3-jinja2",
    "python3-cryptography",
    "python3-requests",
    "python3-debian",
)
# Nothing of these may be on the PATH of the "no Debian tools" system.
DEBIAN_TOOLS = (
    "apt",
    "apt-get",
    "dpkg",
    "dpkg-deb",
    "mmdebstrap",
    "mksquashfs",
    "mkfs.erofs",
    "veritysetup",
    "mkfs.vfat",
    "mcopy",
    "objcopy",
    "cpio",
    "zstd",
    "sbsign",
    "tar",
)
TEST_USER_ENV = "BOOTHKEY_TEST_USER"


def golden(name: str) -> str:
    digests: dict[str, str] = json.loads(GOLDEN.read_text())
    return digests[name]


def test_golden_digests_are_reproduced_here(
    built_hello_image: tuple[Path, Path], built_booth_image: tuple[Path, Path]
) -> None:
    # A change that moves these is made on purpose: its commit message says why.
    for name, (image, manifest) in (("hello", built_hello_image), ("booth", built_booth_image)):
        recorded = json.loads(manifest.read_text())["image"]["sha256"]
        assert sha256_file(image) == recorded
        assert recorded == golden(name), f"{name}: the image digest moved from the golden one"


def copy_sources(dest: Path) -> Path:
    """The files a build reads, copied (a checkout of the release)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("build.py", "builder", "recipes", "overlays", "keys", "pyproject.toml", "setup"):
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(
                source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, dest / name)
    return dest


def link_debs(lock: Lock, deb_path: Callable[[LockedPackage], Path], cache: Path) -> None:
    """A cache holding the lock's verified .debs (hard links, or copies across devices)."""
    source = deb_cache_dir(cache)
    for package in lock.packages:
        found = deb_path(package)
        target = source / found.relative_to(found.parents[2])
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(found, target)
        except OSError:
            shutil.copyfile(found, target)


@pytest.fixture
def hello_sources(
    hello_boot_debs: tuple[Lock, Callable[[LockedPackage], Path]],
) -> Iterator[Path]:
    """A world-readable temporary directory with the sources and a .deb cache for hello."""
    work = Path(tempfile.mkdtemp(prefix="boothkey-hosts-"))
    try:
        work.chmod(0o755)
        copy_sources(work / "src")
        lock, deb_path = hello_boot_debs
        link_debs(lock, deb_path, work / "cache")
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def host_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    pytest.fail("/etc/os-release names no VERSION_CODENAME")


def observer_system(dest: Path, suite: str, variant: str) -> Path:
    """A Debian `suite` system with Python and boothkey's libraries, made by mmdebstrap."""
    # The machine's apt configuration may name only its own suite; the same Debian
    # archive carries every suite.
    mirrors = default_mirrors(suite) or default_mirrors(host_codename())
    if not mirrors:
        pytest.fail(f"no Debian mirror in this machine's apt configuration for {suite}")
    subprocess.run(
        [
            "mmdebstrap",
            f"--variant={variant}",
            "--include=" + ",".join(OBSERVER_PACKAGES),
            "--aptopt=Acquire::Languages none",
            suite,
            str(dest),
            mirrors[0],
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return dest


@pytest.fixture(scope="session")
def trixie_system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return observer_system(tmp_path_factory.mktemp("trixie") / "root", "trixie", "minbase")


def build_inside(system: Path, work: Path) -> str:
    """Build hello with `system`'s own Python, inside a sandbox whose root is `system`
    (the host's tools are not there); return the image's sha256."""
    out = work / "out"
    Sandbox(system, work).run(
        [
            "python3",
            "build.py",
            "build",
            "--quiet",
            "--cache-dir",
            work / "cache",
            "--out",
            out,
            "recipes/hello.yaml",
        ],
        binds=[work / "src"],
        writable=[work / "cache", work],
        cwd=work / "src",
    )
    return sha256_file(out / "hello.img")


def test_a_trixie_system_builds_the_golden_hello_image(
    trixie_system: Path, hello_sources: Path
) -> None:
    release = (trixie_system / "etc" / "debian_version").read_text()
    assert release.startswith(("13", "trixie")), release
    assert build_inside(trixie_system, hello_sources) == golden("hello")


def test_a_system_without_debian_tools_builds_the_golden_hello_image(
    trixie_system: Path, hello_sources: Path, tmp_path: Path
) -> None:
    # A stand-in for an observer's Fedora or Arch machine: Python and its libraries,
    # but no apt, dpkg, mmdebstrap or image tool.
    system = tmp_path / "no-debian-tools"
    subprocess.run(["cp", "-a", str(trixie_system), str(system)], check=True)
    for directory in ("usr/bin", "usr/sbin"):
        for name in DEBIAN_TOOLS:
            (system / directory / name).unlink(missing_ok=True)
        for path in (system / directory).glob("dpkg-*"):
            path.unlink()
    shutil.rmtree(system / "var" / "lib" / "dpkg")
    leftovers = [
        f"{d}/{n}"
        for d in ("usr/bin", "usr/sbin")
        for n in DEBIAN_TOOLS
        if (system / d / n).exists()
    ]
    assert not leftovers
    assert build_inside(system, hello_sources) == golden("hello")


@pytest.fixture
def test_user() -> pwd.struct_passwd:
    user = os.environ.get(TEST_USER_ENV)
    if not user:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"CI must name an unprivileged user with subordinate ids in ${TEST_USER_ENV}"
            )
        pytest.skip(f"set ${TEST_USER_ENV} to a user with subordinate uids/gids")
    account = pwd.getpwnam(user)
    assert account.pw_uid != 0
    return account


def run_as(
    account: pwd.struct_passwd, arguments: list[str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    """`python3 build.py ARGUMENTS...` as `account`, with Debian's Python and libraries
    (the checkout's venv may not be readable by that user)."""
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--init-groups",
            "--reset-env",
            "/usr/bin/python3",
            "build.py",
            *arguments,
        ],
        cwd=cwd,
        capture_output=True,
        check=False,
    )


def give_to(account: pwd.struct_passwd, *directories: Path) -> None:
    for directory in directories:
        for path in (directory, *directory.rglob("*")):
            if path.is_dir():
                os.chown(path, account.pw_uid, account.pw_gid)


def test_an_unprivileged_user_builds_the_golden_hello_image(
    hello_sources: Path, test_user: pwd.struct_passwd
) -> None:
    out = hello_sources / "out"
    out.mkdir()
    give_to(test_user, hello_sources, hello_sources / "cache", out)
    arguments = ["build", "--quiet", "--cache-dir", str(hello_sources / "cache")]
    arguments += ["--out", str(out), "recipes/hello.yaml"]
    result = run_as(test_user, arguments, hello_sources / "src")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    image = out / "hello.img"
    assert image.stat().st_uid == test_user.pw_uid
    assert sha256_file(image) == golden("hello")


def test_an_unprivileged_observer_rebuilds_a_published_release(
    hello_sources: Path, test_user: pwd.struct_passwd, built_hello_image: tuple[Path, Path]
) -> None:
    # The release: the session's root-built hello image, published with its bundle.
    _image, manifest = built_hello_image
    published = hello_sources / "published"
    shutil.copytree(manifest.parent, published)
    published.chmod(0o755)  # pytest's directories are private to root
    subprocess.run(
        [sys.executable, "build.py", "bundle", "recipes/hello.yaml", "--out", str(published)],
        cwd=hello_sources / "src",
        check=True,
        capture_output=True,
    )
    work = hello_sources / "observer"
    work.mkdir()
    give_to(test_user, work)
    arguments = ["rebuild", str(published / "hello.manifest.json")]
    arguments += ["--bundle", str(published / "hello-1-source.tar"), "--work", str(work / "w")]
    result = run_as(test_user, arguments, hello_sources / "src")
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output + result.stderr.decode(errors="replace")
    assert "Result: SAME" in output
    assert (work / "w").stat().st_uid == test_user.pw_uid
