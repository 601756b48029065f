"""The signed index: gpgv verification, Release parsing, Packages digests, mirror fallback."""

from __future__ import annotations

import lzma
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from archive_factory import (
    FIXED_EPOCH,
    SECURITY_EPOCH,
    FakeDeb,
    GpgKey,
    HttpServer,
    MultiSuiteArchive,
    ServedArchive,
    make_archive,
    sign_release,
)

from builder.core.errors import FetchError, InputError, VerificationFailed
from builder.source.archive import ArchiveIndex, fetch_release, load_index, verify_inrelease
from builder.source.http import RequestsFetcher


def _load(served: ServedArchive, keyring: Path, *mirrors: str) -> ArchiveIndex:
    return load_index(
        RequestsFetcher(timeout=5, retries=0),
        list(mirrors) or [served.mirror],
        "bookworm",
        "amd64",
        ["main"],
        keyring,
    )


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/debian"


def test_index_loads_verified_packages(served_archive: ServedArchive, gpg_key: GpgKey) -> None:
    index = load_index(
        RequestsFetcher(), [served_archive.mirror], "bookworm", "amd64", ["main"], gpg_key.keyring
    )
    release = index.release
    assert release.signing_key == gpg_key.fingerprint
    assert release.codename == "bookworm"
    assert release.date_epoch == FIXED_EPOCH
    assert len(release.inrelease_sha256) == 64
    by_name = {p.name: p for p in index.packages}
    assert set(by_name) == {d.name for d in served_archive.archive.debs}
    booth = by_name["booth"]
    deb = next(d for d in served_archive.archive.debs if d.name == "booth")
    assert (booth.version, booth.architecture, booth.size, booth.sha256) == (
        "1.0",
        "all",
        deb.size,
        deb.sha256,
    )
    assert booth.depends == "python3:any (>= 3.11), booth-ui"
    assert by_name["bash"].essential and by_name["bash"].priority == "required"
    assert by_name["busybox-static"].version == "1:1.35.0-4+b3"


def test_the_signed_text_is_what_gets_parsed(gpg_key: GpgKey, tmp_path: Path) -> None:
    release = tmp_path / "Release"
    release.write_text("Suite: bookworm\nDate: Tue, 14 Nov 2023 22:13:20 UTC\nSHA256:\n")
    sign_release(release, gpg_key)
    signed = (tmp_path / "InRelease").read_bytes()
    # Text outside the signed block must never be believed.
    smuggled = b"Suite: evil\n" + signed + b"\nSuite: evil\n"
    text, fingerprint = verify_inrelease(smuggled, gpg_key.keyring, "InRelease")
    assert text == release.read_bytes()
    assert fingerprint == gpg_key.fingerprint


def test_bad_signature_is_refused(archive_copy: ServedArchive, gpg_key: GpgKey) -> None:
    inrelease = archive_copy.archive.inrelease
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Label: boothkey-tests", b"Label: evil"))
    with pytest.raises(
        VerificationFailed, match=r"dists/bookworm/InRelease: BAD signature"
    ) as info:
        _load(archive_copy, gpg_key.keyring)
    assert str(gpg_key.keyring) in info.value.message


def test_unsigned_inrelease_is_refused(archive_copy: ServedArchive, gpg_key: GpgKey) -> None:
    archive_copy.archive.inrelease.write_bytes(archive_copy.archive.release.read_bytes())
    with pytest.raises(VerificationFailed, match="InRelease: not signed"):
        _load(archive_copy, gpg_key.keyring)


def test_signature_by_an_untrusted_key_is_refused(
    archive_copy: ServedArchive, gpg_key: GpgKey, other_gpg_key: GpgKey
) -> None:
    sign_release(archive_copy.archive.release, other_gpg_key)
    with pytest.raises(VerificationFailed, match="none of them in the trusted keyring") as info:
        _load(archive_copy, gpg_key.keyring)
    assert other_gpg_key.fingerprint[-16:] in info.value.message


def test_one_trusted_signature_among_several_suffices(
    archive_copy: ServedArchive, gpg_key: GpgKey, other_gpg_key: GpgKey, tmp_path: Path
) -> None:
    # Debian signs InRelease with several keys; a keyring holding only one of them is enough.
    home = tmp_path / "both"
    home.mkdir(mode=0o700)
    for key in (other_gpg_key, gpg_key):
        secret = subprocess.run(
            [
                "gpg",
                "--homedir",
                str(key.home),
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--export-secret-keys",
                key.fingerprint,
            ],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(
            ["gpg", "--homedir", str(home), "--batch", "--import"],
            input=secret,
            check=True,
            capture_output=True,
        )
    release = archive_copy.archive.release
    try:
        subprocess.run(
            [
                "gpg",
                "--homedir",
                str(home),
                "--batch",
                "--yes",
                "--local-user",
                other_gpg_key.fingerprint,
                "--local-user",
                gpg_key.fingerprint,
                "--clearsign",
                "-o",
                str(archive_copy.archive.inrelease),
                str(release),
            ],
            check=True,
            capture_output=True,
        )
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    assert archive_copy.archive.inrelease.read_bytes().count(b"BEGIN PGP SIGNATURE") == 1
    index = _load(archive_copy, gpg_key.keyring)
    assert index.release.signing_key == gpg_key.fingerprint
    assert _load(archive_copy, other_gpg_key.keyring).release.signing_key == (
        other_gpg_key.fingerprint
    )


def test_packages_digest_mismatch_prints_expected_and_got(
    archive_copy: ServedArchive, gpg_key: GpgKey
) -> None:
    packages_xz = archive_copy.archive.packages_xz
    data = bytearray(packages_xz.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    packages_xz.write_bytes(bytes(data))
    with pytest.raises(FetchError, match="does not match the signed Release") as info:
        _load(archive_copy, gpg_key.keyring)
    message = info.value.message
    assert "main/binary-amd64/Packages.xz" in message
    assert "expected: size" in message and "got:      size" in message


def test_oversized_packages_file_is_refused(archive_copy: ServedArchive, gpg_key: GpgKey) -> None:
    packages_xz = archive_copy.archive.packages_xz
    original = lzma.decompress(packages_xz.read_bytes())
    packages_xz.write_bytes(lzma.compress(original + b"\nPackage: evil\n"))
    with pytest.raises(FetchError, match=r"Packages\.xz: \d+ bytes, more than the \d+ bytes"):
        _load(archive_copy, gpg_key.keyring)


def test_unreachable_mirror_names_the_url(served_archive: ServedArchive, gpg_key: GpgKey) -> None:
    url = _closed_port_url()
    with pytest.raises(FetchError, match="unreachable") as info:
        _load(served_archive, gpg_key.keyring, url)
    assert f"{url}/dists/bookworm/InRelease" in info.value.message


def test_next_mirror_is_tried_after_a_failing_one(
    served_archive: ServedArchive, gpg_key: GpgKey, tmp_path: Path
) -> None:
    index = load_index(
        RequestsFetcher(timeout=5, retries=0),
        [_closed_port_url(), str(tmp_path / "empty"), served_archive.mirror],
        "bookworm",
        "amd64",
        ["main"],
        gpg_key.keyring,
    )
    assert index.mirror == served_archive.mirror


def test_all_mirrors_failing_lists_each(gpg_key: GpgKey, tmp_path: Path) -> None:
    first, second = _closed_port_url(), str(tmp_path / "nothing")
    with pytest.raises(FetchError, match="no mirror served the archive index") as info:
        load_index(
            RequestsFetcher(retries=0),
            [first, second],
            "bookworm",
            "amd64",
            ["main"],
            gpg_key.keyring,
        )
    assert first in info.value.message and "nothing/dists/bookworm/InRelease" in info.value.message


def test_local_directory_mirror(served_archive: ServedArchive, gpg_key: GpgKey) -> None:
    release = fetch_release(
        RequestsFetcher(), str(served_archive.archive.root), "bookworm", gpg_key.keyring
    )
    assert release.signing_key == gpg_key.fingerprint


def test_suite_mismatch_is_refused(archive_copy: ServedArchive, gpg_key: GpgKey) -> None:
    dists = archive_copy.archive.root / "dists"
    (dists / "bookworm").rename(dists / "trixie")
    (dists / "bookworm").symlink_to("trixie")
    release = dists / "trixie" / "Release"
    release.write_text(
        release.read_text()
        .replace("Suite: bookworm", "Suite: testing")
        .replace("Codename: bookworm", "Codename: trixie")
    )
    sign_release(release, gpg_key)
    with pytest.raises(VerificationFailed, match=r"is for suite 'testing'.*not 'bookworm'"):
        _load(archive_copy, gpg_key.keyring)


def test_missing_component_is_explained(served_archive: ServedArchive, gpg_key: GpgKey) -> None:
    with pytest.raises(FetchError, match=r"lists no contrib/binary-amd64/Packages\.xz"):
        load_index(
            RequestsFetcher(),
            [served_archive.mirror],
            "bookworm",
            "amd64",
            ["main", "contrib"],
            gpg_key.keyring,
        )


def test_missing_keyring_is_an_input_error(served_archive: ServedArchive, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="keyring not found"):
        _load(served_archive, tmp_path / "nope.gpg")


def test_ascii_armored_keyring_is_accepted(
    served_archive: ServedArchive, gpg_key: GpgKey, tmp_path: Path
) -> None:
    armored = subprocess.run(
        ["gpg", "--homedir", str(gpg_key.home), "--armor", "--export", gpg_key.fingerprint],
        check=True,
        capture_output=True,
    ).stdout
    keyring = tmp_path / "archive.asc"
    keyring.write_bytes(armored.replace(b"\n", b"\r\n"))
    index = _load(served_archive, keyring)
    assert index.release.signing_key == gpg_key.fingerprint
    keyring.write_bytes(armored.replace(b"\n\n", b"\n\n!!", 1))
    with pytest.raises(InputError, match="damaged ASCII-armored key block"):
        _load(served_archive, keyring)


def test_by_hash_index_survives_a_mirror_in_mid_sync(
    http_server: HttpServer, universe: list[FakeDeb], gpg_key: GpgKey
) -> None:
    archive = make_archive(
        http_server.root / "by-hash-archive", "bookworm", universe, gpg_key, by_hash=True
    )
    served = ServedArchive(archive, http_server.url_for(archive.root))
    plain = archive.packages_xz
    signed_bytes = plain.read_bytes()
    # The plain name already holds other bytes (the next sync); by-hash still has ours.
    damaged = bytearray(signed_bytes)
    damaged[-20] ^= 0xFF
    plain.write_bytes(bytes(damaged))
    assert len(_load(served, gpg_key.keyring).packages) == len(universe)
    # Without the by-hash copy, the plain file is tried and its mismatch reported.
    store = plain.parent / "by-hash" / "SHA256"
    shutil.rmtree(store)
    with pytest.raises(FetchError, match=r"binary-amd64/Packages\.xz: does not match the signed"):
        _load(served, gpg_key.keyring)
    plain.write_bytes(signed_bytes)
    assert len(_load(served, gpg_key.keyring).packages) == len(universe)


def test_update_suites_are_verified_and_their_packages_marked(
    multi_suite: MultiSuiteArchive, gpg_key: GpgKey
) -> None:
    fetcher = RequestsFetcher(timeout=5, retries=0)
    security = load_index(
        fetcher,
        [multi_suite.security.mirror],
        "bookworm-security",
        "amd64",
        ["main"],
        gpg_key.keyring,
    )
    assert security.release.date_epoch == SECURITY_EPOCH
    assert not security.release.not_automatic
    libc6 = next(p for p in security.packages if p.name == "libc6")
    assert (libc6.suite, libc6.filename) == (
        "bookworm-security",
        "pool/updates/main/libc/libc6/libc6_2.36-9+deb12u4_amd64.deb",
    )
    base = load_index(
        fetcher, [multi_suite.main.mirror], "bookworm", "amd64", ["main"], gpg_key.keyring
    )
    assert {p.suite for p in base.packages} == {"bookworm"}
    backports = fetch_release(
        fetcher, multi_suite.main.mirror, "bookworm-backports", gpg_key.keyring
    )
    assert backports.not_automatic


def test_no_mirror_for_a_suite_names_it(gpg_key: GpgKey) -> None:
    with pytest.raises(InputError, match=r"no mirror for suite bookworm-security: .*--mirror "):
        load_index(RequestsFetcher(), [], "bookworm-security", "amd64", ["main"], gpg_key.keyring)
