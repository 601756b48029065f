"""`build.py boot IMAGE`: boot a built image in QEMU with its serial console on this terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from builder.observe.qemu import QemuBoot


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "boot",
        help="boot an image in QEMU (UEFI, serial console here; quit with Ctrl-A then X)",
        description=(
            "Boot IMAGE in QEMU under UEFI firmware (OVMF), with the guest's serial console "
            "attached to this terminal. The image file is never modified (snapshot mode). "
            "Quit QEMU with Ctrl-A then X."
        ),
    )
    parser.add_argument("image", type=Path, help="a built image, e.g. out/hello.img")
    parser.add_argument(
        "--usb", action="store_true", help="attach it as a USB stick (xHCI) instead of virtio"
    )
    parser.add_argument(
        "--secure-boot",
        action="store_true",
        help="enforce Secure Boot (with Debian's snakeoil-enrolled OVMF variables unless "
        "--firmware-vars is given)",
    )
    parser.add_argument(
        "--firmware-vars",
        type=Path,
        metavar="OVMF_VARS",
        help="OVMF variable store to start from, e.g. `secureboot enroll`'s OVMF_VARS.fd",
    )
    parser.add_argument("--memory", type=int, default=1024, metavar="MIB", help="guest RAM")
    parser.add_argument(
        "--printer",
        type=Path,
        metavar="FILE",
        help="the booth's ballot printer (second serial port) writes into FILE (PBM pictures)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    boot = QemuBoot(
        args.image,
        usb=args.usb,
        secure_boot=args.secure_boot,
        memory_mib=args.memory,
        vars_template=args.firmware_vars,
        printer=args.printer,
    )
    boot.check()
    how = "USB stick (xHCI)" if args.usb else "virtio disk"
    firmware = "UEFI with Secure Boot" if args.secure_boot else "UEFI"
    print(
        f"booting {args.image} as a {how}, {firmware}; QEMU is slow without KVM, "
        "give it a few seconds. Quit: Ctrl-A then X.",
        file=sys.stderr,
        flush=True,
    )
    return boot.interact()
