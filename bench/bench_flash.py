"""Benchmark: `build.py flash` (write + read-back) vs `dd` + `cmp` of the same image.

Builds a deterministic image (512 MiB by default) and its manifest in a
temporary directory, then, in the same run and on the same file system, times

- boothkey: `write_keys(image, [target])`, which checks the image against
  the manifest, writes it, fsyncs, drops the target's cached pages and reads it
  back against the manifest's sha256;
- dd + cmp: `dd bs=8M conv=fsync` then `cmp image target` (cmp is served from
  the page cache, so this baseline is the cheaper of the two on purpose).

Before every timed run the image's and target's pages are dropped from the
page cache, so both start cold. Prints the best of `--rounds` for each and the
ratio; the target is <= 2.2x. Prints figures only; it asserts nothing about time.

    .venv/bin/python bench/bench_flash.py [--size-mib 512] [--rounds 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit

from builder.core.errors import EXIT_OK
from builder.core.tools import require_tool, tool_env
from builder.station.devices import HostView
from builder.station.write_keys import default_manifest, write_keys

MIB = 2**20


def make_image(folder: Path, size_mib: int) -> Path:
    """A `size_mib` MiB image of derived (incompressible, non-random) bytes and its manifest."""
    image = folder / "bench.img"
    seed = hashlib.sha256(b"boothkey bench_flash").digest()
    pattern = b"".join(
        hashlib.sha256(seed + n.to_bytes(4, "big")).digest() for n in range(MIB // 32)
    )
    digest = hashlib.sha256()
    with open(image, "wb") as stream:
        for n in range(size_mib):
            # Every MiB differs, so a misplaced block would be caught by the read-back.
            block = n.to_bytes(8, "big") + pattern[8:]
            stream.write(block)
            digest.update(block)
    zero = "0" * 64
    manifest = {
        "format": 1,
        "name": "bench",
        "version": "0",
        "image": {"file": image.name, "size": size_mib * MIB, "sha256": digest.hexdigest()},
        "partitions": [],
        "uki": {"sha256": zero, "cmdline": ""},
        "verity": {
            "root_hash": zero,
            "salt": zero,
            "data_blocks": 0,
            "data_block_size": 4096,
            "hash_block_size": 4096,
            "hash_algorithm": "sha256",
        },
        "source_date_epoch": 0,
    }
    default_manifest(image).write_text(json.dumps(manifest))
    return image


def drop_cache(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def time_boothkey(image: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    drop_cache(image)
    host = HostView.current()
    start = time.monotonic()
    code = write_keys(
        image, [target], host=host, out=io.StringIO(), err=io.StringIO(), progress_mode="quiet"
    )
    elapsed = time.monotonic() - start
    if code != EXIT_OK:
        raise SystemExit(f"boothkey flash failed with exit status {code}")
    return elapsed


def time_dd_cmp(image: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    drop_cache(image)
    dd, cmp = require_tool("dd"), require_tool("cmp")
    start = time.monotonic()
    subprocess.run(
        [dd, f"if={image}", f"of={target}", "bs=8M", "conv=fsync", "status=none"],
        env=tool_env(),
        check=True,
    )
    subprocess.run([cmp, str(image), str(target)], env=tool_env(), check=True)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, help="where to put image and targets (default: TMPDIR)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-flash-", dir=args.dir) as name:
        folder = Path(name)
        print(f"making a {args.size_mib} MiB image in {folder} ...")
        image = make_image(folder, args.size_mib)
        boothkey_times, dd_times = [], []
        for round_number in range(1, args.rounds + 1):
            boothkey_times.append(time_boothkey(image, folder / "target-boothkey.img"))
            dd_times.append(time_dd_cmp(image, folder / "target-dd.img"))
            print(
                f"round {round_number}: boothkey flash {boothkey_times[-1]:.2f} s, "
                f"dd + cmp {dd_times[-1]:.2f} s"
            )
            (folder / "target-boothkey.img").unlink()
            (folder / "target-dd.img").unlink()
    best_boothkey, best_dd = min(boothkey_times), min(dd_times)
    size = args.size_mib * MIB
    print(
        f"boothkey flash + read-back: {best_boothkey:.2f} s ({size / MIB / best_boothkey:.0f} MiB/s)"
    )
    print(f"dd conv=fsync + cmp:        {best_dd:.2f} s ({size / MIB / best_dd:.0f} MiB/s)")
    print(f"ratio boothkey / (dd + cmp): {best_boothkey / best_dd:.2f}x (target <= 2.2x)")
    emit(
        {
            "flash_readback_s": best_boothkey,
            "dd_cmp_s": best_dd,
            "flash_vs_dd_cmp_ratio": best_boothkey / best_dd,
            "flash_image_mib": args.size_mib,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
