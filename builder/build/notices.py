"""Copyright notices and licence texts read from a Debian copyright file, for the SBOM's
copyrightText and the extractedText of its LicenseRefs.

Both are pure functions of the file's text:
- a DEP-5 file: the `Copyright:` fields of its header and of every `Files:` paragraph,
  each holder line once, in the file's order; a licence's text is the text under its
  `License:` line (a stand-alone License paragraph, else the Files paragraph's own);
- a free-form file: the lines that state a copyright (the word "Copyright", "(C)" or
  "©" with a year), each once, in the file's order.
Nothing found gives None (the SBOM then says NOASSERTION).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from debian.copyright import Copyright

# A year from 1970 to 2099, so "Copyright:" headings and licence prose ("the above
# copyright notice") are not taken as notices.
_YEAR = re.compile(r"\b(19[7-9]\d|20\d\d)\b")
_NOTICE = re.compile(r"copyright|\(c\)|©", re.IGNORECASE)
_COMMENT_LEAD = re.compile(r"^[\s*#/]*")


def _parsed(text: str) -> Copyright | None:
    logging.getLogger("debian.copyright").setLevel(logging.CRITICAL)
    try:
        return Copyright(text.splitlines(keepends=True), strict=False)
    # python-debian raises assorted errors for free-form files; all mean "not DEP-5".
    except Exception:
        return None


def _unique_lines(lines: list[str]) -> str | None:
    seen: dict[str, None] = {}
    for line in lines:
        cleaned = " ".join(line.split())
        if cleaned:
            seen.setdefault(cleaned, None)
    return "\n".join(seen) or None


def copyright_notices(text: str) -> str | None:
    """The copyright notices a copyright file states, one per line, or None."""
    parsed = _parsed(text)
    if parsed is not None:
        fields = [str(parsed.header.copyright or "")]
        fields += [str(p.copyright or "") for p in parsed.all_files_paragraphs()]
        lines = [line for field in fields for line in field.splitlines()]
        found = _unique_lines(lines)
        if found is not None:
            return found
    notices = [
        _COMMENT_LEAD.sub("", line)
        for line in text.splitlines()
        if _NOTICE.search(line) and _YEAR.search(line)
    ]
    return _unique_lines(notices)


def licence_text(text: str, name: str) -> str | None:
    """The text a DEP-5 copyright file gives for the licence named `name`, or None."""
    parsed = _parsed(text)
    if parsed is None:
        return None
    wanted = name.strip().lower()
    candidates: list[Any] = [p.license for p in parsed.all_license_paragraphs()]
    candidates += [p.license for p in parsed.all_files_paragraphs() if p.license is not None]
    if parsed.header.license is not None:
        candidates.append(parsed.header.license)
    for licence in candidates:
        body = (licence.text or "").strip()
        if body and (licence.synopsis or "").strip().lower() == wanted:
            return body
    return None
