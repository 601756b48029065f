"""flash: device safety checks on a fake machine, parallel writes and read-back to files."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from manifest_factory import manifest as fake_manifest
from manifest_factory import partition, verity

from builder.cli import main
from builder.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUILD_FAILED,
    EXIT_OK,
    EXIT_VERIFICATION_FAILED,
    InputError,
)
from builder.station import flash
from builder.station.devices import (
    HostView,
    inspect_target,
    parse_mountinfo,
    parse_swaps,
    refusal_reasons,
)
from builder.station.flash import DeviceResult, FlashHooks, ImageFacts, check_image, flash_targets
from builder.station.write_keys import default_manifest, write_keys

GIB = 2**30
# Not a multiple of 4096 or of the test block size: exercises the unaligned tail.
IMAGE_SIZE = 5 * 65536 + 1536
ESP_OFFSET = 65536


def _mountinfo_line(number: int, device: str, mount_point: str, source: str, fstype: str) -> str:
    escaped = mount_point.replace(" ", "\\040")  # as the kernel writes it
    return f"{number} 1 {device} / {escaped} rw,relatime shared:1 - {fstype} {source} rw"


@dataclass
class FakeMachine:
    """A machine described by text and a sysfs-shaped directory tree."""

    sysfs: Path
    mounts: list[str] = field(default_factory=list)
    swaps: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)  # /dev path -> MAJOR:MINOR

    def _node(self, folder: Path, name: str, device: str) -> None:
        folder.mkdir(parents=True)
        (folder / "dev").write_text(device + "\n")
        (folder / "holders").mkdir()
        (folder / "slaves").mkdir()
        for link_dir in (self.sysfs / "dev" / "block", self.sysfs / "class" / "block"):
            link_dir.mkdir(parents=True, exist_ok=True)
        (self.sysfs / "dev" / "block" / device).symlink_to(folder)
        (self.sysfs / "class" / "block" / name).symlink_to(folder)
        self.nodes[f"/dev/{name}"] = device

    def disk(
        self,
        name: str,
        major: int,
        size: int = 16 * GIB,
        partitions: int = 0,
        read_only: bool = False,
        removable: bool = True,
        model: str = "Cruzer Blade",
    ) -> None:
        folder = self.sysfs / "devices" / "usb" / "block" / name
        self._node(folder, name, f"{major}:0")
        (folder / "size").write_text(f"{size // 512}\n")
        (folder / "ro").write_text("1\n" if read_only else "0\n")
        (folder / "removable").write_text("1\n" if removable else "0\n")
        (folder / "device").mkdir()
        (folder / "device" / "vendor").write_text("SanDisk \n")
        (folder / "device" / "model").write_text(model + "\n")
        for number in range(1, partitions + 1):
            part = folder / f"{name}{number}"
            self._node(part, f"{name}{number}", f"{major}:{number}")
            (part / "partition").write_text(f"{number}\n")
            (part / "size").write_text(f"{size // 512 // (partitions + 1)}\n")
            (part / "ro").write_text("1\n" if read_only else "0\n")

    def mapper(self, name: str, device: str, below: str) -> None:
        """A device-mapper node stacked on the partition `below`."""
        folder = self.sysfs / "devices" / "virtual" / "block" / name
        self._node(folder, name, device)
        (folder / "size").write_text("1000\n")
        (folder / "slaves" / below).symlink_to(self.sysfs / "class" / "block" / below)
        (self.sysfs / "class" / "block" / below / "holders" / name).symlink_to(folder)

    def mount(self, device: str, mount_point: str, source: str, fstype: str = "ext4") -> None:
        number = len(self.mounts) + 20
        self.mounts.append(_mountinfo_line(number, device, mount_point, source, fstype))

    def swap(self, path: str) -> None:
        self.swaps.append(f"{path}\tpartition\t1048572\t0\t-2")

    def host(self) -> HostView:
        nodes = dict(self.nodes)
        return HostView(
            mountinfo="\n".join(self.mounts) + "\n",
            swaps="Filename\tType\tSize\tUsed\tPriority\n" + "\n".join(self.swaps),
            sysfs=self.sysfs,
            block_device_number=lambda path: nodes.get(str(path)),
        )


@pytest.fixture
def machine(tmp_path: Path) -> FakeMachine:
    """A laptop: system disk sda (/ on sda2, /boot/efi on sda1) and a USB key sdb."""
    fake = FakeMachine(tmp_path / "sys")
    fake.disk("sda", 8, size=500 * GIB, partitions=3, removable=False, model="SSD 860")
    fake.disk("sdb", 16, partitions=2)
    fake.mount("0:1", "/proc", "proc", "proc")
    fake.mount("8:2", "/", "/dev/sda2")
    fake.mount("8:1", "/boot/efi", "/dev/sda1", "vfat")
    return fake


def reasons(machine: FakeMachine, device: str, image_size: int = GIB) -> list[str]:
    host = machine.host()
    return refusal_reasons(inspect_target(Path(device), host), image_size, host)


def test_a_clean_usb_key_is_accepted_and_described(machine: FakeMachine) -> None:
    target = inspect_target(Path("/dev/sdb"), machine.host())
    assert target.kind == "block"
    assert (target.name, target.disk, target.size) == ("sdb", "sdb", 16 * GIB)
    assert target.description == "SanDisk, Cruzer Blade, 16.0 GiB, removable"
    assert reasons(machine, "/dev/sdb") == []


def test_a_disk_with_a_mounted_partition_is_refused(machine: FakeMachine) -> None:
    machine.mount("16:1", "/media/usb key", "/dev/sdb1", "vfat")
    assert reasons(machine, "/dev/sdb") == ["sdb1 is mounted on /media/usb key"]
    # The other partition of the same key is not in use.
    assert reasons(machine, "/dev/sdb2", image_size=1024) == []


def test_a_mount_with_an_anonymous_device_is_matched_by_source(machine: FakeMachine) -> None:
    machine.mount("0:45", "/srv", "/dev/sdb2", "btrfs")
    assert reasons(machine, "/dev/sdb") == ["sdb2 is mounted on /srv"]


def test_a_mount_through_device_mapper_is_found(machine: FakeMachine) -> None:
    machine.mapper("dm-3", "254:3", below="sdb1")
    machine.mount("254:3", "/mnt/secret", "/dev/mapper/secret")
    assert reasons(machine, "/dev/sdb") == [
        "dm-3 is mounted on /mnt/secret",
        "sdb1 is in use by dm-3",
    ]


def test_a_device_held_by_device_mapper_is_refused_even_unmounted(machine: FakeMachine) -> None:
    machine.mapper("dm-4", "254:4", below="sdb2")
    assert reasons(machine, "/dev/sdb") == ["sdb2 is in use by dm-4"]
    assert reasons(machine, "/dev/sdb1", image_size=1024) == []


def test_a_swap_partition_is_refused_and_marks_the_system_disk(machine: FakeMachine) -> None:
    machine.swap("/dev/sdb2")
    assert reasons(machine, "/dev/sdb") == [
        "sdb2 is in use as swap",
        "sdb is the system disk (it holds swap)",
    ]


def test_the_system_disk_and_its_partitions_are_refused(machine: FakeMachine) -> None:
    assert reasons(machine, "/dev/sda") == [
        "sda2 is mounted on /",
        "sda1 is mounted on /boot/efi",
        "sda is the system disk (it holds /)",
    ]
    assert reasons(machine, "/dev/sda3") == [
        "sda3 is on disk sda, which is the system disk (it holds /)"
    ]


def test_a_root_on_device_mapper_marks_the_disk_below(tmp_path: Path) -> None:
    fake = FakeMachine(tmp_path / "sys")
    fake.disk("nvme0n1", 259, size=500 * GIB, partitions=2, removable=False)
    fake.mapper("dm-0", "254:0", below="nvme0n12")
    fake.mount("254:0", "/", "/dev/mapper/root")
    assert reasons(fake, "/dev/nvme0n1") == [
        "dm-0 is mounted on /",
        "nvme0n12 is in use by dm-0",
        "nvme0n1 is the system disk (it holds /)",
    ]


def test_a_read_only_device_is_refused(machine: FakeMachine) -> None:
    machine.disk("sdc", 32, read_only=True)
    assert reasons(machine, "/dev/sdc") == ["sdc is read-only"]


def test_a_device_smaller_than_the_image_is_refused(machine: FakeMachine) -> None:
    machine.disk("sdc", 32, size=512 * 2**20)
    assert reasons(machine, "/dev/sdc", image_size=GIB) == [
        f"sdc holds {512 * 2**20} bytes, smaller than the image ({GIB} bytes)"
    ]


def test_a_block_device_missing_from_sysfs_is_refused(machine: FakeMachine) -> None:
    machine.nodes["/dev/sdz"] = "65:0"
    assert reasons(machine, "/dev/sdz") == [
        "block device 65:0 is not in sysfs, so it cannot be checked"
    ]


def test_files_are_targets_and_other_things_are_not(tmp_path: Path) -> None:
    host = HostView(mountinfo="", swaps="", sysfs=tmp_path / "sys")
    new = inspect_target(tmp_path / "new.img", host)
    assert (new.kind, new.size) == ("file", None)
    assert refusal_reasons(new, GIB, host) == []
    with pytest.raises(InputError, match="neither a block device nor a regular file"):
        inspect_target(tmp_path, host)
    with pytest.raises(InputError, match="does not exist"):
        inspect_target(tmp_path / "missing" / "key.img", host)


def test_mountinfo_and_swaps_parsing() -> None:
    mounts = parse_mountinfo(
        "36 35 98:0 /mnt1 /mnt/my\\040key rw,noatime master:1 - ext3 /dev/root rw\n"
        "garbage\n"
        "37 35 0:5 / /run rw - tmpfs tmpfs rw\n"
    )
    assert [(m.device, m.mount_point, m.source) for m in mounts] == [
        ("98:0", "/mnt/my key", "/dev/root"),
        ("0:5", "/run", "tmpfs"),
    ]
    swaps = "Filename\tType\tSize\tUsed\tPriority\n/dev/sda3 partition 8 0 -2\n/swap\\040file file 8 0 -3\n"
    assert parse_swaps(swaps) == ["/dev/sda3", "/swap file"]


def _image_bytes(size: int = IMAGE_SIZE) -> bytes:
    blocks = (hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def _write_image(folder: Path, data: bytes) -> tuple[Path, Path]:
    image = folder / "booth.img"
    image.write_bytes(data)
    zero = "0" * 64
    manifest = fake_manifest(
        name="booth",
        version="1",
        epoch=0,
        image_size=len(data),
        image_sha256=hashlib.sha256(data).hexdigest(),
        partitions=[
            partition("esp", ESP_OFFSET, 65536, zero, type="t", uuid="u"),
            partition("root", 2 * 65536, 2 * 65536, zero, type="t", uuid="u"),
        ],
        uki_sha256=zero,
        cmdline="quiet",
        verity_info=verity(zero, zero, 1),
    )
    manifest_path = default_manifest(image)
    manifest_path.write_text(json.dumps(manifest))
    return image, manifest_path


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several blocks per test image, so chunking and tails are exercised."""
    monkeypatch.setattr(flash, "BLOCK_SIZE", 65536)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return _write_image(tmp_path, _image_bytes())[0]


def _facts(image: Path) -> ImageFacts:
    data = image.read_bytes()
    return ImageFacts(len(data), hashlib.sha256(data).hexdigest())


def _run(image: Path, targets: list[Path], **options: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    host = HostView(mountinfo="", swaps="", sysfs=image.parent / "no-sysfs")
    code = write_keys(
        image,
        targets,
        out=out,
        err=err,
        progress_mode="lines",
        host=host,
        **options,  # type: ignore[arg-type]
    )
    return code, out.getvalue(), err.getvalue()


def test_an_image_is_written_to_several_files_in_parallel(tmp_path: Path, image: Path) -> None:
    targets = [tmp_path / f"key{n}.img" for n in range(4)]
    targets[0].write_bytes(b"\xff" * (IMAGE_SIZE * 2))  # an old, larger file: cut to the image
    code, out, err = _run(image, targets, jobs=3)
    assert code == EXIT_OK
    for target in targets:
        assert target.read_bytes() == image.read_bytes()
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    assert out.splitlines() == [f"{t}: OK (read back sha256 {sha})" for t in targets] + [
        "4 of 4 targets verified"
    ]
    assert f"{targets[2]}: writing 0%" in err
    assert f"{targets[2]}: verifying 100%" in err
    assert f"{targets[2]}: OK" in err


def test_read_back_catches_a_corrupted_target(tmp_path: Path, image: Path) -> None:
    good, bad = tmp_path / "good.img", tmp_path / "bad.img"

    def corrupt(target: Path) -> None:
        if target == bad:
            with open(target, "r+b") as stream:
                stream.seek(ESP_OFFSET + 100)
                byte = stream.read(1)
                stream.seek(ESP_OFFSET + 100)
                stream.write(bytes([byte[0] ^ 1]))

    code, out, _err = _run(image, [good, bad], hooks=FlashHooks(after_write=corrupt))
    assert code == EXIT_VERIFICATION_FAILED
    lines = out.splitlines()
    assert lines[0].startswith(f"{good}: OK")
    assert lines[1].startswith(f"{bad}: FAILED verification: read-back sha256 ")
    assert lines[1].endswith(f"first difference at byte {ESP_OFFSET + 100} (partition 'esp')")
    assert lines[2] == "1 of 2 targets verified"


def test_an_interrupted_write_is_reported_and_the_others_finish(
    tmp_path: Path, image: Path
) -> None:
    targets = [tmp_path / "a.img", tmp_path / "full.img", tmp_path / "c.img"]

    def fill_up(target: Path, written: int) -> None:
        if target == targets[1] and written >= 2 * 65536:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    code, out, _err = _run(image, targets, hooks=FlashHooks(after_chunk=fill_up))
    assert code == EXIT_BUILD_FAILED
    assert out.splitlines()[1] == (
        f"{targets[1]}: FAILED to write: No space left on device (ENOSPC)"
    )
    assert targets[0].read_bytes() == targets[2].read_bytes() == image.read_bytes()


def test_a_failing_hook_of_any_kind_is_a_write_error(tmp_path: Path, image: Path) -> None:
    def explode(target: Path, written: int) -> None:
        raise RuntimeError("cable pulled")

    results = flash_targets(
        image,
        [inspect_target(tmp_path / "a.img", HostView("", ""))],
        _facts(image),
        hooks=FlashHooks(after_chunk=explode),
    )
    assert results == [
        DeviceResult(tmp_path / "a.img", "WRITE_ERROR", "RuntimeError: cable pulled")
    ]


def test_a_target_that_cannot_be_opened_is_a_write_error(tmp_path: Path, image: Path) -> None:
    target = inspect_target(tmp_path / "key.img", HostView("", ""))
    (tmp_path / "key.img").mkdir()  # replaced between the checks and the write
    [result] = flash_targets(image, [target], _facts(image))
    assert result == DeviceResult(
        target.path, "WRITE_ERROR", "cannot open: Is a directory (EISDIR)"
    )


def test_an_image_that_does_not_match_its_manifest_is_refused(tmp_path: Path, image: Path) -> None:
    with open(image, "r+b") as stream:
        stream.seek(1000)
        stream.write(b"X")
    target = tmp_path / "key.img"
    with pytest.raises(InputError, match=r"does not match the manifest's image\.sha256"):
        _run(image, [target])
    assert not target.exists()
    with open(image, "ab") as stream:
        stream.write(b"more")
    with pytest.raises(InputError, match="refusing to write an image that is not the one"):
        check_image(image, ImageFacts(IMAGE_SIZE, "0" * 64))


def test_without_verify_targets_are_only_written(tmp_path: Path, image: Path) -> None:
    code, out, _err = _run(image, [tmp_path / "a.img"], verify=False)
    assert code == EXIT_OK
    assert out.splitlines() == [
        f"{tmp_path / 'a.img'}: WRITTEN, not verified",
        "1 of 1 targets written",
    ]


def test_unsafe_targets_refuse_the_whole_run(tmp_path: Path, machine: FakeMachine) -> None:
    image, _manifest = _write_image(tmp_path, _image_bytes())
    machine.mount("16:1", "/media/key", "/dev/sdb1")
    safe = tmp_path / "safe.img"
    err = io.StringIO()
    with pytest.raises(InputError) as caught:
        write_keys(image, [safe, Path("/dev/sdb"), Path("/dev/sda")], host=machine.host(), err=err)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert caught.value.message.splitlines() == [
        "/dev/sdb: sdb1 is mounted on /media/key",
        "/dev/sda: sda2 is mounted on /",
        "/dev/sda: sda1 is mounted on /boot/efi",
        "/dev/sda: sda is the system disk (it holds /)",
        "nothing was written; check the targets, or pass --force to override",
    ]
    assert not safe.exists()


def test_force_writes_to_a_device_that_looks_unsafe(tmp_path: Path) -> None:
    """A file posing as a mounted block device: --force writes it, O_DIRECT path included."""
    image, _manifest = _write_image(tmp_path, _image_bytes())
    fake = FakeMachine(tmp_path / "sys")
    fake.disk("sdb", 16, partitions=1)
    fake.mount("16:1", "/media/key", "/dev/sdb1")
    device = tmp_path / "sdb"
    device.write_bytes(bytes(IMAGE_SIZE + 4096))
    fake.nodes[str(device)] = "16:0"
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(InputError, match="sdb1 is mounted on /media/key"):
        write_keys(image, [device], host=fake.host(), out=out, err=err)
    assert device.read_bytes() == bytes(IMAGE_SIZE + 4096)
    code = write_keys(
        image, [device], host=fake.host(), force=True, out=out, err=err, progress_mode="quiet"
    )
    assert code == EXIT_OK
    assert f"warning (--force): {device}: sdb1 is mounted on /media/key" in err.getvalue()
    # A device is not truncated: the image is written over its start.
    assert device.read_bytes() == image.read_bytes() + bytes(4096)


def test_targets_given_twice_or_naming_the_image_are_refused(tmp_path: Path, image: Path) -> None:
    target = tmp_path / "a.img"
    with pytest.raises(InputError) as caught:
        _run(image, [target, tmp_path / "." / "a.img", image], force=True)
    assert caught.value.message.splitlines() == [
        f"{tmp_path / '.' / 'a.img'}: given twice (also as {target})",
        f"{image}: is the image or its manifest, not a place to write to",
        "nothing was written; check the targets",
    ]


def test_the_command_line(tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "key.img"
    manifest = default_manifest(image)
    assert manifest.name == "booth.manifest.json"
    assert main(["flash", str(image), str(target), "--manifest", str(manifest), "--jobs", "2"]) == 0
    assert target.read_bytes() == image.read_bytes()
    assert capsys.readouterr().out.endswith("1 of 1 targets verified\n")
    manifest.unlink()
    assert main(["flash", str(image), str(target)]) == EXIT_BAD_INPUT
    assert "no such manifest (pass --manifest)" in capsys.readouterr().err


def test_a_target_that_reads_back_short_fails_verification(tmp_path: Path, image: Path) -> None:
    target = inspect_target(tmp_path / "key.img", HostView("", ""))

    def shrink(path: Path) -> None:
        os.truncate(path, 3 * 65536)  # a counterfeit key that silently drops what it cannot hold

    [result] = flash_targets(image, [target], _facts(image), hooks=FlashHooks(after_write=shrink))
    assert result.status == "FAILED"
    assert result.reason == f"target ends after {3 * 65536} bytes, the image has {IMAGE_SIZE}"
