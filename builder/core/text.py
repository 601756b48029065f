"""The one rule for text that boothkey shows to people or writes into documents they
read: election names on the voter's screen and ballot (docs/election-data.md, "Text
shown to the voter"; the booth applies the same rule with its own code, booth/text.py)
and a recipe's supplier and its contact in the SBOM.
"""

from __future__ import annotations

import re
import unicodedata

MAX_TEXT_LENGTH = 200
# Refused by category: controls (C0, DEL, C1: escape sequences), format characters (bidi
# controls, zero-width characters, BOM, soft hyphen, tags), surrogates, private use,
# unassigned code points, line and paragraph separators.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character (bidi control, zero-width or similar)",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
# Default-ignorable code points outside those categories: fillers and variation
# selectors that a terminal shows as nothing.
_INVISIBLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180D),  # Mongolian free variation selectors
    (0x180F, 0x180F),
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0100, 0xE01EF),  # variation selectors supplement
)


def text_problem(text: str) -> str | None:
    """Why `text` may not be shown to a voter, or None if it may: at most
    `MAX_TEXT_LENGTH` characters, not blank, no control, format (bidi, zero-width),
    separator, private-use, unassigned or invisible character. Accented letters and
    every script are allowed. The reason names a character by its code point only."""
    if len(text) > MAX_TEXT_LENGTH:
        return f"is {len(text)} characters long, more than {MAX_TEXT_LENGTH}"
    for position, char in enumerate(text, start=1):
        refused = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        code = ord(char)
        if refused is None and any(low <= code <= high for low, high in _INVISIBLE_RANGES):
            refused = "an invisible character"
        if refused is not None:
            return f"contains {refused} (U+{code:04X}) at character {position}"
    if not text.strip():
        return "is empty or only spaces"
    return None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^/\s]+\.[^/\s]+(/\S*)?$", re.IGNORECASE)


def contact_problem(contact: str) -> str | None:
    """Why `contact` is not a way to reach a supplier, or None if it is: text by
    `text_problem`'s rule that is one e-mail address (name@domain.tld) or one http(s) URL,
    without spaces or parentheses (SPDX writes a contact in parentheses)."""
    problem = text_problem(contact)
    if problem is not None:
        return problem
    if "(" in contact or ")" in contact:
        return "has a parenthesis"
    if not (_EMAIL.match(contact) or _URL.match(contact)):
        return "is neither an e-mail address (name@example.org) nor an http(s) URL"
    return None


_LICENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*\Z")
_LICENCE_WORDS = ("AND", "OR", "WITH")


def licence_problem(expression: str) -> str | None:
    """Why `expression` is not an SPDX licence expression of licence-list ids (such as
    "EUPL-1.2" or "GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT"), or None.

    The syntax only: ids, AND/OR/WITH between them, balanced parentheses. Whether each
    id is on the SPDX licence list is for the SBOM checkers (and boothkey's tests)."""
    tokens = expression.replace("(", " ( ").replace(")", " ) ").split()
    if not tokens:
        return "is empty"
    depth, expect_id = 0, True
    for token in tokens:
        if token == "(":
            if not expect_id:
                return "has a parenthesis where AND, OR or WITH belongs"
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0 or expect_id:
                return "has unbalanced parentheses"
        elif token in _LICENCE_WORDS:
            if expect_id:
                return f"has {token} where a licence id belongs"
            expect_id = True
        elif token.startswith("LicenseRef-"):
            return f"uses {token}: only SPDX licence-list ids (https://spdx.org/licenses/)"
        elif not _LICENCE_ID.match(token) or not expect_id:
            return f"has {token!r} where a licence id or AND/OR/WITH belongs"
        else:
            expect_id = False
    if depth != 0 or expect_id:
        return "is incomplete"
    return None
