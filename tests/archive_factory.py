"""Build small, signed Debian archives for tests: real .debs, real gpg signatures.

`make_deb` builds a .deb with `dpkg-deb --build --root-owner-group` (deterministic
for fixed inputs); `make_gpg_key` makes a throwaway ed25519 key in its own
GNUPGHOME and exports a keyring gpgv can read; `make_archive` lays out
`dists/<suite>/{Release,InRelease,Release.gpg}`, `main/binary-amd64/Packages(.xz)`
and `pool/`, exactly as a Debian mirror does. `HttpServer` serves a directory on
127.0.0.1 so tests go through the real `requests` code path.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import lzma
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.source.toolset import TOOL_PACKAGES

FIXED_EPOCH = 1700000000
FIXED_DATE = "Tue, 14 Nov 2023 22:13:20 UTC"  # == FIXED_EPOCH
_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "SOURCE_DATE_EPOCH": str(FIXED_EPOCH),
}


@dataclass(frozen=True)
class FakeDeb:
    """A built .deb and the control stanza it carries."""

    path: Path
    name: str
    version: str
    architecture: str
    control: Mapping[str, str]  # field -> value, in control-file order

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def pool_path(self, component: str = "main") -> str:
        prefix = self.name[:4] if self.name.startswith("lib") else self.name[:1]
        return f"pool/{component}/{prefix}/{self.name}/{self.path.name}"


def make_deb(
    directory: Path,
    name: str,
    version: str,
    arch: str = "amd64",
    *,
    depends: str = "",
    pre_depends: str = "",
    provides: str = "",
    conflicts: str = "",
    breaks: str = "",
    essential: bool = False,
    priority: str = "optional",
    multi_arch: str = "",
    files: Mapping[str, bytes] | None = None,
    executables: Mapping[str, bytes] | None = None,
) -> FakeDeb:
    """Build `directory/<name>_<version>_<arch>.deb`; relation fields use Debian syntax.

    `files` maps absolute paths inside the package to their contents (mode 0644,
    directories 0755, all times FIXED_EPOCH); `executables` likewise, mode 0755.
    """
    control: dict[str, str] = {
        "Package": name,
        "Version": version,
        "Architecture": arch,
        "Maintainer": "boothkey tests <tests@example.org>",
        "Priority": priority,
        "Section": "misc",
    }
    if essential:
        control["Essential"] = "yes"
    if multi_arch:
        control["Multi-Arch"] = multi_arch
    for key, value in (
        ("Pre-Depends", pre_depends),
        ("Depends", depends),
        ("Provides", provides),
        ("Conflicts", conflicts),
        ("Breaks", breaks),
    ):
        if value:
            control[key] = value
    control["Description"] = f"test package {name}"

    directory.mkdir(parents=True, exist_ok=True)
    build = directory / f".build-{name}-{version}-{arch}"
    shutil.rmtree(build, ignore_errors=True)
    (build / "DEBIAN").mkdir(parents=True)
    text = "".join(f"{key}: {value}\n" for key, value in control.items())
    (build / "DEBIAN" / "control").write_text(text)
    contents = [(path, content, 0o644) for path, content in (files or {}).items()]
    contents += [(path, content, 0o755) for path, content in (executables or {}).items()]
    for path, content, mode in sorted(contents):
        target = build / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
    for current, dirs, names in os.walk(build):
        for entry in (*dirs, *names):
            os.utime(Path(current, entry), (FIXED_EPOCH, FIXED_EPOCH))
        Path(current).chmod(0o755)
    safe_version = version.replace(":", "%3a")
    deb = directory / f"{name}_{safe_version}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(build), str(deb)],
        check=True,
        env=_ENV,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(build)
    return FakeDeb(deb, name, version, arch, control)


@dataclass(frozen=True)
class GpgKey:
    """A throwaway signing key: its GNUPGHOME, fingerprint and exported public keyring."""

    home: Path
    fingerprint: str
    keyring: Path

    def close(self) -> None:
        """Stop the gpg-agent this key's GNUPGHOME started."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def make_gpg_key(
    directory: Path, uid: str = "boothkey test archive <archive@example.org>"
) -> GpgKey:
    home = directory / "gnupg"
    home.mkdir(parents=True, mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    keyring = directory / "keyring.gpg"
    keyring.write_bytes(
        subprocess.run([*gpg, "--export", fingerprint], check=True, capture_output=True).stdout
    )
    return GpgKey(home, fingerprint, keyring)


def sign_release(release: Path, key: GpgKey) -> None:
    """Write InRelease (clear-signed) and Release.gpg (detached) beside `release`."""
    gpg = ["gpg", "--homedir", str(key.home), "--batch", "--yes", "--local-user", key.fingerprint]
    subprocess.run(
        [*gpg, "--clearsign", "-o", str(release.with_name("InRelease")), str(release)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            *gpg,
            "--detach-sign",
            "--armor",
            "-o",
            str(release.with_name("Release.gpg")),
            str(release),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )


def packages_stanza(deb: FakeDeb, component: str = "main") -> str:
    fields = dict(deb.control)
    description = fields.pop("Description")
    fields.update(
        {
            "Filename": deb.pool_path(component),
            "Size": str(deb.size),
            "SHA256": deb.sha256,
            "Description": description,
        }
    )
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


@dataclass(frozen=True)
class Archive:
    """A test archive on disk: `root` is what a mirror serves."""

    root: Path
    suite: str
    codename: str
    keyring: Path | None
    debs: tuple[FakeDeb, ...] = field(default=())

    @property
    def dists(self) -> Path:
        return self.root / "dists" / self.suite

    @property
    def release(self) -> Path:
        return self.dists / "Release"

    @property
    def inrelease(self) -> Path:
        return self.dists / "InRelease"

    @property
    def packages_xz(self) -> Path:
        return self.dists / "main" / "binary-amd64" / "Packages.xz"


def make_archive(
    root: Path,
    suite: str,
    packages: Iterable[FakeDeb],
    sign_with: GpgKey | None,
    *,
    codename: str | None = None,
    date: str = FIXED_DATE,
    extra_release_fields: Mapping[str, str] | None = None,
    by_hash: bool = False,
    pool_component: str = "main",
) -> Archive:
    """Write a Debian-layout archive under `root` holding `packages` in component main.

    Several suites may share one `root` (as bookworm and bookworm-updates do).
    `pool_component` places the .debs under `pool/<pool_component>/` (Debian's
    security archive uses `updates/main`).
    With `sign_with=None` the Release is left unsigned (no InRelease): for tamper tests.
    With `by_hash`, index files are also stored under `by-hash/SHA256/<digest>` and the
    Release says `Acquire-By-Hash: yes`, as Debian's archive does.
    """
    debs = tuple(sorted(packages, key=lambda d: (d.name, d.version, d.architecture)))
    codename = codename or suite
    dists = root / "dists" / suite
    binary = dists / "main" / "binary-amd64"
    binary.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        target = root / deb.pool_path(pool_component)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(deb.path, target)
    packages_text = "\n".join(packages_stanza(deb, pool_component) for deb in debs).encode()
    (binary / "Packages").write_bytes(packages_text)
    (binary / "Packages.xz").write_bytes(lzma.compress(packages_text, preset=6))
    if by_hash:
        store = binary / "by-hash" / "SHA256"
        store.mkdir(parents=True, exist_ok=True)
        for name in ("Packages", "Packages.xz"):
            data = (binary / name).read_bytes()
            (store / hashlib.sha256(data).hexdigest()).write_bytes(data)

    release_fields: dict[str, Any] = {
        "Origin": "boothkey-tests",
        "Label": "boothkey-tests",
        "Suite": suite,
        "Codename": codename,
        "Date": date,
        "Architectures": "amd64",
        "Components": "main",
        "Description": "test archive",
    }
    if by_hash:
        release_fields["Acquire-By-Hash"] = "yes"
    release_fields.update(extra_release_fields or {})
    lines = [f"{key}: {value}" for key, value in release_fields.items()]
    lines.append("SHA256:")
    for rel in ("main/binary-amd64/Packages", "main/binary-amd64/Packages.xz"):
        data = (dists / rel).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {rel}")
    release = dists / "Release"
    release.write_text("\n".join(lines) + "\n")
    if sign_with is not None:
        sign_release(release, sign_with)
    keyring = sign_with.keyring if sign_with else None
    return Archive(root, suite, codename, keyring, debs)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpServer:
    """Serves `root` on 127.0.0.1 at a free port until `close()`; `url` ends without '/'."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url_for(self, path: Path) -> str:
        """URL of `path`, which must lie under `root`."""
        return f"{self.url}/{path.relative_to(self.root).as_posix()}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def standard_universe(directory: Path) -> list[FakeDeb]:
    """A small, consistent package universe shaped like Debian's.

    Essential: base-files, libc6 (via Pre-Depends), bash, coreutils, dpkg.
    Roots a recipe may name: booth, python3, busybox-static, dmsetup, systemd-boot-efi,
    linux-image-amd64 (-> linux-image-6.1.0-99-amd64).
    """
    d = directory
    return [
        make_deb(
            d,
            "base-files",
            "12.4",
            essential=True,
            priority="required",
            files={"/etc/debian_version": b"12.4\n"},
        ),
        make_deb(d, "libc6", "2.36-9", priority="required", depends="libgcc-s1"),
        make_deb(d, "libgcc-s1", "12.2.0-14", depends="gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)"),
        make_deb(d, "gcc-12-base", "12.2.0-14", priority="required"),
        make_deb(
            d,
            "bash",
            "5.2.15-2",
            essential=True,
            priority="required",
            pre_depends="libc6 (>= 2.36), libtinfo6 (>= 6)",
            depends="base-files (>= 2.1.12)",
        ),
        make_deb(d, "libtinfo6", "6.4-4", pre_depends="libc6 (>= 2.34)"),
        make_deb(
            d,
            "coreutils",
            "9.1-1",
            essential=True,
            priority="required",
            pre_depends="libc6 (>= 2.34)",
        ),
        make_deb(
            d,
            "dpkg",
            "1.21.22",
            essential=True,
            priority="required",
            pre_depends="libc6 (>= 2.34), tar (>= 1.28)",
        ),
        make_deb(
            d,
            "tar",
            "1.34+dfsg-1.2",
            essential=True,
            priority="required",
            pre_depends="libc6 (>= 2.34)",
        ),
        make_deb(
            d,
            "python3",
            "3.11.2-1+b1",
            depends="python3-minimal (= 3.11.2-1+b1), libpython3-stdlib",
        ),
        make_deb(
            d, "python3-minimal", "3.11.2-1+b1", pre_depends="python3.11-minimal (>= 3.11.2-1~)"
        ),
        make_deb(d, "python3.11-minimal", "3.11.2-6", pre_depends="libc6 (>= 2.36)"),
        make_deb(
            d, "libpython3-stdlib", "3.11.2-1+b1", depends="libpython3.11-stdlib (>= 3.11.2-1~)"
        ),
        make_deb(
            d,
            "libpython3.11-stdlib",
            "3.11.2-6",
            depends="libc6 (>= 2.36), mime-support | media-types",
        ),
        make_deb(d, "media-types", "10.0.0", arch="all"),
        make_deb(
            d,
            "booth",
            "1.0",
            arch="all",
            depends="python3:any (>= 3.11), booth-ui",
            files={"/usr/bin/booth": b"#!/usr/bin/python3\nprint('booth')\n"},
        ),
        make_deb(
            d, "booth-ui-gtk", "1.0", arch="all", provides="booth-ui (= 1.0)", depends="python3"
        ),
        make_deb(d, "busybox-static", "1:1.35.0-4+b3", provides="busybox"),
        make_deb(
            d,
            "libdevmapper1.02.1",
            "2:1.02.185-2",
            depends="libc6 (>= 2.34), dmsetup (>= 2:1.02.185-2~)",
        ),
        make_deb(
            d,
            "dmsetup",
            "2:1.02.185-2",
            depends="libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.136)",
        ),
        make_deb(d, "systemd-boot-efi", "252.30-1~deb12u2"),
        make_deb(
            d, "linux-image-amd64", "6.1.99-1", depends="linux-image-6.1.0-99-amd64 (= 6.1.99-1)"
        ),
        make_deb(
            d,
            "linux-image-6.1.0-99-amd64",
            "6.1.99-1",
            pre_depends="debconf | debconf-2.0",
            depends="kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
        ),
        make_deb(
            d,
            "debconf",
            "1.5.82",
            arch="all",
            pre_depends="perl-base (>= 5.20.1-3~)",
            provides="debconf-2.0",
        ),
        make_deb(
            d,
            "perl-base",
            "5.36.0-7",
            essential=True,
            priority="required",
            pre_depends="libc6 (>= 2.35)",
        ),
        make_deb(d, "kmod", "30+20221128-1", depends="libc6 (>= 2.34)"),
        make_deb(d, "linux-base", "4.9", arch="all"),
        make_deb(d, "initramfs-tools", "0.142", arch="all", provides="linux-initramfs-tool"),
        make_deb(
            d, "dracut", "059-4", provides="linux-initramfs-tool", conflicts="initramfs-tools"
        ),
        # The build's own tools (builder/source/toolset.py), which every lock pins.
        *(make_deb(d, name, "1.0-1", depends="libc6 (>= 2.34)") for name in TOOL_PACKAGES),
    ]


@dataclass(frozen=True)
class ServedArchive:
    """An archive and the mirror URL (on 127.0.0.1) that serves it."""

    archive: Archive
    mirror: str


def write_recipe(
    directory: Path,
    keyring: Path,
    *,
    name: str = "testbooth",
    packages: Iterable[str] = ("booth",),
    suite: str = "bookworm",
    updates: Iterable[str] = (),
    variant: str = "essential",
    extra: str = "",
) -> Path:
    """Write `directory/recipes/<name>.yaml` locking against a test archive signed for `keyring`."""
    recipes = directory / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    package_lines = "".join(f"  - {p}\n" for p in packages)
    update_list = list(updates)
    text = (
        f"name: {name}\n"
        'version: "1.0"\n'
        "distribution:\n"
        f"  suite: {suite}\n"
        + (f"  updates: [{', '.join(update_list)}]\n" if update_list else "")
        + f"  keyring: {keyring}\n"
        "kernel: linux-image-amd64\n"
        f"packages:\n{package_lines}"
        f"rootfs:\n  variant: {variant}\n"
        f"{extra}"
    )
    path = recipes / f"{name}.yaml"
    path.write_text(text)
    return path


# Release dates of the update suites: later than FIXED_DATE, security the newest.
UPDATES_EPOCH = 1700050000
UPDATES_DATE = "Wed, 15 Nov 2023 12:06:40 UTC"  # == UPDATES_EPOCH
SECURITY_EPOCH = 1700092800
SECURITY_DATE = "Thu, 16 Nov 2023 00:00:00 UTC"  # == SECURITY_EPOCH
SECURITY_POOL = "updates/main"


@dataclass(frozen=True)
class MultiSuiteArchive:
    """bookworm and bookworm-updates served from `main`, bookworm-security from `security`
    (another root, pool under `pool/updates/main/`), as Debian lays them out.
    `backports` is a NotAutomatic suite beside bookworm on `main`."""

    main: ServedArchive
    updates: Archive
    security: ServedArchive
    backports: Archive


def update_suite_debs(directory: Path) -> tuple[list[FakeDeb], list[FakeDeb]]:
    """(bookworm-updates packages, bookworm-security packages) over `standard_universe`.

    - libc6 has a security update (2.36-9+deb12u4): the newest version wins.
    - booth 1.1 in -updates needs that libc6: a versioned dependency across suites.
    - linux-base 4.9 is also in -security, unchanged: the base suite's copy is kept.
    - media-types 11.0 in -updates is newer, but libpython3.11-stdlib is not touched.
    """
    d = directory
    updates = [
        make_deb(
            d,
            "booth",
            "1.1",
            arch="all",
            depends="python3:any (>= 3.11), booth-ui, libc6 (>= 2.36-9+deb12u4)",
            files={"/usr/bin/booth": b"#!/usr/bin/python3\nprint('booth 1.1')\n"},
        ),
        make_deb(d, "media-types", "11.0", arch="all"),
    ]
    security = [
        make_deb(d, "libc6", "2.36-9+deb12u4", priority="required", depends="libgcc-s1"),
        make_deb(d, "linux-base", "4.9", arch="all"),
    ]
    return updates, security


def make_multi_suite(
    root: Path, universe: Iterable[FakeDeb], debs_dir: Path, key: GpgKey, url_for: Any
) -> MultiSuiteArchive:
    """Write the suites of `MultiSuiteArchive` under `root`; `url_for(path)` gives a URL."""
    updates_debs, security_debs = update_suite_debs(debs_dir)
    main_root = root / "debian"
    base = make_archive(main_root, "bookworm", universe, key, by_hash=True)
    updates = make_archive(
        main_root, "bookworm-updates", updates_debs, key, date=UPDATES_DATE, by_hash=True
    )
    backports_debs = [make_deb(debs_dir, "booth", "9.0~bpo12+1", arch="all")]
    backports = make_archive(
        main_root,
        "bookworm-backports",
        backports_debs,
        key,
        extra_release_fields={"NotAutomatic": "yes", "ButAutomaticUpgrades": "yes"},
    )
    security = make_archive(
        root / "debian-security",
        "bookworm-security",
        security_debs,
        key,
        date=SECURITY_DATE,
        pool_component=SECURITY_POOL,
    )
    return MultiSuiteArchive(
        main=ServedArchive(base, url_for(main_root)),
        updates=updates,
        security=ServedArchive(security, url_for(security.root)),
        backports=backports,
    )
