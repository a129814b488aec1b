"""Scale-out: several uvicorn workers on one PostgreSQL database and one Redis.

Each test creates its own database (dropped afterwards) and uses Redis db 14 (flushed),
migrates it with ``manage.py``, runs the app in real uvicorn processes pointed at a
FakeUpstream in this process (the OpenAI-compatible provider "fakeai"), and talks to it
over HTTP like a browser: CSRF cookie, login form, SSE stream.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379: skipped
when either is unreachable, except in CI (CI set, see conftest.running_in_ci), where that
fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
import redis
from psycopg import sql

from chat.sse import aiter_sse
from chat.tests.fakes.openai_fake import CHAT_PATH, DONE, chunk
from chat.tests.fakes.server import FakeUpstream, Pause, RecordedRequest, StreamResponse, sse
from chat.tests.live import free_port
from conftest import missing_dependency

pytestmark = pytest.mark.postgres

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # .venv/bin
MODEL = "fake-model"
USERNAME, PASSWORD = "alice", "scale-out-pw-123"
POOL_MAX = 20  # DB_POOL_MAX_SIZE of each worker (the app's default)


# --- The stack: database, Redis, fake upstream, uvicorn processes ----------------------


def _require_services() -> None:
    """Skip (fail in CI) unless PostgreSQL and Redis answer."""
    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as client:
            client.ping()
    except Exception as e:
        missing_dependency(
            f"scale-out tests need PostgreSQL at {PG_SERVER} and Redis at {REDIS_URL}: {e}"
        )


@dataclass
class Server:
    """One uvicorn process (with ``workers`` worker processes below it when > 1)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def worker_pids(self) -> list[int]:
        """The worker processes uvicorn --workers started (multiprocessing children)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if parent == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own process group
                self.process.wait(5)


@dataclass
class Stack:
    db_name: str
    upstream: FakeUpstream
    tmp: Path
    servers: list[Server] = field(default_factory=list)

    @property
    def db_url(self) -> str:
        return f"{PG_SERVER}/{self.db_name}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.db_url,
            REDIS_URL=REDIS_URL,
            DEBUG="true",
            ALLOWED_HOSTS="127.0.0.1",
            LOG_LEVEL="WARNING",
            CHAT_RATE_LIMIT_MESSAGES="0",
            # A title written by a model would take the fake model's next scripted reply.
            CHAT_TITLE_MODEL="off",
            CHAT_DEFAULT_PROVIDER="fakeai",
            OPENAI_COMPATIBLE_PROVIDERS="fakeai",
            FAKEAI_BASE_URL=f"{self.upstream.url}/v1",
            FAKEAI_MODELS=MODEL,
            FAKEAI_TIMEOUT="30",
            DB_POOL_MAX_SIZE=str(POOL_MAX),
            # Nothing from the developer's environment or .env may reach a real provider.
            OPENAI_API_KEY="",
            ANTHROPIC_API_KEY="",
            GOOGLE_API_KEY="",
            MISTRAL_API_KEY="",
        )
        return env

    def manage(self, *args: str) -> None:
        done = subprocess.run(
            [str(BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stderr.decode()}"

    def serve(self, *, workers: int = 1, **extra_env: str) -> Server:
        """Start uvicorn (with ``extra_env`` added to its environment) and wait until it
        answers."""
        port = free_port()
        log = self.tmp / f"uvicorn-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(BIN / "uvicorn"),
                    "chat_ai.asgi:application",
                    "--host=127.0.0.1",
                    f"--port={port}",
                    f"--workers={workers}",
                    "--no-access-log",
                    "--timeout-graceful-shutdown=3",
                ],
                cwd=ROOT,
                env={**self.env(), **extra_env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(process, port, log)
        self.servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"uvicorn exited:\n{server.log_tail()}"
            try:
                with urllib.request.urlopen(f"{server.url}/accounts/login/", timeout=2) as r:
                    if r.status == 200:
                        return server
            except OSError:
                pass
            assert time.monotonic() < deadline, f"uvicorn did not answer:\n{server.log_tail()}"
            time.sleep(0.1)

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(statement, params).fetchall()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A fresh database (migrated, with one user), Redis db 14 and a fake upstream."""
    _require_services()
    name = f"chat_scaleout_{secrets.token_hex(4)}"
    stack = Stack(name, FakeUpstream(), tmp_path)
    cache = redis.Redis.from_url(REDIS_URL)
    cache.flushdb()
    admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        stack.upstream.start()
        stack.manage("migrate", "--noinput", "-v0")
        stack.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            f"User.objects.create_user({USERNAME!r}, password={PASSWORD!r})",
        )
        yield stack
    finally:
        for server in stack.servers:
            server.stop()
        stack.upstream.stop()
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()
        cache.flushdb()
        cache.close()


# --- The fake model --------------------------------------------------------------------


def reply_chunks(
    deltas: Iterable[str],
    *,
    gate: threading.Event | None = None,
    pause: float = 0.0,
    hang: bool = False,
) -> Iterator[bytes | Pause]:
    """An OpenAI stream: the role chunk, then (after ``gate`` opens) the deltas, ``pause``
    seconds apart; then the finish, usage and [DONE], or with ``hang`` nothing more until
    the client hangs up."""
    cid = "chatcmpl-scaleout"
    yield sse(chunk(cid, model=MODEL, delta={"role": "assistant", "content": ""}))
    while gate is not None and not gate.is_set():
        yield Pause(0.05)
    for text in deltas:
        if pause:
            yield Pause(pause)
        yield sse(chunk(cid, model=MODEL, delta={"content": text}))
    while hang:
        yield Pause(0.05)
    yield sse(chunk(cid, model=MODEL, finish_reason="stop"))
    yield sse(chunk(cid, model=MODEL, usage=(10, 5), with_choice=False))
    yield DONE


def model_replies(upstream: FakeUpstream, deltas: list[str], **kwargs: Any) -> None:
    """Every chat request gets this reply."""
    upstream.set_default("POST", CHAT_PATH, StreamResponse(lambda: reply_chunks(deltas, **kwargs)))


def chat_requests(upstream: FakeUpstream) -> list[RecordedRequest]:
    return [r for r in upstream.requests if r.route_path == CHAT_PATH]


# --- A browser --------------------------------------------------------------------------


def browser(*, keepalive: bool = True) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        timeout=60,
        trust_env=False,
        limits=httpx2.Limits(
            max_connections=1000, max_keepalive_connections=100 if keepalive else 0
        ),
    )


async def log_in(client: httpx2.AsyncClient, server: Server) -> None:
    """The login form, as a browser fills it (the session then works on every worker)."""
    page = await client.get(f"{server.url}/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    response = await client.post(
        f"{server.url}/accounts/login/",
        data={"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{server.url}/accounts/login/"},
    )
    assert response.status_code == 302, f"login failed: {response.status_code}"


def csrf(client: httpx2.AsyncClient) -> dict[str, str]:
    return {"X-CSRFToken": client.cookies["csrftoken"]}


async def new_conversation(client: httpx2.AsyncClient, server: Server) -> int:
    response = await client.post(
        f"{server.url}/c/new/", data={"provider": "fakeai", "model": MODEL}, headers=csrf(client)
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def sse_events(response: httpx2.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) of an SSE response as it arrives (the project's one reader)."""
    async for event in aiter_sse(response.aiter_bytes()):
        yield event.event, event.data


async def send(
    client: httpx2.AsyncClient, server: Server, conversation: int, content: str
) -> dict[str, Any]:
    """Send a message and read the reply's stream to its end; the last event's data."""
    try:
        async with (
            asyncio.timeout(30),
            client.stream(
                "POST",
                f"{server.url}/c/{conversation}/reply/",
                data={"content": content},
                headers=csrf(client),
            ) as response,
        ):
            assert response.status_code == 200, (await response.aread()).decode()
            async for event, data in sse_events(response):
                if event in ("done", "error"):
                    return {"event": event, **data}
    except TimeoutError:
        raise AssertionError("no done or error event within 30 s") from None
    raise AssertionError("the stream ended without a done or error event")


# --- Tests ------------------------------------------------------------------------------


async def test_conversation_started_on_one_worker_continues_on_another(stack: Stack) -> None:
    stack.upstream.add(
        "POST", CHAT_PATH, StreamResponse(lambda: reply_chunks(["Paris is ", "the capital."]))
    )
    stack.upstream.add("POST", CHAT_PATH, StreamResponse(lambda: reply_chunks(["About 2.1 M."])))
    worker_a, worker_b = stack.serve(), stack.serve()
    async with browser() as client:
        await log_in(client, worker_a)
        conversation = await new_conversation(client, worker_a)
        first = await send(client, worker_a, conversation, "Capital of France?")
        second = await send(client, worker_b, conversation, "How many people live there?")
        page = await client.get(f"{worker_b.url}/c/{conversation}/")

    assert (first["status"], second["status"]) == ("complete", "complete")
    assert chat_requests(stack.upstream)[1].json()["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris is the capital."},
        {"role": "user", "content": "How many people live there?"},
    ]
    for text in ("Capital of France?", "Paris is the capital.", "How many people", "2.1 M."):
        assert text in page.text, f"{text!r} missing from the page served by worker B"


async def test_stop_sent_to_another_worker_stops_the_stream(stack: Stack) -> None:
    model_replies(stack.upstream, ["Partial ", "text"], hang=True)
    worker_a, worker_b = stack.serve(), stack.serve()
    async with browser() as client:
        await log_in(client, worker_a)
        conversation = await new_conversation(client, worker_a)
        async with client.stream(
            "POST",
            f"{worker_a.url}/c/{conversation}/reply/",
            data={"content": "Tell me everything."},
            headers=csrf(client),
        ) as response:
            text, reply_id, done, stopped_at = "", None, None, 0.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    async for event, data in sse_events(response):
                        if event == "start":
                            reply_id = data["message_id"]
                        elif event == "delta":
                            text += data["text"]
                            if text == "Partial text":
                                stop = await client.post(
                                    f"{worker_b.url}/m/{reply_id}/stop/", headers=csrf(client)
                                )
                                assert stop.json() == {"stopping": True}
                                stopped_at = time.monotonic()
                        elif event in ("done", "error"):
                            done = (event, data["status"], time.monotonic() - stopped_at)
                            break

    assert done is not None, f"the stream went on after Stop (text so far: {text!r})"
    assert done[:2] == ("done", "stopped"), done
    assert done[2] < 1.0, f"the stream took {done[2]:.1f}s to stop"
    assert chat_requests(stack.upstream)[0].client_closed.wait(3), "upstream request left open"
    assert stack.query("SELECT content, status FROM chat_message WHERE id = %s", reply_id) == [
        ("Partial text", "stopped")
    ]


async def test_a_reply_running_on_one_worker_is_followed_from_another(stack: Stack) -> None:
    """A reload served by worker B picks up the reply worker A is writing: the text so
    far, then the rest live, neither lost nor doubled; then Stop from B stops it."""
    words = [f"w{i} " for i in range(40)]
    model_replies(stack.upstream, words, pause=0.05)
    worker_a, worker_b = stack.serve(), stack.serve()
    async with browser() as client:
        await log_in(client, worker_a)
        conversation = await new_conversation(client, worker_a)
        reply_id, first_text = None, ""
        async with client.stream(
            "POST",
            f"{worker_a.url}/c/{conversation}/reply/",
            data={"content": "Count."},
            headers=csrf(client),
        ) as response:
            async for event, data in sse_events(response):
                if event == "start":
                    reply_id = data["message_id"]
                elif event == "delta":
                    first_text += data["text"]
                    if len(first_text) > 20:
                        break  # the tab is reloaded: this stream is dropped
        followed: list[tuple[str, Any]] = []
        async with (
            asyncio.timeout(30),
            client.stream("GET", f"{worker_b.url}/m/{reply_id}/events/") as response,
        ):
            assert response.status_code == 200
            async for event, data in sse_events(response):
                followed.append((event, data))
                if event in ("done", "error"):
                    break
    assert followed[0][0] == "snapshot" and followed[0][1]["text"].startswith(first_text)
    text = followed[0][1]["text"] + "".join(d["text"] for e, d in followed if e == "delta")
    assert text == "".join(words)
    assert followed[-1][0] == "done" and followed[-1][1]["status"] == "complete"


async def test_stop_from_the_worker_that_follows_stops_the_reply_within_a_second(
    stack: Stack,
) -> None:
    model_replies(stack.upstream, ["Partial ", "text"], hang=True)
    worker_a, worker_b = stack.serve(), stack.serve()
    async with browser() as client:
        await log_in(client, worker_a)
        conversation = await new_conversation(client, worker_a)
        async with client.stream(
            "POST",
            f"{worker_a.url}/c/{conversation}/reply/",
            data={"content": "Go on forever."},
            headers=csrf(client),
        ) as response:
            text, reply_id = "", None
            async for event, data in sse_events(response):
                if event == "start":
                    reply_id = data["message_id"]
                elif event == "delta":
                    text += data["text"]
                    if text == "Partial text":
                        break
        ending = None
        async with (
            asyncio.timeout(15),
            client.stream("GET", f"{worker_b.url}/m/{reply_id}/events/") as response,
        ):
            async for event, data in sse_events(response):
                if event == "snapshot":
                    stop = await client.post(
                        f"{worker_b.url}/m/{reply_id}/stop/", headers=csrf(client)
                    )
                    assert stop.json() == {"stopping": True}
                    stopped_at = time.monotonic()
                elif event in ("done", "error"):
                    ending = (event, data["status"], time.monotonic() - stopped_at)
                    break
    assert ending is not None and ending[:2] == ("done", "stopped"), ending
    assert ending[2] < 1.0, f"the reply took {ending[2]:.1f}s to stop"
    assert stack.query("SELECT content, status FROM chat_message WHERE id = %s", reply_id) == [
        ("Partial text", "stopped")
    ]


async def test_sigterm_saves_a_running_reply_as_interrupted(stack: Stack) -> None:
    """On SIGTERM the worker takes no new replies, gives running ones a grace period,
    then saves each with its text as interrupted (and the page is told so)."""
    model_replies(stack.upstream, ["Half ", "a reply"], hang=True)
    worker = stack.serve(CHAT_SHUTDOWN_GRACE_SECONDS="0.5")
    ending = None
    async with browser() as client:
        await log_in(client, worker)
        conversation = await new_conversation(client, worker)
        async with (
            asyncio.timeout(20),
            client.stream(
                "POST",
                f"{worker.url}/c/{conversation}/reply/",
                data={"content": "Go on forever."},
                headers=csrf(client),
            ) as response,
        ):
            text, reply_id = "", None
            async for event, data in sse_events(response):
                if event == "start":
                    reply_id = data["message_id"]
                elif event == "delta":
                    text += data["text"]
                    if text == "Half a reply":
                        worker.process.send_signal(signal.SIGTERM)
                elif event in ("done", "error"):
                    ending = (event, data)
                    break
    assert ending is not None, "the stream ended without telling the page"
    assert ending[0] == "done" and ending[1]["status"] == "incomplete"
    assert ending[1]["finish_reason"] == "interrupted" and ending[1]["can_continue"]
    assert worker.process.wait(15) is not None
    assert stack.query(
        "SELECT content, status, finish_reason FROM chat_message WHERE id = %s", reply_id
    ) == [("Half a reply", "incomplete", "interrupted")]


async def _replies_through(server: Server, count: int) -> list[dict[str, Any]]:
    async with browser() as client:
        await log_in(client, server)
        conversations = [await new_conversation(client, server) for _ in range(count)]
        return await asyncio.gather(
            *(send(client, server, c, f"Question {c}") for c in conversations)
        )


async def test_uvicorn_with_two_workers_serves_replies(stack: Stack) -> None:
    model_replies(stack.upstream, ["Fine, ", "thanks."], pause=0.01)
    server = stack.serve(workers=2)
    results = await _replies_through(server, 8)
    assert [(r["event"], r["status"]) for r in results] == [("done", "complete")] * 8


@contextlib.contextmanager
def only_worker(pid: int, workers: list[int]) -> Iterator[None]:
    """Pause every other worker (SIGSTOP), so only ``pid`` accepts new connections from
    the socket they share; resume them afterwards."""
    others = [other for other in workers if other != pid]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


async def test_uvicorn_with_two_workers_serves_replies_from_each_worker(stack: Stack) -> None:
    model_replies(stack.upstream, ["Fine, ", "thanks."])
    server = stack.serve(workers=2)
    workers = server.worker_pids()
    assert len(workers) == 2, f"uvicorn --workers 2 started {workers}"
    statuses = {}
    async with browser(keepalive=False) as client:  # a new connection for each request
        await log_in(client, server)
        conversation = await new_conversation(client, server)
        for pid in workers:
            with only_worker(pid, workers):
                reply = await send(client, server, conversation, f"Are you {pid}?")
            statuses[pid] = reply["status"]
    assert statuses == dict.fromkeys(workers, "complete")


async def test_no_database_connection_held_while_300_streams_wait(stack: Stack) -> None:
    streams = 300
    gate = threading.Event()
    model_replies(stack.upstream, ["All ", "done."], gate=gate, pause=0.05)
    server = stack.serve()
    started: set[int] = set()

    async def one(client: httpx2.AsyncClient, conversation: int) -> str:
        async with client.stream(
            "POST",
            f"{server.url}/c/{conversation}/reply/",
            data={"content": "Wait for it."},
            headers=csrf(client),
        ) as response:
            assert response.status_code == 200, (await response.aread()).decode()
            async for event, data in sse_events(response):
                if event == "start":
                    started.add(conversation)
                elif event in ("done", "error"):
                    return data.get("status", event)
        return "cut"

    def pg_connections() -> tuple[int, int]:
        """(busy: active or idle in transaction, total) connections to the test DB."""
        with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE state IN ('active', 'idle in transaction')),"
                " count(*) FROM pg_stat_activity WHERE datname = %s",
                (stack.db_name,),
            ).fetchone()
        assert row is not None
        return row[0], row[1]

    async with browser() as client:
        await log_in(client, server)
        conversations = await asyncio.gather(
            *(new_conversation(client, server) for _ in range(streams))
        )
        tasks = [asyncio.ensure_future(one(client, c)) for c in conversations]
        deadline = time.monotonic() + 30
        while len(started) < streams or len(chat_requests(stack.upstream)) < streams:
            ended = next((task for task in tasks if task.done()), None)
            if ended is not None or time.monotonic() > deadline:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                why = "timed out" if ended is None else repr(ended.exception() or ended.result())
                pytest.fail(
                    f"{len(started)} of {streams} streams opened ({why})\n{server.log_tail()}"
                )
            await asyncio.sleep(0.05)
        samples = []
        for _ in range(5):
            samples.append(await asyncio.to_thread(pg_connections))
            await asyncio.sleep(0.1)
        gate.set()
        async with asyncio.timeout(30):
            statuses = await asyncio.gather(*tasks)

    busy, total = max(s[0] for s in samples), max(s[1] for s in samples)
    assert busy <= 2 and total <= POOL_MAX, (
        f"with {streams} streams waiting: {busy} busy, {total} open connections"
    )
    assert Counter(statuses) == {"complete": streams}
    assert stack.query(
        "SELECT count(*) FROM chat_message WHERE role = 'assistant' AND status = 'complete'"
        " AND content = 'All done.'"
    ) == [(streams,)]
