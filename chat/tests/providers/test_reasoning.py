"""The shared reasoning helpers (chat/providers/reasoning.py), pure: the streaming
``<think>`` splitter and the typed content parts."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from chat.providers import ReasoningDelta, TextDelta
from chat.providers.reasoning import ThinkTagSplitter, content_part_events


def split(chunks: Iterable[str]) -> list[TextDelta | ReasoningDelta]:
    """Feed ``chunks`` through one splitter and flush it."""
    splitter = ThinkTagSplitter()
    events: list[TextDelta | ReasoningDelta] = []
    for chunk in chunks:
        events += splitter.feed(chunk)
    return events + splitter.flush()


def joined(events: list[TextDelta | ReasoningDelta]) -> tuple[str, str]:
    """(reasoning, answer) as the app would store them."""
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, answer


def every_split(text: str) -> list[list[str]]:
    """``text`` cut in two at every position, and one character per chunk."""
    return [[text[:i], text[i:]] for i in range(1, len(text))] + [list(text)]


# --- the <think> splitter -----------------------------------------------------------------


def test_think_block_at_the_start_is_reasoning_and_the_rest_the_answer() -> None:
    events = split(["<think>The user greets me.</think>Hello!"])

    assert events == [ReasoningDelta("The user greets me."), TextDelta("Hello!")]


@pytest.mark.parametrize("chunks", every_split("<think>Greeting.</think>\n\nHello there"))
def test_think_block_is_split_whatever_the_chunk_boundaries(chunks: list[str]) -> None:
    assert joined(split(chunks)) == ("Greeting.", "Hello there")


def test_tags_split_over_chunks_never_leak_into_the_text() -> None:
    events = split(["<th", "ink>plan", " it</th", "ink>Answer"])

    assert joined(events) == ("plan it", "Answer")
    assert all("<" not in e.text and ">" not in e.text for e in events)


def test_reasoning_streams_before_the_block_closes() -> None:
    splitter = ThinkTagSplitter()

    assert splitter.feed("<think>step one, ") == [ReasoningDelta("step one, ")]
    assert splitter.feed("step two") == [ReasoningDelta("step two")]


def test_a_possible_closing_tag_is_held_back_until_the_next_chunk() -> None:
    splitter = ThinkTagSplitter()
    splitter.feed("<think>a < b is tru")

    assert splitter.feed("e </") == [ReasoningDelta("e ")]
    assert splitter.feed("b> ok</think>Yes") == [ReasoningDelta("</b> ok"), TextDelta("Yes")]


def test_text_after_the_closing_tag_in_the_same_chunk_is_answer() -> None:
    events = split(["<think>", "why", "</think>Because.", " Really."])

    assert events == [ReasoningDelta("why"), TextDelta("Because."), TextDelta(" Really.")]


def test_whitespace_around_the_tags_is_dropped() -> None:
    events = split(["\n<think>\n", "Think.\n", "</think>", "\n\n", "Answer."])

    assert joined(events) == ("Think.\n", "Answer.")


def test_unclosed_think_block_at_the_end_stays_reasoning() -> None:
    events = split(["<think>I need more tokens to fin", "ish this thou"])

    assert joined(events) == ("I need more tokens to finish this thou", "")


def test_unclosed_block_ending_in_a_partial_closing_tag_keeps_it_as_reasoning() -> None:
    events = split(["<think>almost</thi"])

    assert joined(events) == ("almost</thi", "")


def test_reply_without_a_think_block_passes_through_unchanged() -> None:
    chunks = ["Hello", ", ", "world", "!"]

    assert split(chunks) == [TextDelta(c) for c in chunks]


def test_think_tag_later_in_the_reply_is_text() -> None:
    events = split(["Use the ", "<think> tag like this: <think>x</think>"])

    assert joined(events) == ("", "Use the <think> tag like this: <think>x</think>")


def test_reply_starting_with_another_tag_is_text() -> None:
    events = split(["<th", "ead>Name</thead>"])

    assert events == [TextDelta("<thead>Name</thead>")]


def test_reply_ending_on_a_prefix_of_the_opening_tag_is_text() -> None:
    assert split(["<thi"]) == [TextDelta("<thi")]


def test_empty_chunks_change_nothing() -> None:
    events = split(["", "<think>", "", "x", "", "</think>", "", "y", ""])

    assert joined(events) == ("x", "y")


# --- typed content parts ------------------------------------------------------------------


def test_thinking_part_is_reasoning_and_text_part_is_text() -> None:
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "It's a greeting"}]},
        {"type": "text", "text": "Hello"},
    ]

    assert content_part_events(content) == [ReasoningDelta("It's a greeting"), TextDelta("Hello")]


def test_thinking_given_as_a_string_is_reasoning() -> None:
    content = [{"type": "thinking", "thinking": "Short thought"}]

    assert content_part_events(content) == [ReasoningDelta("Short thought")]


def test_a_string_content_is_text() -> None:
    assert content_part_events("!") == [TextDelta("!")]


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        [{"type": "reference", "reference_ids": [1, 2]}],
        [{"no_type": True}],
        [42, None, ["nested"]],
        [{"type": "text", "text": None}],
        [{"type": "thinking", "thinking": {"unexpected": "shape"}}],
        {"type": "text", "text": "a dict, not a list"},
        None,
    ],
    ids=[
        "image-part",
        "reference-part",
        "part-without-type",
        "non-dict-items",
        "text-part-without-text",
        "thinking-of-unknown-shape",
        "dict-content",
        "null-content",
    ],
)
def test_parts_of_unknown_shape_are_skipped_without_error(content: object) -> None:
    assert content_part_events(content) == []


def test_unknown_parts_do_not_hide_the_known_ones() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "Kept"},
    ]

    assert content_part_events(content) == [TextDelta("Kept")]
