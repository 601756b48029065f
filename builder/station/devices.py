"""Is it safe to write an image to this target? Device classification for `flash`.

A target is either a regular file (allowed, created if missing) or a block
device. For a block device we find, from sysfs, its disk, its partitions and
whatever is stacked on top of it (device-mapper, md: the `holders`), and we
refuse it when any of those is mounted or used as swap, when it is (on) the
disk that holds `/`, `/boot`, `/usr` or swap, when it is read-only, or when it
is smaller than the image. `--force` overrides those refusals; nothing
overrides a target that is neither a file nor a block device.

Everything the checks read from the host (mountinfo, swaps, sysfs, which path
is which device number) comes through `HostView`, so tests describe a fake
machine with plain text and a directory tree instead of real disks.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from builder.core.errors import InputError

SECTOR = 512  # sysfs `size` is always counted in 512-byte sectors
SYSTEM_MOUNT_POINTS = ("/", "/boot", "/boot/efi", "/efi", "/usr")


def real_block_device_number(path: Path) -> str | None:
    """ "MAJOR:MINOR" when `path` is (a symlink to) a block device, else None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(info.st_mode):
        return None
    return f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class HostView:
    """What the safety checks may look at on the machine; tests inject a fake one."""

    mountinfo: str
    swaps: str
    sysfs: Path = Path("/sys")
    block_device_number: Callable[[Path], str | None] = real_block_device_number

    @classmethod
    def current(cls) -> HostView:
        return cls(
            mountinfo=_read_text(Path("/proc/self/mountinfo")),
            swaps=_read_text(Path("/proc/swaps")),
        )


@dataclass(frozen=True)
class Mount:
    device: str  # "MAJOR:MINOR" as the kernel reports it (0:N for btrfs, overlay, ...)
    mount_point: str
    source: str  # e.g. "/dev/sda1", or "overlay", "tmpfs"


def _unescape(text: str) -> str:
    # mountinfo and /proc/swaps escape space, tab, newline and backslash as octal.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(escaped, plain)
    return text


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts in /proc/self/mountinfo text; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3:
            continue
        mounts.append(
            Mount(
                device=fields[2],
                mount_point=_unescape(fields[4]),
                source=_unescape(fields[separator + 2]),
            )
        )
    return mounts


def parse_swaps(text: str) -> list[str]:
    """Paths of swap devices and files listed in /proc/swaps text."""
    lines = text.splitlines()[1:]  # the first line is the column header
    return [_unescape(line.split()[0]) for line in lines if line.split()]


@dataclass(frozen=True)
class BlockNode:
    """One block device as sysfs describes it."""

    name: str  # kernel name: "sdb", "sdb1", "dm-0"
    device: str  # "MAJOR:MINOR"
    sysdir: Path
    is_partition: bool


@dataclass(frozen=True)
class Target:
    """A place to write the image, as inspected before anything is written."""

    path: Path
    kind: Literal["file", "block"]
    size: int | None = None  # bytes; None for a file that does not exist yet
    read_only: bool = False
    name: str = ""  # kernel name of a block device
    disk: str = ""  # kernel name of its whole disk
    description: str = ""  # model, vendor, removable: what the user sees to confirm
    # (device number, kernel name) of itself, its partitions and what is stacked on them
    related: tuple[tuple[str, str], ...] = field(default=())
    # (kernel name, name of what is stacked on it: LVM, dm-crypt, md RAID)
    held_by: tuple[tuple[str, str], ...] = field(default=())


class _Sysfs:
    def __init__(self, host: HostView) -> None:
        self.root = host.sysfs

    def node(self, device: str) -> BlockNode | None:
        link = self.root / "dev" / "block" / device
        if not link.exists():
            return None
        sysdir = link.resolve()
        return BlockNode(
            name=sysdir.name,
            device=device,
            sysdir=sysdir,
            is_partition=(sysdir / "partition").exists(),
        )

    def node_by_name(self, name: str) -> BlockNode | None:
        device = _read_text(self.root / "class" / "block" / name / "dev").strip()
        if not device:
            device = _read_text(self.root / "block" / name / "dev").strip()
        return self.node(device) if device else None

    def disk_of(self, node: BlockNode) -> BlockNode:
        if not node.is_partition:
            return node
        device = _read_text(node.sysdir.parent / "dev").strip()
        parent = self.node(device) if device else None
        return parent or BlockNode(node.sysdir.parent.name, device, node.sysdir.parent, False)

    def partitions(self, disk: BlockNode) -> list[BlockNode]:
        found = []
        for child in sorted(disk.sysdir.iterdir()):
            if (child / "partition").exists():
                device = _read_text(child / "dev").strip()
                found.append(BlockNode(child.name, device, child, True))
        return found

    def stacked(self, node: BlockNode, kind: Literal["holders", "slaves"]) -> list[BlockNode]:
        """Transitively, the devices on top of (`holders`) or under (`slaves`) `node`."""
        seen: dict[str, BlockNode] = {}
        todo = [node]
        while todo:
            current = todo.pop()
            folder = current.sysdir / kind
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                other = self.node_by_name(entry.name)
                if other is not None and other.name not in seen:
                    seen[other.name] = other
                    todo.append(other)
        return list(seen.values())

    def disks_under(self, node: BlockNode) -> set[str]:
        """Whole disks that hold `node`, looking through device-mapper and md."""
        lower = [node, *self.stacked(node, "slaves")]
        return {self.disk_of(n).name for n in lower if not self.has_any(n, "slaves")}

    def has_any(self, node: BlockNode, kind: Literal["holders", "slaves"]) -> bool:
        folder = node.sysdir / kind
        return folder.is_dir() and any(folder.iterdir())

    def flag(self, node: BlockNode, name: str) -> bool:
        return _read_text(node.sysdir / name).strip() == "1"

    def size(self, node: BlockNode) -> int | None:
        text = _read_text(node.sysdir / "size").strip()
        return int(text) * SECTOR if text.isdigit() else None


def _device_of_source(host: HostView, source: str) -> str | None:
    return host.block_device_number(Path(source)) if source.startswith("/dev/") else None


def _system_disks(host: HostView, sysfs: _Sysfs) -> dict[str, str]:
    """Disk name -> why it is the system disk (what it holds)."""
    devices: list[tuple[str, str]] = []
    for mount in parse_mountinfo(host.mountinfo):
        if mount.mount_point in SYSTEM_MOUNT_POINTS:
            devices.append((mount.device, mount.mount_point))
            by_source = _device_of_source(host, mount.source)
            if by_source:
                devices.append((by_source, mount.mount_point))
    for swap in parse_swaps(host.swaps):
        by_source = _device_of_source(host, swap)
        if by_source:
            devices.append((by_source, "swap"))
    disks: dict[str, str] = {}
    for device, role in devices:
        node = sysfs.node(device)
        if node is None:
            continue
        for disk in sorted(sysfs.disks_under(node)):
            disks.setdefault(disk, role)
    return disks


def _in_use(host: HostView, related: dict[str, str]) -> list[str]:
    """Why any of `related` (device number -> kernel name) is mounted or swap."""
    names = set(related.values())
    reasons = []
    for mount in parse_mountinfo(host.mountinfo):
        by_source = _device_of_source(host, mount.source)
        if mount.device in related or by_source in related:
            name = related.get(mount.device) or related[by_source or ""]
            reasons.append(f"{name} is mounted on {mount.mount_point}")
        elif mount.source.startswith("/dev/") and Path(mount.source).name in names:
            reasons.append(f"{Path(mount.source).name} is mounted on {mount.mount_point}")
    for swap in parse_swaps(host.swaps):
        device = _device_of_source(host, swap)
        if device in related:
            reasons.append(f"{related[device or '']} is in use as swap")
    return reasons


def _describe(sysfs: _Sysfs, disk: BlockNode, size: int | None) -> str:
    words = []
    for item in ("vendor", "model"):
        text = _read_text(disk.sysdir / "device" / item).strip()
        if text:
            words.append(text)
    if size is not None:
        words.append(f"{size / 2**30:.1f} GiB")
    words.append("removable" if sysfs.flag(disk, "removable") else "not removable")
    return ", ".join(words)


def inspect_target(path: Path, host: HostView) -> Target:
    """Classify `path`; raise `InputError` if it can never be a target (a directory, a tty)."""
    device = host.block_device_number(path)
    if device is None:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            if not path.parent.is_dir():
                raise InputError(f"{path}: directory {path.parent} does not exist") from None
            return Target(path=path, kind="file")
        except OSError as exc:
            raise InputError(f"{path}: cannot inspect: {exc.strerror}") from exc
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: neither a block device nor a regular file")
        return Target(path=path, kind="file", size=info.st_size)
    sysfs = _Sysfs(host)
    node = sysfs.node(device)
    if node is None:
        return Target(path=path, kind="block", name=device, disk=device)
    disk = sysfs.disk_of(node)
    size = sysfs.size(node)
    own = [node] if node.is_partition else [node, *sysfs.partitions(node)]
    related = [*own]
    held_by: list[tuple[str, str]] = []
    for item in own:
        above = sysfs.stacked(item, "holders")
        related.extend(above)
        held_by.extend((item.name, holder.name) for holder in above)
    return Target(
        path=path,
        kind="block",
        size=size,
        read_only=sysfs.flag(node, "ro") or sysfs.flag(disk, "ro"),
        name=node.name,
        disk=disk.name,
        description=_describe(sysfs, disk, size),
        related=tuple((n.device, n.name) for n in related),
        held_by=tuple(held_by),
    )


def refusal_reasons(target: Target, image_size: int, host: HostView) -> list[str]:
    """Why writing `image_size` bytes to `target` looks unsafe; empty when it looks fine.

    Each reason can be overridden with `--force`; a file target is only
    refused when it cannot be written.
    """
    if target.kind == "file":
        if target.size is not None and not os.access(target.path, os.W_OK):
            return ["the file is not writable"]
        return []
    if not target.related:
        return [f"block device {target.name} is not in sysfs, so it cannot be checked"]
    reasons: list[str] = []
    related = dict(target.related)
    reasons.extend(_in_use(host, related))
    # Kernel users that mount nothing (an open LUKS volume, an LVM or RAID member) count too.
    reasons.extend(f"{name} is in use by {holder}" for name, holder in target.held_by)
    sysfs = _Sysfs(host)
    system = _system_disks(host, sysfs)
    if target.disk in system:
        where = "is" if target.disk == target.name else f"is on disk {target.disk}, which is"
        reasons.append(f"{target.name} {where} the system disk (it holds {system[target.disk]})")
    if target.read_only:
        reasons.append(f"{target.name} is read-only")
    if target.size is None:
        reasons.append(f"the size of {target.name} is unknown")
    elif target.size < image_size:
        reasons.append(
            f"{target.name} holds {target.size} bytes, smaller than the image ({image_size} bytes)"
        )
    return _unique(reasons)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
