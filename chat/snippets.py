"""The passage of a text that matched a search, for showing with the match highlighted.

Search itself matches through ``chat.search.fold`` (case folding in every script, ё as
е); here the same match is found again in the original text by a case-insensitive
regular expression in which е and ё are one letter, so the highlight covers the
person's own characters. Where folding changes a text's length (ß and ss) the regular
expression may miss: then the passage is the text's start, without a highlight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_E = "[еёЕЁ]"


@dataclass(frozen=True)
class Snippet:
    """``before`` + ``match`` + ``after`` is a passage of the text (ellipses included);
    ``match`` is empty when the match could not be located."""

    before: str
    match: str
    after: str


def query_pattern(query: str) -> re.Pattern[str] | None:
    """A regular expression finding ``query`` case-insensitively, е and ё as one letter,
    runs of white space as any white space. None for an empty query."""
    words = query.split()
    if not words:
        return None
    parts = []
    for word in words:
        parts.append("".join(_E if ch in "еёЕЁ" else re.escape(ch) for ch in word))
    return re.compile(r"\s+".join(parts), re.IGNORECASE)


def snippet(text: str, query: str, *, context: int = 50) -> Snippet:
    """The passage of ``text`` around the first match of ``query``: up to ``context``
    characters on each side, cut at word boundaries, white space folded to single
    spaces, "…" where the text goes on."""
    flat = " ".join(text.split())
    pattern = query_pattern(query)
    found = pattern.search(flat) if pattern else None
    if found is None:
        head = flat[: context * 2]
        return Snippet(head + ("…" if len(flat) > len(head) else ""), "", "")
    start, end = found.span()
    before = flat[max(0, start - context) : start]
    after = flat[end : end + context]
    if start - context > 0:
        before = "…" + before.split(" ", 1)[-1] if " " in before else "…" + before
    if end + context < len(flat):
        after = after.rsplit(" ", 1)[0] + "…" if " " in after else after + "…"
    return Snippet(before, flat[start:end], after)
