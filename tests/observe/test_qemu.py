"""The QEMU harness, and real boots of the hello image: virtio, USB, and a tampered root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from builder.cli import main
from builder.core.errors import InputError
from builder.observe.qemu import OVMF_CODE_SECURE, QemuBoot, qemu_command

MARKER = "BOOTHKEY-HELLO: hello from a verified root"
BOOT_TIMEOUT = 240  # TCG on a busy 2-core CI machine; a boot normally takes 10-20 s


def test_command_virtio_uses_tcg_and_a_snapshot(tmp_path: Path) -> None:
    argv = qemu_command(
        tmp_path / "a.img", tmp_path / "vars.fd", usb=False, secure_boot=False, memory_mib=512
    )
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "q35,accel=tcg" in argv
    assert f"if=none,id=bootkey,format=raw,snapshot=on,file={tmp_path}/a.img" in argv
    assert "virtio-blk-pci,drive=bootkey" in argv
    assert "usb-storage" not in joined
    assert f"file={tmp_path}/vars.fd" in joined
    assert argv[argv.index("-m") + 1] == "512"


def test_command_qmp_touch_and_printer(tmp_path: Path) -> None:
    """One control channel (QMP: keys, touches, screendumps); the USB keyboard and
    touchscreen only when asked; the printer on the second serial port."""
    plain = qemu_command(
        tmp_path / "a.img", tmp_path / "v.fd", usb=False, secure_boot=False, memory_mib=512,
        qmp=tmp_path / "q,mp.sock",
    )  # fmt: skip
    assert plain[plain.index("-qmp") + 1] == f"unix:{tmp_path}/q,,mp.sock,server=on,wait=off"
    assert "-monitor" not in plain and "usb-tablet,bus=hid.0" not in plain
    touch = qemu_command(
        tmp_path / "a.img", tmp_path / "v.fd", usb=False, secure_boot=False, memory_mib=512,
        touch=True, printer=tmp_path / "ballots.pbm",
    )  # fmt: skip
    assert "usb-tablet,bus=hid.0" in touch and "usb-kbd,bus=hid.0" in touch
    assert touch[-4:] == ["-serial", "mon:stdio", "-serial", f"file:{tmp_path}/ballots.pbm"]


def test_command_usb_and_secure_boot(tmp_path: Path) -> None:
    argv = qemu_command(
        tmp_path / "a,b.img", tmp_path / "vars.fd", usb=True, secure_boot=True, memory_mib=1024
    )
    assert "qemu-xhci,id=xhci" in argv
    assert "usb-storage,bus=xhci.0,drive=bootkey" in argv
    assert "virtio-blk-pci,drive=bootkey" not in argv
    assert "q35,accel=tcg,smm=on" in argv
    assert any(str(OVMF_CODE_SECURE) in arg for arg in argv)
    # a comma in a path is doubled, or QEMU would read it as an option separator
    assert any(arg.endswith("file=" + str(tmp_path) + "/a,,b.img") for arg in argv)


def test_command_with_a_printer_keeps_the_console_on_stdio(tmp_path: Path) -> None:
    argv = qemu_command(
        tmp_path / "a.img",
        tmp_path / "vars.fd",
        usb=False,
        secure_boot=False,
        memory_mib=512,
        printer=tmp_path / "ballots,1.pbm",
    )
    serials = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-serial"]
    assert serials == ["mon:stdio", f"file:{tmp_path}/ballots,,1.pbm"]
    plain = qemu_command(
        tmp_path / "a.img", tmp_path / "vars.fd", usb=False, secure_boot=False, memory_mib=512
    )
    assert "-serial" not in plain


def test_missing_image_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such image"), QemuBoot(tmp_path / "x.img", usb=False):
        pass


def partition(manifest: Path, name: str) -> dict[str, int]:
    data = json.loads(manifest.read_text())
    found: dict[str, int] = next(p for p in data["partitions"] if p["name"] == name)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("usb", [False, True], ids=["virtio", "usb"])
def test_hello_boots_from_its_verified_root(
    built_hello_image: tuple[Path, Path], usb: bool
) -> None:
    image, _manifest = built_hello_image
    before = image.read_bytes()
    with QemuBoot(image, usb=usb, timeout=BOOT_TIMEOUT) as vm:
        vm.expect(MARKER)
        vm.expect(r"BOOTHKEY-HELLO-ROOT: overlay overlay ")
        vm.expect(r"BOOTHKEY-HELLO-DEVICE: boothkey-root")
        log = vm.wait_exit(timeout=60)  # the hello init powers off; QEMU exits
    assert "VERITY FAILURE" not in log
    assert "could not load module" not in log
    assert "checking every block" in log
    assert ("/dev/sda2" in log) == usb and ("/dev/vda2" in log) != usb
    assert image.read_bytes() == before  # snapshot=on: the boot wrote nothing back


@pytest.mark.slow
@pytest.mark.parametrize("where", ["first", "last"])
def test_one_flipped_byte_in_the_root_stops_the_boot(
    built_hello_image: tuple[Path, Path], tmp_path: Path, where: str
) -> None:
    image, manifest = built_hello_image
    tampered = tmp_path / "tampered.img"
    shutil.copyfile(image, tampered)
    root = partition(manifest, "root")
    blocks = json.loads(manifest.read_text())["verity"]["data_blocks"]
    # A byte in the first block, or in the last block the hash tree covers.
    offset = root["offset"] + (100 if where == "first" else (blocks - 1) * 4096 + 100)
    with open(tampered, "r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0x01]))
    with QemuBoot(tampered, usb=False, timeout=BOOT_TIMEOUT) as vm:
        assert vm.expect([r"BOOTHKEY: VERITY FAILURE", "BOOTHKEY-HELLO"]) == 0
        # After the message the machine halts: no marker, no shell, no switch to the root.
        assert vm.expect([r"System halted", "BOOTHKEY-HELLO", r"starting /"], timeout=60) == 0
        log = vm.log()
    assert "BOOTHKEY-HELLO" not in log
    assert "the machine is stopped" in log


@pytest.mark.slow
def test_qemu_is_killed_when_the_harness_exits(built_hello_image: tuple[Path, Path]) -> None:
    image, _manifest = built_hello_image
    vm = QemuBoot(image, usb=False, timeout=BOOT_TIMEOUT)
    pid = -1
    with pytest.raises(KeyboardInterrupt), vm:
        pid = vm.pid or -1
        assert pid > 0
        vm.expect("BdsDxe")  # the firmware runs; the guest would go on booting
        os.kill(pid, 0)  # alive
        raise KeyboardInterrupt  # e.g. the user gives up
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert vm.pid is None
    with pytest.raises(RuntimeError):
        vm.command()  # its temporary firmware variables are gone too


@pytest.mark.slow
def test_expect_failure_shows_the_console(built_hello_image: tuple[Path, Path]) -> None:
    image, _manifest = built_hello_image
    with QemuBoot(image, usb=False, timeout=BOOT_TIMEOUT) as vm:
        vm.expect(MARKER)
        with pytest.raises(pexpect.EOF, match=MARKER):
            vm.expect("this never appears")


def test_boot_command_refuses_a_missing_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["boot", str(tmp_path / "none.img"), "--usb"]) == 2
    assert "no such image file" in capsys.readouterr().err


@pytest.mark.slow
def test_boot_command_runs_the_image_on_this_terminal(built_hello_image: tuple[Path, Path]) -> None:
    image, _manifest = built_hello_image
    result = subprocess.run(
        [sys.executable, "build.py", "boot", str(image), "--usb"],
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=BOOT_TIMEOUT,
    )
    assert result.returncode == 0  # the hello init powers off, so QEMU exits by itself
    assert MARKER.encode() in result.stdout
    assert b"Ctrl-A then X" in result.stderr


@pytest.mark.slow
def test_hello_boots_from_an_erofs_root(tmp_path: Path, hello_boot_debs: object) -> None:
    """The same recipe with rootfs.format erofs (the lock still matches: format does not
    change the package set), built through the CLI in a scratch project."""
    project = Path(__file__).resolve().parents[2]
    (tmp_path / "recipes").mkdir()
    shutil.copytree(project / "overlays" / "hello", tmp_path / "overlays" / "hello")
    shutil.copyfile(project / "recipes/hello.lock.json", tmp_path / "recipes/hello.lock.json")
    text = (project / "recipes/hello.yaml").read_text()
    assert "format: squashfs" in text
    erofs = text.replace("format: squashfs", "format: erofs").replace(
        "compression: zstd", "compression: lz4hc"
    )
    (tmp_path / "recipes/hello.yaml").write_text(erofs)
    subprocess.run(
        [
            sys.executable,
            "build.py",
            "build",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
            str(tmp_path / "recipes/hello.yaml"),
        ],
        cwd=project,
        check=True,
    )
    manifest = json.loads((tmp_path / "out/hello.manifest.json").read_text())
    assert "boothkey.fstype=erofs" in manifest["uki"]["cmdline"]
    with QemuBoot(tmp_path / "out/hello.img", usb=False, timeout=BOOT_TIMEOUT) as vm:
        vm.expect(MARKER)
        log = vm.wait_exit(timeout=60)
    assert "could not load module" not in log  # erofs needs libcrc32c and crc32c
