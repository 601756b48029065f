"""Becoming root of a user namespace, so an ordinary user builds as root would.

`enter_user_namespace` moves the calling process into a new user namespace where the
user is uid/gid 0 and the user's 65536 subordinate ids (/etc/subuid, /etc/subgid) are
1-65536. Files the user owns then appear owned by root, and the sandbox
(`builder.core.sandbox`) can map ids 0-65535 for its tools exactly as it does for root, so a
rootless build sees the same owners as a root one.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from builder.core.errors import InputError, ToolError
from builder.core.tools import BASE_ENV, run_tool, stderr_tail

SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")
ID_COUNT = 65536
# Where a suggested range starts when no subordinate range is taken yet (Debian's useradd
# starts there too).
FIRST_SUBORDINATE_ID = 100000
CLONE_NEWUSER = 0x10000000
INITIAL_UID_MAP = ["0", "0", "4294967295"]


@dataclass(frozen=True)
class SubordinateRange:
    """``count`` ids from ``start``, as one line of /etc/subuid or /etc/subgid gives them."""

    start: int
    count: int


def in_user_namespace() -> bool:
    """True unless this process is in the initial user namespace (which maps every id)."""
    try:
        uid_map = Path("/proc/self/uid_map").read_text(encoding="ascii")
    except OSError:
        return False
    return uid_map.split() != INITIAL_UID_MAP


def enter_user_namespace(
    *, subuid_file: Path = SUBUID_FILE, subgid_file: Path = SUBGID_FILE
) -> None:
    """Make the calling process uid 0 of a new user namespace; do nothing if euid is 0.

    Call it before any thread starts. Raises `InputError` if the user has no
    subordinate range of 65536 ids, `ToolError` if newuidmap/newgidmap are missing or
    the namespace cannot be made.
    """
    if os.geteuid() == 0:
        return
    uid, gid = os.getuid(), os.getgid()
    user = _user_name(uid)
    uids = subordinate_range(subuid_file, user, uid)
    gids = subordinate_range(subgid_file, user, uid)
    if uids is None or gids is None:
        raise InputError(_missing_range_message(user, subuid_file, subgid_file, uids, gids))
    if threading.active_count() > 1:
        raise RuntimeError("enter_user_namespace must be called before any thread starts")
    commands = [
        [_require_idmap_tool("newuidmap"), "0", str(uid), "1", "1", str(uids.start), str(ID_COUNT)],
        [_require_idmap_tool("newgidmap"), "0", str(gid), "1", "1", str(gids.start), str(ID_COUNT)],
    ]
    _unshare_and_map(commands)
    if os.getuid() != 0 or os.getgid() != 0:
        raise ToolError(
            f"after entering a user namespace this process is uid {os.getuid()}, gid "
            f"{os.getgid()}, not 0"
        )


def subordinate_range(path: Path, user: str, uid: int) -> SubordinateRange | None:
    """The first range of at least 65536 ids that `path` gives `user` (by name or uid)."""
    for owner, id_range in _read_ranges(path):
        if owner in (user, str(uid)) and id_range.count >= ID_COUNT:
            return id_range
    return None


def _read_ranges(path: Path) -> list[tuple[str, SubordinateRange]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    ranges = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            ranges.append((fields[0], SubordinateRange(int(fields[1]), int(fields[2]))))
    return ranges


def _missing_range_message(
    user: str,
    subuid_file: Path,
    subgid_file: Path,
    uids: SubordinateRange | None,
    gids: SubordinateRange | None,
) -> str:
    missing = [str(path) for path, found in ((subuid_file, uids), (subgid_file, gids)) if not found]
    taken = [r for path in (subuid_file, subgid_file) for _, r in _read_ranges(path)]
    start = max([FIRST_SUBORDINATE_ID, *(r.start + r.count for r in taken)])
    span = f"{start}-{start + ID_COUNT - 1}"
    return (
        f"building as the ordinary user {user} needs {ID_COUNT} subordinate ids, and "
        f"{' and '.join(missing)} {'give' if len(missing) > 1 else 'gives'} {user} no range "
        "that large. Run\n"
        f"  sudo usermod --add-subuids {span} --add-subgids {span} {user}\n"
        "(./setup does this), or build as root."
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _require_idmap_tool(name: str) -> str:
    found = shutil.which(name, path=BASE_ENV["PATH"])
    if found is None:
        raise ToolError(
            f"{name} is not installed (Debian package uidmap); run ./setup, or build as root"
        )
    return found


def _unshare_and_map(commands: list[list[str]]) -> None:
    """unshare(CLONE_NEWUSER) here while a forked helper, still outside, maps our ids.

    Each command is newuidmap/newgidmap without its PID argument.
    """
    parent = os.getpid()
    go_read, go_write = os.pipe()
    report_read, report_write = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(go_write)
        os.close(report_read)
        _map_ids(parent, commands, go_read, report_write)
    os.close(go_read)
    os.close(report_write)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    unshared = libc.unshare(CLONE_NEWUSER) == 0
    error = ctypes.get_errno()
    os.write(go_write, b"1" if unshared else b"0")
    os.close(go_write)
    with os.fdopen(report_read, "rb") as report_file:
        report = report_file.read().decode(errors="replace")
    os.waitpid(helper, 0)
    if not unshared:
        raise ToolError(
            f"cannot create a user namespace: {os.strerror(error)} (the kernel may forbid "
            "them for ordinary users: sysctl kernel.unprivileged_userns_clone, "
            "user.max_user_namespaces); build as root instead"
        )
    if report:
        raise ToolError(f"cannot map ids into the new user namespace: {report}")


def _map_ids(parent: int, commands: list[list[str]], go: int, report: int) -> None:
    """The helper: wait for the parent to unshare, run the commands, report any failure."""
    try:
        if os.read(go, 1) == b"1":
            for command in commands:
                argv = [command[0], str(parent), *command[1:]]
                result = run_tool(argv, check=False)
                if result.returncode != 0:
                    detail = " ".join(stderr_tail(result.stderr, 3))
                    os.write(report, f"{' '.join(argv)}: {detail}".encode())
                    break
    except BaseException as exc:  # the helper must never return into the caller's code
        os.write(report, f"{type(exc).__name__}: {exc}".encode())
    finally:
        os._exit(0)
