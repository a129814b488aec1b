"""The base direction of a text, as the Unicode Bidirectional Algorithm picks it.

Rule P2 of UAX #9 (https://www.unicode.org/reports/tr9/#P2): the first strong character
(L, R or AL), skipping Markdown and code that carry no direction, decides; a text with
none is left to right. Arabic and Hebrew replies then read right to left.
"""

from __future__ import annotations

import re
import unicodedata

# Fenced code, inline code and URLs say nothing about the language of the prose.
_NEUTRAL_SPANS = re.compile(r"```.*?(?:```|\Z)|`[^`]*`|https?://\S+", re.S)
_SCAN_LIMIT = 2000  # characters: the direction is known long before


def text_direction(text: str) -> str:
    """ "rtl" or "ltr" for ``text`` (Markdown source or plain text), by its first strong
    character outside code and links."""
    for char in _NEUTRAL_SPANS.sub(" ", text[:_SCAN_LIMIT]):
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return "ltr"
