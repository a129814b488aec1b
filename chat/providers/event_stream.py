"""A small, fast Server-Sent Events parser for the providers that read their stream's
bytes themselves (``openai_provider`` reads the HTTP response the SDK opened, so that it
does not build an SDK object per chunk).

Wire format: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
(the same rules as the SDKs' own decoders): lines end with CRLF, LF or CR; a blank line
dispatches the event; ``data`` lines are joined with LF; ``event`` names it; lines
starting with ":" are comments (keep-alives, OpenRouter's "PROCESSING"); other fields
(``id``, ``retry``, llama.cpp's ``error``) are ignored here; an event not ended by a blank
line when the body ends is discarded. An event with no ``data`` and no ``event`` line is
not dispatched.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SSEParser"]

_CR = b"\r"
_LF = b"\n"


class SSEParser:
    """Incremental parser: ``feed(chunk)`` takes the body's bytes as they arrive (split
    anywhere, even inside a line or a CRLF) and returns the events completed by them, as
    ``(event name or None, data bytes)`` pairs. ``data`` is bytes so that the caller can
    hand it to ``json.loads`` without decoding it first."""

    __slots__ = ("_data", "_event", "_pending", "_skip_lf")

    def __init__(self) -> None:
        self._pending = b""  # the start of a line whose end has not arrived
        self._skip_lf = False  # the last chunk ended with CR: a LF next belongs to it
        self._data: list[bytes] = []
        self._event: bytes | None = None

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        """The events completed by ``chunk``."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == _LF:
                chunk = chunk[1:]
        if _CR in chunk:
            if chunk.endswith(_CR):
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", _LF).replace(_CR, _LF)
        if self._pending:
            chunk = self._pending + chunk
        lines = chunk.split(_LF)
        self._pending = lines.pop()
        return self._lines(lines) if lines else []

    def _lines(self, lines: Iterable[bytes]) -> list[tuple[str | None, bytes]]:
        events: list[tuple[str | None, bytes]] = []
        data = self._data
        for line in lines:
            if not line:
                if data or self._event is not None:
                    event = self._event
                    events.append(
                        (
                            event.decode("utf-8", "replace") if event is not None else None,
                            data[0] if len(data) == 1 else _LF.join(data),
                        )
                    )
                    data = self._data = []
                    self._event = None
                continue
            if line[0] == 58:  # ":" - a comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value or None
        return events
