"""The environment every external command runs with, and running the few host tools.

Programs that make image bytes run from the tools tree in a sandbox
(`builder.core.sandbox`), with `tool_env`'s environment: TZ=UTC, LC_ALL=C.UTF-8, a
fixed PATH, no inherited locale or SOURCE_DATE_EPOCH unless the caller passes one.
The host's own tools only check or show things and never touch an image's bytes
(gpgv for archive signatures, QEMU, mcopy reading an ESP back); they go through
`run_tool` (the same environment, umask 022). A non-zero exit raises `ToolError`
with the command and the tail of its stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from builder.core.errors import ToolError

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "TZ": "UTC",
    "LC_ALL": "C.UTF-8",
    "LANG": "C.UTF-8",
    "HOME": "/nonexistent",
}
# The host tools boothkey runs itself, and the Debian package that ships each.
HOST_TOOL_PACKAGES = {
    "gpgv": "gpgv",
    "mcopy": "mtools",
    "qemu-system-x86_64": "qemu-system-x86",
    "zbarimg": "zbar-tools",
}


# libfaketime, preloaded directly: the `faketime` wrapper names a POSIX semaphore after
# its own PID and fails ("sem_open: File exists") when a killed earlier run left one
# behind for a PID that is now reused.
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def faketime_env(spec: str, root: Path = Path("/")) -> dict[str, str]:
    """Environment that runs a tool under libfaketime's `spec` (FAKETIME syntax:
    "YYYY-mm-dd HH:MM:SS" frozen, "@..." ticking from there, "+1y" an offset), for a
    tool whose file system is `root` (a tools tree, or the host's /)."""
    if not (root / LIBFAKETIME.lstrip("/")).exists():
        where = "the tools tree" if root != Path("/") else "this machine"
        raise ToolError(f"{LIBFAKETIME} is missing from {where} (Debian package libfaketime)")
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": spec}


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(BASE_ENV)
    if extra:
        env.update(extra)
    return env


def require_tool(name: str) -> str:
    """Path of a host tool, or a `ToolError` naming the Debian package to install."""
    found = shutil.which(name, path=BASE_ENV["PATH"])
    if found is None:
        package = HOST_TOOL_PACKAGES.get(name, name)
        raise ToolError(f"{name} is not installed (Debian package {package}); run ./setup")
    return found


def _umask_022() -> None:
    os.umask(0o022)


def run_tool(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    capture: bool = True,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a host tool in the normalised environment (`tool_env(env)`, umask 022).

    A non-zero exit raises `ToolError`, unless `check` is False (for tools whose exit
    code the caller reads itself); `timeout` lets `subprocess.TimeoutExpired` through.
    """
    args = [str(a) for a in argv]
    require_tool(args[0])
    try:
        result = subprocess.run(
            args,
            input=stdin,
            env=tool_env(env),
            cwd=cwd,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            preexec_fn=_umask_022,
            timeout=timeout,
            check=False,
        )
    except OSError as exc:
        raise ToolError(f"{args[0]}: cannot run: {exc}") from exc
    if check and result.returncode != 0:
        raise tool_failure(args, result)
    return result


def stderr_tail(stderr: bytes | None, lines: int = 15) -> list[str]:
    """The last `lines` lines of a tool's captured stderr (none if it was not captured)."""
    return (stderr or b"").decode(errors="replace").strip().splitlines()[-lines:]


def tool_failure(args: Sequence[str], result: subprocess.CompletedProcess[bytes]) -> ToolError:
    """The `ToolError` for a tool that exited non-zero: its exit code, command and the
    tail of its stderr."""
    detail = "\n  ".join(stderr_tail(result.stderr))
    return ToolError(f"{args[0]} failed (exit {result.returncode}): {' '.join(args)}\n  {detail}")
