"""The network interface: http via requests, file:// and plain directories."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from archive_factory import HttpServer, ServedArchive

from builder.core.errors import FetchError
from builder.source.http import RequestsFetcher, describe_url, local_mirror_path, mirror_url


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_fetch_bytes_over_http(served_archive: ServedArchive) -> None:
    url = mirror_url(served_archive.mirror, "dists/bookworm/Release")
    data = RequestsFetcher().fetch_bytes(url, 1 << 20)
    assert data == served_archive.archive.release.read_bytes()


def test_fetch_bytes_from_local_directory_and_file_url(served_archive: ServedArchive) -> None:
    root = served_archive.archive.root
    expected = served_archive.archive.release.read_bytes()
    fetcher = RequestsFetcher()
    assert fetcher.fetch_bytes(mirror_url(str(root), "dists/bookworm/Release"), 1 << 20) == expected
    assert fetcher.fetch_bytes(mirror_url(root.as_uri(), "dists/bookworm/Release"), 1 << 20) == (
        expected
    )


def test_fetch_bytes_refuses_oversize(served_archive: ServedArchive) -> None:
    url = mirror_url(served_archive.mirror, "dists/bookworm/Release")
    with pytest.raises(FetchError, match="more than the 10 bytes"):
        RequestsFetcher().fetch_bytes(url, 10)


def test_missing_file_is_a_fetch_error_naming_the_url(served_archive: ServedArchive) -> None:
    url = mirror_url(served_archive.mirror, "dists/nosuch/InRelease")
    with pytest.raises(FetchError, match=r"dists/nosuch/InRelease: HTTP 404"):
        RequestsFetcher(retries=3).fetch_bytes(url, 1 << 20)
    local = mirror_url(str(served_archive.archive.root), "dists/nosuch/InRelease")
    with pytest.raises(FetchError, match="cannot read"):
        RequestsFetcher().fetch_bytes(local, 1 << 20)


def test_unreachable_mirror_fails_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/dists/bookworm/InRelease"
    with pytest.raises(FetchError, match=r"unreachable after 2 attempt\(s\)") as info:
        RequestsFetcher(timeout=2, retries=1, backoff=0).fetch_bytes(url, 1 << 20)
    assert url in info.value.message


def test_fetch_to_streams_and_checks_size(served_archive: ServedArchive, tmp_path: Path) -> None:
    deb = served_archive.archive.debs[0]
    url = mirror_url(served_archive.mirror, deb.pool_path())
    dest = tmp_path / "x.deb"
    RequestsFetcher().fetch_to(url, dest, deb.size)
    assert dest.read_bytes() == deb.path.read_bytes()
    with pytest.raises(FetchError, match=f"got {deb.size} bytes, expected {deb.size + 1}"):
        RequestsFetcher().fetch_to(url, dest, deb.size + 1)
    assert not dest.exists()
    with pytest.raises(FetchError, match="more than the"):
        RequestsFetcher().fetch_to(url, dest, deb.size - 1)
    assert not dest.exists()


def test_mirror_url_and_helpers(http_server: HttpServer) -> None:
    assert mirror_url("http://h.example.org/debian/", "dists/a b") == (
        "http://h.example.org/debian/dists/a%20b"
    )
    assert mirror_url("/srv/mirror", "pool/x.deb") == "file:///srv/mirror/pool/x.deb"
    with pytest.raises(ValueError):
        mirror_url("/srv/mirror", "../etc/passwd")
    assert describe_url("http://user:pw@h.example.org:8080/x") == "http://h.example.org:8080/x"
    assert local_mirror_path("file:///srv/m") == Path("/srv/m")
    assert local_mirror_path("/srv/m") == Path("/srv/m")
    assert local_mirror_path(http_server.url) is None
