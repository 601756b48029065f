"""The one QEMU boot harness, for people (`build.py boot`) and for tests.

It boots a disk image under UEFI (OVMF from Debian) with the serial console
on stdio, as a virtio disk or as a USB stick behind an emulated xHCI
controller, optionally with Secure Boot enforced (Debian's snakeoil-enrolled
OVMF variables). The image is attached with snapshot=on, so nothing a boot
writes ever reaches the file; OVMF's variable store is a private temporary
copy. QEMU always runs with TCG (KVM is not assumed to work).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from builder.core.errors import InputError
from builder.core.tools import require_tool, run_tool, tool_env
from builder.observe.qmp import Qmp

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
OVMF_CODE_SECURE = OVMF_DIR / "OVMF_CODE_4M.secboot.fd"
OVMF_VARS_SECURE = OVMF_DIR / "OVMF_VARS_4M.snakeoil.fd"
DEFAULT_TIMEOUT = 180.0
QEMU = "qemu-system-x86_64"


def qemu_command(
    image: Path,
    vars_file: Path,
    *,
    usb: bool,
    secure_boot: bool,
    memory_mib: int,
    printer: Path | None = None,
    qmp: Path | None = None,
    touch: bool = False,
) -> list[str]:
    """The qemu-system-x86_64 argv for one boot (the caller provides the vars copy).
    With `printer`, the guest's second serial port (ttyS1, the booth's ballot printer)
    writes into that file. With `qmp`, QMP listens on that unix socket (keys typed on
    the emulated keyboard, touches, screendumps). With `touch`, a USB keyboard and a USB
    tablet (an absolute pointer: a touchscreen) are plugged in."""
    code = OVMF_CODE_SECURE if secure_boot else OVMF_CODE
    # A comma in a path would be read as an option separator by -drive.
    drive_file = str(image).replace(",", ",,")
    argv = [
        QEMU,
        "-machine",
        "q35,accel=tcg,smm=on" if secure_boot else "q35,accel=tcg",
        "-cpu",
        "max",
        "-smp",
        "1",
        "-m",
        str(memory_mib),
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-drive",
        f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={vars_file}",
        "-drive",
        f"if=none,id=bootkey,format=raw,snapshot=on,file={drive_file}",
    ]
    if secure_boot:
        # The secboot firmware needs SMM and refuses to run without it.
        argv += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    if usb:
        argv += ["-device", "qemu-xhci,id=xhci", "-device", "usb-storage,bus=xhci.0,drive=bootkey"]
    else:
        argv += ["-device", "virtio-blk-pci,drive=bootkey"]
    if touch:
        argv += ["-device", "qemu-xhci,id=hid", "-device", "usb-kbd,bus=hid.0"]
        argv += ["-device", "usb-tablet,bus=hid.0"]
    if qmp is not None:
        argv += ["-qmp", f"unix:{str(qmp).replace(',', ',,')},server=on,wait=off"]
    if printer is not None:
        # Naming any -serial drops -nographic's default one: keep the console on stdio.
        printer_file = str(printer).replace(",", ",,")
        argv += ["-serial", "mon:stdio", "-serial", f"file:{printer_file}"]
    return argv


def check_firmware(secure_boot: bool) -> None:
    """Raise `InputError` naming the Debian package if OVMF is missing."""
    for path in (OVMF_CODE_SECURE, OVMF_VARS_SECURE) if secure_boot else (OVMF_CODE, OVMF_VARS):
        if not path.is_file():
            raise InputError(f"{path} is missing: install the Debian package ovmf")
    require_tool(QEMU)


class QemuBoot:
    """One QEMU boot of `image`, driven through its serial console.

    Use as a context manager: `start()` happens on entry and QEMU is always
    killed on exit. `expect(pattern)` waits for console output (a regex or a
    list of them, as pexpect does) and returns the index matched; `log()` is
    everything the console printed so far. `interact()` hands the console to
    the user's terminal instead.
    """

    def __init__(
        self,
        image: Path,
        usb: bool,
        secure_boot: bool = False,
        memory_mib: int = 1024,
        timeout: float = DEFAULT_TIMEOUT,
        vars_template: Path | None = None,
        printer: Path | None = None,
        touch: bool = False,
    ) -> None:
        self.image = Path(image)
        # The firmware's variables to start from (e.g. `secureboot enroll`'s OVMF_VARS.fd);
        # default: Debian's, snakeoil-enrolled with Secure Boot, else empty.
        self.vars_template = vars_template
        self.printer = printer
        self.touch = touch  # a USB keyboard and touchscreen, driven through `qmp()`
        self._qmp: Any = None
        self.usb = usb
        self.secure_boot = secure_boot
        self.memory_mib = memory_mib
        self.timeout = timeout
        self._workdir: Path | None = None
        self._child: Any = None  # pexpect.spawn; pexpect ships no type hints

    def command(self) -> list[str]:
        if self._workdir is None:
            raise RuntimeError("QemuBoot.command() before start()")
        return qemu_command(
            self.image,
            self._workdir / "OVMF_VARS.fd",
            usb=self.usb,
            secure_boot=self.secure_boot,
            memory_mib=self.memory_mib,
            printer=self.printer,
            qmp=self._workdir / "qmp.sock",
            touch=self.touch,
        )

    def check(self) -> None:
        """Raise `InputError`/`ToolError` if the image, firmware or QEMU is missing."""
        if not self.image.is_file():
            raise InputError(f"{self.image}: no such image file")
        check_firmware(self.secure_boot)
        if self.vars_template is not None and not self.vars_template.is_file():
            raise InputError(f"{self.vars_template}: no such OVMF variable store")

    def _prepare(self) -> None:
        self.check()
        self._workdir = Path(tempfile.mkdtemp(prefix="boothkey-qemu-"))
        source = self.vars_template or (OVMF_VARS_SECURE if self.secure_boot else OVMF_VARS)
        shutil.copyfile(source, self._workdir / "OVMF_VARS.fd")

    def start(self) -> QemuBoot:
        import pexpect

        self._prepare()
        argv = self.command()
        self._child = pexpect.spawn(
            argv[0],
            argv[1:],
            env=tool_env(),
            timeout=self.timeout,
            encoding="utf-8",
            codec_errors="replace",
            echo=False,
            dimensions=(50, 200),
        )
        self._log: list[str] = []
        self._child.logfile_read = _LogSink(self._log)
        return self

    def expect(self, pattern: str | Sequence[str], timeout: float | None = None) -> int:
        """Wait for console output matching `pattern` (regex, or a list: index returned).

        Raises `pexpect.TIMEOUT` / `pexpect.EOF` with the console log attached
        to the message when nothing matches in time or QEMU exits.
        """
        import pexpect

        try:
            index: int = self._child.expect(pattern, timeout=timeout)
            return index
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            kind = "timed out" if isinstance(exc, pexpect.TIMEOUT) else "QEMU exited"
            raise type(exc)(
                f"{kind} waiting for {pattern!r}; console so far:\n{self.log()[-4000:]}"
            ) from None

    @property
    def pid(self) -> int | None:
        """Process id of the running QEMU, or None when none is running."""
        return None if self._child is None else int(self._child.pid)

    def send(self, text: str) -> None:
        self._child.send(text)

    def log(self) -> str:
        """Everything the console printed so far."""
        return "".join(self._log)

    def wait_exit(self, timeout: float | None = None) -> str:
        """Wait for QEMU to exit (e.g. after the guest powers off); return the full log."""
        import pexpect

        self._child.expect(pexpect.EOF, timeout=timeout)
        return self.log()

    def qmp(self) -> Qmp:
        """QEMU's machine protocol: keys, screendumps, and touches (with `touch=True`)."""
        if self._workdir is None:
            raise RuntimeError("QemuBoot.qmp() needs a started QEMU")
        if self._qmp is None:
            self._qmp = Qmp(self._workdir / "qmp.sock")
        result: Qmp = self._qmp
        return result

    def close(self) -> None:
        """Kill QEMU (if running) and remove the temporary firmware variables."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._child is not None:
            self._child.close(force=True)
            self._child = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def interact(self) -> int:
        """Run QEMU with the console on this terminal until it exits; return its exit code."""
        self._prepare()
        try:
            # Plain subprocess: QEMU's own -nographic handles the terminal and Ctrl-A X.
            completed = run_tool(self.command(), env=_interactive_env(), capture=False, check=False)
            return completed.returncode
        finally:
            self.close()

    def __enter__(self) -> QemuBoot:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _LogSink:
    """pexpect `logfile_read` target: keeps the console text, without CR and escape noise."""

    def __init__(self, store: list[str]) -> None:
        self.store = store

    def write(self, text: str) -> None:
        self.store.append(text.replace("\r", ""))

    def flush(self) -> None:
        pass


def _interactive_env() -> dict[str, str]:
    env = tool_env()
    # Keep the user's terminal type so QEMU's console behaves.
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    return env
