"""Unpacking locked .deb files (never installing them) for the boot steps."""

from __future__ import annotations

from pathlib import Path

from .tools import run_tool


def extract_deb(deb: Path, dest: Path) -> None:
    """Unpack the data member of `deb` into `dest` (created if missing), as dpkg-deb -x does."""
    dest.mkdir(parents=True, exist_ok=True)
    run_tool(["dpkg-deb", "-x", deb, dest])


def deb_control_field(deb: Path, field: str) -> str:
    """One field of a .deb's control file (e.g. "Version")."""
    return run_tool(["dpkg-deb", "-f", deb, field]).stdout.decode().strip()
