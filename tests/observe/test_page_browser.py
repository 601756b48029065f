"""The release page in a real browser: Debian's chromium, headless, driven through
chromium-driver, loading the page from file://. Its own SHA-256 and BLAKE2b-512 against
hashlib's known answers; a good image, a USB read-back and a station key give VERIFIED;
a tampered image, a short file and a page with a forged signature NOT VERIFIED with the
reason; a booth's fingerprint code that is not this release's "does not match"."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from page_factory import Release, chromium, make_release
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from builder.build.manifest import read_manifest
from builder.observe.page import publish
from builder.station.fingerprint import code_payload, software_fingerprint
from builder.trust.keys import generate_key

VERIFY_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return make_release(
        tmp_path_factory.mktemp("release"), [generate_key("alice"), generate_key("bob")]
    )


@pytest.fixture(scope="module")
def site(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    publish(release.manifest_path, release.keys_dir, out)
    return out / "index.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def _open(browser: Any, page: Path) -> None:
    browser.get(page.as_uri())
    assert browser.execute_script("return typeof boothkey") == "object"


def _check_file(browser: Any, page: Path, image: Path) -> tuple[str, str]:
    """(verdict, the listed checks) after selecting `image` on the page."""
    _open(browser, page)
    browser.find_element(By.ID, "image-input").send_keys(str(image))
    WebDriverWait(browser, VERIFY_TIMEOUT).until(
        lambda b: "VERIFIED" in b.find_element(By.ID, "verify-result").text
    )
    return (
        browser.find_element(By.ID, "verify-result").text,
        browser.find_element(By.ID, "verify-checks").text,
    )


def _check_code(browser: Any, page: Path, text: str) -> str:
    _open(browser, page)
    browser.find_element(By.ID, "code-input").send_keys(text)
    browser.find_element(By.ID, "code-check").click()
    return str(browser.find_element(By.ID, "code-result").text)


def test_the_page_hashes_agree_with_hashlib(browser: Any, site: Path) -> None:
    _open(browser, site)
    script = """
      const [data, pieces] = arguments;
      const bytes = Uint8Array.from(data);
      const results = [];
      for (const piece of pieces) {
        const sha = new Sha256(), blake = new Blake2b512();
        for (let at = 0; at < bytes.length; at += piece) {
          sha.update(bytes.subarray(at, at + piece));
          blake.update(bytes.subarray(at, at + piece));
        }
        const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
        results.push([hex(sha.digest()), hex(blake.digest())]);
      }
      return results;
    """
    pieces = [1, 3, 64, 127, 128, 129, 1 << 20]
    for length in (0, 1, 3, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 255, 256, 257, 5000):
        data = hashlib.shake_256(str(length).encode()).digest(length) if length else b""
        expected = [hashlib.sha256(data).hexdigest(), hashlib.blake2b(data).hexdigest()]
        for piece, got in zip(
            pieces, browser.execute_script(script, list(data), pieces), strict=True
        ):
            assert got == expected, f"{length} bytes in pieces of {piece}"
    # RFC 7693 appendix A and FIPS 180-4's "abc"
    abc = browser.execute_script(script, list(b"abc"), [3])[0]
    assert abc[0] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert abc[1].startswith("ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1")


def test_the_published_image_is_verified(browser: Any, site: Path, release: Release) -> None:
    verdict, checks = _check_file(browser, site, release.built.image)
    assert verdict.startswith("VERIFIED: hello.img is hello 1.0")
    assert "2 of 2 signers' Ed25519 signatures are valid (alice, bob)" in checks
    assert "minisign signature hello.img.alice.minisig by alice matches the file" in checks


def test_a_usb_read_back_with_station_data_is_verified(
    browser: Any, site: Path, release: Release, tmp_path: Path
) -> None:
    manifest = read_manifest(release.manifest_path)
    data = manifest.partition("booth-data")
    dump = tmp_path / "sdb.img"
    image = bytearray(release.built.image.read_bytes())
    image[data.offset : data.offset + 11] = b"BKDATA01xyz"
    dump.write_bytes(bytes(image) + b"\xff" * (3 << 20))  # a larger key's remaining bytes
    verdict, checks = _check_file(browser, site, dump)
    assert verdict.startswith("VERIFIED"), checks
    assert f"its first {manifest.image.size}, the image's size, are checked" in checks
    assert "booth-data partition (station data" in checks


def test_a_tampered_image_is_not_verified(
    browser: Any, site: Path, release: Release, tmp_path: Path
) -> None:
    manifest = read_manifest(release.manifest_path)
    root = manifest.partition("root")
    tampered = tmp_path / "hello.img"
    shutil.copy(release.built.image, tampered)
    with open(tampered, "r+b") as stream:
        stream.seek(root.offset + 12345)
        byte = stream.read(1)
        stream.seek(root.offset + 12345)
        stream.write(bytes([byte[0] ^ 0x20]))
    verdict, checks = _check_file(browser, site, tampered)
    assert verdict.startswith("NOT VERIFIED: sha256 ")
    assert "the bytes differ" in verdict
    assert "minisign signature hello.img.alice.minisig by alice does not match the file" in checks


def test_a_short_file_is_not_verified(
    browser: Any, site: Path, release: Release, tmp_path: Path
) -> None:
    short = tmp_path / "short.img"
    short.write_bytes(release.built.image.read_bytes()[:-512])
    verdict, _ = _check_file(browser, site, short)
    size = read_manifest(release.manifest_path).image.size
    assert verdict == f"NOT VERIFIED: the file holds {size - 512} bytes, the image {size}"


def test_a_forged_signature_on_the_page_is_not_verified(
    browser: Any, site: Path, release: Release, tmp_path: Path
) -> None:
    # Someone edits the page's data: the page itself must still check every signature.
    page = site.read_text()
    data = re.search(
        r'(<script type="application/json" id="release-data">)(.*?)(</script>)', page, re.S
    )
    assert data is not None
    raw = json.loads(data.group(2))
    signature = bytearray(base64.b64decode(raw["envelope"]["signatures"][0]["sig"]))
    signature[0] ^= 1
    raw["envelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()
    forged = tmp_path / "index.html"
    forged.write_text(page.replace(data.group(2), json.dumps(raw).replace("<", "\\u003c")))
    verdict, _ = _check_file(browser, forged, release.built.image)
    assert verdict.startswith("NOT VERIFIED: 1 valid signature(s), 2 required")
    assert "alice: no valid signature of the statement" in verdict


def test_a_booth_code_of_this_release_matches(browser: Any, site: Path, release: Release) -> None:
    ours = software_fingerprint(read_manifest(release.manifest_path).verity.root_hash)
    result = _check_code(browser, site, code_payload(ours, "ABCD-EFGH-IJKL-MNOP"))
    assert result.startswith(f"MATCHES this release: software fingerprint {ours} is hello 1.0.")
    assert "election fingerprint is ABCD-EFGH-IJKL-MNOP" in result
    typed = ours.lower().replace("-", " ")
    assert _check_code(browser, site, typed).startswith("MATCHES this release")


def test_a_wrong_fingerprint_does_not_match(browser: Any, site: Path, release: Release) -> None:
    ours = software_fingerprint(read_manifest(release.manifest_path).verity.root_hash)
    other = "AAAA" + ours[4:] if not ours.startswith("AAAA") else "BBBB" + ours[4:]
    result = _check_code(browser, site, code_payload(other, None))
    assert result.startswith(
        f"does not match this release: the booth shows software fingerprint {other}"
    )
    assert _check_code(browser, site, other).startswith("does not match this release")
    assert _check_code(browser, site, "BOOTHKEY/2 SOFTWARE X").startswith(
        "Not a code this page can read"
    )
    assert _check_code(browser, site, "hello").startswith("Not a fingerprint")


def test_the_package_list_is_searchable(browser: Any, site: Path) -> None:
    _open(browser, site)
    rows = browser.find_elements(By.CSS_SELECTOR, "#package-table tbody tr")
    assert len(rows) > 3
    browser.find_element(By.ID, "package-search").send_keys("GPL-2.0")
    shown = [row.text for row in rows if row.is_displayed()]
    assert shown and all("GPL-2.0" in text for text in shown)
    assert len(shown) < len(rows)
    assert browser.find_element(By.ID, "package-count").text == f"{len(shown)} of {len(rows)}"


def test_the_page_makes_no_request(browser: Any, site: Path) -> None:
    _open(browser, site)
    entries = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert entries == 0
    assert browser.get_log("browser") == []  # no CSP violation, no script error
