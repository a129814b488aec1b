"""The reply hub: the one object that owns a process's reply runs and what they share.

It holds the runs of this process by reply id, the checkpoint writer, the Redis broker
(when ``REDIS_URL`` is set) and a once-a-second housekeeping tick, and it has an explicit
``start`` (bound to the running event loop, done on first use) and ``stop`` (on SIGTERM:
stop taking new replies, give running ones a grace period, then stop each and save it as
interrupted). ``wait_idle`` waits for the runs and the background work they started (a
title written by a model) to end. Use the process's hub through ``get_hub()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings

from ..models import Message
from .persistence import CheckpointWriter, db_step

if TYPE_CHECKING:
    from .broker import RedisBroker
    from .replies import PreparedReply
    from .runs import ReplyRun

logger = logging.getLogger("chat.services")


class ShuttingDown(Exception):
    """The server is shutting down and takes no new replies."""


class ReplyHub:
    """Runs of this process, stop signals, checkpoints, cross-worker events."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runs: dict[int, ReplyRun] = {}
        self.accepting = True
        self.checkpoints = CheckpointWriter()
        self.broker: RedisBroker | None = None
        # Background work runs started (titles): wait_idle waits for it, stop cancels it.
        self._work: set[asyncio.Task[Any]] = set()
        # The hub's own machinery (the Stop listener): stop cancels it.
        self._services: set[asyncio.Task[Any]] = set()
        self._housekeeper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Bind the hub to the running event loop (again, if the loop changed: each
        test may have its own; runs of a closed loop are gone with it, and the Redis
        broker of the loop left behind is closed, see ``_end_left_behind``)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        previous_loop, previous_services = self._loop, self._services
        self._loop = loop
        self.runs = {}
        self.accepting = True
        self.checkpoints = CheckpointWriter()
        self._work = set()
        self._services = set()
        self._housekeeper = None
        self._stopping = None
        self.broker = None
        if previous_loop is not None:
            _end_left_behind(previous_loop, previous_services)
        if settings.REDIS_URL:
            from .broker import RedisBroker

            self.broker = RedisBroker(settings.REDIS_URL)
            self._service(self._serve_broker(self.broker))
        self._install_sigterm()
        # The price data is loaded in a worker thread now, not by the first reply's
        # metering (usage.prices).
        from usage.prices import prices_warm

        loop.run_in_executor(None, prices_warm)

    async def _serve_broker(self, broker: RedisBroker) -> None:
        # Listen for Stop requests for as long as the loop lives, then close the broker.
        # A loop that ends (a server's exit, asyncio.run, a test's loop) cancels its
        # tasks first, so the broker's connections are closed on the loop they belong to.
        try:
            await broker.listen_for_stops(self._stop_requested)
        finally:
            await broker.close()

    async def stop(self, *, grace: float | None = None) -> None:
        """Stop taking new replies; wait up to ``grace`` seconds (default
        CHAT_SHUTDOWN_GRACE_SECONDS) for running replies to end by themselves; stop the
        rest, saving their text as interrupted; then close the checkpoint writer and the
        broker."""
        self.accepting = False
        grace = settings.CHAT_SHUTDOWN_GRACE_SECONDS if grace is None else grace
        runs = list(self.runs.values())
        if runs:
            logger.warning("shutting down: %d replies running, waiting %.0fs", len(runs), grace)
            await asyncio.wait([asyncio.ensure_future(run.done()) for run in runs], timeout=grace)
        for run in list(self.runs.values()):
            run.stop("interrupted")
        for run in runs:
            await run.done()
        await self.checkpoints.close()
        for task in [*self._work, *self._services]:
            task.cancel()
        if self.broker is not None:
            await self.broker.close()

    async def wait_idle(self) -> None:
        """Return once the hub has nothing left to do in this process: every reply run
        has ended (its outcome saved, its last event logged) and the background work the
        runs started (a title written by a model) has finished. Stops nothing, and does
        not wait for the hub's own machinery (the Stop listener, the heartbeat tick).
        Bound it with ``asyncio.timeout`` where it must not wait forever."""
        while True:
            # A run that ends may start work (a title): look again after each wait.
            pending = {run.task for run in self.runs.values() if run.task is not None}
            pending = {task for task in pending | self._work if not task.done()}
            if not pending:
                return
            await asyncio.wait(pending)

    def _install_sigterm(self) -> None:
        """Chain our shutdown before the server's own SIGTERM and SIGINT handlers
        (uvicorn's, which then stops accepting connections and waits for open ones).
        Only when a server installed one: under a bare test runner nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = self._loop
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if not callable(previous) or previous is signal.default_int_handler:
                continue
            if getattr(previous, "_chat_hub", False):
                previous = previous._chat_previous  # type: ignore[attr-defined]

            def on_signal(signum: int, frame: Any, previous: Any = previous) -> None:
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(self._begin_shutdown)
                previous(signum, frame)

            on_signal._chat_hub = True  # type: ignore[attr-defined]
            on_signal._chat_previous = previous  # type: ignore[attr-defined]
            signal.signal(signum, on_signal)

    def _begin_shutdown(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self.stop())

    # --- runs --------------------------------------------------------------------------

    def start_run(self, prepared: PreparedReply) -> ReplyRun:
        """Start generating the reply ``prepared`` describes. Raises ShuttingDown when
        the server no longer takes new replies."""
        from .runs import ReplyRun

        self.start()
        if not self.accepting:
            raise ShuttingDown
        run = ReplyRun(prepared, self)
        self.runs[run.reply_id] = run
        run.begin()
        if self._housekeeper is None or self._housekeeper.done():
            self._housekeeper = self._service(self._housekeep())
        return run

    def get(self, reply_id: int) -> ReplyRun | None:
        """The run writing ``reply_id`` in this process, if any."""
        if self._loop is not None and self._loop is not _running_loop():
            return None
        return self.runs.get(reply_id)

    def forget(self, run: ReplyRun) -> None:
        """A run ended (its outcome is saved and its last event logged)."""
        if self.runs.get(run.reply_id) is run:
            del self.runs[run.reply_id]

    def stop_here(self, reply_id: int) -> bool:
        """Stop the run writing ``reply_id`` if it runs in this process."""
        run = self.get(reply_id)
        return run is not None and run.stop("stop")

    async def request_stop(self, reply_id: int) -> None:
        """Ask every worker to stop the run writing ``reply_id`` (through Redis)."""
        if self.broker is not None:
            await self.broker.request_stop(reply_id)

    def _stop_requested(self, reply_id: int) -> None:
        run = self.runs.get(reply_id)
        if run is not None:
            run.stop("stop")

    def publisher(self) -> Callable[[int, int, Any], None] | None:
        """What a run calls with (reply id, sequence number, event) for each event it
        logs, so followers on other workers see it; None without Redis."""
        return self.broker.publish if self.broker is not None else None

    def after_run(self, run: ReplyRun, status: str) -> None:
        """A run finished: write the new conversation's title in the background."""
        prepared = run.prepared
        if prepared.created_conversation_title and status == "complete":
            from .titles import title_write

            self.spawn(title_write(prepared=prepared, reply="".join(run.snapshot()[0])))

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        """Run ``coroutine`` as background work the hub keeps: ``wait_idle`` waits for
        it, ``stop`` cancels it."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    def _service(self, coroutine: Any) -> asyncio.Task[Any]:
        # A task of the hub's own machinery: cancelled by stop, not waited for.
        task = asyncio.get_running_loop().create_task(coroutine)
        self._services.add(task)
        task.add_done_callback(self._services.discard)
        return task

    async def _housekeep(self) -> None:
        # Once a second (or twice a heartbeat) while runs exist: followers wake, to send a
        # heartbeat when they have had nothing else to send.
        while self.runs:
            await asyncio.sleep(min(1.0, settings.CHAT_HEARTBEAT_SECONDS / 2))
            for run in list(self.runs.values()):
                run.tick()


def _end_left_behind(loop: asyncio.AbstractEventLoop, services: set[asyncio.Task[Any]]) -> None:
    """End the hub's machinery on an event loop it moved away from, closing that loop's
    Redis broker (``ReplyHub._serve_broker``). A loop that ended the usual way (a
    server's exit, ``asyncio.run``, a test's loop) ended its tasks already; one still
    running in another thread ends them there. A loop stopped without ending its tasks
    cannot run them: its connections go with it."""
    if loop.is_running() and not loop.is_closed():
        # In that loop's own thread: the set changes there as its tasks end.
        loop.call_soon_threadsafe(_cancel_all, services)


def _cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    for task in list(tasks):
        task.cancel()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop()
    return None


_HUB = ReplyHub()


def get_hub() -> ReplyHub:
    """The process's reply hub."""
    return _HUB


# How long Stop waits for the worker writing a reply to save it before closing it itself.
STOP_GRACE_SECONDS = 2.5


async def reply_stop(*, reply: Message) -> bool:
    """Stop the run writing ``reply`` (already checked to be the person's): at once in
    this worker, within a second in another one (through Redis). True if the reply was
    still streaming. A reply whose run is gone (its worker died) is closed here, keeping
    the text of its last checkpoint."""
    from .persistence import streaming_replies_close
    from .replies import reply_expire_stale

    if reply.status != Message.Status.STREAMING:
        return False
    hub = get_hub()
    hub.start()
    if hub.stop_here(reply.pk):
        return True
    if await db_step(reply_expire_stale)(conversation_id=reply.conversation_id):
        return True
    await hub.request_stop(reply.pk)
    still_streaming = Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        if not await still_streaming.aexists():
            return True
    await db_step(streaming_replies_close)(reply_ids=[reply.pk], status=Message.Status.STOPPED)
    return True
