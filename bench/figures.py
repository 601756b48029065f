"""How each benchmark hands its figures to `bench/run.py`.

A benchmark calls `emit({...})` once at the end with its headline figures
(seconds, ratios, MiB/s). When `BENCH_JSON` names a file, they are written
there as JSON; the benchmark prints its own human-readable lines either way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

Figures = dict[str, float | int | str]


def emit(figures: Figures) -> None:
    target = os.environ.get("BENCH_JSON")
    if target:
        Path(target).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
