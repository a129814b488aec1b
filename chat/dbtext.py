"""Text as every supported database stores it.

PostgreSQL refuses U+0000 in text columns (``DataError``) and no database stores a lone
UTF-16 surrogate (its UTF-8 encoding fails). Model replies, user messages, titles, error
texts and imported text all pass through ``storable_text`` before they are written.
"""

from __future__ import annotations

import re

_REFUSED = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` without the characters a database refuses (NUL, lone surrogates).
    Everything else, including other control characters, is kept as it is."""
    if not text:
        return text
    return _REFUSED.sub("", text)
