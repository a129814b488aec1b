"""Issue 12: the OpenAI-compatible API (``/v1/chat/completions``) against the direct SDK
call and LiteLLM's proxy, side by side in one run::

    python -m bench.api_gateway [--repeat 3] [--quick] [--litellm PATH/bin/litellm]
                                [--no-postgres] [--keys 50] [--one-in-turns]
                                [--json out.json]
    python -m bench.api_gateway --trace | --profile sqlite

One fake upstream (``bench.fakeserver``, ``bench-200x20``: 200 deltas 20 ms apart, a
4-second reply) and one client, the official ``openai`` SDK (``AsyncOpenAI``, streaming,
``stream_options.include_usage``), read by four sides:

- **direct**: the SDK on the fake upstream (the baseline);
- **app, SQLite** and **app, PostgreSQL**: our ``/v1`` (one uvicorn worker, production
  settings, metering on: one usage record per call, costed with a price set for the
  bench models; default budgets for everyone set far above a run's spend, so that every
  call reserves and settles without being refused), each on a throwaway database
  (``BenchDatabase``), with ``--keys`` people, each with a personal API key (stream
  ``w`` uses key ``w % keys``);
- **LiteLLM**: its proxy (one worker, no database; ``bench.peer_litellm``), when its
  ``litellm`` command is given or found (``/tmp/litellm-venv/bin/litellm``).

Each run (``--repeat`` of them, fresh servers each time) measures three levels:

1. **one stream**: ``--one-replies`` (20) replies one after the other per side. The four
   sides run at the same time but on a fixed schedule, a reply every 4.5 s and the sides'
   starts a quarter of that apart, so each server holds one stream and no two requests
   start within a second of each other (taking turns would cost four times as long);
2. **50 streams started at once**, each sending ``--rounds-50`` (3) replies in a row;
3. **200 streams started at once**, ``--rounds-200`` (1) reply each.

At levels 2 and 3 the sides take turns (their order rotates from run to run). Figures per
side, level and run: TTFT p50 / p99 / mean (request sent to first text delta, as the
client sees it), added TTFT (side minus direct, percentile by percentile) and the ratio
of the means, errors (a failed call, or a reply without all the upstream's deltas),
replies without a usage chunk, the server's CPU (% of one core over the phase, from
``/proc``), and the machine (1-minute load at both ends, others' CPU). For the app, the
usage records written in each phase are counted against the calls answered (one per
call), and their median server-side time to first token is given: the difference with
the client's is what happens before the run starts and on the way back.

After the runs each step of a call is timed alone on each database (``manage.py shell``:
the key check, the access rules, ``_prepare``, the usage record, the budget
reservation and settlement, thread trips). Two more modes help explain a gap:

- ``--trace``: the app served through ``traced_application``, a thin ASGI wrapper that
  times the view's steps inside the server (no app file changed), one stream then 50 at
  once on each database;
- ``--profile sqlite|postgres``: the server under cProfile (every thread), 50 streams at
  once; read shares, not milliseconds.

``--one-in-turns`` runs the one-stream level with the sides one after the other (four
times longer). Everything stays on 127.0.0.1; the databases are dropped and the folders
removed at the end (``BENCH_KEEP=1`` keeps the folders and their logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    BENCH_PROVIDER,
    AppServer,
    BenchDatabase,
    CpuWindow,
    DeltaClock,
    FakeUpstreamProcess,
    StreamResult,
    app_env,
    cpu_seconds,
    fmt,
    load_average,
    machine_info,
    manage,
    markdown_table,
    percentile,
    raise_open_files_limit,
    rss_mb,
    workdir_for,
    write_json,
)
from .overhead import check_complete, openai_client, spread

MODEL = "bench-200x20"
WARM_MODEL = "bench-20x20"
DEFAULT_LITELLM = "/tmp/litellm-venv/bin/litellm"
KEYS = 50
ONE_STREAM_PERIOD = 4.5  # seconds between two replies of one side at the one-stream level
STREAM_DEADLINE = 120.0  # a reply still going after this long counts as an error
# Default budgets for everyone, far above what a run spends: the check runs, never refuses.
BUDGET_ENV = {
    "CHAT_BUDGET_DAILY_COST": "1000000",
    "CHAT_BUDGET_MONTHLY_COST": "1000000",
    "CHAT_BUDGET_DAILY_TOKENS": "100000000000",
    "CHAT_BUDGET_MONTHLY_TOKENS": "100000000000",
    "CHAT_BUDGET_REQUESTS_PER_MINUTE": "1000000",
}
# The price set for the bench models (USD per million tokens), so that records are costed.
PRICE = ("1.25", "10")


@dataclass(frozen=True)
class Target:
    """One of issue 12's targets for one worker: ``figure`` of each app side at
    ``streams`` at most ``limit``, judged on the median of the runs (``on="max"``: the
    worst run)."""

    streams: int
    figure: str
    limit: float
    text: str
    on: str = "median"


TARGETS = (
    Target(1, "added_ttft_p50_ms", 3.0, "one stream: added TTFT p50 ≤ 3 ms"),
    Target(50, "added_ttft_p99_ms", 50.0, "50 streams at once: added TTFT p99 ≤ 50 ms"),
    Target(200, "errors", 0, "200 streams at once: 0 errors", on="max"),
)


# --- The sides --------------------------------------------------------------------------


@dataclass
class Side:
    """One thing measured: the direct call, the app on one database, or LiteLLM."""

    name: str  # "direct", "sqlite", "postgres", "litellm"
    label: str  # the report's column
    model: str  # the model as this side names it
    keys: list[str]  # API keys; stream w uses keys[w % len(keys)]
    url: str = ""  # base URL (without /v1), set when its server runs
    pid: int | None = None  # the server process (None: the direct call)
    db: BenchDatabase | None = None  # the app's database (metering check)
    answered: int = 0  # calls that got a stream (HTTP 200), over the whole run

    @property
    def is_app(self) -> bool:
        return self.db is not None


SIDE_LABELS = {
    "direct": "direct SDK",
    "sqlite": "app /v1, SQLite",
    "postgres": "app /v1, PostgreSQL",
    "litellm": "LiteLLM proxy",
}


@dataclass
class ApiResult(StreamResult):
    """A ``StreamResult`` that also says whether the usage chunk came."""

    usage_seen: bool = False
    usage: dict[str, int] = field(default_factory=dict)


async def api_stream(client: Any, side: Side, stream: int, content: str, model: str) -> ApiResult:
    """One streamed chat completion through the SDK with usage asked for, timed like the
    other benchmarks (TTFT, gaps, upstream deltas counted by text). Never raises: a
    failure is the result's ``error``."""
    result = ApiResult()
    started = time.perf_counter()
    clock = DeltaClock(result, started)
    try:
        async with asyncio.timeout(STREAM_DEADLINE):
            response = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": content}],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"Authorization": f"Bearer {side.keys[stream % len(side.keys)]}"},
            )
            result.status = 200
            side.answered += 1
            async with response:
                async for chunk in response:
                    if chunk.usage is not None:
                        result.usage_seen = True
                        result.usage = {
                            "prompt": chunk.usage.prompt_tokens,
                            "completion": chunk.usage.completion_tokens,
                        }
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            clock.delta(choice.delta.content, time.perf_counter())
        result.total = time.perf_counter() - started
        result.final_status = "complete"
    except TimeoutError:
        result.error = f"not finished after {STREAM_DEADLINE:g} s"
    except Exception as e:  # counted as an error of this call
        result.error = f"{type(e).__name__}: {str(e)[:200]}"
    return result


async def run_load(side: Side, streams: int, rounds: int, model: str = MODEL) -> list[ApiResult]:
    """``streams`` streams started at once, each sending ``rounds`` replies in a row."""
    client = openai_client(side.url, side.keys[0])
    try:

        async def worker(w: int) -> list[ApiResult]:
            return [
                await api_stream(client, side, w, f"Benchmark message {w}.{r}", model)
                for r in range(rounds)
            ]

        batches = await asyncio.gather(*(worker(w) for w in range(streams)))
    finally:
        await client.close()
    results = [r for batch in batches for r in batch]
    check_complete(results, model.rsplit("/", 1)[-1])  # type: ignore[arg-type]
    return results


async def run_one_stream_together(
    sides: Sequence[Side], replies: int, period: float = ONE_STREAM_PERIOD
) -> dict[str, list[ApiResult]]:
    """Every side's single stream at the same time, on a fixed schedule: side k's reply
    i starts at ``i * period + k * period / len(sides)`` (or as soon as its previous
    reply ends, if that is later), so no two requests start close together."""
    clients = {s.name: openai_client(s.url, s.keys[0]) for s in sides}
    t0 = time.perf_counter() + 0.5
    try:

        async def one_side(k: int, side: Side) -> list[ApiResult]:
            out = []
            for i in range(replies):
                start = t0 + i * period + k * period / len(sides)
                await asyncio.sleep(max(0.0, start - time.perf_counter()))
                content = f"One stream {i}"
                out.append(await api_stream(clients[side.name], side, 0, content, side.model))
            return out

        lists = await asyncio.gather(*(one_side(k, s) for k, s in enumerate(sides)))
    finally:
        for client in clients.values():
            await client.close()
    for results in lists:
        check_complete(results, MODEL)  # type: ignore[arg-type]
    return {s.name: results for s, results in zip(sides, lists, strict=True)}


# --- Figures ----------------------------------------------------------------------------


def result_figures(results: Sequence[ApiResult]) -> dict[str, float]:
    """TTFT p50 / p99 / mean / max (ms, replies without error), errors, replies, and
    replies that came without a usage chunk."""
    ok = [r for r in results if r.ok]
    ttft = [r.ttft * 1000 for r in ok if r.ttft is not None]
    return {
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p99_ms": percentile(ttft, 99),
        "ttft_mean_ms": statistics.fmean(ttft) if ttft else float("nan"),
        "ttft_max_ms": max(ttft, default=float("nan")),
        "errors": float(len(results) - len(ok)),
        "replies": float(len(results)),
        "no_usage": float(sum(1 for r in ok if not r.usage_seen)),
    }


def usage_figures(usage: dict[str, float], server: str | None) -> dict[str, float]:
    """The phase's machine figures; the server's CPU as % of one core."""
    wall = usage["wall_s"]
    out = {
        "wall_s": wall,
        "load_before": usage["load_before"],
        "load_after": usage["load_after"],
        "others_cpu_percent": 100 * usage["others_cpu_s"] / wall,
        "client_cpu_percent": 100 * usage["client_cpu_s"] / wall,
        "upstream_cpu_percent": 100 * usage["upstream_cpu_s"] / wall,
    }
    if server:
        out["server_cpu_percent"] = 100 * usage[f"{server}_cpu_s"] / wall
        out["server_cpu_s"] = usage[f"{server}_cpu_s"]
    return out


def add_relative(level: dict[str, dict[str, float]]) -> None:
    """Each non-direct side's added TTFT (p50, p99: side minus direct) and ratios, and
    its server's CPU per call (ms: the whole call, relay of the 200 deltas included)."""
    d = level["direct"]
    for name, f in level.items():
        if name == "direct":
            continue
        if "server_cpu_s" in f and f["replies"]:
            f["server_cpu_ms_per_call"] = 1000 * f["server_cpu_s"] / f["replies"]
        f["added_ttft_p50_ms"] = f["ttft_p50_ms"] - d["ttft_p50_ms"]
        f["added_ttft_p99_ms"] = f["ttft_p99_ms"] - d["ttft_p99_ms"]
        f["ratio_ttft_mean"] = f["ttft_mean_ms"] / d["ttft_mean_ms"]
        f["ratio_ttft_p99"] = f["ttft_p99_ms"] / d["ttft_p99_ms"]


# --- The metering check -----------------------------------------------------------------

_RECORDS = (
    "SELECT count(*), "
    "sum(CASE WHEN outcome = 'complete' THEN 1 ELSE 0 END), "
    "sum(CASE WHEN cost IS NULL THEN 1 ELSE 0 END), "
    "sum(output_tokens) "
    "FROM usage_usagerecord WHERE source = 'api' AND id > %s AND id <= %s"
)


def last_record_id(db: BenchDatabase) -> int:
    return int(db.query("SELECT coalesce(max(id), 0) FROM usage_usagerecord")[0][0])


def records_between(db: BenchDatabase, after: int, upto: int) -> dict[str, float]:
    """The API usage records with ``after < id <= upto``: how many, how many complete,
    how many without a cost, their output tokens, and their median server-side TTFT."""
    count, complete, no_cost, tokens = db.query(_RECORDS, (after, upto))[0]
    ttfts = [
        row[0]
        for row in db.query(
            "SELECT time_to_first_token_ms FROM usage_usagerecord WHERE source = 'api' "
            "AND id > %s AND id <= %s AND time_to_first_token_ms IS NOT NULL",
            (after, upto),
        )
    ]
    return {
        "records": float(count or 0),
        "records_complete": float(complete or 0),
        "records_without_cost": float(no_cost or 0),
        "records_output_tokens": float(tokens or 0),
        "record_ttft_p50_ms": percentile(ttfts, 50),
    }


def reservations_left(db: BenchDatabase) -> float:
    """Budget reservations still held (each call's is released when its record is
    written: none should be left once every call has ended). NaN without budgets."""
    try:
        return float(db.query("SELECT count(*) FROM usage_budgetreservation")[0][0])
    except Exception:
        return float("nan")


@contextlib.contextmanager
def metered(sides: Sequence[Side], level: dict[str, dict[str, float]]) -> Iterator[None]:
    """Count the usage records each app side writes inside the block, and compare them
    with the calls it answered (written into ``level[side]`` afterwards)."""
    before = {s.name: (last_record_id(s.db), s.answered) for s in sides if s.db is not None}
    yield
    for side in sides:
        if side.db is None or side.name not in level:
            continue
        first, answered = before[side.name]
        figures = records_between(side.db, first, last_record_id(side.db))
        figures["calls_answered"] = float(side.answered - answered)
        level[side.name].update(figures)


# --- One run ----------------------------------------------------------------------------


def uptime() -> str:
    """What ``uptime`` prints (the machine's load), or the load averages."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in load_average())


async def measure(
    sides: list[Side],
    upstream_pid: int,
    order: list[Side],
    *,
    one_replies: int,
    rounds_50: int,
    rounds_200: int,
    one_in_turns: bool = False,
) -> dict[str, Any]:
    """One run over running servers: warm-up, then the three levels."""
    servers = {s.name: s.pid for s in sides if s.pid is not None}
    pids = {**servers, "upstream": upstream_pid}
    for side in sides:  # imports, first connections, caches
        await run_load(side, 10, 1, side.model.replace(MODEL, WARM_MODEL))
    levels: dict[str, dict[str, dict[str, float]]] = {}
    examples: set[str] = set()

    # 1. One stream per side: the sides together on a schedule, or (``one_in_turns``)
    # one side after the other.
    level: dict[str, dict[str, float]] = {}
    with metered(sides, level):
        for group in [[s] for s in order] if one_in_turns else [sides]:
            window = CpuWindow(pids)
            results = await run_one_stream_together(group, one_replies)
            usage = window.close()
            for side in group:
                level[side.name] = result_figures(results[side.name])
                level[side.name].update(usage_figures(usage, side.name if side.pid else None))
                examples |= {f"{side.name}: {r.error}" for r in results[side.name] if r.error}
    add_relative(level)
    levels["1"] = level
    print(line(1, level), flush=True)

    # 2 and 3. Many streams at once, the sides taking turns.
    for streams, rounds in ((50, rounds_50), (200, rounds_200)):
        level = {}
        with metered(sides, level):
            for side in order:
                await asyncio.sleep(1.0)  # let the previous phase's tail settle
                window = CpuWindow(pids)
                results_ = await run_load(side, streams, rounds, side.model)
                level[side.name] = result_figures(results_)
                level[side.name].update(
                    usage_figures(window.close(), side.name if side.pid else None)
                )
                if side.pid:
                    level[side.name]["server_rss_mb"] = rss_mb(side.pid)
                examples |= {f"{side.name}: {r.error}" for r in results_ if r.error}
        add_relative(level)
        levels[str(streams)] = level
        print(line(streams, level), flush=True)
    return {"levels": levels, "error_examples": sorted(examples)[:8]}


def line(streams: int, level: dict[str, dict[str, float]]) -> str:
    parts = [
        f"{name} p50 {fmt(f['ttft_p50_ms'])} p99 {fmt(f['ttft_p99_ms'])} err {f['errors']:.0f}"
        for name, f in level.items()
    ]
    return f"  {streams} stream(s), TTFT ms: " + "; ".join(parts)


# --- Setting up -------------------------------------------------------------------------

_SETUP = """
import json
from decimal import Decimal
from django.contrib.auth import get_user_model
from accounts.services import api_key_create
from usage.models import ModelPrice
User = get_user_model()
raw = []
for i in range({count}):
    user, _ = User.objects.get_or_create(username=f"api{{i}}")
    raw.append(api_key_create(user=user, name="bench")[1])
for model in {models!r}:
    ModelPrice.objects.update_or_create(
        provider={provider!r}, model=model,
        defaults=dict(input_per_mtok=Decimal({inp!r}), output_per_mtok=Decimal({out!r})),
    )
print(json.dumps(raw))
"""


def prepare_app_database(env: dict[str, str], keys: int) -> list[str]:
    """Migrate the bench database, make ``keys`` people with one API key each and a
    price for the bench models; returns the keys (throwaway, never printed)."""
    manage(env, "migrate", "--noinput")
    script = _SETUP.format(
        count=keys,
        models=[MODEL, WARM_MODEL],
        provider=BENCH_PROVIDER,
        inp=PRICE[0],
        out=PRICE[1],
    )
    return json.loads(manage(env, "shell", "-c", script).strip().splitlines()[-1])


def postgres_reachable() -> bool:
    try:
        import psycopg

        from .common import postgres_server_url

        with psycopg.connect(postgres_server_url(), connect_timeout=3):
            return True
    except Exception:
        return False


def code_state() -> dict[str, Any]:
    """The commit measured and the app files that differ from it (the working tree is
    shared: another edit during a run would change what is measured)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    import hashlib

    changed = git(
        "status", "--short", "--", "api", "chat", "accounts", "access", "usage", "chat_ai"
    )
    digest = hashlib.sha256()
    for folder in ("api", "chat", "accounts", "access", "usage", "chat_ai"):
        for path in sorted((root / folder).rglob("*.py")):
            if "tests" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "app_changes": changed.splitlines(),
        "app_code_sha256": digest.hexdigest()[:16],
    }


def budgets_in_api() -> bool:
    """Whether the API checks budgets yet (the budget module exists and api/views.py
    calls it): the report says which was measured."""
    root = Path(__file__).resolve().parent.parent
    views = root / "api" / "views.py"
    return (root / "usage" / "budgets.py").exists() and "budget" in views.read_text()


def run(
    *,
    repeat: int = 3,
    litellm: str = "",
    postgres: bool = True,
    keys: int = KEYS,
    one_replies: int = 20,
    rounds_50: int = 3,
    rounds_200: int = 1,
    one_in_turns: bool = False,
) -> dict[str, Any]:
    """The whole comparison, ``repeat`` times with fresh servers; returns the JSON.
    ``one_in_turns``: at one stream, the sides one after the other (four times longer)
    rather than together on a schedule."""
    from .peer_litellm import LiteLLMProxy

    raise_open_files_limit()
    workdir = workdir_for("api_gateway")
    started = time.time()
    code_before = code_state()
    skipped: list[str] = []
    if postgres and not postgres_reachable():
        skipped.append("postgres: no PostgreSQL server reachable")
        postgres = False
    if litellm and not Path(litellm).exists():
        skipped.append(f"litellm: {litellm} not found")
        litellm = ""
    elif not litellm:
        skipped.append("litellm: no litellm command (see bench.peer_litellm)")
    kinds = ["sqlite"] + (["postgres"] if postgres else [])
    out_runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(FakeUpstreamProcess(workdir).start())
        envs: dict[str, dict[str, str]] = {}
        sides = [Side("direct", SIDE_LABELS["direct"], MODEL, ["bench"], url=upstream.url)]
        for kind in kinds:
            folder = workdir / kind
            folder.mkdir()
            db = stack.enter_context(BenchDatabase(kind, folder))
            envs[kind] = app_env(db, upstream.url, **BUDGET_ENV)
            print(f"setting up the {kind} database", flush=True)
            raw = prepare_app_database(envs[kind], keys)
            sides.append(Side(kind, SIDE_LABELS[kind], f"{BENCH_PROVIDER}/{MODEL}", raw, db=db))
        if litellm:
            sides.append(Side("litellm", SIDE_LABELS["litellm"], MODEL, []))
        for i in range(repeat):
            print(f"api_gateway: run {i + 1} of {repeat}", flush=True)
            with contextlib.ExitStack() as servers:
                for side in list(sides):
                    if side.is_app:
                        app = servers.enter_context(
                            AppServer(envs[side.name], workdir / side.name).start()
                        )
                        side.url, side.pid = app.url, app.pid
                    elif side.name == "litellm":
                        proxy = servers.enter_context(LiteLLMProxy(litellm, upstream.url, workdir))
                        try:
                            proxy.start()
                        except RuntimeError as e:
                            if i:  # it ran before: a failure now is the run's
                                raise
                            skipped.append(f"litellm: it did not start ({str(e)[-300:]})")
                            sides.remove(side)
                            litellm = ""
                            continue
                        side.url, side.pid, side.keys = proxy.url, proxy.pid, [proxy.key]
                order = sides[i % len(sides) :] + sides[: i % len(sides)]
                load_start, uptime_start = load_average()[0], uptime()
                measured = asyncio.run(
                    measure(
                        sides,
                        upstream.pid,
                        order,
                        one_replies=one_replies,
                        rounds_50=rounds_50,
                        rounds_200=rounds_200,
                        one_in_turns=one_in_turns,
                    )
                )
            measured.update(
                order=[s.name for s in order],
                load_start=load_start,
                load_end=load_average()[0],
                uptime_start=uptime_start,
                uptime_end=uptime(),
            )
            out_runs.append(measured)
        metering = {
            s.name: {
                "calls_answered": s.answered,
                **records_between(s.db, 0, 1 << 62),
                "reservations_left": reservations_left(s.db),
            }
            for s in sides
            if s.db is not None
        }
        print("timing the steps of one call", flush=True)
        steps = {s.name: time_steps(envs[s.name], s.keys[0]) for s in sides if s.db is not None}
    return {
        "databases_left": databases_left([s.db for s in sides if s.db is not None]),
        "code": {"before": code_before, "after": code_state()},
        "model": MODEL,
        "repeat": repeat,
        "keys": keys,
        "one_replies": one_replies,
        "rounds_50": rounds_50,
        "rounds_200": rounds_200,
        "one_in_turns": one_in_turns,
        "sides": [s.name for s in sides],
        "labels": {s.name: s.label for s in sides},
        "skipped": skipped,
        "budgets_checked": budgets_in_api(),
        "budget_env": BUDGET_ENV,
        "litellm": litellm,
        "litellm_version": litellm_version(litellm),
        "minutes": (time.time() - started) / 60,
        "machine": machine_info(postgres=postgres),
        "metering": metering,
        "steps": steps,
        "runs": out_runs,
    }


def databases_left(dbs: Sequence[BenchDatabase]) -> list[str]:
    """The throwaway databases still there after the run (none, when all went well)."""
    left = [str(db.sqlite_path) for db in dbs if db.kind == "sqlite" and db.sqlite_path.exists()]
    names = [db.name for db in dbs if db.kind == "postgres"]
    if names:
        import psycopg

        from .common import postgres_server_url

        with psycopg.connect(postgres_server_url(), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)
            ).fetchall()
        left += [row[0] for row in rows]
    return left


def litellm_version(executable: str) -> str:
    """The litellm package's version in the virtualenv of ``executable``."""
    if not executable:
        return ""
    python = Path(executable).with_name("python")
    try:
        return subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --- The report -------------------------------------------------------------------------


def _summary(runs: list[dict[str, Any]], streams: str, side: str, key: str) -> dict[str, float]:
    return spread([r["levels"][streams][side].get(key, float("nan")) for r in runs])


def _cell(s: dict[str, float], digits: int = 1, sign: bool = False, unit: str = "") -> str:
    """``median (min to max)``, or the median alone when the runs agree."""

    def f(v: float) -> str:
        text = fmt(v, digits)
        return ("+" + text if sign and v > 0 else text) + unit

    if s["median"] != s["median"]:
        return "–"
    if s["min"] == s["max"]:
        return f(s["median"])
    return f"{f(s['median'])} ({f(s['min'])} to {f(s['max'])})"


ROWS = (
    ("TTFT p50 (ms)", "ttft_p50_ms", 1, False, ""),
    ("TTFT p99 (ms)", "ttft_p99_ms", 1, False, ""),
    ("TTFT mean (ms)", "ttft_mean_ms", 1, False, ""),
    ("added TTFT p50 (ms)", "added_ttft_p50_ms", 1, True, ""),
    ("added TTFT p99 (ms)", "added_ttft_p99_ms", 1, True, ""),
    ("mean TTFT / direct", "ratio_ttft_mean", 2, False, "×"),
    ("server CPU, % of one core", "server_cpu_percent", 0, False, " %"),
    ("server CPU per call (ms)", "server_cpu_ms_per_call", 1, False, ""),
    ("server-side TTFT p50, usage records (ms)", "record_ttft_p50_ms", 0, False, ""),
    ("others' CPU (not ours), % of one core", "others_cpu_percent", 0, False, ""),
    ("load generator CPU, % of one core", "client_cpu_percent", 0, False, ""),
)


def level_table(result: dict[str, Any], streams: str) -> str:
    """One row per figure, one column per side: median (min to max) over the runs."""
    runs, sides = result["runs"], result["sides"]
    first = runs[0]["levels"][streams]
    rows = []
    for label, key, digits, sign, unit in ROWS:
        cells = []
        for side in sides:
            s = _summary(runs, streams, side, key)
            cells.append(_cell(s, digits, sign, unit))
        if any(c != "–" for c in cells):
            rows.append([label, *cells])
    errors = []
    for side in sides:
        worst = max(r["levels"][streams][side]["errors"] for r in runs)
        errors.append(f"{worst:.0f} of {first[side]['replies']:.0f}")
    rows.append(["errors (worst run)", *errors])
    no_usage = [
        f"{max(r['levels'][streams][side]['no_usage'] for r in runs):.0f}" for side in sides
    ]
    rows.append(["replies without a usage chunk (worst run)", *no_usage])
    metering = []
    for side in sides:
        if "records" not in first[side]:
            metering.append("–")
            continue
        rec = sum(r["levels"][streams][side]["records"] for r in runs)
        calls = sum(r["levels"][streams][side]["calls_answered"] for r in runs)
        metering.append(f"{rec:.0f} for {calls:.0f} calls")
    rows.append(["usage records written (all runs)", *metering])
    head = f"{len(runs)} run{'s' if len(runs) != 1 else ''}: median (min to max)"
    return markdown_table([head, *(result["labels"][s] for s in sides)], rows)


def runs_table(result: dict[str, Any]) -> str:
    """One line per run: order, load, and each side's added TTFT and errors per level."""
    rows = []
    for i, run_ in enumerate(result["runs"], 1):
        cells = [
            str(i),
            " → ".join(run_["order"]),
            f"{run_['load_start']:.2f} → {run_['load_end']:.2f}",
        ]
        for streams in ("1", "50", "200"):
            level = run_["levels"][streams]
            parts = []
            for side in result["sides"]:
                if side == "direct":
                    continue
                f = level[side]
                parts.append(
                    f"{side} {fmt(f['added_ttft_p50_ms'])} / {fmt(f['added_ttft_p99_ms'])}"
                    f" ({f['errors']:.0f} err)"
                )
            d = level["direct"]
            cells.append(
                f"direct {fmt(d['ttft_p50_ms'])} / {fmt(d['ttft_p99_ms'])}; " + "; ".join(parts)
            )
        rows.append(cells)
    return markdown_table(
        [
            "run",
            "order at 50 and 200",
            "load 1-min",
            "1 stream: TTFT p50 / p99, added",
            "50 streams",
            "200 streams",
        ],
        rows,
    )


def verdicts(result: dict[str, Any]) -> list[str]:
    """``target: side measured …: **met**`` for each target and app side."""
    out = []
    runs = result["runs"]
    for t in TARGETS:
        for side in result["sides"]:
            if side in ("direct",):
                continue
            values = [r["levels"][str(t.streams)][side][t.figure] for r in runs]
            s = spread(values)
            value = s[t.on]
            digits = 0 if t.figure == "errors" else 1
            met = sum(1 for v in values if v <= t.limit)
            who = result["labels"][side]
            if side == "litellm":
                how = "for comparison"
            else:
                how = f"**{'met' if value <= t.limit else 'missed'}**"
            out.append(
                f"- {t.text}, {who}: {'median' if t.on == 'median' else 'worst run'} "
                f"{fmt(value, digits)} (runs: {', '.join(fmt(v, digits) for v in values)}; "
                f"within the target in {met} of {len(values)}): {how}."
            )
    return out


def report(result: dict[str, Any]) -> str:
    """The Markdown report: the conditions, a table per level, the runs, the targets and
    the metering check."""
    m = result["machine"]
    head = (
        f"{result['repeat']} run(s), {result['minutes']:.1f} min; {m.get('cpu', '?')}, "
        f"{m.get('cores')} cores; Python {m.get('python')}, uvicorn {m.get('uvicorn')}; "
        f"PostgreSQL {m.get('postgresql', '–')}; LiteLLM {result['litellm_version'] or '–'}; "
        f"{result['keys']} API keys; budgets checked by the API: "
        f"{'yes' if result['budgets_checked'] else 'no (not wired yet)'}."
    )
    parts = [head]
    code = result.get("code")
    if code:
        before, after = code["before"], code["after"]
        same = before.get("app_code_sha256") == after.get("app_code_sha256")
        parts.append(
            f"Commit {before['commit']} (at the end: {after['commit']}), "
            f"{len(before['app_changes'])} app file(s) differing from it; the app's code "
            f"{'the same' if same else '**changed**'} at the end of the run."
        )
    if result["skipped"]:
        parts.append("Skipped: " + "; ".join(result["skipped"]))
    descriptions = {
        "1": f"**One stream**: {result['one_replies']} replies in a row per side "
        + (
            "(the sides one after the other)"
            if result.get("one_in_turns")
            else "(the sides at the same time, their starts 1.1 s apart)"
        ),
        "50": f"**50 streams started at once**, {result['rounds_50']} replies each",
        "200": f"**200 streams started at once**, {result['rounds_200']} reply each",
    }
    for streams, text in descriptions.items():
        parts.append(f"{text}; {MODEL} (200 deltas 20 ms apart).")
        parts.append(level_table(result, streams))
    parts.append("Per run (ms; added = side − direct, p50 / p99):")
    parts.append(runs_table(result))
    parts.append("\n".join(verdicts(result)))
    lines = []
    for side, f in result["metering"].items():
        ok = f["records"] == f["calls_answered"]
        lines.append(
            f"- {result['labels'][side]}: {f['records']:.0f} usage records for "
            f"{f['calls_answered']} calls answered ({f['records_complete']:.0f} complete, "
            f"{f['records_without_cost']:.0f} without a cost, "
            f"{f['records_output_tokens']:.0f} output tokens): "
            f"{'one per call' if ok else '**not one per call**'}; budget reservations "
            f"left: {fmt(f.get('reservations_left', float('nan')), 0)}."
        )
    left = result.get("databases_left") or []
    lines.append(
        "- Throwaway databases dropped at the end: "
        + ("yes." if not left else f"**no**, left: {', '.join(left)}.")
    )
    parts.append("Metering:\n" + "\n".join(lines))
    if result.get("steps"):
        parts.append(
            "Each step of an API call alone (after the runs, the servers stopped; "
            "`manage.py shell` on each bench database, 200 times):"
        )
        parts.append(steps_table(result["steps"], result["labels"]))
    examples = sorted({e for r in result["runs"] for e in r["error_examples"]})[:8]
    if examples:
        parts.append("Errors seen: " + "; ".join(examples))
    loads = "; ".join(
        f"run {i}: {r['uptime_start'].split('load average:')[-1].strip()} → "
        f"{r['uptime_end'].split('load average:')[-1].strip()}"
        for i, r in enumerate(result["runs"], 1)
    )
    parts.append(f"Load average (1, 5, 15 min) at the start and end of each run: {loads}.")
    return "\n\n".join(parts)


# --- The steps of one call, timed one by one ----------------------------------------------

# Run in ``manage.py shell`` against a bench database (the servers stopped): each step of
# the API's request path as the app runs it, N times, with the database connection given
# back after each database step as ``db_step`` does. Microseconds.
_STEPS = r"""
import asyncio, importlib.util, json, time
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import connection
from accounts.models import ApiKey
from accounts.services import api_key_authenticate
from access.services import model_access_for
from api import views
from chat.services.persistence import connection_release
from usage.services import usage_record_write

raw, n, provider, model = {raw!r}, {n}, {provider!r}, {model!r}
out = {{}}

def timed(name, step, setup=None):
    samples = []
    for _ in range(n):
        if setup:
            setup()
        started = time.perf_counter()
        step()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    out[name] = {{"p50_us": samples[n // 2], "p90_us": samples[int(n * 0.9)]}}

def db(func):
    def step():
        try:
            func()
        finally:
            connection_release()
    return step

key = api_key_authenticate(raw)
connection_release()
timed("authenticate the key (used in the last minute)", db(lambda: api_key_authenticate(raw)))
stale = lambda: ApiKey.objects.filter(pk=key.pk).update(last_used_at=None)
timed("authenticate the key (first use in a minute: writes last_used_at)",
      db(lambda: api_key_authenticate(raw)), setup=stale)
user = key.user
def access():
    for name in [a for a in vars(user) if "access" in a]:  # the rules cached on the user
        delattr(user, name)
    return model_access_for(user=user)
timed("model access rules (none set)", access)
rules = access()
body = {{"model": f"{{provider}}/{{model}}", "messages": [{{"role": "user", "content": "Hi"}}],
        "stream": True, "stream_options": {{"include_usage": True}}}}
timed("check the request (views._prepare)", lambda: views._prepare(body, key, rules, {{}}))
record = dict(user_id=user.pk, provider=provider, model=model, input_tokens=12,
              output_tokens=200, reasoning_tokens=None, ttft_ms=20, duration_ms=4000,
              outcome="complete", source="api", api_key_id=key.pk)
timed("write the usage record (usage_record_write)", db(lambda: usage_record_write(**record)))
if importlib.util.find_spec("usage.budgets"):
    from usage.budgets import budget_reserve, budget_settle
    held = []
    timed("budgets: budget_reserve (defaults set)",
          db(lambda: held.append(budget_reserve(user=user, provider=provider, model=model,
                                                input_tokens=12))))
    ids = iter([r.id for r in held])
    timed("budgets: budget_settle (record + release)",
          db(lambda: budget_settle(reservation_id=next(ids), **record)))
if connection.vendor != "sqlite":
    timed("a database connection from the pool and back", db(connection.ensure_connection))

async def hops():
    nothing = lambda: None
    async def pool_thread():
        await sync_to_async(nothing, thread_sensitive=False)()
    async def request_thread():
        async with ThreadSensitiveContext():
            await sync_to_async(nothing)()
    for name, hop in (("a trip to a pool thread (thread_sensitive=False)", pool_thread),
                      ("a trip to a request's own thread (thread_sensitive=True)", request_thread)):
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            await hop()
            samples.append((time.perf_counter() - started) * 1e6)
        samples.sort()
        out[name] = {{"p50_us": samples[n // 2], "p90_us": samples[int(n * 0.9)]}}
asyncio.run(hops())
print(json.dumps(out))
"""


def time_steps(env: dict[str, str], raw_key: str, n: int = 200) -> dict[str, dict[str, float]]:
    """Each step of an API call timed alone (``_STEPS``), ``n`` times, on the database
    of ``env``: ``{step: {"p50_us": ..., "p90_us": ...}}``."""
    script = _STEPS.format(raw=raw_key, n=n, provider=BENCH_PROVIDER, model=MODEL)
    return json.loads(manage(env, "shell", "-c", script).strip().splitlines()[-1])


def steps_table(steps: dict[str, dict[str, dict[str, float]]], labels: dict[str, str]) -> str:
    """One row per step, p50 (p90) in microseconds per database."""
    kinds = list(steps)
    names = list(dict.fromkeys(name for kind in kinds for name in steps[kind]))
    rows = []
    for name in names:
        cells = []
        for kind in kinds:
            t = steps[kind].get(name)
            cells.append(f"{fmt(t['p50_us'], 0)} ({fmt(t['p90_us'], 0)})" if t else "–")
        rows.append([name, *cells])
    return markdown_table(["step of one call: µs p50 (p90)", *(labels[k] for k in kinds)], rows)


# --- Profiling the app ------------------------------------------------------------------

# uvicorn under cProfile, every thread profiled (Django's database steps run in worker
# threads), the profiles merged into one file when the server stops.
_PROFILED_UVICORN = """
import cProfile, pstats, runpy, signal, sys, threading
out = sys.argv[1]
# uvicorn raises SIGTERM again after its graceful shutdown: exit, and write the profile.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
profiles = []
def _thread_hook(*_):
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.enable()  # replaces this hook in this thread
threading.setprofile(_thread_hook)
main = cProfile.Profile()
sys.argv = ["uvicorn", *sys.argv[2:]]
main.enable()
try:
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    main.disable()
    stats = pstats.Stats(main)
    for profile in profiles:
        try:
            profile.create_stats()
            stats.add(profile)
        except Exception:
            pass
    stats.dump_stats(out)
"""
PROJECT_CODE = r"(chat_ai|chat|api|accounts|usage|access)/[a-z_/]+\.py"


def profile(
    kind: str = "sqlite", streams: int = 50, rounds: int = 3, keys: int = KEYS, top: int = 30
) -> str:
    """Run the app (``kind`` database) under cProfile, send it ``streams`` streams at
    once, ``rounds`` replies each, and return the profile's report: the functions with
    the most time of their own, then the project's functions by cumulative time. The
    profiler slows the server: read shares, not milliseconds."""
    import io
    import pstats

    from .common import PYTHON

    raise_open_files_limit()
    workdir = workdir_for("api_profile")
    out = workdir / "app.prof"
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(FakeUpstreamProcess(workdir).start())
        db = stack.enter_context(BenchDatabase(kind, workdir))
        env = app_env(db, upstream.url, **BUDGET_ENV)
        side = Side(kind, SIDE_LABELS[kind], f"{BENCH_PROVIDER}/{MODEL}", [], db=db)
        side.keys = prepare_app_database(env, keys)
        app = AppServer(env, workdir)
        app.args = [PYTHON, "-c", _PROFILED_UVICORN, str(out), *app.args[3:]]
        with app.start():
            side.url, side.pid = app.url, app.pid
            asyncio.run(run_load(side, 10, 1, side.model.replace(MODEL, WARM_MODEL)))
            started = cpu_seconds(app.pid)
            results = asyncio.run(run_load(side, streams, rounds, side.model))
            used = cpu_seconds(app.pid) - started
        figures = result_figures(results)
        text = io.StringIO()
        text.write(
            f"{kind}, {streams} streams x {rounds}: TTFT p50 {fmt(figures['ttft_p50_ms'])} ms, "
            f"p99 {fmt(figures['ttft_p99_ms'])} ms, {figures['errors']:.0f} errors; server CPU "
            f"{used:.2f} s ({1000 * used / len(results):.1f} ms a call, under the profiler)\n"
        )
        stats = pstats.Stats(str(out), stream=text)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(PROJECT_CODE, top)
        if os.environ.get("BENCH_KEEP") == "1":
            text.write(f"profile: {out}\n")
    return text.getvalue()


# --- Tracing the view -------------------------------------------------------------------

TRACE_STEPS = (
    ("Django before the view (signal, middleware)", "view_start"),
    ("authenticate the key (thread trip + query)", "authenticate"),
    ("model access rules (thread trip)", "access"),
    ("body, checks, _prepare", "prepare"),
    ("budget_reserve (thread trip + transaction)", "budget"),
    ("start the run, upstream to first token, response", "to_headers"),
    ("headers to the first text chunk", "to_content"),
    ("request arrived to first text chunk", "first_content"),
)


def traced_application() -> Any:
    """The app with timers around the steps of ``POST /v1/chat/completions`` before its
    first text chunk, one JSON line per request in ``BENCH_TRACE_FILE`` (milliseconds
    from the request's arrival). A uvicorn factory (``--factory``) for ``--trace``: it
    wraps functions of ``api.views`` in this server process only; no app file changes."""
    import contextvars
    import importlib

    # Django first (chat_ai.asgi sets it up), then the view's module.
    application = importlib.import_module("chat_ai.asgi").application
    views = importlib.import_module("api.views")

    trace_out = open(os.environ["BENCH_TRACE_FILE"], "a", buffering=1)
    current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
        "bench_trace", default=None
    )

    def timed(name: str, func: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            trace = current.get()
            started = time.perf_counter()
            if trace is not None:
                trace[f"{name}_at"] = (started - trace["t0"]) * 1000
            try:
                return await func(*args, **kwargs)
            finally:
                if trace is not None:
                    trace[name] = (time.perf_counter() - started) * 1000

        return wrapper

    views._authenticate = timed("authenticate", views._authenticate)
    views.amodel_access_for = timed("access", views.amodel_access_for)
    views._budget_hold = timed("budget", views._budget_hold)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            return await application(scope, receive, send)
        t0 = time.perf_counter()
        trace: dict[str, float] = {"t0": t0}
        current.set(trace)
        bodies = 0

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal bodies
            now = (time.perf_counter() - t0) * 1000
            if message["type"] == "http.response.start":
                trace["headers_at"] = now
            elif message["type"] == "http.response.body" and message.get("body"):
                bodies += 1
                if bodies == 2:  # the first is the role chunk, sent with the headers
                    trace["first_content"] = now
            await send(message)

        try:
            await application(scope, receive, timed_send)
        finally:
            trace.pop("t0")
            trace_out.write(json.dumps(trace) + "\n")

    return app


def trace_figures(lines: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each traced step's p50 and p99 (ms) over the requests."""
    steps: dict[str, list[float]] = {key: [] for _, key in TRACE_STEPS}
    for t in lines:
        if "budget_at" not in t or "first_content" not in t:
            continue
        access_end = t["access_at"] + t["access"]
        budget_end = t["budget_at"] + t["budget"]
        values = {
            "view_start": t["authenticate_at"],
            "authenticate": t["authenticate"],
            "access": t["access"],
            "prepare": t["budget_at"] - access_end,
            "budget": t["budget"],
            "to_headers": t["headers_at"] - budget_end,
            "to_content": t["first_content"] - t["headers_at"],
            "first_content": t["first_content"],
        }
        for key, value in values.items():
            steps[key].append(value)
    return {
        key: {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": len(v)}
        for key, v in steps.items()
    }


def trace(kinds: Sequence[str], keys: int = KEYS, replies: int = 20) -> str:
    """Serve the app traced (``traced_application``) on each database in ``kinds``;
    send ``replies`` single streams one after the other, then 50 at once; return a table
    of where the time before the first text chunk went."""

    raise_open_files_limit()
    workdir = workdir_for("api_trace")
    tables = []
    with FakeUpstreamProcess(workdir).start() as upstream:
        for kind in kinds:
            folder = workdir / kind
            folder.mkdir()
            with BenchDatabase(kind, folder) as db:
                env = app_env(db, upstream.url, **BUDGET_ENV)
                side = Side(kind, SIDE_LABELS[kind], f"{BENCH_PROVIDER}/{MODEL}", [], db=db)
                side.keys = prepare_app_database(env, keys)
                results: dict[str, dict[str, dict[str, float]]] = {}
                for level, streams, rounds in (("1", 1, replies), ("50", 50, 1)):
                    out = folder / f"trace-{level}.jsonl"
                    app = AppServer({**env, "BENCH_TRACE_FILE": str(out)}, folder)
                    i = app.args.index("chat_ai.asgi:application")
                    app.args[i : i + 1] = ["bench.api_gateway:traced_application", "--factory"]
                    with app.start():
                        side.url, side.pid = app.url, app.pid
                        warm = side.model.replace(MODEL, WARM_MODEL)
                        asyncio.run(run_load(side, 10, 1, warm))
                        out.write_text("")
                        asyncio.run(run_load(side, streams, rounds, side.model))
                    lines = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
                    results[level] = trace_figures(lines)
                rows = [
                    [
                        label,
                        *(
                            f"{fmt(results[lv][key]['p50'])} / {fmt(results[lv][key]['p99'])}"
                            for lv in ("1", "50")
                        ),
                    ]
                    for label, key in TRACE_STEPS
                ]
                tables.append(
                    f"{SIDE_LABELS[kind]} (ms, p50 / p99; load {load_average()[0]:.2f}):\n\n"
                    + markdown_table(
                        ["step", f"1 stream, {replies} replies", "50 streams at once"], rows
                    )
                )
    return "\n\n".join(tables)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Issue 12: /v1 against the direct SDK and LiteLLM's proxy"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of the whole comparison")
    parser.add_argument("--quick", action="store_true", help="one short run (a smoke run)")
    parser.add_argument(
        "--litellm",
        default=shutil.which("litellm")
        or (DEFAULT_LITELLM if os.path.exists(DEFAULT_LITELLM) else ""),
        help="the litellm command of a virtualenv with litellm[proxy] (empty: skip it)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--keys", type=int, default=KEYS, help="people, one API key each")
    parser.add_argument("--one-replies", type=int, default=20)
    parser.add_argument(
        "--one-in-turns",
        action="store_true",
        help="one stream: the sides one after the other, not together (4x longer)",
    )
    parser.add_argument("--rounds-50", type=int, default=3)
    parser.add_argument("--rounds-200", type=int, default=1)
    parser.add_argument(
        "--profile",
        choices=["sqlite", "postgres"],
        help="instead: profile the app on this database under --profile-streams at once",
    )
    parser.add_argument("--profile-streams", type=int, default=50)
    parser.add_argument(
        "--trace",
        action="store_true",
        help="instead: time the steps of the view inside the server (1 stream, then 50)",
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.profile:
        print(profile(args.profile, args.profile_streams, args.rounds_50, args.keys))
        return
    if args.trace:
        kinds = ["sqlite"] + ([] if args.no_postgres or not postgres_reachable() else ["postgres"])
        print(trace(kinds, args.keys, args.one_replies))
        return
    if args.quick:
        args.repeat, args.one_replies, args.rounds_50, args.rounds_200 = 1, 5, 1, 1
    result = run(
        repeat=args.repeat,
        litellm=args.litellm,
        postgres=not args.no_postgres,
        keys=args.keys,
        one_replies=args.one_replies,
        rounds_50=args.rounds_50,
        rounds_200=args.rounds_200,
        one_in_turns=args.one_in_turns,
    )
    write_json(args.json, result)
    print(report(result))
    if args.json:
        print(f"JSON: {Path(args.json).resolve()}")


if __name__ == "__main__":
    main()
