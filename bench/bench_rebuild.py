"""Benchmark: the original build vs a full rebuild from the source bundle, same run.

1. `build.py build` of the recipe with a fresh cache (the locked .debs hard-linked
   from the user's cache, so only the build is timed, not the download);
2. `build.py bundle` of it (timed too: an observer's download is this tar);
3. `build.py rebuild` from the bundle tar, which unpacks and checks the bundle,
   copies the .debs from it into a fresh cache, rebuilds and compares.

Prints the three wall times, the rebuild/build ratio, and whether the rebuild
gave the same image. Prints figures only; it asserts nothing about time.
Needs the recipe fetched into the user's cache (`build.py fetch RECIPE`).

    .venv/bin/python bench/bench_rebuild.py [--recipe recipes/hello.yaml] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

from builder.core.errors import BoothkeyError
from builder.core.paths import deb_cache_dir, default_cache_dir
from builder.core.progress import format_size
from builder.source.debcache import DebCache
from builder.source.lockfile import load_lock_for
from builder.source.recipe import load_recipe

PROJECT = Path(__file__).resolve().parent.parent


def seed_cache(recipe_path: Path, cache_dir: Path) -> None:
    """A cache holding only the recipe's locked .debs, hard-linked (or copied) from the
    user's cache, checked against the lock on the way."""
    recipe = load_recipe(recipe_path)
    source = DebCache(deb_cache_dir(default_cache_dir()))
    target = DebCache(deb_cache_dir(cache_dir))
    for package in load_lock_for(recipe).packages:
        path = target.path(package.sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source.verified_path(package), path)
        except OSError:
            shutil.copyfile(source.verified_path(package), path)


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    start = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, check=False)
    return time.monotonic() - start, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=PROJECT / "recipes" / "hello.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    recipe = args.recipe.absolute()
    python, build_py = sys.executable, str(PROJECT / "build.py")
    work = Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    try:
        seed_cache(recipe, work / "cache")
        out = work / "published"
        name = load_recipe(recipe).name
        build_s, code = timed(
            [
                python,
                build_py,
                "build",
                "--quiet",
                "--out",
                str(out),
                "--cache-dir",
                str(work / "cache"),
                str(recipe),
            ],
            PROJECT,
        )
        if code != 0:
            print(f"build failed (exit {code})", file=sys.stderr)
            return 1
        bundle_s, code = timed(
            [
                python,
                build_py,
                "bundle",
                str(recipe),
                "--out",
                str(out),
                "--cache-dir",
                str(work / "cache"),
            ],
            PROJECT,
        )
        if code != 0:
            print(f"bundle failed (exit {code})", file=sys.stderr)
            return 1
        tarball = next(out.glob("*-source.tar"))
        tar_size = tarball.stat().st_size
        rebuild_s, code = timed(
            [
                python,
                build_py,
                "rebuild",
                "--quiet",
                "--no-diffoscope",
                "--bundle",
                str(tarball),
                "--work",
                str(work / "rebuild"),
                str(out / f"{name}.manifest.json"),
            ],
            work,
        )
    except BoothkeyError as exc:
        print(f"bench_rebuild: {exc.message}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    verdict = {0: "same image", 3: "DIFFERENT image"}.get(code, f"rebuild failed (exit {code})")
    print(f"recipe                     {args.recipe}")
    print(f"original build (cold)      {build_s:7.1f} s")
    print(f"{'bundle (' + format_size(tar_size) + ')':<27}{bundle_s:7.1f} s")
    print(f"rebuild from the bundle    {rebuild_s:7.1f} s  ({verdict})")
    print(f"rebuild / build            {rebuild_s / build_s:7.2f}")
    if args.keep:
        print(f"work directory             {work}")
    emit(
        {
            "original_build_s": build_s,
            "bundle_s": bundle_s,
            "bundle_mib": tar_size / 2**20,
            "rebuild_from_bundle_s": rebuild_s,
            "rebuild_vs_build_ratio": rebuild_s / build_s,
            "rebuild_result": verdict,
        }
    )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
