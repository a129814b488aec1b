"""What the benchmarks and the load test share: the fake upstream process, a bench
database (SQLite file or a PostgreSQL database made for the run), the app under test
(one uvicorn worker), and a load generator that signs in, sends messages and reads the
Server-Sent Events stream like the browser does.

Everything runs on 127.0.0.1, is bounded in count and time, and cleans up after itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import math
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat.sse import aiter_sse
from chat.tests.live import free_port
from chat.tests.live import wait_for_port as _wait_for_port

from .fakeserver import MODELS, count_deltas

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_PROVIDER = "bench"
BENCH_PASSWORD = "bench-pass-4821"  # throwaway accounts in a throwaway database
DEFAULT_POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"

# --- The machine ------------------------------------------------------------------------


def raise_open_files_limit(wanted: int = 20000) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS from /proc; psutil is not needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> tuple[float, float, float]:
    """The machine's 1-, 5- and 15-minute load averages."""
    return os.getloadavg()


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy so far (all cores, every process:
    user, nice, system, irq, softirq and steal from /proc/stat), in seconds."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """CPU seconds used over a window by named processes (``{"app": pid, ...}``), by
    this process (``client``), and by everything else on the machine (``others``: the
    machine's busy time less ours), with the load average at both ends."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {**pids, "client": os.getpid()}
        self.load_before = load_average()[0]
        self.started = time.perf_counter()
        self._machine = machine_busy_seconds()
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def close(self) -> dict[str, float]:
        """Seconds of wall time (``wall_s``), CPU seconds per name (``<name>_cpu_s``,
        ``others_cpu_s``), and ``load_before`` / ``load_after``."""
        wall = time.perf_counter() - self.started
        out = {f"{n}_cpu_s": cpu_seconds(pid) - self._cpu[n] for n, pid in self.pids.items()}
        ours = sum(out.values())
        out["others_cpu_s"] = max(0.0, machine_busy_seconds() - self._machine - ours)
        out.update(wall_s=wall, load_before=self.load_before, load_after=load_average()[0])
        return out


def uvicorn_stack() -> str:
    """The event loop and HTTP parser uvicorn picks on its own ("auto")."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {http}"


def machine_info(postgres: bool = True) -> dict[str, Any]:
    """Cores, memory, Python, SQLite, PostgreSQL (asked only when ``postgres``): the
    facts BENCHMARKS.md starts with."""
    import platform
    import sqlite3

    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
        "uvicorn": uvicorn_stack(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    if not postgres:
        return info
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(postgres_server_url(), connect_timeout=3) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    return info


# --- Statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between the nearest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99, mean and max of a list of numbers."""
    if not values:
        return {"n": 0, "p50": math.nan, "p95": math.nan, "p99": math.nan}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "max": max(values),
    }


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | str | None, data: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))


# --- Processes --------------------------------------------------------------------------


class Process:
    """A child process with its output in a log file; stops on ``stop()`` (SIGTERM,
    then SIGKILL) and never outlives the ``with`` block."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str], log_path: Path) -> None:
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, *, stdout_pipe: bool = False) -> Process:
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
        )
        return self

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        if self.popen.stdout:
            self.popen.stdout.close()
        self._log.close()
        self.popen = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_port(port: int, process: Process, timeout: float = 30.0) -> None:
    """chat.tests.live.wait_for_port, with the process's log when it fails."""
    if process.popen is None:
        raise RuntimeError(f"{process.args[2:4]} was not started")
    try:
        _wait_for_port(port, process.popen, timeout)
    except RuntimeError as e:
        raise RuntimeError(f"{process.args[2:4]}: {e}:\n{process.log_tail()}") from e


class FakeUpstreamProcess(Process):
    """``python -m bench.fakeserver``: the paced fake OpenAI-compatible upstream."""

    def __init__(self, workdir: Path, lifetime: float = 1800.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        super().__init__(
            [PYTHON, "-m", "bench.fakeserver", "--lifetime", str(lifetime)],
            env=env,
            log_path=workdir / "fakeserver.log",
        )
        self.port = 0

    def start(self, *, stdout_pipe: bool = True) -> FakeUpstreamProcess:
        super().start(stdout_pipe=True)
        assert self.popen is not None and self.popen.stdout is not None
        line = self.popen.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the fake upstream did not start: {line!r}\n{self.log_tail()}")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# --- The bench database -----------------------------------------------------------------


def postgres_server_url() -> str:
    """The PostgreSQL server to make bench databases on: BENCH_POSTGRES_URL, else the
    server of DATABASE_URL, else postgres@127.0.0.1:5432."""
    url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("DATABASE_URL") or ""
    if not url.startswith(("postgres://", "postgresql://")):
        return DEFAULT_POSTGRES_SERVER
    return url.rsplit("/", 1)[0] + "/postgres"


class BenchDatabase:
    """A database of its own for one run: a SQLite file in ``workdir``, or a PostgreSQL
    database created on the server and dropped afterwards. Never the app's own."""

    def __init__(self, kind: str, workdir: Path) -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(f"unknown database kind {kind!r}")
        self.kind = kind
        self.sqlite_path = workdir / "bench.sqlite3"
        self.name = f"chat_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.server = postgres_server_url()
        self.created = False

    @property
    def url(self) -> str:
        return self.server.rsplit("/", 1)[0] + "/" + self.name

    def env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            return {"SQLITE_PATH": str(self.sqlite_path), "DATABASE_URL": ""}
        return {"DATABASE_URL": self.url}

    def create(self) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def drop(self) -> None:
        if not self.created:
            return
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
        self.created = False

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read query, straight from the database (not through Django)."""
        if self.kind == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=30)) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement, committed (used to test the checks themselves)."""
        if self.kind == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=30)) as conn:
                conn.execute(sql.replace("%s", "?"), params)
                conn.commit()
            return
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            conn.execute(sql, params)  # type: ignore[arg-type]

    def __enter__(self) -> BenchDatabase:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


# --- The app under test -----------------------------------------------------------------


def app_env(db: BenchDatabase, upstream_url: str, **extra: str) -> dict[str, str]:
    """The environment of the app under test: production mode (DEBUG off) on loopback,
    the bench database, the fake upstream as the OpenAI-compatible provider "bench",
    no rate limit, no key for any real provider."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "SQLITE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="false",
        SECRET_KEY="bench-" + secrets.token_hex(24),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS="0",
        LOG_LEVEL="WARNING",
        OPENAI_COMPATIBLE_PROVIDERS=BENCH_PROVIDER,
        BENCH_BASE_URL=f"{upstream_url}/v1",
        BENCH_MODELS=",".join(MODELS),
        BENCH_LABEL="Bench",
        BENCH_API_KEY="",
        BENCH_TIMEOUT="60",
        CHAT_DEFAULT_PROVIDER=BENCH_PROVIDER,
        CHAT_RATE_LIMIT_MESSAGES="0",
        # A title written by a model is one more upstream request per new conversation,
        # which the direct SDK side does not make: off, so both do the same work.
        CHAT_TITLE_MODEL="off",
        LLM_MAX_RETRIES="0",
        OPENAI_API_KEY="",
        ANTHROPIC_API_KEY="",
        GOOGLE_API_KEY="",
        MISTRAL_API_KEY="",
        PYTHONUNBUFFERED="1",
    )
    env["REDIS_URL"] = ""  # the in-process cache, unless ``extra`` names a Redis
    env.update(db.env())
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``manage.py`` with ``env``; returns its output, raises with it on failure."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


_CREATE_USERS = """
import json, sys
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
User = get_user_model()
prefix, count, password = {prefix!r}, {count}, {password!r}
encoded = make_password(password)
names = [f"{{prefix}}{{i}}" for i in range(count)]
User.objects.bulk_create(
    [User(username=n, password=encoded) for n in names], ignore_conflicts=True
)
print(json.dumps(names))
"""


def create_users(env: dict[str, str], prefix: str, count: int) -> list[str]:
    """``count`` users named ``<prefix><i>`` with BENCH_PASSWORD (one shell call)."""
    script = _CREATE_USERS.format(prefix=prefix, count=count, password=BENCH_PASSWORD)
    out = manage(env, "shell", "-c", script)
    return json.loads(out.strip().splitlines()[-1])


class AppServer(Process):
    """The app under test: ``uvicorn chat_ai.asgi:application``, ONE worker."""

    def __init__(self, env: dict[str, str], workdir: Path, *extra_args: str) -> None:
        self.port = free_port()
        super().__init__(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "chat_ai.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--backlog",
                "4096",
                *extra_args,
            ],
            env=env,
            log_path=workdir / "app.log",
        )

    def start(self, *, stdout_pipe: bool = False) -> AppServer:
        super().start()
        wait_for_port(self.port, self)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def bench_stack(
    workdir: Path, db_kind: str = "sqlite", **env_extra: str
) -> Iterator[tuple[FakeUpstreamProcess, BenchDatabase, dict[str, str]]]:
    """The fake upstream running, a migrated bench database, and the app's environment
    (start ``AppServer(env, workdir)`` inside)."""
    with FakeUpstreamProcess(workdir).start() as upstream, BenchDatabase(db_kind, workdir) as db:
        env = app_env(db, upstream.url, **env_extra)
        manage(env, "migrate", "--noinput")
        yield upstream, db, env


def workdir_for(name: str) -> Path:
    """A temporary folder for one run's database and logs, removed when the process
    exits (BENCH_KEEP=1 keeps it, to read app.log after a failure)."""
    path = Path(tempfile.mkdtemp(prefix=f"chat_ai_{name}-"))
    if os.environ.get("BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# --- The load generator -----------------------------------------------------------------


@dataclass
class StreamResult:
    """What one reply looked like from the client. Times are seconds from sending the
    request. Text is counted by what arrived, not by events: the app may coalesce
    several upstream deltas into one ``delta`` event when the client is behind."""

    status: int = 0
    first_byte: float | None = None  # to the start event
    ttft: float | None = None  # to the first delta
    total: float | None = None  # to the done (or error) event
    text: str = ""  # the whole reply, when kept
    deltas: int = 0  # delta events (SSE events or SDK chunks with text)
    tokens: int = 0  # upstream deltas the text holds (fakeserver.count_deltas)
    gaps: list[float] = field(default_factory=list)  # between two delta arrivals
    message_id: int | None = None
    user_message_id: int | None = None
    final_status: str = ""  # status in the done event: complete, stopped
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.final_status == "complete"

    @property
    def max_gap(self) -> float:
        """The longest wait between two deltas of this reply, in seconds."""
        return max(self.gaps, default=0.0)


class DeltaClock:
    """Times the deltas of one reply as the client reads them: TTFT, the gaps between
    two deltas, and the upstream deltas counted by text."""

    def __init__(self, result: StreamResult, started: float) -> None:
        self.result = result
        self.started = started
        self.last: float | None = None

    def delta(self, text: str, now: float) -> None:
        result = self.result
        if self.last is None:
            result.ttft = now - self.started
        else:
            result.gaps.append(now - self.last)
        self.last = now
        result.deltas += 1
        result.tokens += count_deltas(text)


@dataclass
class BenchUser:
    """One signed-in person: a cookie jar, a CSRF token, their conversations."""

    base_url: str
    username: str
    password: str = BENCH_PASSWORD
    timeout: float = 120.0
    client: Any = None
    csrf: str = ""
    conversations: list[int] = field(default_factory=list)

    async def __aenter__(self) -> BenchUser:
        import httpx2

        self.client = httpx2.AsyncClient(
            base_url=self.base_url,
            timeout=httpx2.Timeout(self.timeout, connect=30.0),
            # Drop idle connections before the server does (uvicorn: after 5 s), so a
            # request never goes out on a connection the server is closing.
            limits=httpx2.Limits(
                max_connections=None, max_keepalive_connections=20, keepalive_expiry=2.0
            ),
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def login(self) -> None:
        """Django's sign-in form: the CSRF cookie from the form page, then the POST."""
        page = await self.client.get("/accounts/login/")
        page.raise_for_status()
        self.csrf = self.client.cookies.get("csrftoken", "")
        response = await self.client.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": self.csrf,
            },
        )
        if response.status_code != 302:
            raise RuntimeError(f"login of {self.username} failed: HTTP {response.status_code}")
        self.csrf = self.client.cookies.get("csrftoken", self.csrf)

    async def new_conversation(self, model: str) -> int:
        response = await self.client.post(
            "/c/new/",
            data={"provider": BENCH_PROVIDER, "model": model},
            headers={"X-CSRFToken": self.csrf},
        )
        if response.status_code != 201:
            raise RuntimeError(f"new conversation: HTTP {response.status_code} {response.text}")
        conversation_id = int(response.json()["id"])
        self.conversations.append(conversation_id)
        return conversation_id

    async def send(
        self,
        conversation_id: int,
        content: str,
        model: str,
        *,
        keep_text: bool = True,
        on_start: Callable[[], None] | None = None,
    ) -> StreamResult:
        """Send one message and read the reply's SSE stream to its end; ``on_start`` is
        called when the start event arrives (the reply is streaming)."""
        result = StreamResult()
        started = time.perf_counter()
        parts: list[str] = []
        try:
            async with self.client.stream(
                "POST",
                f"/c/{conversation_id}/reply/",
                data={"content": content, "provider": BENCH_PROVIDER, "model": model},
                headers={"X-CSRFToken": self.csrf, "Accept": "text/event-stream"},
            ) as response:
                result.status = response.status_code
                if response.status_code != 200:
                    body = await response.aread()
                    result.error = f"HTTP {response.status_code}: {body[:200]!r}"
                    return result
                clock = DeltaClock(result, started)
                async for sse in aiter_sse(response.aiter_raw()):
                    now = time.perf_counter()
                    payload = sse.data
                    if sse.event == "delta":
                        clock.delta(payload["text"], now)
                        if keep_text:
                            parts.append(payload["text"])
                    elif sse.event == "start":
                        result.first_byte = now - started
                        result.message_id = payload["message_id"]
                        result.user_message_id = payload["user_message_id"]
                        if on_start is not None:
                            on_start()
                    elif sse.event == "done":
                        result.final_status = payload["status"]
                        result.total = now - started
                    elif sse.event == "error":
                        result.error = f"error event: {payload.get('message')}"
                        result.total = now - started
        except Exception as e:  # counted as an error of this stream
            result.error = f"{type(e).__name__}: {e}"
        result.text = "".join(parts)
        if not result.error and not result.final_status:
            result.error = "the stream ended without a done event"
        return result


async def sign_in_users(
    base_url: str,
    usernames: Sequence[str],
    *,
    concurrency: int = 20,
    request_timeout: float = 120.0,
) -> list[BenchUser]:
    """Open a client per user and sign each in (``concurrency`` at a time)."""
    users = [BenchUser(base_url, name, timeout=request_timeout) for name in usernames]
    gate = asyncio.Semaphore(concurrency)

    async def one(user: BenchUser) -> None:
        await user.__aenter__()
        async with gate:
            await user.login()

    await asyncio.gather(*(one(u) for u in users))
    return users


async def close_users(users: Sequence[BenchUser]) -> None:
    await asyncio.gather(*(u.__aexit__() for u in users), return_exceptions=True)
