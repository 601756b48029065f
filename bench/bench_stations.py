"""Benchmark: per-station election data and station images for many stations.

From one software image (a built NAME.img + manifest given with --image/--manifest,
else a synthetic GPT image of --image-mib made as the pipeline lays it out), times:
signing every station's payload; writing every data partition; writing every full
station image (copy + data partition + sha256), with --jobs workers. Prints totals
and per-station costs; asserts nothing about time. Outputs go to a temporary
directory that is removed at the end (station images need stations x image size of
free space there: --tmp chooses where).

    .venv/bin/python bench/bench_stations.py [--stations 200] [--jobs 2]
        [--image-mib 64 --data-mib 4 | --image NAME.img --manifest NAME.manifest.json]
        [--tmp DIR] [--skip-images]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from builder.station.election import (
    ElectionDefinition,
    Station,
    envelope_bytes,
    load_election,
    sign_payload,
    station_payload,
)
from builder.station.stations import make_stations, open_software_image
from builder.trust.keys import load_private_key

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT / "tests")]
from figures import Figures, emit  # noqa: E402
from image_factory import make_image  # noqa: E402

TEST_KEY = PROJECT / "tests" / "booth" / "keys" / "test-authority.key"
MIB = 1024 * 1024


def _stations(count: int) -> tuple[Station, ...]:
    return tuple(Station(f"{n:04d}", f"Station {n}", ()) for n in range(1, count + 1))


def _seconds(start: float) -> float:
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--image-mib", type=int, default=64, help="synthetic image root size")
    parser.add_argument("--data-mib", type=int, default=4, help="synthetic data partition size")
    parser.add_argument("--image", type=Path, help="a built software image instead")
    parser.add_argument("--manifest", type=Path, help="its manifest")
    parser.add_argument("--tmp", type=Path, help="where to write (default: the system temp dir)")
    parser.add_argument("--skip-images", action="store_true", help="data partitions only")
    args = parser.parse_args()

    key = load_private_key(TEST_KEY, "test-authority", b"boothkey-test")
    example = load_election(PROJECT / "examples" / "election" / "election.yaml")
    stations = _stations(args.stations)
    definition = ElectionDefinition(
        example.path, example.id, example.name, example.date, example.races, stations
    )
    with tempfile.TemporaryDirectory(prefix="bench-stations-", dir=args.tmp) as tmp:
        work = Path(tmp)
        if args.image is not None:
            if args.manifest is None:
                parser.error("--image needs --manifest")
            image, manifest = args.image, args.manifest
        else:
            built = make_image(
                work / "software",
                name="booth",
                root_blocks=args.image_mib * MIB // 4096,
                data_mib=args.data_mib,
            )
            image, manifest = built.image, built.manifest_path
        size = image.stat().st_size
        print(f"software image  {image.name}: {size / MIB:.1f} MiB, {args.stations} stations")

        start = time.monotonic()
        software = open_software_image(image, manifest)
        print(f"check image     {_seconds(start):8.3f} s (once: size, sha256, empty data)")

        start = time.monotonic()
        for station in stations:
            envelope_bytes(sign_payload(station_payload(definition, station), [key]))
        signing = _seconds(start)
        print(
            f"sign payloads   {signing:8.3f} s total, "
            f"{signing / args.stations * 1000:8.2f} ms per station"
        )

        start = time.monotonic()
        make_stations(
            definition,
            stations,
            [key],
            work / "data",
            data_size=software.data_size,
            jobs=args.jobs,
        )
        data = _seconds(start)
        print(
            f"data partitions {data:8.3f} s total, "
            f"{data / args.stations * 1000:8.2f} ms per station ({args.jobs} jobs)"
        )
        figures: Figures = {
            "stations": args.stations,
            "station_sign_ms": signing / args.stations * 1000,
            "station_data_partition_ms": data / args.stations * 1000,
        }
        if args.skip_images:
            emit(figures)
            return 0
        start = time.monotonic()
        make_stations(
            definition,
            stations,
            [key],
            work / "images",
            data_size=None,
            software=software,
            jobs=args.jobs,
        )
        images = _seconds(start)
        print(
            f"station images  {images:8.3f} s total, "
            f"{images / args.stations * 1000:8.2f} ms per station ({args.jobs} jobs), "
            f"{size * args.stations / MIB / images:8.1f} MiB/s written"
        )
        figures["station_image_s"] = images / args.stations
        figures["stations_all_images_s"] = images
        emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
