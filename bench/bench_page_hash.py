"""Benchmark: the release page's own SHA-256 and BLAKE2b-512 (builder/observe/page_assets,
the JavaScript a browser runs to verify an image and its minisign signatures) in the
machine's node, against Python's hashlib on the same 64 MiB in the same session.

node loads the page's sha256.js and blake2b.js as they are and hashes a buffer held
in memory (no file reading is timed on either side); both sides' digests must agree.
Each figure is the best of `--repeat` runs. Prints MB/s (10^6 bytes per second) and
the ratio to hashlib; asserts nothing about time.

    .venv/bin/python bench/bench_page_hash.py [--size-mib 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from figures import Figures, emit

ASSETS = Path(__file__).resolve().parent.parent / "builder" / "observe" / "page_assets"

NODE_SCRIPT = r"""
const fs = require("fs"), vm = require("vm");
const [assets, dataPath, repeat] = process.argv.slice(1);  // node -e SCRIPT ARGS...
for (const name of ["sha256.js", "blake2b.js"]) {
  // As a page's <script>: its classes join the global scope.
  vm.runInThisContext(fs.readFileSync(`${assets}/${name}`, "utf8"), { filename: name });
}
const data = new Uint8Array(fs.readFileSync(dataPath));
const hex = (b) => Buffer.from(b).toString("hex");
const result = {};
for (const [name, make] of [["sha256", () => new Sha256()], ["blake2b", () => new Blake2b512()]]) {
  let best = Infinity, digest = "";
  for (let i = 0; i < Number(repeat); i++) {
    const start = process.hrtime.bigint();
    const hash = make();
    for (let at = 0; at < data.length; at += 1 << 20) hash.update(data.subarray(at, at + (1 << 20)));
    digest = hex(hash.digest());
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  result[name] = { seconds: best, digest };
}
console.log(JSON.stringify(result));
"""


def best_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def python_hash(name: str, data: bytes, repeat: int) -> tuple[str, float]:
    """hashlib's hex digest of `data` and its best time."""
    return hashlib.new(name, data).hexdigest(), best_of(
        repeat, lambda: hashlib.new(name, data).digest()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("bench_page_hash: node is not installed (./setup installs nodejs)")
    data = hashlib.shake_256(b"boothkey page hash bench").digest(args.size_mib << 20)
    with tempfile.TemporaryDirectory(prefix="bench-page-hash-") as scratch:
        path = Path(scratch) / "data.bin"
        path.write_bytes(data)
        done = subprocess.run(
            [node, "-e", NODE_SCRIPT, str(ASSETS), str(path), str(args.repeat)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    js = json.loads(done.stdout)
    python = {name: python_hash(name, data, args.repeat) for name in ("sha256", "blake2b")}
    megabytes = len(data) / 1e6
    figures: Figures = {"page_hash_bytes": len(data)}
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    print(f"page hashes over {args.size_mib} MiB in memory (node {version.stdout.strip()})")
    for name, (digest, seconds) in python.items():
        assert js[name]["digest"] == digest, f"{name}: the page disagrees with hashlib"
        page = js[name]["seconds"]
        ratio = seconds / page
        print(f"  {name:8} page (JS) {megabytes / page:8.1f} MB/s   hashlib {megabytes / seconds:8.1f} MB/s"
              f"   page = {ratio:.2f}x hashlib")  # fmt: skip
        figures.update(
            {
                f"page_{name}_mb_s": megabytes / page,
                f"hashlib_{name}_mb_s": megabytes / seconds,
                f"page_{name}_vs_hashlib": ratio,
            }
        )
    emit(figures)


if __name__ == "__main__":
    main()
