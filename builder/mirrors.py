"""Which mirrors to try: from the command line, `BOOTHKEY_MIRROR`, or the machine's apt sources.

The mirror is not part of a recipe's identity (content is pinned by sha256), so
boothkey never names one itself: it reuses what the machine's apt already trusts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from debian import deb822

APT_ETC = Path("/etc/apt")
MIRROR_ENV = "BOOTHKEY_MIRROR"


def choose_mirrors(explicit: Sequence[str], suite: str, apt_etc: Path = APT_ETC) -> list[str]:
    """Mirrors to try in order: `explicit` if any, else `$BOOTHKEY_MIRROR`
    (several separated by spaces), else `default_mirrors(suite)`."""
    if explicit:
        return list(explicit)
    from_env = os.environ.get(MIRROR_ENV, "").split()
    if from_env:
        return from_env
    return default_mirrors(suite, apt_etc)


def default_mirrors(suite: str, apt_etc: Path = APT_ETC) -> list[str]:
    """URIs of the apt `deb` sources that carry `suite`, in apt's reading order, no duplicates.

    Reads `sources.list`, then `sources.list.d/*.list` (one-line format) and
    `sources.list.d/*.sources` (deb822), sorted by file name; disabled entries
    (`Enabled: no`) and `deb-src` lines are skipped.
    """
    found: list[str] = []
    main_list = apt_etc / "sources.list"
    if main_list.is_file():
        found.extend(_one_line_uris(main_list.read_text(errors="replace"), suite))
    parts = apt_etc / "sources.list.d"
    entries = sorted(parts.iterdir()) if parts.is_dir() else []
    for entry in entries:
        if entry.suffix == ".list":
            found.extend(_one_line_uris(entry.read_text(errors="replace"), suite))
        elif entry.suffix == ".sources":
            found.extend(_deb822_uris(entry.read_text(errors="replace"), suite))
    return list(dict.fromkeys(uri.rstrip("/") for uri in found))


def _one_line_uris(text: str, suite: str) -> Iterable[str]:
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            # Options: "[arch=amd64 signed-by=...]" may span several words.
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2 and words[1] == suite:
            yield words[0]


def _deb822_uris(text: str, suite: str) -> Iterable[str]:
    for stanza in deb822.Deb822.iter_paragraphs(text.splitlines()):
        if stanza.get("Enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in stanza.get("Types", "").split():
            continue
        if suite in stanza.get("Suites", "").split():
            yield from stanza.get("URIs", "").split()
