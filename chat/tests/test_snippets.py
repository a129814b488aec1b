"""Search results show the passage that matched (issue 9)."""

from __future__ import annotations

import pytest

from chat.snippets import Snippet, snippet


@pytest.mark.parametrize(
    ("text", "query", "match"),
    [
        ("Привет, мир! Как дела?", "мир", "мир"),
        ("Привет, МИР!", "мир", "МИР"),
        ("Ёжик в тумане", "ежик", "Ёжик"),
        ("ежик", "ЁЖИК", "ежик"),
        ("Hello   wide\nworld", "wide world", "wide\nworld".replace("\n", " ")),
        ("a+b=c (really)", "(really)", "(really)"),
    ],
)
def test_the_match_is_found_in_the_persons_own_characters(
    text: str, query: str, match: str
) -> None:
    assert snippet(text, query).match == match


def test_a_long_text_is_cut_around_the_match_at_word_boundaries() -> None:
    text = (
        " ".join(f"word{i}" for i in range(200)) + " needle " + " ".join("x" * 5 for _ in range(50))
    )
    found = snippet(text, "needle", context=30)
    assert found.match == "needle"
    assert found.before.startswith("…") and found.after.endswith("…")
    assert len(found.before) <= 32 and len(found.after) <= 32
    assert not found.before[1:].startswith(" ")


def test_no_match_gives_the_start_without_a_highlight() -> None:
    assert snippet("Straße und mehr", "strasse", context=5) == Snippet("Straße und…", "", "")
