"""Write one image to many targets in parallel, then read each back and check its digest.

What a caller may rely on:

- `check_image` proves the image file is the one the manifest describes
  (size and sha256) before anything is written; a mismatch is an `InputError`.
- `flash_targets` returns one `DeviceResult` per target, in the order given.
  A target that fails (an exception, a short write, ENOSPC, a read-back that
  differs) is reported as such; the others carry on.
- The read-back covers exactly `expected.size` bytes and is compared with the
  manifest's sha256, not with the image file, so an image that changed while
  it was being written is caught too. With a `Patch` (the release log's proof
  slot, written over the image's zeros), it is compared with the sha256 of the
  manifest's image with the patch, which `check_image` computes in the same pass.
- Memory is bounded: each worker holds one `BLOCK_SIZE` buffer.

How the read-back reaches the medium: block devices are written and read with
O_DIRECT (page cache bypassed both ways), fsync'ed (which also flushes the
device's write cache) and opened O_EXCL, so the kernel refuses a device that
is mounted or held by device-mapper. Regular files are written through the page
cache, fsync'ed, and then `posix_fadvise(DONTNEED)` drops their now-clean pages
so the read-back comes from the file system's storage where the kernel can
manage it (on tmpfs the page cache *is* the storage).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from builder.build.manifest import Manifest, PartitionInfo
from builder.core.canonical import sha256_file
from builder.core.errors import InputError
from builder.station.devices import Target

BLOCK_SIZE = 8 * 1024 * 1024
# O_DIRECT wants buffer, offset and length aligned to the logical block size;
# 4096 covers 512-byte and 4Kn devices alike.
DIRECT_ALIGNMENT = 4096

Status = Literal["OK", "FAILED", "WRITE_ERROR", "WRITTEN"]


@dataclass(frozen=True)
class Patch:
    """Bytes every target gets at `offset` instead of the image's own."""

    offset: int
    data: bytes

    def apply(self, view: memoryview, offset: int) -> None:
        """Write the part of the patch that falls in `view` (image bytes from `offset`)."""
        start = max(self.offset, offset)
        end = min(self.offset + len(self.data), offset + len(view))
        if start < end:
            view[start - offset : end - offset] = self.data[start - self.offset : end - self.offset]


@dataclass(frozen=True)
class ImageFacts:
    """What the manifest promises about the image: length, digest, partition layout;
    and what goes on the targets: the image, with `patch` written over it if given."""

    size: int
    sha256: str
    partitions: tuple[PartitionInfo, ...] = ()
    patch: Patch | None = None
    written_sha256: str = ""  # of the image with `patch`, as `check_image` computed it

    @classmethod
    def from_manifest(cls, manifest: Manifest, patch: Patch | None = None) -> ImageFacts:
        return cls(manifest.image.size, manifest.image.sha256, manifest.partitions, patch)

    @property
    def target_sha256(self) -> str:
        """The sha256 every target must read back."""
        return self.written_sha256 or self.sha256


@dataclass(frozen=True)
class DeviceResult:
    """The outcome for one target.

    `status` is "OK" (written and read back equal to the manifest), "FAILED"
    (written, but the read-back differs), "WRITE_ERROR" (the write did not
    complete) or "WRITTEN" (written, read-back not requested).
    """

    target: Path
    status: Status
    reason: str = ""
    read_back_sha256: str = ""


class FlashProgress(Protocol):
    """Receives progress from worker threads; must be thread-safe."""

    def update(self, target: Path, phase: str, done: int, total: int) -> None: ...

    def finish(self, result: DeviceResult) -> None: ...


@dataclass(frozen=True)
class FlashHooks:
    """Test seams: called from the worker thread; an exception counts as a write failure."""

    after_chunk: Callable[[Path, int], None] | None = None  # (target, bytes written so far)
    after_write: Callable[[Path], None] | None = None  # written and synced, before read-back


class Cancelled(Exception):
    """The user interrupted the flash; workers stop at the next block."""


def check_image(image: Path, expected: ImageFacts) -> ImageFacts:
    """Raise `InputError` unless `image` has exactly the manifest's size and sha256;
    the facts to write with (`written_sha256` filled in when there is a patch)."""
    try:
        size = image.stat().st_size
    except OSError as exc:
        raise InputError(f"{image}: cannot read the image: {exc.strerror}") from exc
    if size != expected.size:
        raise InputError(
            f"{image}: {size} bytes, but the manifest says image.size is {expected.size}; "
            "refusing to write an image that is not the one the manifest describes"
        )
    patch = expected.patch
    if patch is not None and not 0 <= patch.offset <= patch.offset + len(patch.data) <= size:
        raise ValueError(f"a patch at byte {patch.offset} does not fit the image")
    actual, written = _digests(image, patch)
    if actual != expected.sha256:
        raise InputError(
            f"{image}: sha256 {actual} does not match the manifest's image.sha256 "
            f"{expected.sha256}; refusing to write it"
        )
    return replace(expected, written_sha256=written if patch is not None else "")


def _digests(image: Path, patch: Patch | None) -> tuple[str, str]:
    """sha256 of the image file, and of the image with `patch` written over it."""
    if patch is None:
        actual = sha256_file(image)
        return actual, actual
    plain, patched = hashlib.sha256(), hashlib.sha256()
    buffer = bytearray(BLOCK_SIZE)
    view = memoryview(buffer)
    offset = 0
    with open(image, "rb", buffering=0) as source:
        while got := source.readinto(view):
            plain.update(view[:got])
            patch.apply(view[:got], offset)
            patched.update(view[:got])
            offset += got
    return plain.hexdigest(), patched.hexdigest()


def flash_targets(
    image: Path,
    targets: Sequence[Target],
    expected: ImageFacts,
    *,
    verify: bool = True,
    jobs: int | None = None,
    exclusive: bool = True,
    progress: FlashProgress | None = None,
    hooks: FlashHooks | None = None,
) -> list[DeviceResult]:
    """Write `image` to every target (at most `jobs` at once), read back if `verify`.

    `exclusive` opens block devices O_EXCL (`--force` turns it off). Call
    `check_image` first. On KeyboardInterrupt the workers stop at the next
    block and the interrupt is re-raised.
    """
    if not targets:
        return []
    workers = max(1, min(jobs or len(targets), len(targets)))
    pending: queue.Queue[int] = queue.Queue()
    for index in range(len(targets)):
        pending.put(index)
    results: list[DeviceResult | None] = [None] * len(targets)
    stop = threading.Event()
    job = _Job(image, expected, verify, exclusive, progress, hooks or FlashHooks(), stop)

    def work() -> None:
        buffer = mmap.mmap(-1, BLOCK_SIZE)  # page-aligned, as O_DIRECT needs
        try:
            while not stop.is_set():
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                result = job.run(targets[index], buffer)
                results[index] = result
                if progress is not None:
                    progress.finish(result)
        finally:
            buffer.close()

    threads = [
        threading.Thread(target=work, name=f"flash-{n}", daemon=True) for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # a timed join lets Ctrl-C reach the main thread
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class _Job:
    image: Path
    expected: ImageFacts
    verify: bool
    exclusive: bool
    progress: FlashProgress | None
    hooks: FlashHooks
    stop: threading.Event

    def run(self, target: Target, buffer: mmap.mmap) -> DeviceResult:
        try:
            fd = self._open(target)
        except OSError as exc:
            hint = " - mounted or held by another program?" if exc.errno == errno.EBUSY else ""
            return DeviceResult(target.path, "WRITE_ERROR", f"cannot open: {_why(exc)}{hint}")
        try:
            try:
                self._write(fd, target, buffer)
            except (OSError, InputError) as exc:
                return DeviceResult(target.path, "WRITE_ERROR", _why(exc))
            except Cancelled:
                return DeviceResult(target.path, "WRITE_ERROR", "interrupted")
            except Exception as exc:  # a failing hook or device quirk: report, keep others going
                return DeviceResult(target.path, "WRITE_ERROR", f"{type(exc).__name__}: {exc}")
            if not self.verify:
                return DeviceResult(target.path, "WRITTEN", "not read back (--no-verify)")
            try:
                return self._read_back(fd, target, buffer)
            except OSError as exc:
                return DeviceResult(target.path, "FAILED", f"read-back failed: {_why(exc)}")
            except Cancelled:
                return DeviceResult(target.path, "FAILED", "read-back interrupted")
        finally:
            os.close(fd)

    def _open(self, target: Target) -> int:
        flags = os.O_RDWR | os.O_CLOEXEC
        if target.kind == "block":
            flags |= os.O_DIRECT
            if self.exclusive:
                flags |= os.O_EXCL  # on a block device: EBUSY if mounted or held
        else:
            flags |= os.O_CREAT
        try:
            return os.open(target.path, flags, 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not flags & os.O_DIRECT:
                raise
            # Not every file system does O_DIRECT; DONTNEED before read-back still applies.
            return os.open(target.path, flags & ~os.O_DIRECT, 0o644)

    def _report(self, target: Target, phase: str, done: int) -> None:
        if self.progress is not None:
            self.progress.update(target.path, phase, done, self.expected.size)

    def _write(self, fd: int, target: Target, buffer: mmap.mmap) -> None:
        size = self.expected.size
        view = memoryview(buffer)
        direct = _is_direct(fd)
        with open(self.image, "rb", buffering=0) as source:
            offset = 0
            self._report(target, "writing", 0)
            while offset < size:
                if self.stop.is_set():
                    raise Cancelled
                want = min(BLOCK_SIZE, size - offset)
                _read_exactly(source, view[:want], self.image)
                if self.expected.patch is not None:
                    self.expected.patch.apply(view[:want], offset)
                if direct and want % DIRECT_ALIGNMENT:
                    direct = _set_direct(fd, False)
                direct = _write_all(fd, view[:want], offset, direct)
                offset += want
                if self.hooks.after_chunk is not None:
                    self.hooks.after_chunk(target.path, offset)
                self._report(target, "writing", offset)
        if target.kind == "file":
            os.ftruncate(fd, size)  # a file target ends up exactly the image
        self._report(target, "syncing", size)
        os.fsync(fd)
        if self.hooks.after_write is not None:
            self.hooks.after_write(target.path)

    def _read_back(self, fd: int, target: Target, buffer: mmap.mmap) -> DeviceResult:
        size = self.expected.size
        os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)
        direct = target.kind == "block" and _set_direct(fd, True)
        view = memoryview(buffer)
        digest = hashlib.sha256()
        offset = 0
        self._report(target, "verifying", 0)
        while offset < size:
            if self.stop.is_set():
                raise Cancelled
            want = min(BLOCK_SIZE, size - offset)
            if direct and want % DIRECT_ALIGNMENT:
                direct = _set_direct(fd, False)
            got = os.preadv(fd, [view[:want]], offset)
            if got == 0:
                return DeviceResult(
                    target.path,
                    "FAILED",
                    f"target ends after {offset} bytes, the image has {size}",
                )
            digest.update(view[:got])
            offset += got
            self._report(target, "verifying", offset)
        actual = digest.hexdigest()
        wanted = self.expected.target_sha256
        if actual == wanted:
            return DeviceResult(target.path, "OK", "", actual)
        where = self._first_difference(fd, buffer)
        expected = (
            f"the {wanted} expected (the manifest's image with the proof slot written)"
            if self.expected.patch is not None
            else f"the manifest's {wanted}"
        )
        return DeviceResult(
            target.path,
            "FAILED",
            f"read-back sha256 {actual} differs from {expected}" + (f"; {where}" if where else ""),
            actual,
        )

    def _first_difference(self, fd: int, buffer: mmap.mmap) -> str:
        """Where the target first differs from the image, named by partition (a diagnostic)."""
        _set_direct(fd, False)
        half = BLOCK_SIZE // 2
        view = memoryview(buffer)
        with open(self.image, "rb", buffering=0) as source:
            offset = 0
            while offset < self.expected.size:
                want = min(half, self.expected.size - offset)
                got = source.readinto(view[:want]) or 0
                if self.expected.patch is not None:
                    self.expected.patch.apply(view[:got], offset)
                if os.preadv(fd, [view[half : half + got]], offset) != got:
                    return ""
                if view[:got] != view[half : half + got]:
                    first = _first_unequal(view[:got], view[half : half + got])
                    return _locate(offset + first, self.expected.partitions)
                offset += got
                if got < want:
                    return ""
        return "the image file itself no longer matches the manifest"


def _first_unequal(left: memoryview, right: memoryview) -> int:
    page = 4096  # compare whole pages at C speed, bytes only inside the first unequal one
    start = next(i for i in range(0, len(left), page) if left[i : i + page] != right[i : i + page])
    return next(i for i in range(start, len(left)) if left[i] != right[i])


def _locate(offset: int, partitions: Sequence[PartitionInfo]) -> str:
    for part in partitions:
        if part.offset <= offset < part.offset + part.size:
            return f"first difference at byte {offset} (partition {part.name!r})"
    return f"first difference at byte {offset} (outside the partitions: GPT or padding)"


def _read_exactly(source: _Readable, view: memoryview, image: Path) -> None:
    filled = 0
    while filled < len(view):
        got = source.readinto(view[filled:])
        if not got:
            raise InputError(f"{image}: ended early; the image changed while it was written")
        filled += got


class _Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _write_all(fd: int, view: memoryview, offset: int, direct: bool) -> bool:
    """Write all of `view` at `offset`; return whether O_DIRECT is still on."""
    done = 0
    while done < len(view):
        written = os.pwrite(fd, view[done:], offset + done)
        if written <= 0:
            raise OSError(errno.ENOSPC, f"no room after {offset + done} bytes")
        done += written
        if done < len(view) and direct:
            # A short O_DIRECT write leaves an unaligned remainder: finish it buffered.
            direct = _set_direct(fd, False)
    return direct


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def _set_direct(fd: int, enabled: bool) -> bool:
    """Switch O_DIRECT on an open descriptor; return whether it is now on."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    wanted = flags | os.O_DIRECT if enabled else flags & ~os.O_DIRECT
    if wanted != flags:
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, wanted)
        except OSError:
            return False  # the file system does not do O_DIRECT: stay buffered
    if not enabled:
        # Whatever O_DIRECT skipped must not be served stale from the cache.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return enabled


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        name = errno.errorcode.get(exc.errno or 0, "")
        return f"{exc.strerror} ({name})" if name else exc.strerror
    if isinstance(exc, InputError):
        return exc.message
    return str(exc)
