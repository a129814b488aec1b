"""Server-Sent Events: the one encoder the chat page's streams use, and the one reader
the tests and ``bench/`` use.

Wire format: the WHATWG HTML standard, section 9.2 "Server-sent events"
(https://html.spec.whatwg.org/multipage/server-sent-events.html). Each event is a block
of ``field: value`` lines ended by a blank line; we send ``id`` (the run's event
sequence number, so a client that reconnects with ``Last-Event-ID`` resumes where it
left off), ``event`` (the event's name) and one ``data`` line of JSON. A line starting
with ``:`` is a comment (our heartbeat).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, NamedTuple

HEARTBEAT = b": keep-alive\n\n"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def sse_event(event: str, data: dict[str, Any], *, event_id: int | None = None) -> bytes:
    """One event as UTF-8 bytes: ``id: N`` (when given), ``event: NAME``, ``data: JSON``.
    JSON never holds a raw newline (they are escaped), so one data line is enough."""
    head = f"id: {event_id}\nevent: " if event_id is not None else "event: "
    return f"{head}{event}\ndata: {_dumps(data)}\n\n".encode()


class SSEEvent(NamedTuple):
    """One parsed event: its name (``message`` when none was sent), its data decoded
    from JSON (None when the data is not JSON: then ``raw`` has it), and its id
    (None when the event carried none)."""

    event: str
    data: Any
    id: int | None = None
    raw: str = ""


class SSEParser:
    """Incremental parser: feed it text as it arrives, get the complete events."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[SSEEvent]:
        """The events completed by ``text`` (comments and blank blocks are skipped)."""
        self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        *blocks, self._buffer = self._buffer.split("\n\n")
        return [event for block in blocks if (event := _parse_block(block)) is not None]


def _parse_block(block: str) -> SSEEvent | None:
    name, data_lines, event_id = "message", [], None
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data_lines.append(value)
        elif field == "id" and value.isdigit():
            event_id = int(value)
    if not data_lines:
        return None
    raw = "\n".join(data_lines)
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    return SSEEvent(name, data, event_id, raw)


def parse_sse(body: bytes | str | Iterable[bytes]) -> list[SSEEvent]:
    """Every event of a whole response body (bytes, text, or a list of chunks)."""
    if not isinstance(body, bytes | str):
        body = b"".join(body)
    text = body.decode() if isinstance(body, bytes) else body
    return SSEParser().feed(text + "\n\n")


async def aiter_sse(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[SSEEvent]:
    """The events of a response read as it arrives (for example httpx's
    ``response.aiter_bytes()``), each yielded as soon as its block is complete."""
    parser = SSEParser()
    decoder = codecs.getincrementaldecoder("utf-8")()  # a character may span two chunks
    async for chunk in chunks:
        text = decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        for event in parser.feed(text):
            yield event
