"""Benchmark: the graphical booth image's size and its boot time to the voter's screen.

Builds recipes/booth.yaml trusting the test authority key (as the booth tests do: the
same lock and overlay, in the user's cache), makes the Belgian example's station 0001,
boots it in QEMU (TCG, no KVM, virtio disk, USB keyboard and touchscreen) and times,
from QEMU's start: the booth's offer on the serial console, the poll worker's page on
the framebuffer once Enter is pressed on the screen's keyboard, and the first voter
page (the language) once START is touched. Reports the image's and partitions' sizes
and the root filesystem's. Prints figures only.

    .venv/bin/python bench/bench_booth.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "tests"), str(PROJECT / "tests" / "booth")]

from booth_helpers import BELGIAN_EXAMPLE, booth_module  # noqa: E402
from figures import Figures, emit  # noqa: E402
from test_booth_image import _screen_bytes, _station_image, trusting_project  # noqa: E402

from builder.build.manifest import read_manifest  # noqa: E402
from builder.core.canonical import canonical_json  # noqa: E402
from builder.observe.qemu import QemuBoot  # noqa: E402
from builder.station.election import load_election, station_payload  # noqa: E402
from builder.station.fingerprint import election_fingerprint, software_fingerprint  # noqa: E402

MIB = 1024 * 1024


def _wait_for(boot: QemuBoot, page: Any, font: Any, scratch: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        boot.qmp().screendump(scratch)
        _magic, size, _depth, pixels = scratch.read_bytes().split(b"\n", 3)
        width, height = (int(n) for n in size.split())
        if pixels == _screen_bytes(page.render(width, height, font)):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the screen never showed {page}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    gui = booth_module("gui")
    font = booth_module("raster").load_font()
    with tempfile.TemporaryDirectory(prefix="bench-booth-") as tmp:
        work = Path(tmp)
        recipe = trusting_project(work / "project")
        out = work / "out"
        subprocess.run(
            [sys.executable, str(PROJECT / "build.py"), "build", "--quiet", "--out", str(out),
             str(recipe)],
            cwd=work / "project", check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        image, manifest_path = out / "booth.img", out / "booth.manifest.json"
        manifest = read_manifest(manifest_path)
        figures: Figures = {"booth_image_mib": image.stat().st_size / MIB}
        for partition in manifest.partitions:
            figures[f"booth_{partition.name.replace('-', '_')}_mib"] = partition.size / MIB
        definition = load_election(BELGIAN_EXAMPLE)
        station = _station_image(image, manifest_path, work, "0001", definition)
        payload = canonical_json(station_payload(definition, definition.station("0001")))
        start_page = gui.poll_worker_page(
            "Stembureau",
            software_fingerprint(manifest.verity.root_hash),
            election_fingerprint(payload),
            "0001 Gemeentehuis / Maison communale",
        )
        races = booth_module("election").parse_payload(payload).races
        language_page = gui.Voter(races, ("nl", "fr", "de")).page()
        began = time.perf_counter()
        with QemuBoot(station, usb=False, touch=True) as boot:
            boot.expect("BOOTH: press Enter on this screen", timeout=args.timeout)
            figures["booth_boot_to_offer_s"] = time.perf_counter() - began
            boot.qmp().send_key("ret")
            _wait_for(boot, start_page, font, work / "screen.ppm", args.timeout)
            figures["booth_boot_to_poll_worker_page_s"] = time.perf_counter() - began
            boot.qmp().send_key("ret")
            _wait_for(boot, language_page, font, work / "screen.ppm", args.timeout)
            figures["booth_boot_to_voter_screen_s"] = time.perf_counter() - began
    for name, value in figures.items():
        unit = "MiB" if name.endswith("_mib") else "s"
        print(f"{name:40s} {value:8.1f} {unit}")
    emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
