"""Where boothkey keeps things on the user's machine."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """`$BOOTHKEY_CACHE`, else `$XDG_CACHE_HOME/boothkey`, else `~/.cache/boothkey`."""
    explicit = os.environ.get("BOOTHKEY_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "boothkey"


def deb_cache_dir(cache_dir: Path) -> Path:
    return cache_dir / "debs"


def step_cache_dir(cache_dir: Path) -> Path:
    return cache_dir / "steps"
