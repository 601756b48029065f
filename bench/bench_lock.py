"""Benchmark: `build.py lock` of a recipe, phase by phase, against `mmdebstrap --simulate`.

Locks a copy of the recipe (default recipes/booth.yaml, with its overlays) in a
temporary project, so the committed lock is never touched, `--rounds` times,
and prints the time of each phase of the best round: InRelease download + gpgv,
Packages.xz download + digest check + parse, resolution of both sets. Then,
unless `--skip-mmdebstrap`, times `mmdebstrap --simulate` of the same rootfs
package list against the same mirror and suite (apt's own update + resolution),
as a baseline. Prints figures only; it asserts nothing about time.

    .venv/bin/python bench/bench_lock.py [--recipe recipes/booth.yaml] [--mirror URL]...
        [--rounds 2] [--skip-mmdebstrap]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from figures import emit

from builder.core.errors import BoothkeyError
from builder.core.tools import tool_env
from builder.source.archive import fetch_packages, fetch_release
from builder.source.http import RequestsFetcher
from builder.source.lockfile import write_lock
from builder.source.make_lock import lock_recipe, resolve_sets
from builder.source.mirrors import mirrors_by_suite
from builder.source.recipe import Recipe, load_recipe

PROJECT = Path(__file__).resolve().parent.parent


def copy_project(recipe_path: Path, into: Path) -> Path:
    """Copy the recipe and its overlays into `into`, keeping their relative places."""
    original = load_recipe(recipe_path)
    (into / "recipes").mkdir(parents=True)
    target = into / "recipes" / recipe_path.name
    shutil.copyfile(recipe_path, target)
    for overlay in original.overlays:
        shutil.copytree(overlay, into / overlay.relative_to(original.project_dir))
    return target


def time_phases(recipe: Recipe, mirror: str) -> dict[str, float]:
    fetcher = RequestsFetcher()
    dist = recipe.distribution
    times: dict[str, float] = {}
    start = time.perf_counter()
    release = fetch_release(fetcher, mirror, dist.suite, dist.keyring)
    times["InRelease + gpgv"] = time.perf_counter() - start
    start = time.perf_counter()
    for component in dist.components:
        fetch_packages(fetcher, mirror, dist.suite, release, component, dist.architecture)
    times["Packages.xz fetch + check + parse"] = time.perf_counter() - start
    return times


def time_lock(recipe: Recipe, mirrors: Mapping[str, Sequence[str]]) -> tuple[float, float, int]:
    """(whole lock seconds, of which resolution seconds, package count)."""
    start = time.perf_counter()
    result = lock_recipe(recipe, RequestsFetcher(), mirrors)
    write_lock(result.lock, recipe.lock_path)
    total = time.perf_counter() - start
    start = time.perf_counter()
    resolve_sets(recipe, *result.indexes)
    resolution = time.perf_counter() - start
    return total, resolution, len(result.lock.packages)


def time_mmdebstrap(recipe: Recipe, mirrors: Mapping[str, Sequence[str]]) -> float:
    dist = recipe.distribution
    argv = [
        "mmdebstrap",
        "--variant",
        recipe.rootfs.variant,
        "--simulate",
        f"--keyring={dist.keyring}",
    ]
    if recipe.packages:
        argv.append("--include=" + ",".join(recipe.packages))
    argv += [dist.suite, "/dev/null"]
    # Every suite of the lock, each from its own first mirror.
    argv += [f"deb {mirrors[s][0]} {s} {' '.join(dist.components)}" for s in dist.suites]
    start = time.perf_counter()
    subprocess.run(argv, env=tool_env(), check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=PROJECT / "recipes" / "booth.yaml")
    parser.add_argument("--mirror", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-mmdebstrap", action="store_true")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="boothkey-bench-lock-") as tmp:
            recipe = load_recipe(copy_project(args.recipe.resolve(), Path(tmp)))
            mirrors = mirrors_by_suite(args.mirror, recipe.distribution.suites)
            if not all(mirrors.values()):
                print("no mirror: pass --mirror [SUITE=]URL or configure apt", file=sys.stderr)
                return 2
            # Lock and mmdebstrap get each suite's first mirror only: no fallback in the timing.
            mirrors = {suite: urls[:1] for suite, urls in mirrors.items()}
            mirror = mirrors[recipe.distribution.suite][0]
            print(f"recipe {args.recipe}, mirror {mirror}, best of {args.rounds} round(s)")
            best: tuple[float, float, int] | None = None
            phases: dict[str, float] = {}
            for _ in range(max(1, args.rounds)):
                measured = time_lock(recipe, mirrors)
                if best is None or measured[0] < best[0]:
                    best = measured
                    phases = time_phases(recipe, mirror)
            assert best is not None
            total, resolution, count = best
            print(f"  build.py lock (whole):             {total:7.2f} s  ({count} packages)")
            for phase, seconds in phases.items():
                print(f"    {phase + ':':<34}{seconds:7.2f} s")
            print(f"    {'resolution of both sets:':<34}{resolution:7.2f} s")
            if not args.skip_mmdebstrap:
                baseline = time_mmdebstrap(recipe, mirrors)
                print(f"  mmdebstrap --simulate (rootfs):    {baseline:7.2f} s")
                print(f"  ratio lock / mmdebstrap:           {total / baseline:7.2f}")
                emit({"lock_s": total, "lock_vs_mmdebstrap_simulate_ratio": total / baseline})
            else:
                emit({"lock_s": total})
    except BoothkeyError as exc:
        print(f"bench_lock: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
