"""Unpacking locked .deb files (never installing them) for the boot steps."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import ToolError
from .tools import require_tool, run_tool, tool_env


def extract_deb(deb: Path, dest: Path, members: Sequence[str] = ()) -> None:
    """Unpack the data member of `deb` into `dest` (created if missing), as dpkg-deb -x does.

    With `members` (paths as the package's tar lists them, e.g. "./boot"), only those
    files and directories are unpacked: the kernel package is 400 MB unpacked, its
    vmlinuz 8 MB.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if not members:
        run_tool(["dpkg-deb", "-x", deb, dest])
        return
    require_tool("dpkg-deb")
    require_tool("tar")
    env = tool_env()
    with subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as producer:
        untar = subprocess.run(
            ["tar", "-x", "-f", "-", "-C", str(dest), "--no-same-owner", *members],
            stdin=producer.stdout,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
        assert producer.stdout is not None
        producer.stdout.close()
        producer_err = producer.stderr.read() if producer.stderr else b""
    if producer.returncode != 0:
        detail = producer_err.decode(errors="replace").strip()
        raise ToolError(f"dpkg-deb cannot read {deb.name}: {detail}")
    if untar.returncode != 0 and not _only_missing_members(untar.stderr):
        detail = untar.stderr.decode(errors="replace").strip()
        raise ToolError(f"cannot unpack {', '.join(members)} from {deb.name}: {detail}")


def _only_missing_members(stderr: bytes) -> bool:
    """A member the package does not ship is not an error here: callers check for the
    files they need and name the package if one is missing."""
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return all("Not found in archive" in line or "Exiting with failure" in line for line in lines)


def deb_control_field(deb: Path, field: str) -> str:
    """One field of a .deb's control file (e.g. "Version")."""
    return run_tool(["dpkg-deb", "-f", deb, field]).stdout.decode().strip()
