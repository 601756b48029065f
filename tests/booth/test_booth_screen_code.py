"""End to end (slow): the booth image booted in QEMU shows its fingerprint code on the
screen (tty1); a QEMU screendump of that screen, decoded with zbarimg, gives the payload
of the fingerprint the release publishes, and the release page (published from the
same build, in headless Chromium) says the scanned code matches this release."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from booth_helpers import printed_codes
from page_factory import chromium, trust

from builder.build.documents import LISTED_DOCUMENTS
from builder.build.manifest import read_manifest
from builder.observe.page import publish
from builder.observe.qemu import QemuBoot
from builder.release.sign import sign_manifest
from builder.station.fingerprint import code_payload, software_fingerprint
from builder.trust.keys import generate_key

BOOT_TIMEOUT = 400.0
SCREEN_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def booth_image(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    try:
        built: tuple[Path, Path] = request.getfixturevalue("built_booth_image")
    except pytest.FixtureLookupError:
        pytest.skip("fixture built_booth_image is not defined (tests/conftest.py)")
    return built


def scan_screen(image: Path, directory: Path) -> list[str]:
    """Boot `image`, press Enter on the screen's keyboard, and decode screendumps until
    a QR code is found (or the time is up)."""
    with QemuBoot(image, usb=False, timeout=BOOT_TIMEOUT) as boot:
        boot.expect("BOOTH: press Enter on this screen", timeout=BOOT_TIMEOUT)
        boot.qmp().send_key("ret")  # on tty1: the screen claims the booth
        deadline = time.monotonic() + SCREEN_TIMEOUT
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            screen = directory / f"screen-{attempt}.ppm"
            boot.qmp().screendump(screen)
            found = printed_codes(screen)
            if found:
                return found
            time.sleep(2)
    return []


@pytest.mark.slow
def test_a_scanned_booth_screen_matches_the_published_release(
    booth_image: tuple[Path, Path], tmp_path: Path
) -> None:
    image, manifest_path = booth_image
    release = tmp_path / "release"
    release.mkdir()
    manifest = read_manifest(manifest_path)
    for name in (image.name, manifest_path.name, *(
        manifest.raw[key]["file"] for key in LISTED_DOCUMENTS if key in manifest.raw
    )):  # fmt: skip
        shutil.copy(manifest_path.parent / name, release / name)
    key = generate_key("release")
    sign_manifest(release / manifest_path.name, key)
    published, _ = publish(
        release / manifest_path.name, trust(tmp_path / "keys", key), tmp_path / "site"
    )

    scanned = scan_screen(release / image.name, tmp_path)
    expected = code_payload(software_fingerprint(manifest.verity.root_hash), None)
    assert scanned == [expected]
    assert published.software_fingerprint in scanned[0]

    browser = chromium(tmp_path / "chromium-profile")
    try:
        from selenium.webdriver.common.by import By

        browser.get((tmp_path / "site" / "index.html").as_uri())
        browser.find_element(By.ID, "code-input").send_keys(scanned[0])
        browser.find_element(By.ID, "code-check").click()
        result = browser.find_element(By.ID, "code-result").text
    finally:
        browser.quit()
    assert result.startswith(
        f"MATCHES this release: software fingerprint {published.software_fingerprint}"
    )
