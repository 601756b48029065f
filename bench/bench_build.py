"""Benchmark: boothkey builds against the same tools run directly, in one session.

Figures (no assertions):
- cold build: empty cache, `build.py fetch` then `build.py build`;
- tools tree: unpacking the lock's tools set and recording it (once per lock);
- warm build: .debs cached, empty step cache (`build.py build` in a subprocess; the
  tools tree is made first);
- warm build, tools tree cached, against the same build with the host's own tools run
  directly, as boothkey did before the tools tree (no tree, no sandbox), in the same
  session (target: at most 1.1x);
- raw tools: the same mmdebstrap / mksquashfs / veritysetup / dpkg-deb + cpio + zstd /
  objcopy / mkfs.vfat + mcopy / sfdisk + dd work run directly, no boothkey
  (target: the warm build with the tools tree cached within 1.3x of it);
- no-change rebuild (target under 5% of the warm build) and a rebuild after one overlay
  file changed (target under 25%), both in a private copy of the recipe and overlays;
- peak memory: the largest resident set of the boothkey process itself, and of any tool
  it ran (target under 512 MiB for boothkey);
- image and partition sizes.

    .venv/bin/python bench/bench_build.py [--recipe recipes/booth.yaml] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from figures import emit  # noqa: E402

from builder.build.steps.uki import STUB_PATH  # noqa: E402
from builder.core.canonical import sha256_file  # noqa: E402
from builder.core.paths import deb_cache_dir, default_cache_dir  # noqa: E402
from builder.core.tools import tool_env  # noqa: E402
from builder.source.lockfile import load_lock_for  # noqa: E402
from builder.source.recipe import load_recipe  # noqa: E402

MIB = 2**20
_MEASURE = """
import os, resource, sys
from pathlib import Path
from builder.build.image import build_image
from builder.source.recipe import load_recipe
if os.environ.get("BENCH_HOST_TOOLS") == "1":
    sys.path.insert(0, "bench")
    import host_tools
    host_tools.use_host_tools()
build_image(load_recipe(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), report=lambda line: None)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tools = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{own} {tools}")
"""


def timed_build(
    recipe: Path, out: Path, cache: Path, *, host_tools: bool = False
) -> dict[str, float]:
    """One build in a fresh Python process; wall time and peak RSS (KiB) of it and its tools.

    `host_tools`: run the host's own tools directly instead of the tools tree's in a
    sandbox (see bench/host_tools.py)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(recipe), str(out), str(cache)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BENCH_HOST_TOOLS": "1" if host_tools else "0"},
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stderr}")
    own_kib, tools_kib = (int(v) for v in result.stdout.split())
    return {
        "seconds": seconds,
        "boothkey_rss_mib": own_kib / 1024,
        "tool_rss_mib": tools_kib / 1024,
    }


def tools_tree_seconds(recipe_path: Path, work: Path) -> float:
    """Unpack the lock's tools set into a tree and digest it, as the tools step does."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from builder.source.lockfile import load_lock_for\n"
        "from builder.core.paths import deb_cache_dir, default_cache_dir\n"
        "from builder.source.recipe import load_recipe\n"
        "from builder.build.steps.tools import make_tools_tree\n"
        "from builder.source.toolset import TOOLS_SET\n"
        "from builder.core.treedigest import tree_digest\n"
        "lock = load_lock_for(load_recipe(sys.argv[1]))\n"
        "debs = deb_cache_dir(default_cache_dir())\n"
        "paths = [debs / 'sha256' / p.sha256[:2] / f'{p.sha256}.deb'\n"
        "         for p in sorted(lock.in_set(TOOLS_SET), key=lambda p: p.name)]\n"
        "start = time.perf_counter()\n"
        "make_tools_tree(paths, Path(sys.argv[2]))\n"
        "tree_digest(Path(sys.argv[2]), mtimes=True)\n"
        "print(time.perf_counter() - start)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(recipe_path), str(work / "tools-tree")],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout)


def link_shared(cache: Path) -> None:
    """Make `cache` use the user's .debs and licences (derived from each .deb alone)."""
    for name in ("debs", "copyright"):
        shared = default_cache_dir() / name
        shared.mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(shared)


def cache_with_only(cache: Path, source: Path, manifest: Path, step: str) -> None:
    """Make `cache` hold the .debs and licences and, from `source`, only `step`'s entry."""
    cache.mkdir()
    link_shared(cache)
    step_id = next(s["id"] for s in json.loads(manifest.read_text())["steps"] if s["name"] == step)
    entry = Path("steps") / step_id[:2] / step_id
    shutil.copytree(source / entry, cache / entry, symlinks=True)


def private_project(recipe_path: Path, into: Path) -> Path:
    """Copy the recipe, its lock and overlays, so a benchmark can edit an overlay file."""
    recipe = load_recipe(recipe_path)
    (into / "recipes").mkdir(parents=True)
    shutil.copy2(recipe.path, into / "recipes" / recipe.path.name)
    shutil.copy2(recipe.lock_path, into / "recipes" / recipe.lock_path.name)
    for overlay in recipe.overlays:
        target = into / overlay.relative_to(recipe.project_dir)
        shutil.copytree(overlay, target, symlinks=True)
    return into / "recipes" / recipe.path.name


def touch_one_overlay_file(recipe_path: Path) -> Path:
    recipe = load_recipe(recipe_path)
    for overlay in recipe.overlays:
        for path in sorted(overlay.rglob("*")):
            hidden = any(part.startswith(".") for part in path.relative_to(overlay).parts)
            if path.is_file() and not path.is_symlink() and not hidden:
                with open(path, "a", encoding="utf-8") as stream:
                    stream.write("\n# changed by bench_build\n" if path.suffix != ".json" else " ")
                return path
    raise SystemExit("the recipe has no overlay file to change")


def run(argv: list[str], **kwargs: Any) -> None:
    subprocess.run(argv, check=True, env=tool_env(kwargs.pop("env", None)), **kwargs)


def raw_tools_build(recipe_path: Path, boothkey_out: Path, work: Path) -> float:
    """The same tool work as a build, run directly; returns seconds.

    Inputs boothkey computes (initrd file list, kernel command line) are taken from the
    boothkey build's outputs before the clock starts: the baseline measures the tools.
    """
    recipe = load_recipe(recipe_path)
    lock = load_lock_for(recipe)
    debs = deb_cache_dir(default_cache_dir())
    path_of = {p.sha256: debs / "sha256" / p.sha256[:2] / f"{p.sha256}.deb" for p in lock.packages}
    epoch = str(lock.source_date_epoch)
    manifest = json.loads((boothkey_out / f"{recipe.name}.manifest.json").read_text())
    initrd_tree = work / "initrd-tree"
    initrd_tree.mkdir(parents=True)
    initrd_cpio = subprocess.run(
        ["zstd", "-dc", str(_step_file(manifest, "initrd", "initrd.img"))],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["cpio", "-id", "--quiet"], input=initrd_cpio, cwd=initrd_tree, check=True)
    (work / "cmdline.txt").write_text(manifest["uki"]["cmdline"])
    (work / "os-release").write_text(f"NAME={recipe.name}\n")

    start = time.perf_counter()
    repo = work / "repo"
    repo.mkdir()
    for package in lock.in_set("rootfs"):
        os.link(path_of[package.sha256], repo / Path(package.filename).name)
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."], cwd=repo, capture_output=True, check=True
    ).stdout
    (repo / "Packages").write_bytes(packages)
    suite = recipe.distribution.suite
    (repo / "Release").write_text(f"Suite: {suite}\nCodename: {suite}\n")
    tree = work / "tree"
    run(
        [
            "mmdebstrap",
            f"--variant={recipe.rootfs.variant}",
            "--mode=root",
            "--quiet",
            '--aptopt=APT::Sandbox::User "root"',
            '--setup-hook=for d in bin sbin lib lib64; do mkdir -p "$1/usr/$d" && '
            'ln -s "usr/$d" "$1/$d"; done',
            "--include=" + ",".join(recipe.packages),
            recipe.distribution.suite,
            str(tree),
            f"deb [trusted=yes] copy://{repo} ./",
        ],
        env={"SOURCE_DATE_EPOCH": epoch},
    )
    for overlay in recipe.overlays:
        run(["cp", "-a", f"{overlay}/.", str(tree)])
    run(
        [
            "mksquashfs",
            str(tree),
            str(work / "root.img"),
            "-noappend",
            "-reproducible",
            "-mkfs-time",
            epoch,
            "-all-time",
            epoch,
            "-all-root",
            "-comp",
            recipe.rootfs.compression,
            *(
                ["-Xcompression-level", str(recipe.rootfs.compression_level)]
                if recipe.rootfs.compression_level is not None
                else []
            ),
            "-no-progress",
            "-quiet",
        ]
    )
    run(
        [
            "veritysetup",
            "format",
            str(work / "root.img"),
            str(work / "verity.img"),
            "--salt",
            "00" * 32,
            "--uuid",
            "00000000-0000-4000-8000-000000000000",
        ],
        stdout=subprocess.DEVNULL,
    )
    boot = work / "boot"
    for package in lock.in_set("boot"):
        run(["dpkg-deb", "-x", str(path_of[package.sha256]), str(boot)])
    names = subprocess.run(["find", "."], cwd=initrd_tree, capture_output=True, check=True).stdout
    cpio = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet"],
        input=b"\n".join(sorted(names.split())),
        cwd=initrd_tree,
        capture_output=True,
        check=True,
    ).stdout
    (work / "initrd.img").write_bytes(
        subprocess.run(
            ["zstd", "-19", "-T1", "-q", "-c"], input=cpio, capture_output=True, check=True
        ).stdout
    )
    kernel = next((boot / "boot").glob("vmlinuz-*"))
    run(
        [
            "objcopy",
            "--add-section",
            f".osrel={work / 'os-release'}",
            "--change-section-vma",
            ".osrel=0x20000",
            "--add-section",
            f".cmdline={work / 'cmdline.txt'}",
            "--change-section-vma",
            ".cmdline=0x30000",
            "--add-section",
            f".linux={kernel}",
            "--change-section-vma",
            ".linux=0x2000000",
            "--add-section",
            f".initrd={work / 'initrd.img'}",
            "--change-section-vma",
            ".initrd=0x6000000",
            str(boot / STUB_PATH),
            str(work / "BOOTX64.EFI"),
        ]
    )
    esp = work / "esp.img"
    run(
        ["mkfs.vfat", "-C", "--invariant", "-i", "12345678", "-F", "32", str(esp), str(40 * 1024)],
        stdout=subprocess.DEVNULL,
    )
    run(["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT"])
    run(["mcopy", "-i", str(esp), str(work / "BOOTX64.EFI"), "::/EFI/BOOT/BOOTX64.EFI"])
    sizes = [
        (p, -(-p.stat().st_size // MIB)) for p in (esp, work / "root.img", work / "verity.img")
    ]
    disk = work / "disk.img"
    total = 1 + sum(size for _p, size in sizes) + 1
    with open(disk, "wb") as stream:
        stream.truncate(total * MIB)
    layout = "label: gpt\n" + "".join(f"size={size}MiB\n" for _p, size in sizes)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(disk)], input=layout.encode())
    offset = 1
    for part, size in sizes:
        run(
            [
                "dd",
                f"if={part}",
                f"of={disk}",
                "bs=1M",
                f"seek={offset}",
                "conv=notrunc",
                "status=none",
            ]
        )
        offset += size
    return time.perf_counter() - start


def _step_file(manifest: dict[str, Any], step: str, name: str) -> Path:
    from builder.core.paths import step_cache_dir

    ids: dict[str, str] = {s["name"]: s["id"] for s in manifest["steps"]}
    sid = ids[step]
    return step_cache_dir(Path(os.environ["BENCH_CACHE"])) / sid[:2] / sid / "out" / name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=PROJECT / "recipes" / "booth.yaml")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--skip-cold", action="store_true", help="no cold build (it downloads every .deb)"
    )
    parser.add_argument(
        "--host-tools-rounds",
        type=int,
        default=2,
        help="pairs of builds timed with the tools tree and with the host's tools (0: none)",
    )
    args = parser.parse_args()
    recipe_path = args.recipe.resolve()
    subprocess.run(
        [sys.executable, "build.py", "fetch", "--quiet", str(recipe_path)], cwd=PROJECT, check=True
    )
    figures: dict[str, Any] = {"recipe": str(recipe_path.relative_to(PROJECT))}
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "cache"
        cache.mkdir()
        # Warm: the .debs and what is derived from each .deb alone (licences) are cached.
        link_shared(cache)
        os.environ["BENCH_CACHE"] = str(cache)
        project = private_project(recipe_path, tmp / "project")
        if not args.skip_cold:
            # Cold: nothing cached at all, so `fetch` downloads every .deb first.
            cold_cache = tmp / "cold-cache"
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "build.py", "fetch", "--quiet", "--cache-dir", str(cold_cache),
                 str(project)],
                cwd=PROJECT,
                check=True,
            )  # fmt: skip
            fetch_s = time.perf_counter() - start
            cold = timed_build(project, tmp / "out-cold", cold_cache)
            figures["cold_fetch_s"] = fetch_s
            figures["cold_build_s"] = fetch_s + cold["seconds"]
            shutil.rmtree(cold_cache)
        figures["tools_tree_s"] = tools_tree_seconds(project, tmp)
        warm = timed_build(project, tmp / "out", cache)
        figures["warm_build_s"] = warm["seconds"]
        figures["peak_rss_boothkey_mib"] = warm["boothkey_rss_mib"]
        figures["peak_rss_tools_mib"] = warm["tool_rss_mib"]
        name = load_recipe(project).name
        # Tools tree cached vs the host's tools run directly, alternated: A B A B.
        tree_runs, host_runs = [], []
        for round_ in range(args.host_tools_rounds):
            tree_cache, host_cache = tmp / f"tree-cache{round_}", tmp / f"host-cache{round_}"
            cache_with_only(tree_cache, cache, tmp / "out" / f"{name}.manifest.json", "tools")
            cache_with_only(host_cache, cache, tmp / "out" / f"{name}.manifest.json", "tools")
            tree_out, host_out = tmp / f"out-tree{round_}", tmp / f"out-host{round_}"
            tree_runs.append(timed_build(project, tree_out, tree_cache))
            host_runs.append(timed_build(project, host_out, host_cache, host_tools=True))
            # Streamed: reading the images whole would grow this process, and a child's
            # peak RSS starts from its parent's at fork.
            image = f"{name}.img"
            same = sha256_file(tree_out / image) == sha256_file(host_out / image)
            figures["host_tools_same_image"] = str(same).lower()
            shutil.rmtree(tree_cache)
            shutil.rmtree(host_cache)
        if tree_runs:
            tree_s = min(r["seconds"] for r in tree_runs)
            host_s = min(r["seconds"] for r in host_runs)
            figures["warm_tree_cached_s"] = tree_s
            figures["warm_host_tools_s"] = host_s
            figures["tree_vs_host_tools_ratio"] = tree_s / host_s
            for label, runs in (("tree_cached", tree_runs), ("host_tools", host_runs)):
                figures[f"peak_rss_boothkey_{label}_mib"] = max(r["boothkey_rss_mib"] for r in runs)
                figures[f"peak_rss_tools_{label}_mib"] = max(r["tool_rss_mib"] for r in runs)
        nochange = timed_build(project, tmp / "out2", cache)
        figures["nochange_rebuild_s"] = nochange["seconds"]
        figures["nochange_ratio"] = nochange["seconds"] / warm["seconds"]
        changed = touch_one_overlay_file(project)
        onefile = timed_build(project, tmp / "out3", cache)
        figures["one_file_rebuild_s"] = onefile["seconds"]
        figures["one_file_ratio"] = onefile["seconds"] / warm["seconds"]
        figures["changed_file"] = str(changed.relative_to(tmp / "project"))
        manifest = json.loads(
            (tmp / "out" / f"{load_recipe(project).name}.manifest.json").read_text()
        )
        figures["image_mib"] = manifest["image"]["size"] / MIB
        figures["partitions_mib"] = {p["name"]: p["size"] / MIB for p in manifest["partitions"]}
        if not args.skip_baseline:
            raw = raw_tools_build(project, tmp / "out", tmp / "raw")
            figures["raw_tools_s"] = raw
            # A release engineer's warm build has the tools tree cached (it is made once
            # per lock): compare that one with the tools run directly.
            compared = figures.get("warm_tree_cached_s", warm["seconds"])
            figures["warm_vs_raw_ratio"] = float(compared) / raw
    print_table(figures)
    emit({k: v for k, v in figures.items() if isinstance(v, int | float | str)})
    return 0


def print_table(figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        if isinstance(value, float):
            print(f"{key:28s} {value:10.2f}")
        else:
            print(f"{key:28s} {value}")


if __name__ == "__main__":
    sys.exit(main())
