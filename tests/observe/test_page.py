"""`build.py publish`: the release page's content, its escaping, its determinism, and the
releases it refuses to present (the browser side is in test_page_browser.py)."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import markupsafe
import pytest
from page_factory import Release, make_release, trust

from builder.cli import main
from builder.core.errors import InputError, VerificationFailed
from builder.observe.page import publish
from builder.observe.published import read_release
from builder.station.fingerprint import software_fingerprint
from builder.trust.keys import SigningKey, generate_key

EVIL = '<script>alert("x")</script> & Co'


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {name: generate_key(name) for name in ("alice", "bob", "olga", "oscar", "mallory")}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, SigningKey]) -> Release:
    return make_release(
        tmp_path_factory.mktemp("page"),
        [keys["alice"], keys["bob"]],
        supplier=EVIL,
        observers={keys["olga"]: "same", keys["oscar"]: "different"},
    )


def _copy(release: Release, directory: Path) -> Release:
    shutil.copytree(release.built.directory, directory / "release")
    shutil.copytree(release.keys_dir, directory / "keys")
    built = release.built
    moved = type(built)(
        directory / "release",
        directory / "release" / built.image.name,
        directory / "release" / built.manifest_path.name,
        built.manifest,
        built.uki,
        built.root,
    )
    return Release(moved, directory / "keys")


def test_the_page_shows_the_release(
    release: Release, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    observer_keys = trust(tmp_path / "observer-keys", keys["olga"])
    _, written = publish(release.manifest_path, release.keys_dir, tmp_path / "site", observer_keys)
    page = (tmp_path / "site" / "index.html").read_text()
    manifest = release.built.manifest
    assert software_fingerprint(manifest["verity"]["root_hash"]) in page
    assert "<svg" in page  # the QR code, inline
    for text in (manifest["image"]["sha256"], keys["alice"].public.keyid, keys["bob"].public.keyid):
        assert text in page
    assert "rebuilt the same image" in page and "olga" in page
    # oscar's key was not given: his statement is listed, not counted
    assert "no valid signature by a trusted observer key" in page
    for package in manifest["packages"]:
        assert f"<td>{package['name']}</td><td>{html.escape(package['version'])}</td>" in page
    assert "GPL-2.0-or-later" in page  # a licence from the SBOM
    assert "minisign -Vm hello.img -x hello.img.alice.minisig -p keys/alice.minisign.pub" in page
    assert "sha256sum -c SHA256SUMS" in page and "urn:boothkey:build-type" in page
    names = {path.relative_to(tmp_path / "site").as_posix() for path in written}
    assert {"index.html", "files/hello.manifest.json", "files/hello.dsse.json",
            "files/hello.spdx.json", "files/hello.spdx3.json", "files/hello.cdx.json",
            "files/hello.provenance.json", "files/SHA256SUMS",
            "files/keys/alice.minisign.pub", "files/observer-keys/olga.pub.json",
            "files/hello.img.bob.minisig"} <= names  # fmt: skip
    assert not any(name.endswith(".img") for name in names)


def test_every_text_from_the_release_is_escaped(release: Release, tmp_path: Path) -> None:
    publish(release.manifest_path, release.keys_dir, tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert EVIL not in page
    assert str(markupsafe.escape(EVIL)) in page  # shown, as text
    data = re.search(
        r'<script type="application/json" id="release-data">(.*?)</script>', page, re.S
    )
    assert data is not None and "<" not in data.group(1)
    assert json.loads(data.group(1))["name"] == "hello"


def test_the_page_loads_nothing_and_sends_nothing(release: Release, tmp_path: Path) -> None:
    publish(release.manifest_path, release.keys_dir, tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    policy = html.unescape(csp.group(1))
    assert policy.startswith("default-src 'none'; script-src 'sha256-")
    assert "unsafe-inline" not in policy and "connect-src" not in policy
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"<(link|iframe|object|embed|img)\b", page)
    assert "@import" not in page and "url(" not in page


def test_the_same_release_gives_the_same_bytes(release: Release, tmp_path: Path) -> None:
    sites = []
    for name in ("one", "two"):
        publish(release.manifest_path, release.keys_dir, tmp_path / name)
        sites.append({p.relative_to(tmp_path / name): p.read_bytes()
                      for p in sorted((tmp_path / name).rglob("*")) if p.is_file()})  # fmt: skip
    assert sites[0] == sites[1]


def test_publish_command(
    release: Release, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["publish", str(release.manifest_path), "--keys", str(release.keys_dir),
                 "--out", str(tmp_path / "site"), "--threshold", "1"])  # fmt: skip
    assert code == 0
    assert "2 signer(s)" in capsys.readouterr().out
    assert '"threshold": 1' in (tmp_path / "site" / "index.html").read_text()
    assert main(["publish", str(release.manifest_path), "--keys", str(release.keys_dir),
                 "--out", str(tmp_path / "site"), "--threshold", "3"]) == 2  # fmt: skip


def test_a_signature_by_a_key_not_given_is_refused(
    release: Release, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    only_alice = trust(tmp_path / "keys", keys["alice"])
    with pytest.raises(InputError, match=r"signatures\[1\].*no such key"):
        read_release(release.manifest_path, only_alice)


def test_an_altered_release_is_refused(release: Release, tmp_path: Path) -> None:
    copy = _copy(release, tmp_path)
    envelope = copy.built.directory / "hello.dsse.json"
    raw = json.loads(envelope.read_bytes())
    raw["signatures"][0]["sig"] = raw["signatures"][1]["sig"]
    envelope.write_text(json.dumps(raw))
    with pytest.raises(VerificationFailed, match="signature by alice is not valid"):
        read_release(copy.manifest_path, copy.keys_dir)


@pytest.mark.parametrize(
    ("victim", "expected"),
    [
        ("hello.spdx.json", "sha256 differs from the manifest's sbom"),
        ("hello.spdx3.json", "sha256 differs from the manifest's sbom_spdx3"),
        ("hello.cdx.json", "sha256 differs from the manifest's sbom_cyclonedx"),
        ("hello.provenance.json", "sha256 differs from the manifest's provenance"),
        ("hello.img", "sha256 differs from the manifest"),
    ],
)
def test_a_changed_file_is_refused(
    release: Release, tmp_path: Path, victim: str, expected: str
) -> None:
    copy = _copy(release, tmp_path)
    path = copy.built.directory / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match=re.escape(expected)):
        read_release(copy.manifest_path, copy.keys_dir)


def test_a_minisign_signature_of_another_file_is_refused(release: Release, tmp_path: Path) -> None:
    copy = _copy(release, tmp_path)
    directory = copy.built.directory
    shutil.copy(directory / "hello.img.bob.minisig", directory / "hello.img.alice.minisig")
    with pytest.raises(VerificationFailed, match=r"hello\.img\.alice\.minisig"):
        read_release(copy.manifest_path, copy.keys_dir)
