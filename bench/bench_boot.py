"""Benchmark: QEMU (TCG, no KVM) boot time of a built image to its payload.

Boots the image over virtio and as a USB stick and times from QEMU's start to
the payload's first line: `BOOTHKEY-HELLO:` for recipes/hello.yaml, the
booth's offer line for recipes/booth.yaml. Builds the recipe first (cached
steps are reused). Prints figures only.

    .venv/bin/python bench/bench_boot.py [--recipe recipes/hello.yaml]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from figures import Figures, emit  # noqa: E402

from builder.observe.qemu import QemuBoot  # noqa: E402
from builder.source.recipe import load_recipe  # noqa: E402

PAYLOAD_MARKERS = {"hello": "BOOTHKEY-HELLO:", "booth": "BOOTH: press Enter"}


def time_boot(image: Path, usb: bool, marker: str) -> float:
    start = time.perf_counter()
    with QemuBoot(image, usb=usb) as boot:
        boot.expect(marker, timeout=600)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=PROJECT / "recipes" / "hello.yaml")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    marker = PAYLOAD_MARKERS.get(recipe.name)
    if marker is None:
        parser.error(f"no payload marker known for recipe {recipe.name!r}")
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        out = Path(tmp)
        subprocess.run(
            [python, "build.py", "fetch", "--quiet", str(args.recipe)], cwd=PROJECT, check=True
        )
        subprocess.run(
            [python, "build.py", "build", "--quiet", "--out", str(out), str(args.recipe)],
            cwd=PROJECT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        image = out / f"{recipe.name}.img"
        figures: Figures = {"boot_recipe": recipe.name}
        for label, usb in (("virtio", False), ("usb", True)):
            seconds = time_boot(image, usb, marker)
            figures[f"boot_{label}_s"] = seconds
            print(f"boot to payload over {label:6s} {seconds:7.1f} s")
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
