"""Run events across workers, through Redis (only when ``REDIS_URL`` is set).

Why Redis Streams for the events and pub/sub for Stop:

- A follower on another worker arrives at any moment: after a reload, in a second tab,
  after its connection dropped. It needs everything from a given point (the start, or
  the last event it saw) and then the live tail, with nothing lost in between. A Redis
  Stream is exactly that: ``XADD`` with the run's own sequence number as the entry id
  (``0-N``), ``XREAD BLOCK`` from ``0-<last seen>``. Pub/sub would lose whatever was
  published between reading the text so far and subscribing.
- A Stop must reach the one worker that runs the reply, now, and concerns nothing
  later: a fire-and-forget message on one channel every worker listens to (pub/sub).

Each run's stream expires an hour after its last event (ten minutes after it ended); the
database has the outcome anyway. Events are written in batches (one pipeline every
``FLUSH_SECONDS`` for all runs of the process), so the per-token cost in the run is one
list append.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..providers import ReasoningDelta, TextDelta, Usage
from .runs import RunFailed, RunFallback, RunFinished, RunStarted, RunStopped

logger = logging.getLogger("chat.services")

FLUSH_SECONDS = 0.02
STOP_CHANNEL = "chat:stop"
LIVE_TTL = 3600  # seconds a run's stream is kept after its last event
ENDED_TTL = 600  # ... after the run ended
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def stream_key(reply_id: int) -> str:
    return f"chat:run:{reply_id}"


def event_to_wire(event: Any) -> str:
    """One run event as compact JSON: ``{"t": kind, ...fields}`` (the document is
    this module: kinds text, reasoning, usage, started, finished, failed, stopped)."""
    kind = type(event)
    if kind is TextDelta:
        return _dumps({"t": "text", "x": event.text})
    if kind is ReasoningDelta:
        return _dumps({"t": "reasoning", "x": event.text})
    if kind is Usage:
        return _dumps({"t": "usage", "u": _usage(event)})
    name = _WIRE_NAMES[kind]
    fields = {slot: getattr(event, slot) for slot in kind.__slots__}
    if "usage" in fields:
        fields["usage"] = _usage(fields["usage"])
    return _dumps({"t": name, **fields})


def event_from_wire(text: str | bytes) -> Any:
    """The run event ``event_to_wire`` wrote."""
    data = json.loads(text)
    kind = data.pop("t")
    if kind == "text":
        return TextDelta(data["x"])
    if kind == "reasoning":
        return ReasoningDelta(data["x"])
    if kind == "usage":
        return _usage_from(data["u"])
    cls = _WIRE_CLASSES[kind]
    if "usage" in data:
        data["usage"] = _usage_from(data["usage"])
    return cls(**data)


def _usage(usage: Usage | None) -> list[int | None] | None:
    if usage is None:
        return None
    return [usage.input_tokens, usage.output_tokens, usage.reasoning_tokens]


def _usage_from(value: list[int | None] | None) -> Usage | None:
    return None if value is None else Usage(*value)  # type: ignore[arg-type]


_WIRE_NAMES = {
    RunStarted: "started",
    RunFallback: "fallback",
    RunFinished: "finished",
    RunFailed: "failed",
    RunStopped: "stopped",
}
_WIRE_CLASSES = {name: cls for cls, name in _WIRE_NAMES.items()}
TERMINAL = (RunFinished, RunFailed, RunStopped)


class _Throttled:
    """Log a failure at most once a minute (Redis down must not flood the log)."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.last = -1e9

    def warn(self) -> None:
        now = time.monotonic()
        if now - self.last >= 60:
            self.last = now
            logger.warning(self.message, exc_info=True)


class RedisBroker:
    """Publishes this process's run events to Redis Streams, follows other workers'
    runs, and carries Stop requests between workers. One per event loop."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.redis = redis.from_url(url)
        self._pending: dict[int, list[tuple[int, Any]]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._publish_failed = _Throttled("publishing run events to Redis failed")
        self._listen_failed = _Throttled("listening for Stop requests in Redis failed")
        self._closing: asyncio.Task[None] | None = None

    # --- publishing --------------------------------------------------------------------

    def publish(self, reply_id: int, seq: int, event: Any) -> None:
        """Queue event number ``seq`` of reply ``reply_id``'s run (written within
        FLUSH_SECONDS, together with every other run's)."""
        pending = self._pending.get(reply_id)
        if pending is None:
            self._pending[reply_id] = pending = []
        pending.append((seq, event))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(FLUSH_SECONDS)
            batch, self._pending = self._pending, {}
            pipe = self.redis.pipeline(transaction=False)
            for reply_id, events in batch.items():
                key = stream_key(reply_id)
                for seq, event in events:
                    pipe.xadd(key, {"e": event_to_wire(event)}, id=f"0-{seq}")
                pipe.expire(key, ENDED_TTL if isinstance(events[-1][1], TERMINAL) else LIVE_TTL)
            try:
                await pipe.execute()
            except Exception:
                self._publish_failed.warn()

    # --- following ---------------------------------------------------------------------

    async def has_run(self, reply_id: int) -> bool:
        """True when some worker has published events of this reply's run (False when
        Redis does not answer: the follower then reads the database)."""
        try:
            return bool(await self.redis.exists(stream_key(reply_id)))
        except Exception:
            logger.warning("Redis does not answer: following reply %s from the database", reply_id)
            return False

    async def follow(
        self, reply_id: int, after: int, *, block_ms: int = 1000
    ) -> AsyncIterator[list[tuple[int, Any]]]:
        """Batches of (sequence number, event) after ``after``, as they arrive, until the
        run's terminal event; an empty batch when ``block_ms`` passed with none."""
        key, last = stream_key(reply_id), f"0-{after}"
        while True:
            answer = await self.redis.xread({key: last}, block=block_ms, count=1000)
            if not answer:
                yield []
                continue
            batch = []
            for entry_id, fields in answer[0][1]:
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                batch.append((int(last.split("-")[1]), event_from_wire(fields[b"e"])))
            yield batch
            if isinstance(batch[-1][1], TERMINAL):
                return

    async def history(self, reply_id: int) -> list[tuple[int, Any]]:
        """Every event of the run published so far."""
        entries = await self.redis.xrange(stream_key(reply_id))
        return [
            (int(entry_id.decode().split("-")[1]), event_from_wire(fields[b"e"]))
            for entry_id, fields in entries
        ]

    # --- stop --------------------------------------------------------------------------

    async def request_stop(self, reply_id: int) -> None:
        """Tell every worker to stop the run of ``reply_id`` (a Redis failure is logged:
        the caller then closes the reply itself after its grace period)."""
        try:
            await self.redis.publish(STOP_CHANNEL, str(reply_id))
        except Exception:
            logger.warning("Redis does not answer: Stop of reply %s not sent", reply_id)

    async def listen_for_stops(self, on_stop: Callable[[int], None]) -> None:
        """Call ``on_stop(reply_id)`` for each Stop any worker asks for (runs until
        cancelled; reconnects after a Redis failure).

        It reads with a one-second timeout rather than ``listen()``: redis-py can
        swallow a cancellation that lands inside a read, and a task that never ends
        would keep its event loop from closing; each turn checks whether the task was
        asked to stop."""
        task = asyncio.current_task()

        def stopping() -> bool:
            return task is not None and task.cancelling() > 0

        while not stopping():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(STOP_CHANNEL)
                while not stopping():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        try:
                            on_stop(int(message["data"]))
                        except ValueError:
                            continue
            except asyncio.CancelledError:
                raise
            except Exception:
                if stopping():
                    return
                self._listen_failed.warn()
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)

    @property
    def closed(self) -> bool:
        """True once ``close`` has finished."""
        return self._closing is not None and self._closing.done()

    async def close(self) -> None:
        """Write what is queued, then close the connections. Safe to call more than once
        and from several tasks at a time: the first call closes, the others wait for it."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=5)
        await self.redis.aclose()
