"""A small HTTP/1.1 server on 127.0.0.1 for faking LLM upstreams.

It runs its own asyncio loop in a background thread, so it serves the real SDKs whether
the test is sync or async, and holds thousands of concurrent streams (the benchmarks use
it too). Each wire format has a module beside this one that builds its responses.

Usage::

    with FakeUpstream() as upstream:
        upstream.add("POST", "/v1/chat/completions", JsonResponse({"ok": True}))
        ... point the SDK at upstream.url ...
        assert upstream.requests[0].json()["model"] == "gpt-4o-mini"

Responses are queued per route and used once each; when a route's queue is empty its
``default`` (if set with ``set_default``) answers. An unmatched request gets a 404 in the
shape of ``not_found`` (which a wire-format module can replace).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    # Set when the client closed the connection before the response was complete.
    client_closed: threading.Event = field(default_factory=threading.Event)
    completed: threading.Event = field(default_factory=threading.Event)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def route_path(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.path.split("?", 1)[1] if "?" in self.path else ""


@dataclass(frozen=True)
class Pause:
    """Inside a stream: wait before the next chunk."""

    seconds: float


@dataclass(frozen=True)
class Break:
    """Inside a stream: drop the connection without finishing the response."""


@dataclass
class JsonResponse:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line (a slow upstream)
    raw: bytes | None = None  # send these bytes as the body instead of JSON
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body).encode()


@dataclass
class StreamResponse:
    """A chunked response, usually Server-Sent Events. ``chunks`` may hold bytes, str,
    ``Pause`` and ``Break`` items, or be a callable returning such an iterable (built
    per request)."""

    chunks: Iterable[bytes | str | Pause | Break] | Callable[[], Iterable[Any]] = ()
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "text/event-stream"


Response = JsonResponse | StreamResponse
Handler = Callable[[RecordedRequest], Response]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


def sse(data: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event; ``data`` is JSON-encoded unless it is already a str."""
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: list[
            tuple[str, re.Pattern[str], list[Response | Handler], Response | Handler | None]
        ] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.open_connections = 0
        self.not_found: Callable[[RecordedRequest], Response] = lambda r: JsonResponse(
            {"error": {"message": f"no fake route for {r.method} {r.route_path}"}}, status=404
        )

    # -- configuration -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, method: str, path: str, *responses: Response | Handler) -> None:
        """Queue responses for ``method`` and a path regex (matched in full)."""
        route = self._route(method, path)
        with self._lock:
            route[2].extend(responses)

    def set_default(self, method: str, path: str, response: Response | Handler) -> None:
        """The answer for a route once its queue is empty."""
        with self._lock:
            for i, (m, pattern, queue, _default) in enumerate(self._routes):
                if m == method and pattern.pattern == path:
                    self._routes[i] = (m, pattern, queue, response)
                    return
            self._routes.append((method, re.compile(path), [], response))

    def reset(self) -> None:
        with self._lock:
            self._routes.clear()
            self.requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.requests)

    def _route(self, method: str, path: str) -> tuple[Any, ...]:
        with self._lock:
            for route in self._routes:
                if route[0] == method and route[1].pattern == path:
                    return route
            route = (method, re.compile(path), [], None)
            self._routes.append(route)
            return route

    def _pick(self, request: RecordedRequest) -> Response:
        with self._lock:
            for method, pattern, queue, default in self._routes:
                if method == request.method and pattern.fullmatch(request.route_path):
                    if queue:
                        chosen = queue.pop(0)
                    elif default is not None:
                        chosen = default
                    else:
                        continue
                    break
            else:
                chosen = self.not_found
        return chosen(request) if callable(chosen) else chosen

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                self._server = await asyncio.start_server(
                    self._serve_connection, "127.0.0.1", 0, backlog=4096
                )
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(boot())
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ----------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.open_connections += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                keep_open = await self._respond(request, reader, writer)
                request.completed.set()
                if not keep_open or request.headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.open_connections -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def _read_request(self, reader: asyncio.StreamReader) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        return RecordedRequest(method, path, headers, body)

    async def _respond(
        self,
        request: RecordedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        response = self._pick(request)
        if response.delay:
            await asyncio.sleep(response.delay)
        reason = _REASONS.get(response.status, "Status")
        headers = {"content-type": response.content_type, **response.headers}
        if isinstance(response, JsonResponse):
            payload = response.payload()
            headers["content-length"] = str(len(payload))
            writer.write(self._head(response.status, reason, headers) + payload)
            await writer.drain()
            return True

        headers["transfer-encoding"] = "chunked"
        headers.setdefault("cache-control", "no-cache")
        # The close watcher below reads from the socket, so a streamed response ends its
        # connection; saying so keeps the client from reusing it.
        headers["connection"] = "close"
        writer.write(self._head(response.status, reason, headers))
        await writer.drain()
        chunks = response.chunks() if callable(response.chunks) else response.chunks
        watcher = asyncio.ensure_future(self._watch_close(reader, request))
        try:
            for item in chunks:
                if request.client_closed.is_set():
                    return False
                if isinstance(item, Pause):
                    await asyncio.sleep(item.seconds)
                    continue
                if isinstance(item, Break):
                    writer.transport.abort()
                    return False
                data = item.encode() if isinstance(item, str) else item
                if not data:
                    continue
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return False
        except ConnectionError:
            request.client_closed.set()
            return False
        finally:
            watcher.cancel()

    @staticmethod
    async def _watch_close(reader: asyncio.StreamReader, request: RecordedRequest) -> None:
        """Notice the client hanging up while we stream (Stop, disconnect)."""
        try:
            data = await reader.read(1)
        except (ConnectionError, asyncio.CancelledError):
            if not request.completed.is_set():
                request.client_closed.set()
            raise
        if not data:
            request.client_closed.set()

    @staticmethod
    def _head(status: int, reason: str, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
