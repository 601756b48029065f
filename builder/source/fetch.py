"""Downloading the locked .debs into the cache, in parallel, verified.

Each package is read from `<mirror>/<pool path>`, the mirrors of its suite tried
in order, into a temp file beside its final cache name; its size is enforced while streaming and
its sha256 checked before the rename (`DebCache.store`). Packages already in the
cache with the right digest are not downloaded again; a corrupt cached file is
replaced. Mirrors are interchangeable because every byte is pinned by the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from builder.core.errors import FetchError, InputError
from builder.core.progress import Progress
from builder.source.debcache import CacheMismatch, DebCache
from builder.source.http import Fetcher, describe_url, mirror_url
from builder.source.lockfile import LockedPackage

DEFAULT_JOBS = 4
# Rounds over the whole mirror list per package. The fetcher already retries transient
# HTTP failures itself; a second round catches a mirror that recovers or a file that
# arrived corrupt once.
DEFAULT_ROUNDS = 2
# After this many failures of every mirror, with not one package served by any, the
# remaining packages are not tried: the mirrors are down or wrong, and trying each
# package would only repeat the same error for minutes.
_GIVE_UP_FAILURES = 3
# How many failed packages a FetchError lists in full, and by name, before counting.
_SHOWN_FAILURES = 5
_NAMED_FAILURES = 15


@dataclass(frozen=True)
class FetchReport:
    """What `fetch_packages` did. Packages appear in the order they were given."""

    fetched: tuple[LockedPackage, ...]  # downloaded in this run
    cached: tuple[LockedPackage, ...]  # already in the cache with the right digest
    repaired: tuple[LockedPackage, ...]  # of `fetched`: a corrupt cached copy was replaced
    bytes_fetched: int
    sources: dict[str, str]  # sha256 -> URL (credentials removed) each fetched package came from

    @property
    def total(self) -> int:
        return len(self.fetched) + len(self.cached)


class _MirrorRanking:
    """Mirror order shared by the worker threads.

    A mirror that has failed and never yet served a package is tried after the
    others, so one unreachable mirror costs a few attempts, not one per package.
    """

    def __init__(self, mirrors: Sequence[str]) -> None:
        self._mirrors = list(mirrors)
        self._failures = dict.fromkeys(self._mirrors, 0)
        self._successes = dict.fromkeys(self._mirrors, 0)
        self._lock = threading.Lock()

    def ranked(self, allowed: Sequence[str]) -> list[str]:
        """`allowed` (the mirrors of one suite), failing ones last, otherwise in order."""
        with self._lock:
            return sorted(
                allowed,
                key=lambda m: self._failures[m] > 0 and self._successes[m] == 0,
            )

    def all_failing(self, allowed: Sequence[str]) -> bool:
        """True once every mirror of `allowed` failed repeatedly and none has served
        anything."""
        with self._lock:
            return not any(self._successes[m] for m in allowed) and all(
                self._failures[m] >= _GIVE_UP_FAILURES for m in allowed
            )

    def failed(self, mirror: str) -> None:
        with self._lock:
            self._failures[mirror] += 1

    def succeeded(self, mirror: str) -> None:
        with self._lock:
            self._successes[mirror] += 1


def fetch_packages(
    packages: Sequence[LockedPackage],
    mirrors: Sequence[str] | Mapping[str, Sequence[str]],
    cache: DebCache,
    fetcher: Fetcher,
    jobs: int = DEFAULT_JOBS,
    *,
    rounds: int = DEFAULT_ROUNDS,
    progress: Progress | None = None,
) -> FetchReport:
    """Make every package in `packages` present and verified in `cache`.

    `mirrors` are tried in order (URLs or local directories, see `builder.source.http`):
    one list for every package, or a list per suite (`mirrors_by_suite`) used for the
    packages of that suite (`LockedPackage.suite`). Up to `jobs` packages download at once. Raises `FetchError` after all packages
    were attempted if any could not be fetched, listing each with the URLs tried and
    what went wrong (for wrong bytes: expected and got). Whatever happens, the cache
    never holds a file under a name its content does not match. Any other exception
    (including KeyboardInterrupt) stops the remaining downloads and propagates.
    """
    if jobs < 1 or rounds < 1:
        raise ValueError("jobs and rounds must be at least 1")
    unique = list({pkg.sha256: pkg for pkg in packages}.values())
    per_suite = _mirrors_per_suite(unique, mirrors)
    cache.remove_stale_temp_files()
    display = progress if progress is not None else Progress.quiet()
    ranking = _MirrorRanking(list(dict.fromkeys(m for ms in per_suite.values() for m in ms)))
    stop = threading.Event()

    def fetch_one(pkg: LockedPackage) -> tuple[str | None, bool]:
        """(URL it came from, or None if it was cached; whether a bad copy was replaced)."""
        present = cache.check(pkg)
        if present.ok:
            display.done(_label(pkg), pkg.size, fetched=False)
            return None, False
        if stop.is_set():
            raise _Stopped()
        allowed = per_suite[pkg.suite]
        if ranking.all_failing(allowed):
            raise _NotTried(_label(pkg))
        url = _download(pkg, allowed, ranking, cache, fetcher, rounds, display)
        display.done(_label(pkg), pkg.size, fetched=True)
        return url, present.problem != "missing"

    results: dict[str, tuple[str | None, bool]] = {}
    failures: dict[str, FetchError] = {}
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fetch") as pool:
        futures: dict[Future[tuple[str | None, bool]], LockedPackage] = {
            pool.submit(fetch_one, pkg): pkg for pkg in unique
        }
        try:
            for future in as_completed(futures):
                pkg = futures[future]
                error = future.exception()
                if isinstance(error, FetchError):
                    failures[pkg.sha256] = error
                elif error is not None:
                    raise error
                else:
                    results[pkg.sha256] = future.result()
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise

    if failures:
        raise _summarise(unique, failures, per_suite)
    fetched = tuple(p for p in packages if results.get(p.sha256, (None, False))[0] is not None)
    cached = tuple(p for p in packages if results.get(p.sha256, (None, False))[0] is None)
    repaired = tuple(p for p in fetched if results[p.sha256][1])
    sources = {sha: url for sha, (url, _r) in results.items() if url is not None}
    return FetchReport(
        fetched=fetched,
        cached=cached,
        repaired=repaired,
        bytes_fetched=sum(p.size for p in unique if p.sha256 in sources),
        sources=sources,
    )


def _mirrors_per_suite(
    packages: Sequence[LockedPackage], mirrors: Sequence[str] | Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """suite -> its mirrors, for every suite of `packages`; `InputError` if one has none."""
    suites = sorted({pkg.suite for pkg in packages})
    if isinstance(mirrors, Mapping):
        per_suite = {suite: list(mirrors.get(suite, ())) for suite in suites}
    else:
        per_suite = {suite: list(mirrors) for suite in suites}
    empty = [suite for suite in suites if not per_suite[suite]]
    if empty:
        shown = ", ".join(repr(suite) for suite in empty)
        raise InputError(
            f"no mirror to fetch suite {shown} from: pass --mirror URL (or a local directory, "
            "or SUITE=URL for one suite), set BOOTHKEY_MIRROR, or add a deb source for the "
            "suite to the apt configuration"
        )
    return per_suite


def _download(
    pkg: LockedPackage,
    allowed: Sequence[str],
    ranking: _MirrorRanking,
    cache: DebCache,
    fetcher: Fetcher,
    rounds: int,
    display: Progress,
) -> str:
    """Fetch one package into the cache; return the URL it came from."""
    problems: list[str] = []
    for round_number in range(rounds):
        if round_number and ranking.all_failing(allowed):
            break
        for mirror in ranking.ranked(allowed):
            url = mirror_url(mirror, pkg.filename)
            shown = describe_url(url)
            with cache.temp_path(pkg) as tmp:
                display.watch(tmp)
                try:
                    fetcher.fetch_to(url, tmp, pkg.size)
                    cache.store(pkg, tmp)
                except CacheMismatch as exc:
                    problems.append(f"{shown}: wrong bytes: {exc.problem}")
                    ranking.failed(mirror)
                    continue
                except FetchError as exc:
                    problems.append(exc.message)
                    ranking.failed(mirror)
                    continue
                finally:
                    display.unwatch(tmp)
            ranking.succeeded(mirror)
            return shown
    raise FetchError(
        f"{_label(pkg)}: could not be fetched:\n    " + "\n    ".join(_dedupe(problems))
    )


def _summarise(
    packages: Sequence[LockedPackage],
    failures: dict[str, FetchError],
    per_suite: Mapping[str, Sequence[str]],
) -> FetchError:
    tried = [p for p in packages if p.sha256 in failures and not _skipped(failures[p.sha256])]
    skipped = [p for p in packages if p.sha256 in failures and _skipped(failures[p.sha256])]
    lines = [failures[p.sha256].message for p in tried[:_SHOWN_FAILURES]]
    rest = tried[_SHOWN_FAILURES:]
    if rest:
        names = ", ".join(p.name for p in rest[:_NAMED_FAILURES])
        more = ", ..." if len(rest) > _NAMED_FAILURES else ""
        lines.append(f"... and {len(rest)} more: {names}{more}")
    if skipped:
        lines.append(
            f"{len(skipped)} more not tried: every mirror failed {_GIVE_UP_FAILURES} times "
            f"or more without serving a single package"
        )
    lists = {suite: ", ".join(describe_url(m) for m in ms) for suite, ms in per_suite.items()}
    if len(set(lists.values())) == 1:
        shown_mirrors = next(iter(lists.values()))
    else:
        failed_suites = {p.suite for p in packages if p.sha256 in failures}
        shown_mirrors = "; ".join(
            f"{suite or '(no suite)'}: {text}"
            for suite, text in lists.items()
            if suite in failed_suites
        )
    head = (
        f"{len(tried) + len(skipped)} of {len(packages)} package(s) could not be fetched "
        f"(mirrors tried in order: {shown_mirrors})"
    )
    return FetchError(head + ":\n  " + "\n  ".join(lines))


def _skipped(error: FetchError) -> bool:
    return isinstance(error, _NotTried)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _label(pkg: LockedPackage) -> str:
    return f"{pkg.name} {pkg.version} ({pkg.architecture})"


class _NotTried(FetchError):
    """A package skipped because every mirror was failing."""


class _Stopped(Exception):
    """A worker noticed the fetch was stopped before it started downloading."""
