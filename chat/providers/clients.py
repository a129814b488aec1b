"""One way to hold SDK clients: ``SdkClients``, used by every cloud provider.

Building an SDK client costs milliseconds of CPU (a TLS context, often CA certificates
read from disk), and a client kept between requests keeps its connections to the
upstream open, saving a TCP and TLS handshake per message. But a client's connection
pool belongs to the event loop it was first used in, so a client is shared only within
one loop: the app's server loop holds one per configuration for its whole life, while
``get_response`` (the guide's synchronous call, which runs each call in a loop of its
own) gets a fresh one per call.

Each provider module makes one holder for its SDK, with a function that builds a client
from a ``ClientConfig`` (key, base URL, timeout: passed in, never read from settings or
class state here) and one that closes it. A holder:

* keeps at most ``max_per_loop`` clients per loop, keyed by ``ClientConfig``; the least
  recently used one beyond that is dropped;
* closes every client it drops: one evicted, once its last request is over; those of a
  loop that shuts down (``asyncio.run``, asgiref, pytest's loops and uvicorn all call
  ``loop.shutdown_asyncgens()``, which lets the holder close them on that loop), and
  forgets those of a loop closed without that;
* builds clients lazily, so the SDK is imported only when a request is made.

``shared_tls_context()`` is the one TLS context the httpx-based SDK clients share, so that
building a client costs well under a millisecond instead of reading the CA certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

C = TypeVar("C")


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """The TLS context httpx2 builds by default (the system's CA certificates, or
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``), built once per process and shared by the SDKs'
    HTTP clients: building one reads the CA certificates, about 20 ms of CPU."""
    import httpx2

    return httpx2.create_ssl_context()


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What a client is built from, and the key it is held under: the API key (never
    shown in ``repr``), the base URL (None for the SDK's default) and the request timeout
    in seconds."""

    api_key: str = field(repr=False)
    base_url: str | None
    timeout: float


class _Entry(Generic[C]):
    """A client and how many requests use it now."""

    __slots__ = ("client", "dropped", "users")

    def __init__(self, client: C) -> None:
        self.client = client
        self.users = 0
        self.dropped = False


class _LoopClients(Generic[C]):
    """The clients of one event loop, most recently used last, and the async generator
    whose ``finally`` closes them when the loop shuts its async generators down."""

    __slots__ = ("entries", "watcher")

    def __init__(self) -> None:
        self.entries: OrderedDict[ClientConfig, _Entry[C]] = OrderedDict()
        self.watcher: AsyncIterator[None] | None = None


class SdkClients(Generic[C]):
    """SDK clients of one kind, one per (event loop, ``ClientConfig``); see the module
    docstring. ``build(config)`` makes a client (synchronously; it may raise, for example
    ImportError when the SDK is missing), ``close(client)`` closes it.

    Use::

        _CLIENTS = SdkClients("openai", build=_build_client, close=_close_client)

        async with _CLIENTS.lease(ClientConfig(key, base_url, timeout)) as client:
            ...  # the client stays open until the block ends, even if it is evicted
    """

    def __init__(
        self,
        name: str,
        *,
        build: Callable[[ClientConfig], C],
        close: Callable[[C], Awaitable[None]],
        max_per_loop: int = 16,
    ) -> None:
        self.name = name
        self._build = build
        self._close = close
        self._max_per_loop = max(1, max_per_loop)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients[C]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()  # loops run in several threads

    def __repr__(self) -> str:
        return f"<SdkClients {self.name}: {self.count()} client(s)>"

    def count(self) -> int:
        """How many clients are held now, in every loop (for tests and diagnostics)."""
        with self._lock:
            return sum(len(clients.entries) for clients in self._loops.values())

    @contextlib.asynccontextmanager
    async def lease(self, config: ClientConfig) -> AsyncIterator[C]:
        """The client for ``config`` in the running loop, built on first use, kept open
        until the block ends. Raises what ``build`` raises."""
        clients = await self._loop_clients()
        entry = clients.entries.get(config)
        if entry is None:
            entry = _Entry(self._build(config))
            clients.entries[config] = entry
            await self._evict(clients)
        else:
            clients.entries.move_to_end(config)
        entry.users += 1
        try:
            yield entry.client
        finally:
            entry.users -= 1
            if entry.dropped and entry.users == 0:
                await self._close_quietly(entry.client)

    async def aclose(self) -> None:
        """Close the clients of the running loop (those in use close when their requests
        end). Other loops' clients are left alone: they belong to those loops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._loops.pop(loop, None)
        if clients is not None:
            await self._drop_all(clients)

    # -- internals -----------------------------------------------------------------------

    async def _loop_clients(self) -> _LoopClients[C]:
        loop = asyncio.get_running_loop()
        with self._lock:
            for other in [other for other in self._loops if other.is_closed()]:
                # Closed without shutting its async generators down: its clients cannot
                # be closed on it any more; let them go.
                del self._loops[other]
            clients = self._loops.get(loop)
            if clients is None:
                clients = self._loops[loop] = _LoopClients()
        if clients.watcher is None:
            clients.watcher = self._watch(clients)
            await anext(clients.watcher)  # now registered with the loop, suspended
        return clients

    async def _watch(self, clients: _LoopClients[C]) -> AsyncIterator[None]:
        """Suspended for the life of the loop; ``loop.shutdown_asyncgens()`` closes it,
        which closes the loop's clients on the loop itself."""
        try:
            yield
        finally:
            with self._lock:
                for loop, held in list(self._loops.items()):
                    if held is clients:
                        del self._loops[loop]
            await self._drop_all(clients)

    async def _evict(self, clients: _LoopClients[C]) -> None:
        while len(clients.entries) > self._max_per_loop:
            _config, entry = clients.entries.popitem(last=False)
            await self._drop(entry)

    async def _drop_all(self, clients: _LoopClients[C]) -> None:
        entries = list(clients.entries.values())
        clients.entries.clear()
        for entry in entries:
            await self._drop(entry)

    async def _drop(self, entry: _Entry[C]) -> None:
        entry.dropped = True
        if entry.users == 0:
            await self._close_quietly(entry.client)

    async def _close_quietly(self, client: C) -> None:
        try:
            await self._close(client)
        except Exception:  # closing must never mask what the caller is doing
            logger.debug("%s: closing an SDK client failed", self.name, exc_info=True)
