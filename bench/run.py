"""Run every benchmark in one session and gather their figures.

Each benchmark is started as its own process with `BENCH_JSON` pointing at a
temporary file (see bench/figures.py); their headline figures are printed as
one table and written as JSON (default bench/results.json). Targets are shown
beside the figures they apply to; nothing is asserted.

    .venv/bin/python bench/run.py [--only NAME ...] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent

# (name, script, arguments, arguments with --quick)
BENCHMARKS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("lock", "bench_lock.py", ("--rounds", "1"), ("--rounds", "1", "--skip-mmdebstrap")),
    ("fetch", "bench_fetch.py", (), ("--skip-apt",)),
    ("build", "bench_build.py", (), ("--skip-baseline", "--skip-cold", "--host-tools-rounds", "1")),
    ("boot", "bench_boot.py", (), ()),
    ("booth", "bench_booth.py", (), ()),
    ("verify", "bench_verify.py", (), ("--size-mib", "128", "--repeat", "1")),
    ("flash", "bench_flash.py", (), ("--size-mib", "128", "--rounds", "1")),
    ("stations", "bench_stations.py", (), ("--stations", "20")),
    ("rebuild", "bench_rebuild.py", (), ()),
    ("page_hash", "bench_page_hash.py", (), ("--repeat", "1")),
)
TARGETS = {
    "warm_vs_raw_ratio": "<= 1.3",
    "tree_vs_host_tools_ratio": "<= 1.1",
    "nochange_ratio": "< 0.05",
    "one_file_ratio": "< 0.25",
    "peak_rss_boothkey_mib": "< 512",
    "digest_speed_vs_sha256sum": ">= 0.9",
    "verity_vs_veritysetup_ratio": "<= 1.5",
    "flash_vs_dd_cmp_ratio": "<= 2.2",
}


def run_one(script: str, arguments: tuple[str, ...]) -> tuple[dict[str, Any], float, int]:
    with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".json") as sink:
        env = dict(os.environ, BENCH_JSON=sink.name)
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(BENCH / script), *arguments], cwd=PROJECT, env=env, check=False
        )
        seconds = time.perf_counter() - start
        text = Path(sink.name).read_text()
    figures: dict[str, Any] = json.loads(text) if text.strip() else {}
    return figures, seconds, result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [name for name, *_ in BENCHMARKS]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these")
    parser.add_argument("--json", type=Path, default=BENCH / "results.json")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, no slow baselines")
    args = parser.parse_args()
    gathered: dict[str, dict[str, Any]] = {}
    for name, script, full, quick in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        print(f"== {name} ({script})", flush=True)
        figures, seconds, code = run_one(script, quick if args.quick else full)
        figures["bench_wall_s"] = seconds
        if code != 0:
            figures["error"] = f"exit {code}"
        gathered[name] = figures
    print()
    print(f"{'benchmark':10s} {'figure':34s} {'value':>12s}  target")
    for name, figures in gathered.items():
        for key, value in sorted(figures.items()):
            shown = f"{value:12.3f}" if isinstance(value, float) else f"{value!s:>12s}"
            print(f"{name:10s} {key:34s} {shown}  {TARGETS.get(key, '')}")
    args.json.write_text(json.dumps(gathered, indent=2, sort_keys=True) + "\n")
    print(f"\nwritten: {args.json}")
    return 1 if any("error" in f for f in gathered.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
