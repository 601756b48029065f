"""Small signed releases for the release page's tests, and headless Chromium to load it.

`make_release` builds a synthetic image (`image_factory.make_image`) whose manifest
lists the SBOM fixture's packages, writes the real SBOM and provenance for it
(`build.documents`), signs it with the given keys and can add observers' statements;
`chromium` starts Debian's chromium through chromium-driver with a profile of its own
under the test's temporary directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_factory import BuiltImage, make_image
from sbom_factory import demo_manifest, make_locked_debs

from builder.build.documents import write_sbom_and_provenance
from builder.build.manifest import package_entry, read_manifest
from builder.core.canonical import canonical_json
from builder.observe.attest import rebuild_statement, sign_rebuild_statement, statement_file_name
from builder.release.sign import sign_manifest
from builder.trust.keys import SigningKey, public_key_bytes
from builder.trust.minisign import public_key_file

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,2000",
)


@dataclass(frozen=True)
class Release:
    built: BuiltImage
    keys_dir: Path

    @property
    def manifest_path(self) -> Path:
        return self.built.manifest_path


def trust(directory: Path, *keys: SigningKey) -> Path:
    """A key directory holding the keys' NAME.pub.json and NAME.minisign.pub."""
    directory.mkdir(parents=True, exist_ok=True)
    for key in keys:
        (directory / f"{key.name}.pub.json").write_bytes(public_key_bytes(key.public))
        (directory / f"{key.name}.minisign.pub").write_bytes(public_key_file(key.public))
    return directory


def make_release(
    directory: Path,
    signers: list[SigningKey],
    *,
    supplier: str = "Example Election Authority",
    observers: dict[SigningKey, str] | None = None,
) -> Release:
    """A signed release in `directory`/release with SBOM, provenance and statements."""
    built = make_image(directory / "release", data_mib=1)
    locked = make_locked_debs(directory / "debs")
    manifest: dict[str, Any] = dict(built.manifest)
    demo = demo_manifest(locked.lock)
    for field in ("boothkey", "code_sha256", "recipe", "overlays_sha256", "lock_sha256", "steps"):
        manifest[field] = demo[field]
    manifest["packages"] = [package_entry(p) for p in locked.lock.packages]
    manifest["tools"] = demo["tools"]
    manifest["supplier"] = supplier
    write_sbom_and_provenance(manifest, locked.lock, built.directory, locked.deb_path)
    built.manifest_path.write_bytes(canonical_json(manifest) + b"\n")
    built.manifest = manifest
    for key in signers:
        sign_manifest(built.manifest_path, key)
    published = read_manifest(built.manifest_path)
    for observer, result in (observers or {}).items():
        statement = rebuild_statement(published, None, result)
        envelope = sign_rebuild_statement(statement, observer)
        name = statement_file_name(published.name, observer.public)
        (built.directory / name).write_bytes(envelope.to_bytes())
    return Release(built, trust(directory / "keys", *signers))


def chromium(profile: Path) -> Any:
    """A headless Chromium (selenium WebDriver) with a fresh profile in `profile`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
