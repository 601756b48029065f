"""The one place boothkey reads from the network (or from a mirror on disk).

A *mirror* is a string: an `http://`/`https://`/`file://` URL, or a plain local
directory holding a Debian archive layout (`dists/`, `pool/`). `mirror_url`
turns a mirror plus a path inside the archive into a URL every `Fetcher`
understands. Fetchers only move bytes: callers check digests (against the
signed index or the lock) and rename verified files into place.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import requests

from builder.core.errors import FetchError

CHUNK_SIZE = 1024 * 1024
# HTTP statuses worth another try: the server or a proxy is overloaded, not "no such file".
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class Fetcher(Protocol):
    """Reads URLs. Every failure is a `FetchError` whose message names the URL."""

    def fetch_bytes(self, url: str, max_size: int) -> bytes:
        """The whole body of `url`; `FetchError` if it is missing or longer than `max_size`."""
        ...

    def fetch_to(self, url: str, dest: Path, expected_size: int | None) -> None:
        """Stream `url` into the file `dest` (created or truncated) in bounded memory.

        With `expected_size`, a body of any other length is a `FetchError`, and reading
        stops as soon as it is exceeded. On any failure `dest` is removed. `dest` is
        written in place: pass a temporary name and rename it after verifying it.
        """
        ...


def mirror_url(mirror: str, path: str) -> str:
    """URL of `path` (relative, e.g. `dists/bookworm/InRelease`) inside `mirror`.

    A mirror without a URL scheme is a local directory and becomes a `file://` URL.
    """
    if path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"archive path {path!r} must be relative and must not contain '..'")
    base = mirror if "://" in mirror else Path(mirror).absolute().as_uri()
    return base.rstrip("/") + "/" + urllib.parse.quote(path)


def describe_url(url: str) -> str:
    """`url` as shown to users: without any user name or password it may carry."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class RequestsFetcher:
    """The real fetcher: `requests` for http(s) with bounded retries, plain reads for file://.

    `timeout` is in seconds per connect/read. `retries` is how many extra attempts a
    connection error, timeout or 408/429/5xx answer gets before the request fails;
    any other non-200 answer (404, 403, ...) fails at once. One instance may be
    shared by several threads.
    """

    def __init__(self, timeout: float = 30.0, retries: int = 2, backoff: float = 0.5) -> None:
        if retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError("timeout must be positive, retries and backoff non-negative")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        # One Session per thread: callers may share this fetcher between worker threads.
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def fetch_bytes(self, url: str, max_size: int) -> bytes:
        return b"".join(self._limited(url, max_size, exact=False))

    def fetch_to(self, url: str, dest: Path, expected_size: int | None) -> None:
        try:
            with open(dest, "wb") as stream:
                for chunk in self._limited(url, expected_size, exact=expected_size is not None):
                    stream.write(chunk)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def _limited(self, url: str, limit: int | None, exact: bool) -> Iterator[bytes]:
        shown = describe_url(url)
        size = 0
        with self._open(url) as (declared, chunks):
            if limit is not None and declared is not None and declared > limit:
                raise FetchError(f"{shown}: {declared} bytes, more than the {limit} bytes expected")
            for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise FetchError(f"{shown}: more than the {limit} bytes expected")
                yield chunk
        if exact and size != limit:
            raise FetchError(f"{shown}: got {size} bytes, expected {limit}")

    @contextlib.contextmanager
    def _open(self, url: str) -> Iterator[tuple[int | None, Iterator[bytes]]]:
        """(declared length or None, chunk iterator) for `url`, after any retries."""
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme == "file":
            path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
            try:
                stream = open(path, "rb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise FetchError(f"{url}: cannot read: {exc.strerror}") from exc
            with stream:
                yield None, iter(lambda: stream.read(CHUNK_SIZE), b"")
        elif scheme in ("http", "https"):
            with self._get(url) as response:
                declared = response.headers.get("Content-Length", "")
                length = int(declared) if declared.isdigit() else None
                yield length, self._iter_body(response, url)
        else:
            raise FetchError(f"{url}: unsupported URL scheme {scheme!r} (use http, https or file)")

    def _get(self, url: str) -> requests.Response:
        shown = describe_url(url)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                # Back off between attempts; the delay never reaches any output.
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._session().get(url, stream=True, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = _short_reason(exc)
                continue
            except requests.RequestException as exc:
                raise FetchError(f"{shown}: {_short_reason(exc)}") from exc
            if response.status_code == 200:
                return response
            response.close()
            problem = f"HTTP {response.status_code} {response.reason}"
            if response.status_code not in _RETRY_STATUSES:
                raise FetchError(f"{shown}: {problem}")
        raise FetchError(f"{shown}: unreachable after {self.retries + 1} attempt(s): {problem}")

    @staticmethod
    def _iter_body(response: requests.Response, url: str) -> Iterator[bytes]:
        try:
            yield from response.iter_content(CHUNK_SIZE)
        except requests.RequestException as exc:
            raise FetchError(f"{describe_url(url)}: transfer failed: {_short_reason(exc)}") from exc


def _short_reason(exc: BaseException) -> str:
    # requests nests urllib3's reason several levels deep; the errno text is what helps users.
    text = str(exc)
    start = text.rfind("[Errno")
    if start >= 0:
        text = text[start:].rstrip("')\"")
    return text or type(exc).__name__


def local_mirror_path(mirror: str) -> Path | None:
    """The directory of a local mirror (a plain path or a file:// URL); None for http(s)."""
    if "://" not in mirror:
        return Path(mirror)
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path))
    return None
