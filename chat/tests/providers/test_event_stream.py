"""SSEParser (chat/providers/event_stream.py): the Server-Sent Events rules, whatever
way the body is split into network reads."""

from __future__ import annotations

import pytest

from chat.providers.event_stream import SSEParser

BODIES = {
    "lf": (b'data: {"a":1}\n\ndata: [DONE]\n\n', [(None, b'{"a":1}'), (None, b"[DONE]")]),
    "crlf": (b"data: x\r\n\r\ndata: y\r\n\r\n", [(None, b"x"), (None, b"y")]),
    "cr-only": (b"data: x\r\rdata: y\r\r", [(None, b"x"), (None, b"y")]),
    "comments-and-keep-alives-are-skipped": (
        b": OPENROUTER PROCESSING\n\n: keep-alive\n\ndata: x\n\n",
        [(None, b"x")],
    ),
    "multi-line-data-is-joined-with-lf": (b"data: a\ndata: b\n\n", [(None, b"a\nb")]),
    "named-event": (
        b"event: content_block_delta\ndata: {}\n\n",
        [("content_block_delta", b"{}")],
    ),
    "no-space-after-the-colon": (b"data:x\n\n", [(None, b"x")]),
    "other-fields-are-ignored": (
        b'id: 7\nretry: 100\nerror: {"code":500}\n\ndata: x\n\n',
        [(None, b"x")],
    ),
    "empty-data-line-is-an-event": (b"data:\n\n", [(None, b"")]),
    "utf-8-kept-as-bytes": ('data: "é€😀"\n\n'.encode(), [(None, '"é€😀"'.encode())]),
    "event-not-ended-by-a-blank-line-is-discarded": (b"data: x\n\ndata: cut", [(None, b"x")]),
}


def _parse(chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    parser = SSEParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


@pytest.mark.parametrize("name", list(BODIES))
def test_events_are_the_same_however_the_body_is_split(name: str) -> None:
    body, expected = BODIES[name]
    splits = [[body]]
    splits += [[body[:i], body[i:]] for i in range(1, len(body))]
    splits.append([body[i : i + 1] for i in range(len(body))])  # a byte at a time
    for chunks in splits:
        assert _parse(chunks) == expected, chunks
