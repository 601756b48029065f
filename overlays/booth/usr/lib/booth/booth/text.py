"""The rule for every text of the election data that the booth shows to the voter.

A name is shown on the console and printed on the ballot, so it must be plain
text that a terminal cannot take for a command or render as something else:
at most `MAX_TEXT_LENGTH` characters, not blank, and none of the characters
below. Letters with accents and every script stay allowed. The builder applies
the same rule (docs/election-data.md, "Text shown to the voter"); this is the
booth's own copy, so that data signed without the builder's check is refused.
"""

from __future__ import annotations

import unicodedata

MAX_TEXT_LENGTH = 200

# By Unicode general category: controls (C0, DEL, C1, so no escape sequences), format
# characters (bidi controls, zero-width characters, BOM, soft hyphen, tags), surrogates,
# private use, unassigned code points, and the line and paragraph separators.
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


def _character_problem(char: str) -> str | None:
    refused = _REFUSED_CATEGORIES.get(unicodedata.category(char))
    if refused is not None:
        return refused
    code = ord(char)
    if any(low <= code <= high for low, high in _INVISIBLE_RANGES):
        return "an invisible character"
    return None


def text_problem(text: str) -> str | None:
    """Why `text` may not be shown to a voter, or None if it may. The reason names
    the offending character by its code point only, never by the text itself."""
    if len(text) > MAX_TEXT_LENGTH:
        return f"is {len(text)} characters long, more than {MAX_TEXT_LENGTH}"
    for position, char in enumerate(text, start=1):
        refused = _character_problem(char)
        if refused is not None:
            return f"contains {refused} (U+{ord(char):04X}) at character {position}"
    if not text.strip():
        return "is empty or only spaces"
    return None
