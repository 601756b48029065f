"""Rebuild a published image from its sources, in a fresh place, and compare.

`rebuild` never reuses the builder's caches: it works in a new directory
(WORK/cache for .debs and steps, WORK/out for the rebuilt image), takes the
sources from a source bundle (tar or directory, checked against its index and,
for a tar, against the digest the manifest names) or from a recipe checkout
plus mirrors, builds, and compares manifests, file lists and images
(`builder.observe.compare`). When something differs and the published image is at
hand, `diffoscope` (if installed) explains each differing partition; its
reports are kept in WORK/diffoscope/. WORK/report.txt and WORK/report.json
hold the result. For a Secure Boot build the observer has no private key: the
sbsign step attaches the signature the published manifest carries, and fails
unless the rebuilt UKI is the one that was signed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.build.filelist import read_file_list
from builder.build.image import build_image
from builder.build.manifest import read_manifest
from builder.build.steps.sbsign import published_signature
from builder.core.canonical import CHUNK_SIZE, pretty_json, sha256_file
from builder.core.errors import InputError, VerificationFailed
from builder.core.fsutil import write_atomic
from builder.core.paths import deb_cache_dir
from builder.core.tools import run_tool, tool_env
from builder.observe.compare import ComparedValue, Comparison, compare_file_lists, compare_manifests
from builder.release.bundle import extract_bundle, verify_bundle
from builder.source.debcache import DebCache
from builder.source.fetch import fetch_packages
from builder.source.http import RequestsFetcher
from builder.source.lockfile import load_lock_for
from builder.source.mirrors import mirrors_by_suite
from builder.source.recipe import load_recipe

DIFFOSCOPE_TIMEOUT = 1800.0


@dataclass(frozen=True)
class RebuildResult:
    comparison: Comparison
    work: Path
    image: Path  # the rebuilt image
    manifest: Path  # the rebuilt manifest


def rebuild_and_compare(
    manifest_path: Path,
    work: Path,
    *,
    bundle: Path | None = None,
    mirrors: Sequence[str] = (),
    recipe_path: Path | None = None,
    image: Path | None = None,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    diffoscope: bool = True,
) -> RebuildResult:
    """Rebuild the build `manifest_path` describes inside `work` (missing or empty) and
    compare. Sources: `bundle` (a bundle tar or directory; then no network is used),
    else `recipe_path` (default: the manifest's recipe file, relative to the current
    directory) with its .debs from `mirrors` (default: as `build.py fetch` chooses).
    `image` is the published image (default: the manifest's image file beside it, if
    there). Build failures raise as in `build`; differences are in the result.
    """
    raw = read_manifest(manifest_path).raw
    _prepare(work)
    checks: list[ComparedValue] = []
    if bundle is not None:
        root, bundle_check = _open_bundle(bundle, raw, work)
        checks.append(bundle_check)
        recipe = load_recipe(verify_bundle(root).recipe)
        mirror_list: list[str] | dict[str, list[str]] = [str(root)]
        report(f"sources: bundle {bundle} (verified against its index)")
    else:
        recipe = load_recipe(recipe_path or _manifest_recipe(raw, manifest_path))
        mirror_list = mirrors_by_suite(list(mirrors), recipe.distribution.suites)
        shown = "; ".join(f"{s}: {', '.join(m) or '(no mirror)'}" for s, m in mirror_list.items())
        report(f"sources: {recipe.path}; packages from {shown}")
    lock = load_lock_for(recipe)
    cache = work / "cache"
    report(f"fetching {len(lock.packages)} locked packages into a fresh cache ({cache})")
    fetch_packages(lock.packages, mirror_list, DebCache(deb_cache_dir(cache)), RequestsFetcher())
    report("building in a fresh cache (nothing is reused from earlier builds)")
    signature = None
    if raw.get("secure_boot"):
        # The observer has no private key: the sbsign step attaches the published
        # signature, and fails unless the rebuilt UKI is the one that was signed.
        report("Secure Boot: the published signature is attached to the rebuilt UKI")
        signature = published_signature(manifest_path)
    result = build_image(recipe, work / "out", cache, report, lock, secure_boot_signature=signature)
    comparison = compare_builds(
        manifest_path,
        result.manifest,
        image=image,
        diffoscope_dir=work / "diffoscope" if diffoscope else None,
        report=report,
    )
    first = 1 if comparison.checks[0].name == "published image file" else 0
    comparison.checks[first:first] = checks
    write_atomic(work / "report.txt", comparison.to_text().encode())
    write_atomic(work / "report.json", pretty_json(comparison.to_json()))
    return RebuildResult(comparison, work, result.image, result.manifest)


def compare_builds(
    manifest_path: Path,
    rebuilt_manifest_path: Path,
    *,
    image: Path | None = None,
    diffoscope_dir: Path | None = None,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Comparison:
    """Compare a published build with a rebuilt one: manifests, file lists (each found
    beside its manifest) and, when `diffoscope_dir` is given and something differs,
    diffoscope reports of the differing partitions of the two images.

    `image` is the published image (default: the manifest's image file beside it); the
    comparison's first check says whether it is the image its manifest describes.
    """
    published = read_manifest(manifest_path)
    raw = published.raw
    rebuilt_manifest = read_manifest(rebuilt_manifest_path)
    rebuilt = rebuilt_manifest.raw
    comparison = compare_manifests(published, rebuilt_manifest)
    published_image = image or manifest_path.parent / published.image.file
    have_image = published_image.is_file()
    if have_image:
        matches = sha256_file(published_image) == published.image.sha256
        shown = "is" if matches else "is not"
        comparison.checks.insert(
            0,
            ComparedValue(
                "published image file",
                matches,
                published.image.sha256 if matches else "",
                note=f"{published_image} {shown} the image its manifest describes",
            ),
        )
    else:
        comparison.notes.append(
            f"no published image at {published_image}: compared digests only (pass --image)"
        )
    _compare_files(comparison, raw, manifest_path, rebuilt, rebuilt_manifest_path)
    if not comparison.ok and diffoscope_dir is not None:
        if have_image:
            rebuilt_image = rebuilt_manifest_path.parent / rebuilt_manifest.image.file
            comparison.reports += run_diffoscope(
                published_image, rebuilt_image, raw, rebuilt, comparison, diffoscope_dir, report
            )
        else:
            comparison.notes.append("diffoscope not run: the published image is not here")
    return comparison


def run_diffoscope(
    published_image: Path,
    rebuilt_image: Path,
    published: dict[str, Any],
    rebuilt: dict[str, Any],
    comparison: Comparison,
    out: Path,
    report: Callable[[str], None],
) -> list[Path]:
    """diffoscope reports (text and HTML) for each differing partition, or for the whole
    images if the partitions cannot be paired. Returns the report files written."""
    diffoscope = shutil.which("diffoscope", path=tool_env()["PATH"])
    if diffoscope is None:
        comparison.notes.append(
            "install diffoscope (Debian package diffoscope) for a detailed report of the differences"
        )
        return []
    out.mkdir(parents=True, exist_ok=True)
    ours = {p["name"]: p for p in rebuilt.get("partitions", [])}
    pairs: list[tuple[str, Path, Path]] = []
    for part in published.get("partitions", []):
        other = ours.get(part["name"])
        if other is None or other.get("sha256") == part.get("sha256"):
            continue
        a = out / f"published-{part['name']}.img"
        b = out / f"rebuilt-{part['name']}.img"
        _copy_range(published_image, part["offset"], part["size"], a)
        _copy_range(rebuilt_image, other["offset"], other["size"], b)
        pairs.append((part["name"], a, b))
    if not pairs:
        pairs.append(("image", published_image, rebuilt_image))
    written: list[Path] = []
    for name, a, b in pairs:
        text, html = out / f"{name}.diffoscope.txt", out / f"{name}.diffoscope.html"
        report(f"running diffoscope on the {name} partitions (this can take a while)")
        try:
            # Exit 1 means "differences found", which is why it runs.
            done = run_tool(
                [diffoscope, "--text", text, "--html", html, a, b],
                timeout=DIFFOSCOPE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            comparison.notes.append(
                f"diffoscope on {name} gave up after {DIFFOSCOPE_TIMEOUT:.0f} s"
            )
            continue
        # diffoscope exits 1 when it found differences, which is what we expect here.
        if done.returncode not in (0, 1):
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            comparison.notes.append(f"diffoscope on {name} failed: {' / '.join(tail)}")
        written += [path for path in (text, html) if path.is_file()]
    return written


def _prepare(work: Path) -> None:
    if work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise InputError(f"{work}: the rebuild's work directory must be new or empty")
    work.mkdir(parents=True, exist_ok=True)


def _open_bundle(bundle: Path, raw: dict[str, Any], work: Path) -> tuple[Path, ComparedValue]:
    named = raw.get("bundle")
    expected = named.get("sha256") if isinstance(named, dict) else None
    if bundle.is_dir():
        note = "a bundle directory: checked file by file against its index.json"
        return bundle, ComparedValue("source bundle", True, str(bundle), str(bundle), note)
    if not bundle.is_file():
        raise InputError(f"{bundle}: no such bundle (a NAME-VERSION-source.tar or its directory)")
    digest = sha256_file(bundle)
    if expected is None:
        check = ComparedValue("source bundle", True, digest, digest, "the manifest names no bundle")
    else:
        check = ComparedValue("source bundle", digest == expected, expected, digest)
    return extract_bundle(bundle, work / "source"), check


def _manifest_recipe(raw: dict[str, Any], manifest_path: Path) -> Path:
    recipe = raw.get("recipe", {}).get("file")
    if not isinstance(recipe, str) or not Path(recipe).is_file():
        raise InputError(
            f"{manifest_path}: its recipe {recipe!r} is not in the current directory; "
            "pass --bundle, or --recipe with the recipe of your checkout"
        )
    return Path(recipe)


def _compare_files(
    comparison: Comparison,
    raw: dict[str, Any],
    manifest_path: Path,
    rebuilt: dict[str, Any],
    rebuilt_manifest: Path,
) -> None:
    entry = raw.get("files")
    if not isinstance(entry, dict) or "file" not in entry:
        comparison.notes.append("the published build has no file list: files not compared")
        return
    path = manifest_path.parent / str(entry["file"])
    if not path.is_file():
        comparison.notes.append(f"{path} is not here: the root filesystem's files not compared")
        return
    try:
        theirs = read_file_list(path, str(entry.get("sha256")))
    except VerificationFailed as exc:
        comparison.checks.append(ComparedValue("published file list", False, note=exc.message))
        return
    ours = read_file_list(rebuilt_manifest.parent / rebuilt["files"]["file"])
    comparison.file_differences = compare_file_lists(theirs, ours)
    comparison.checks.append(
        ComparedValue(
            "root filesystem files",
            not comparison.file_differences,
            f"{len(theirs)} entries",
            f"{len(ours)} entries",
            f"{len(comparison.file_differences)} differ" if comparison.file_differences else "",
        )
    )


def _copy_range(source: Path, offset: int, size: int, dest: Path) -> None:
    with open(source, "rb") as reader, open(dest, "wb") as writer:
        reader.seek(offset)
        remaining = size
        while remaining > 0:
            chunk = reader.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            writer.write(chunk)
            remaining -= len(chunk)
