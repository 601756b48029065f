"""Licences of locked packages, from Debian's machine-readable copyright files (DEP-5).

Each .deb ships `/usr/share/doc/PKG/copyright`; when it follows the DEP-5
format, the `Files: *` paragraph (else the header's `License:`) states the
package's main licence as a Debian licence expression ("GPL-2+ or Artistic").
`package_licences` reads those files straight from the cached, verified .debs
(offline, nothing installed) and maps the expressions to SPDX: Debian short
names with a clear SPDX counterpart become SPDX ids, anything else becomes a
`LicenseRef-…` (with its text from the same file, see `builder.build.notices`).
A free-form file gets the licence a person read from it, recorded in
`builder.build.licence_review` for that file's sha256; a missing file, or a free-form
one without such a reading, gives NOASSERTION.

Reading a big .deb (the kernel) takes seconds, so the copyright file found in
each .deb can be kept in a cache directory keyed by the .deb's sha256: the key
is the content, so a cached answer can never be stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from debian.copyright import Copyright

from builder.build.licence_review import reviewed_licence
from builder.build.notices import copyright_notices, licence_text
from builder.core.canonical import canonical_json
from builder.core.errors import InputError
from builder.core.fsutil import write_atomic
from builder.formats.debarchive import open_data_tar
from builder.source.lockfile import LockedPackage

NOASSERTION = "NOASSERTION"
# Bump when what is cached per .deb changes shape, so old entries are not misread.
_CACHE_FORMAT = 2  # 2: the declared licence is kept too, so no build re-parses DEP-5

# Debian short licence names (DEP-5, "License short name")
# and a few common spellings, lower-cased, with their SPDX identifiers. Only names whose
# meaning is unambiguous are here; everything else becomes a LicenseRef.
DEBIAN_TO_SPDX: dict[str, str] = {
    "gpl-1": "GPL-1.0-only",
    "gpl-1+": "GPL-1.0-or-later",
    "gpl-2": "GPL-2.0-only",
    "gpl-2+": "GPL-2.0-or-later",
    "gpl-2.0": "GPL-2.0-only",
    "gpl-2.0+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only",
    "gpl-3.0": "GPL-3.0-only",
    "gpl-3.0+": "GPL-3.0-or-later",
    "gpl-3+": "GPL-3.0-or-later",
    "lgpl-2": "LGPL-2.0-only",
    "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.0": "LGPL-2.0-only",
    "lgpl-2.0+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later",
    "agpl-3": "AGPL-3.0-only",
    "agpl-3+": "AGPL-3.0-or-later",
    "gfdl-1.2": "GFDL-1.2-only",
    "gfdl-1.2+": "GFDL-1.2-or-later",
    "gfdl-1.3": "GFDL-1.3-only",
    "gfdl-1.3+": "GFDL-1.3-or-later",
    "apache-2": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl",
    "artistic-1": "Artistic-1.0-Perl",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "bsl-1.0": "BSL-1.0",
    "cc0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "curl": "curl",
    "expat": "MIT",
    "mit": "MIT",
    "isc": "ISC",
    "zlib": "Zlib",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
    "openssl": "OpenSSL",
    "psf-2": "PSF-2.0",
    "python-2.0": "Python-2.0",
    "x11": "X11",
    "fsfap": "FSFAP",
    "fsful": "FSFUL",
    "fsfullr": "FSFULLR",
    "unicode-dfs-2016": "Unicode-DFS-2016",
    "bzip2-1.0.6": "bzip2-1.0.6",
    "wtfpl": "WTFPL",
    "sleepycat": "Sleepycat",
    "0bsd": "0BSD",
}
# SPDX ids some packages already write in their DEP-5 files.
_SPDX_IDS = {value.lower(): value for value in DEBIAN_TO_SPDX.values()}
_OPERATOR = re.compile(r"\s+(and|or)\s+", re.IGNORECASE)
# A DEP-5 expression split into its licence names (commas, and/or, parentheses).
_TERM_SPLIT = re.compile(r"\s*,\s*(?:(?:and|or)\s+)?|\s+(?:and|or)\s+|[()]", re.IGNORECASE)
_COMMA_GROUP = re.compile(r",\s*(?=(?:and|or)\s)", re.IGNORECASE)


@dataclass(frozen=True)
class PackageLicence:
    """A package's declared licence.

    `debian` is the expression as the copyright file writes it ("" when none
    was found); `spdx` is an SPDX licence expression or NOASSERTION; `refs`
    are the LicenseRef ids `spdx` uses; `origin` says where it came from, in
    plain words, for the SBOM's comment.
    """

    package: str
    debian: str
    spdx: str
    refs: tuple[str, ...]
    origin: str
    # The copyright notices the file states (one per line), or NOASSERTION.
    notices: str = NOASSERTION
    # (LicenseRef id, the licence's text as the copyright file gives it) for each ref.
    texts: tuple[tuple[str, str], ...] = ()


def licence_ref(name: str) -> str:
    """`LicenseRef-…` for a Debian licence name SPDX has no clear id for."""
    # "+" ("or any later version") must stay visible: GPL-2.0 and GPL-2.0+ differ.
    cleaned = re.sub(r"[^A-Za-z0-9.]+", "-", name.replace("+", "-or-later")).strip("-.")
    return f"LicenseRef-{cleaned}" if cleaned else NOASSERTION


def _term_to_spdx(term: str, refs: list[str]) -> str:
    key = term.strip().lower()
    if key in DEBIAN_TO_SPDX:
        return DEBIAN_TO_SPDX[key]
    if key in _SPDX_IDS:
        return _SPDX_IDS[key]
    # Exceptions ("GPL-2+ with OpenSSL exception") and unknown names keep Debian's
    # wording inside a LicenseRef rather than guessing an SPDX exception id.
    ref = licence_ref(term.strip())
    if ref != NOASSERTION and ref not in refs:
        refs.append(ref)
    return ref


def _group_to_spdx(group: str, refs: list[str]) -> tuple[str, bool]:
    """SPDX for a comma-free part; the flag says whether it holds an operator."""
    pieces = _OPERATOR.split(group.strip())
    terms = pieces[0::2]
    operators = [op.upper() for op in pieces[1::2]]
    converted = [_term_to_spdx(term, refs) for term in terms]
    if NOASSERTION in converted:
        return NOASSERTION, False
    out = converted[0]
    for operator, term in zip(operators, converted[1:], strict=True):
        out = f"{out} {operator} {term}"
    return out, bool(operators)


def debian_to_spdx(expression: str) -> tuple[str, tuple[str, ...]]:
    """Map a DEP-5 licence expression to (SPDX expression, LicenseRef ids used).

    Commas set precedence as DEP-5 says ("A or B, and C" is "(A OR B) AND C");
    without commas AND binds tighter than OR in both languages.
    """
    text = " ".join(expression.split())
    if not text:
        return NOASSERTION, ()
    refs: list[str] = []
    groups = _COMMA_GROUP.split(text)
    result, compound = _group_to_spdx(groups[0], refs)
    for group in groups[1:]:
        operator, _, rest = group.partition(" ")
        part, part_compound = _group_to_spdx(rest, refs)
        if NOASSERTION in (result, part):
            return NOASSERTION, ()
        left = f"({result})" if compound else result
        right = f"({part})" if part_compound else part
        result, compound = f"{left} {operator.upper()} {right}", True
    if result == NOASSERTION:
        return NOASSERTION, ()
    return result, tuple(refs)


def main_licence(copyright_text: str) -> str | None:
    """The licence of `Files: *` (else the header's), or None for a non-DEP-5 file."""
    # python-debian logs every oddity it tolerates; the SBOM states the outcome instead.
    logging.getLogger("debian.copyright").setLevel(logging.CRITICAL)
    try:
        parsed = Copyright(copyright_text.splitlines(keepends=True), strict=False)
        paragraph = parsed.find_files_paragraph("*")
        licence = paragraph.license if paragraph is not None else None
        if licence is None:
            licence = parsed.header.license
        synopsis = str(getattr(licence, "synopsis", "") or "").strip()
        return synopsis or None
    # python-debian raises assorted errors for free-form files; all mean "not DEP-5".
    except Exception:
        return None


@dataclass(frozen=True)
class DocEntry:
    """What a .deb holds at /usr/share/doc/PKG: the copyright text, or a link to another
    package's doc directory (Debian lets packages of one source share one)."""

    copyright: str | None
    doc_link: str | None
    # The licence the DEP-5 header or "Files: *" paragraph declares (None: no copyright
    # file, or not DEP-5); parsed once, when the entry is read from the .deb.
    declared: str | None = None

    @classmethod
    def parsed(cls, copyright: str | None, doc_link: str | None) -> DocEntry:
        return cls(copyright, doc_link, main_licence(copyright) if copyright else None)


def read_doc_entry(deb: Path, package: str) -> DocEntry:
    """Read /usr/share/doc/`package`/copyright (or the doc directory's link) from `deb`.

    A damaged .deb raises `InputError` naming the file and the package."""
    doc_dir = f"usr/share/doc/{package}"
    wanted = f"{doc_dir}/copyright"
    copyright_text: str | None = None
    doc_link: str | None = None
    # Streamed: the data member is read once, in order, never written to disk.
    try:
        with open_data_tar(deb) as archive:
            for member in archive:
                name = member.name.removeprefix("./").rstrip("/")
                if name == doc_dir and member.issym():
                    doc_link = member.linkname
                elif name == wanted and member.isfile():
                    stream = archive.extractfile(member)
                    if stream is not None:
                        copyright_text = stream.read().decode("utf-8", errors="replace")
                elif name == wanted and member.issym():
                    doc_link = str(PurePosixPath(member.linkname).parent)
    except InputError as exc:
        raise InputError(f"package {package}: {exc.message}") from exc
    return DocEntry.parsed(copyright_text, doc_link)


def cached_doc_entry(
    pkg: LockedPackage, deb_path: Callable[[LockedPackage], Path], cache_dir: Path | None
) -> DocEntry:
    """`read_doc_entry`, remembered under `cache_dir` by the .deb's sha256 (so the
    verified .deb is only read, through `deb_path`, the first time)."""
    if cache_dir is None:
        return read_doc_entry(deb_path(pkg), pkg.name)
    entry_path = cache_dir / pkg.sha256[:2] / f"{pkg.sha256}.{pkg.name}.json"
    try:
        raw: Any = json.loads(entry_path.read_bytes())
        if raw.get("format") == _CACHE_FORMAT:
            return DocEntry(raw["copyright"], raw["doc_link"], raw["declared"])
    except (OSError, ValueError, AttributeError, KeyError):
        pass  # absent or damaged: read the .deb again
    entry = read_doc_entry(deb_path(pkg), pkg.name)
    record = {
        "format": _CACHE_FORMAT,
        "copyright": entry.copyright,
        "doc_link": entry.doc_link,
        "declared": entry.declared,
    }
    write_atomic(entry_path, canonical_json(record))
    return entry


def _licence_texts(
    copyright_text: str, debian: str, refs: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """Each LicenseRef's text: the file's own text for the licence name it stands for,
    else the whole copyright file (which is then the only statement of it)."""
    names = {licence_ref(term): term for term in _TERM_SPLIT.split(debian) if term.strip()}
    return tuple(
        (ref, licence_text(copyright_text, names.get(ref, "")) or copyright_text.strip())
        for ref in refs
    )


def _licence_from_entry(package: str, owner: str, entry: DocEntry) -> PackageLicence:
    """`package`'s licence from `entry`, the doc entry of `owner` (itself, or the package
    whose doc directory it shares)."""
    if entry.copyright is None:
        return PackageLicence(package, "", NOASSERTION, (), "no copyright file in the package")
    path = f"/usr/share/doc/{owner}/copyright"
    notices = copyright_notices(entry.copyright) or NOASSERTION
    declared = entry.declared
    if declared is not None:
        spdx, refs = debian_to_spdx(declared)
        texts = _licence_texts(entry.copyright, declared, refs)
        return PackageLicence(package, declared, spdx, refs, f"DEP-5 {path}", notices, texts)
    file_sha256 = hashlib.sha256(entry.copyright.encode()).hexdigest()
    reviewed = reviewed_licence(package, file_sha256)
    if reviewed is None:
        return PackageLicence(
            package,
            "",
            NOASSERTION,
            (),
            f"{path} is not in the DEP-5 format and boothkey's reviewed table "
            f"(builder/build/licence_review.py) has no reading of it (sha256 {file_sha256})",
            notices,
        )
    refs = tuple(sorted(set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", reviewed.spdx))))
    return PackageLicence(
        package,
        "",
        reviewed.spdx,
        refs,
        f"{path} (not DEP-5) as read by a person, recorded in boothkey's reviewed table "
        f"for this file's sha256 {file_sha256}: {reviewed.note}",
        notices,
        tuple((ref, entry.copyright.strip()) for ref in refs),
    )


def _doc_owner(name: str, entries: Mapping[str, DocEntry]) -> str:
    """The package whose copyright file `name` uses: itself, or the end of its chain of
    shared doc directories (binutils-x86-64-linux-gnu -> libbinutils -> binutils-common)."""
    owner, seen = name, {name}
    while entries[owner].copyright is None and entries[owner].doc_link:
        target = PurePosixPath(entries[owner].doc_link or "").name
        if target not in entries or target in seen:
            break
        owner = target
        seen.add(owner)
    return owner


def package_licences(
    packages: Iterable[LockedPackage],
    deb_path: Callable[[LockedPackage], Path],
    cache_dir: Path | None = None,
) -> dict[str, PackageLicence]:
    """Declared licence of every package, by name, read from its verified .deb.

    A package whose doc directory links to another locked package's (as
    linux-image-amd64's may), directly or through a chain of such links, gets
    that package's copyright file.
    """
    chosen = sorted(packages, key=lambda p: (p.name, p.architecture))
    # lzma and zlib release the GIL while they decompress, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        found = pool.map(lambda pkg: cached_doc_entry(pkg, deb_path, cache_dir), chosen)
        entries = {pkg.name: entry for pkg, entry in zip(chosen, found, strict=True)}
    licences: dict[str, PackageLicence] = {}
    for name in entries:
        owner = _doc_owner(name, entries)
        licence = _licence_from_entry(name, owner, entries[owner])
        if owner != name:
            licence = dataclasses.replace(
                licence, origin=f"{licence.origin} (shared doc directory)"
            )
        licences[name] = licence
    return licences
