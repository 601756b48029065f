"""Benchmark: `verify`'s image digest vs `sha256sum`, and its pure-Python dm-verity
recomputation vs `veritysetup verify`, on the same files in the same run.

Both sides read a warm page cache (each file is read once before timing), and
each figure is the best of `--repeat` runs. Targets: digest at least 90% of
sha256sum's throughput; hash tree within 1.5x of veritysetup's time. Prints
figures only; it asserts nothing about time.

    .venv/bin/python bench/bench_verify.py [--size-mib 512] [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from figures import Figures, emit

from builder.core.tools import tool_env
from builder.formats.verity_tree import BLOCK_SIZE, compute_tree
from builder.observe.measure import digest_stream

SALT = bytes.fromhex("5a" * 32)


def best_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def make_data(path: Path, size: int) -> None:
    """Incompressible, deterministic content (so no filesystem shortcut helps either side)."""
    block = hashlib.shake_256(b"boothkey bench").digest(8 << 20)
    with open(path, "wb") as out:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            out.write(hashlib.sha256(written.to_bytes(8, "little")).digest() + chunk[32:])
            written += len(chunk)


def warm(path: Path) -> None:
    with open(path, "rb") as stream:
        while stream.read(8 << 20):
            pass


def run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=tool_env()).stdout


RESULTS: Figures = {}


def bench_digest(data: Path, size: int, repeat: int) -> None:
    expected = run(["sha256sum", str(data)]).split()[0]

    def ours() -> None:
        with open(data, "rb", buffering=0) as stream:
            assert digest_stream(stream, size, []) == expected

    tool = best_of(repeat, lambda: run(["sha256sum", str(data)]))
    mine = best_of(repeat, ours)
    mib = size / (1 << 20)
    print(f"image digest ({mib:.0f} MiB)")
    print(f"  sha256sum        {tool:7.3f} s  {mib / tool:8.1f} MiB/s")
    print(f"  boothkey verify  {mine:7.3f} s  {mib / mine:8.1f} MiB/s")
    print(f"  boothkey speed = {tool / mine:.0%} of sha256sum (target >= 90%)")
    RESULTS.update(
        {"verify_digest_s": mine, "sha256sum_s": tool, "digest_speed_vs_sha256sum": tool / mine}
    )


def bench_verity(data: Path, hashes: Path, size: int, repeat: int) -> None:
    output = run(
        [
            "veritysetup", "format", str(data), str(hashes), f"--salt={SALT.hex()}",
            "--uuid=6e1f5a7c-0000-4000-8000-0000000000aa", "--hash=sha256",
            "--data-block-size=4096", "--hash-block-size=4096",
        ]
    )  # fmt: skip
    root_hash = next(line.split()[-1] for line in output.splitlines() if "Root hash" in line)
    blocks = size // BLOCK_SIZE
    stored = hashes.read_bytes()

    def ours() -> None:
        # What verify does: recompute the tree, compare the root hash and the stored tree.
        with open(data, "rb", buffering=0) as stream:
            tree = compute_tree(stream, blocks, SALT)
        assert tree.root_hash == root_hash
        assert stored[BLOCK_SIZE : tree.hash_device_size()] == tree.hash_area

    tool = best_of(
        repeat, lambda: run(["veritysetup", "verify", str(data), str(hashes), root_hash])
    )
    mine = best_of(repeat, ours)
    print(f"dm-verity hash tree ({size / (1 << 20):.0f} MiB, {blocks} blocks)")
    print(f"  veritysetup verify  {tool:7.3f} s")
    print(f"  boothkey (Python)   {mine:7.3f} s")
    print(f"  boothkey time = {mine / tool:.2f}x veritysetup's (target <= 1.5x)")
    RESULTS.update(
        {
            "verity_tree_s": mine,
            "veritysetup_verify_s": tool,
            "verity_vs_veritysetup_ratio": mine / tool,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: /tmp)")
    args = parser.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory(prefix="bench-verify-", dir=args.dir) as scratch:
        data = Path(scratch) / "data.img"
        make_data(data, size)
        warm(data)
        bench_digest(data, size, args.repeat)
        bench_verity(data, Path(scratch) / "hash.img", size, args.repeat)
    emit(RESULTS)


if __name__ == "__main__":
    main()
