"""Which mirrors to try: from the command line, `BOOTHKEY_MIRROR`, or the machine's apt sources.

The mirror is not part of a recipe's identity (content is pinned by sha256), so
boothkey never names one itself: it reuses what the machine's apt already trusts.

A mirror entry is `URL` (or a local directory), for every suite, or `SUITE=URL`,
for that suite only: a source bundle serves every suite, while Debian's
security updates live on another host than the rest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from debian import deb822

from builder.core.errors import InputError

APT_ETC = Path("/etc/apt")
MIRROR_ENV = "BOOTHKEY_MIRROR"
# A suite name as recipes allow it; URLs and paths never match (they hold ':' or '/').
_SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


def split_mirror(entry: str) -> tuple[str | None, str]:
    """`"SUITE=URL"` -> (SUITE, URL); any other entry -> (None, entry).

    Raises `InputError` for `SUITE=` without a URL.
    """
    suite, sep, url = entry.partition("=")
    if not sep or not _SUITE_RE.match(suite):
        return None, entry
    if not url:
        raise InputError(f"mirror {entry!r}: no URL after {suite}=")
    return suite, url


def _for_suite(entries: Sequence[str], suite: str) -> list[str]:
    """The entries that apply to `suite`, in the order given, URLs only."""
    chosen: list[str] = []
    for entry in entries:
        only, url = split_mirror(entry)
        if only is None or only == suite:
            chosen.append(url)
    return list(dict.fromkeys(chosen))


def choose_mirrors(explicit: Sequence[str], suite: str, apt_etc: Path = APT_ETC) -> list[str]:
    """Mirrors to try in order for `suite`: the `explicit` entries that apply to it
    (`URL` or `SUITE=URL`, in the order given) if any, else those of `$BOOTHKEY_MIRROR`
    (entries separated by spaces), else `default_mirrors(suite)`."""
    from_explicit = _for_suite(explicit, suite)
    if from_explicit:
        return from_explicit
    from_env = _for_suite(os.environ.get(MIRROR_ENV, "").split(), suite)
    if from_env:
        return from_env
    return default_mirrors(suite, apt_etc)


def mirrors_by_suite(
    explicit: Sequence[str], suites: Sequence[str], apt_etc: Path = APT_ETC
) -> dict[str, list[str]]:
    """`choose_mirrors` for each of `suites`.

    Raises `InputError` if an explicit entry names a suite that is not in `suites`
    (most likely a typo that would leave it unused). `$BOOTHKEY_MIRROR` may name
    suites other recipes use.
    """
    for entry in explicit:
        only, _url = split_mirror(entry)
        if only is not None and only not in suites:
            raise InputError(
                f"--mirror {entry}: the recipe has no suite {only!r} "
                f"(its suites: {', '.join(suites)})"
            )
    return {suite: choose_mirrors(explicit, suite, apt_etc) for suite in suites}


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
