"""Benchmark: `build.py fetch` with a cold cache vs `apt-get download` of the same packages.

Both download exactly the lock's name=version list (from the recipe's lock) into
fresh temporary directories, in the same run, from the same mirror configuration:
boothkey from `--mirror`/`$BOOTHKEY_MIRROR`/the apt sources, apt from its own
sources and lists (run `apt-get update` first if apt does not know a locked
version). boothkey runs first, so a caching proxy on the way can only favour
apt. Prints both wall times, the ratio, and a warm (all cached) `build.py fetch`.
Prints figures only; it asserts nothing about time.

    .venv/bin/python bench/bench_fetch.py [--recipe recipes/booth.yaml] [--mirror URL]...
        [--jobs N] [--skip-apt]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from figures import Figures, emit

from builder.core.errors import BoothkeyError
from builder.core.paths import deb_cache_dir
from builder.core.progress import Progress, format_size
from builder.core.tools import tool_env
from builder.source.debcache import DebCache
from builder.source.fetch import DEFAULT_JOBS, fetch_packages
from builder.source.http import RequestsFetcher
from builder.source.lockfile import LockedPackage, load_lock_for
from builder.source.mirrors import mirrors_by_suite
from builder.source.recipe import load_recipe

PROJECT = Path(__file__).resolve().parent.parent


def time_boothkey(
    packages: Sequence[LockedPackage], mirrors: Mapping[str, list[str]], jobs: int, workdir: Path
) -> float:
    """Seconds for a cold fetch into an empty cache under `workdir`."""
    cache = DebCache(deb_cache_dir(workdir))
    start = time.monotonic()
    report = fetch_packages(
        packages, mirrors, cache, RequestsFetcher(), jobs=jobs, progress=_progress(packages)
    )
    elapsed = time.monotonic() - start
    if len(report.fetched) != len(packages):
        raise RuntimeError("a cold fetch found packages already cached")
    return elapsed


def time_warm_command(recipe: Path, mirrors: Mapping[str, list[str]], workdir: Path) -> float:
    """Seconds for `build.py fetch` when everything is cached: a new process, so every
    cached file is hashed again, as a user's second run would."""
    argv = [sys.executable, str(PROJECT / "build.py"), "fetch", str(recipe), "--quiet"]
    argv += ["--cache-dir", str(workdir)]
    for suite, urls in mirrors.items():
        argv += [arg for url in urls for arg in ("--mirror", f"{suite}={url}")]
    start = time.monotonic()
    subprocess.run(argv, check=True)
    return time.monotonic() - start


def time_apt(packages: Sequence[LockedPackage], workdir: Path) -> float | None:
    """Seconds for `apt-get download` of the same list, or None if apt could not do it."""
    workdir.mkdir()
    # apt drops to its _apt user to download; let it write here so it stays sandboxed.
    workdir.chmod(0o777)
    specs = [f"{p.name}:{p.architecture}={p.version}" for p in packages]
    start = time.monotonic()
    result = subprocess.run(
        ["apt-get", "download", "-q", *specs],
        cwd=workdir,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-5:]
        print("apt-get download failed (run `apt-get update`?):", *tail, sep="\n  ")
        return None
    _compare_apt_files(packages, workdir)
    return elapsed


def _compare_apt_files(packages: Sequence[LockedPackage], workdir: Path) -> None:
    """Report whether apt fetched the very bytes the lock pins (it should)."""
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in workdir.glob("*.deb")}
    matching = sum(1 for p in packages if p.sha256 in digests)
    print(f"apt-get download: {matching}/{len(packages)} files match the lock's sha256")


def _progress(packages: Sequence[LockedPackage]) -> Progress:
    return Progress(len(packages), sum(p.size for p in packages), stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--recipe", type=Path, default=PROJECT / "recipes" / "booth.yaml")
    parser.add_argument("--mirror", action="append", default=[], metavar="[SUITE=]URL")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--skip-apt", action="store_true", help="time boothkey only")
    args = parser.parse_args(argv)

    try:
        recipe = load_recipe(args.recipe)
        lock = load_lock_for(recipe)
        mirrors = mirrors_by_suite(args.mirror, lock.suites)
        packages = lock.packages
        total = sum(p.size for p in packages)
        print(f"{args.recipe}: {len(packages)} packages, {format_size(total)}; mirrors: {mirrors}")
        with tempfile.TemporaryDirectory(prefix="bench-fetch-") as scratch:
            ours = Path(scratch) / "boothkey"
            cold = time_boothkey(packages, mirrors, args.jobs, ours)
            warm = time_warm_command(args.recipe, mirrors, ours)
            apt = None if args.skip_apt else time_apt(packages, Path(scratch) / "apt")
    except BoothkeyError as exc:
        print(f"bench_fetch: {exc.message}", file=sys.stderr)
        return exc.exit_code

    rows = [
        (f"boothkey fetch, cold cache, {args.jobs} jobs", cold),
        ("build.py fetch, warm cache (new process)", warm),
    ]
    if apt is not None:
        rows.append(("apt-get download, same list", apt))
    for label, seconds in rows:
        print(f"{label:<45} {seconds:8.2f} s")
    if apt is not None:
        print(f"{'ratio boothkey cold / apt-get':<45} {cold / apt:8.2f}")
    figures: Figures = {"fetch_cold_s": cold, "fetch_warm_s": warm}
    if apt is not None:
        figures.update({"apt_get_download_s": apt, "fetch_vs_apt_ratio": cold / apt})
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
