"""``python3 -m booth``: run the booth on stdin/stdout (booth-init points them at the console).

Options exist so that tests can run the booth on any machine; in the image the
defaults apply. Keyboard signals are ignored: a voter cannot interrupt the booth.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from .app import BoothConfig, Console, run_booth
from .raster import FONT


def parse_args(argv: list[str]) -> BoothConfig:
    parser = argparse.ArgumentParser(prog="booth")
    env = os.environ
    parser.add_argument("--cmdline", default=env.get("BOOTH_CMDLINE", "/proc/cmdline"))
    parser.add_argument("--data", default=env.get("BOOTH_DATA"))
    parser.add_argument("--keys", default=env.get("BOOTH_KEYS", "/usr/share/booth/authority-keys"))
    parser.add_argument(
        "--key-list",
        default=env.get("BOOTH_KEY_LIST", "/usr/share/booth/authority-keys.json"),
    )
    parser.add_argument("--printer", default=env.get("BOOTH_PRINTER", "/dev/ttyS1"))
    parser.add_argument(
        "--title-file", default=env.get("BOOTH_TITLE_FILE", "/usr/share/booth/title.txt")
    )
    parser.add_argument("--font", default=env.get("BOOTH_FONT", str(FONT)))
    parser.add_argument(
        "--screen",
        choices=("auto", "text"),
        default=env.get("BOOTH_SCREEN", "auto"),
        help="auto: the graphical booth on a virtual console with a framebuffer",
    )
    args = parser.parse_args(argv)
    return BoothConfig(
        cmdline=Path(args.cmdline),
        data=Path(args.data) if args.data else None,
        keys=Path(args.keys),
        key_list=Path(args.key_list) if args.key_list else None,
        printer=Path(args.printer) if args.printer else None,
        title_file=Path(args.title_file) if args.title_file else None,
        font=Path(args.font),
        graphical=args.screen == "auto" and on_framebuffer_console(),
    )


def on_framebuffer_console() -> bool:
    """Whether stdin is a virtual console (tty1...) and /dev/fb0 exists."""
    try:
        terminal = os.ttyname(0)
    except OSError:
        return False
    return re.fullmatch(r"/dev/tty[0-9]+", terminal) is not None and os.path.exists("/dev/fb0")


def main(argv: list[str]) -> int:
    for name in ("SIGINT", "SIGQUIT", "SIGTSTP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    config = parse_args(argv)
    return run_booth(config, Console(sys.stdin, sys.stdout))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
