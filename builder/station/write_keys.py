"""Writing an image to USB keys and reading each one back (`build.py flash`).

Before anything is written: the image must match its manifest (size and
sha256), and every target must pass the safety checks of `builder.station.devices`
(not mounted, not the system disk, not read-only, large enough); one refused
target refuses the whole run, unless `--force`. Then all targets are written
in parallel and, unless `--no-verify`, read back over exactly the image's
length and compared with the manifest's sha256.

With `--log-proof FILE` (a release log proof bundle of this very release: its entry
names the manifest's sha256 and the image's), every target also gets the bundle in
the proof slot at the end of its booth-data partition, where `verify` and the booth
find it, and the read-back covers it. The bundle is checked to be about this
release, not verified (no keys are needed to flash): `verify` does that.

Exit status: 0 every target OK; 3 a target read back wrong (or failed while
being read back); 1 a target could not be written; 2 bad input or a refusal
(nothing was written).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from builder.build.manifest import DATA_PARTITION, Manifest, read_manifest
from builder.core.canonical import sha256_bytes
from builder.core.errors import (
    EXIT_BUILD_FAILED,
    EXIT_OK,
    EXIT_VERIFICATION_FAILED,
    InputError,
    ValidationErrors,
)
from builder.station.devices import HostView, Target, inspect_target, refusal_reasons
from builder.station.flash import (
    DeviceResult,
    FlashHooks,
    ImageFacts,
    Patch,
    check_image,
    flash_targets,
)
from builder.transparency.entries import RELEASE, parse_entry
from builder.transparency.proof import PROOF_SLOT_SIZE, parse_bundle, proof_slot

_REDRAW_SECONDS = 0.2
_MEASURED_PHASES = ("writing", "verifying")
_PLAIN_STEPS = 4  # plain-line mode prints each phase at 25 %, 50 %, 75 %, 100 %


def default_manifest(image: Path) -> Path:
    """NAME.manifest.json beside NAME.img, as `build` writes them."""
    stem = image.name[: -len(".img")] if image.name.endswith(".img") else image.name
    return image.with_name(f"{stem}.manifest.json")


def write_keys(
    image: Path,
    target_paths: Sequence[Path],
    *,
    manifest_path: Path | None = None,
    verify: bool = True,
    force: bool = False,
    jobs: int = 0,
    host: HostView | None = None,
    hooks: FlashHooks | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    progress_mode: str | None = None,
    log_proof: Path | None = None,
) -> int:
    """Check, write and read back every target, reporting to `out`/`err`; returns the
    exit status (see the module docstring)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if jobs < 0:
        raise InputError(f"--jobs: {jobs} is not a number of targets")
    manifest_path = manifest_path or default_manifest(image)
    if not manifest_path.exists():
        raise InputError(f"{manifest_path}: no such manifest (pass --manifest)")
    manifest = read_manifest(manifest_path)
    patch = proof_patch(log_proof, manifest, manifest_path) if log_proof is not None else None
    facts = ImageFacts.from_manifest(manifest, patch)
    host = host or HostView.current()
    targets, problems = _inspect_all(image, manifest_path, target_paths, host)
    _refuse_unsafe(targets, problems, facts.size, host, force, err)
    _say(err, f"checking {image} against {manifest_path} ...")
    facts = check_image(image, facts)
    if patch is not None:
        _say(
            err, f"{log_proof}: written into the proof slot at byte {patch.offset} of every target"
        )
    for target in targets:
        what = target.description or ("new file" if target.size is None else "file")
        _say(err, f"{target.path}: {target.kind}, {what}")
    with _DeviceLines(targets, err, progress_mode) as display:
        results = flash_targets(
            image,
            targets,
            facts,
            verify=verify,
            jobs=jobs or None,
            exclusive=not force,
            progress=display,
            hooks=hooks,
        )
    return _report(results, out)


def proof_patch(bundle_path: Path, manifest: Manifest, manifest_path: Path) -> Patch:
    """The proof slot holding `bundle_path`, where the manifest's booth-data partition ends;
    `InputError` unless the bundle is one whose entry is this release."""
    try:
        data = bundle_path.read_bytes()
    except OSError as exc:
        raise InputError(f"{bundle_path}: cannot read the proof bundle: {exc.strerror}") from exc
    bundle = parse_bundle(data, str(bundle_path))
    entry = parse_entry(bundle.entry, f"{bundle_path}: entry")
    image = entry.get("image")
    if (
        entry.get("kind") != RELEASE
        or entry.get("manifest_sha256") != sha256_bytes(manifest_path.read_bytes())
        or not isinstance(image, dict)
        or image.get("sha256") != manifest.image.sha256
    ):
        raise InputError(
            f"{bundle_path}: the proof bundle's entry {bundle.index} is not this release "
            f"({entry.get('name')} {entry.get('version')}, not {manifest_path}); "
            "refusing to put another release's proof on the keys"
        )
    for partition in manifest.partitions:
        if partition.name == DATA_PARTITION and partition.size >= PROOF_SLOT_SIZE:
            return Patch(partition.offset + partition.size - PROOF_SLOT_SIZE, proof_slot(data))
    raise InputError(
        f"{manifest_path}: the image has no {DATA_PARTITION} partition of at least "
        f"{PROOF_SLOT_SIZE} bytes to carry the release log proof (set data_partition in the recipe)"
    )


def _inspect_all(
    image: Path, manifest: Path, paths: Sequence[Path], host: HostView
) -> tuple[list[Target], list[str]]:
    """The targets that can be inspected, and why the others can never be written."""
    problems: list[str] = []
    targets: list[Target] = []
    seen: dict[str, Path] = {}
    for path in paths:
        key = os.path.realpath(path)
        if key in seen:
            problems.append(f"{path}: given twice (also as {seen[key]})")
            continue
        seen[key] = path
        if key in (os.path.realpath(image), os.path.realpath(manifest)):
            problems.append(f"{path}: is the image or its manifest, not a place to write to")
            continue
        try:
            targets.append(inspect_target(path, host))
        except InputError as exc:
            problems.append(exc.message)
    return targets, problems


def _refuse_unsafe(
    targets: Sequence[Target],
    fatal: Sequence[str],
    image_size: int,
    host: HostView,
    force: bool,
    err: TextIO,
) -> None:
    """Raise with every problem found unless only forceable ones remain and `force` is set."""
    unsafe = [
        f"{target.path}: {reason}"
        for target in targets
        for reason in refusal_reasons(target, image_size, host)
    ]
    if fatal or (unsafe and not force):
        hint = "" if fatal else ", or pass --force to override"
        raise ValidationErrors([*fatal, *unsafe, f"nothing was written; check the targets{hint}"])
    for problem in unsafe:
        _say(err, f"warning (--force): {problem}")


def _report(results: Sequence[DeviceResult], out: TextIO) -> int:
    for result in results:
        if result.status == "OK":
            line = f"{result.target}: OK (read back sha256 {result.read_back_sha256})"
        elif result.status == "WRITTEN":
            line = f"{result.target}: WRITTEN, not verified"
        elif result.status == "FAILED":
            line = f"{result.target}: FAILED verification: {result.reason}"
        else:
            line = f"{result.target}: FAILED to write: {result.reason}"
        out.write(line + "\n")
    good = sum(r.status in ("OK", "WRITTEN") for r in results)
    out.write(
        f"{good} of {len(results)} targets {'verified' if _verified(results) else 'written'}\n"
    )
    out.flush()
    if any(r.status == "FAILED" for r in results):
        return EXIT_VERIFICATION_FAILED
    if any(r.status == "WRITE_ERROR" for r in results):
        return EXIT_BUILD_FAILED
    return EXIT_OK


def _verified(results: Sequence[DeviceResult]) -> bool:
    return not any(r.status == "WRITTEN" for r in results)


def _say(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


class _DeviceLines:
    """Progress, one line per target: redrawn in place on a terminal, else plain lines.

    Plain mode prints a line when a phase reaches each quarter, so logs stay short.
    Display only: nothing here is part of any output file.
    """

    def __init__(self, targets: Sequence[Target], stream: TextIO, mode: str | None) -> None:
        if mode is None:
            mode = "tty" if _is_terminal(stream) else "lines"
        if mode not in ("tty", "lines", "quiet"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self.stream = stream
        self.order = [t.path for t in targets]
        self.lines = {t.path: "waiting" for t in targets}
        self.printed: dict[tuple[Path, str], int] = {}
        self.started = {t.path: 0.0 for t in targets}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ticker: threading.Thread | None = None
        if mode == "tty":
            self._write("".join(f"{p}: waiting\n" for p in self.order))
            self.ticker = threading.Thread(target=self._tick, name="flash-progress", daemon=True)
            self.ticker.start()

    def __enter__(self) -> _DeviceLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        if self.ticker is not None:
            self.ticker.join()
            self._redraw()

    def update(self, target: Path, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        with self.lock:
            if done == 0:
                self.started[target] = now
            elapsed = now - self.started[target]
            rate = f", {_mib(int(done / elapsed))}/s" if elapsed > 0.5 else ""
            percent = 100 * done // total if total else 100
            if phase in _MEASURED_PHASES:
                self.lines[target] = f"{phase} {percent:3d}% ({_mib(done)} of {_mib(total)}{rate})"
            else:
                self.lines[target] = phase
            step = percent * _PLAIN_STEPS // 100
            first_time = self.printed.get((target, phase), -1) < step
            if first_time:
                self.printed[(target, phase)] = step
        if self.mode == "lines" and first_time and (step > 0 or done == 0):
            shown = f"{phase} {percent}%" if phase in _MEASURED_PHASES else phase
            self._write(f"{target}: {shown}\n")

    def finish(self, result: DeviceResult) -> None:
        word = {"OK": "OK", "WRITTEN": "written"}.get(result.status, "FAILED")
        with self.lock:
            self.lines[result.target] = word
        if self.mode == "lines":
            self._write(f"{result.target}: {word}\n")

    def _tick(self) -> None:
        while not self.stop.wait(_REDRAW_SECONDS):
            self._redraw()

    def _redraw(self) -> None:
        with self.lock:
            text = "".join(f"\r\x1b[2K{p}: {self.lines[p]}\n" for p in self.order)
        self._write(f"\x1b[{len(self.order)}A{text}")

    def _write(self, text: str) -> None:
        if self.mode == "quiet":
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not stop a flash


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
