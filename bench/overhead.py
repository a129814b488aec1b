"""Benchmark 1, overhead: what the app adds to a streamed reply, measured side by side
with the same SDK (openai.AsyncOpenAI) calling the same fake upstream directly, in one
run, on one app worker::

    python -m bench.overhead [--db sqlite|postgres] [--levels 1,50] [--models bench-200x20]
                             [--repeat 3] [--rounds-scale 1] [--json out.json]

The default upstream reply is ``bench-200x20``: 200 deltas 20 ms apart, a 4-second reply
at 50 tokens a second, a real model's pace. At each level C, C streams run at once, their
starts spread over one reply's length (so requests arrive steadily), each sending
``rounds`` replies one after the other (the app's in a conversation of its own). The
direct SDK and the app take turns at each level (their order swaps from run to run), and
``--repeat`` runs the whole side by side again with a fresh app process, so that every
figure comes with its median and its spread over the runs.

Per level and run (times in ms, seen by the client):

- TTFT p50 / p99 (request sent to first delta) of both, and the added TTFT (app minus
  direct, percentile by percentile);
- the inter-delta gap p99 (every wait between two deltas of a reply, pooled over the
  level's replies) and the longest gap of any one reply;
- errors (a failed request, an error event, no done event, or a reply whose text does
  not hold all the upstream's deltas: tokens are counted by text, since the app may send
  several deltas as one event when the client is behind);
- app CPU as % of one core (user + system time of the server process over the window
  divided by the window's wall time), app CPU ms per 1,000 relayed deltas (that CPU time
  over the upstream deltas the replies held, so it includes each reply's fixed cost);
- the machine: load average before and after each phase, and the CPU time of everything
  that is not ours (the machine is shared: other engineers' tests run on the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    AppServer,
    BenchUser,
    CpuWindow,
    DeltaClock,
    StreamResult,
    bench_stack,
    close_users,
    create_users,
    fmt,
    load_average,
    machine_info,
    markdown_table,
    percentile,
    raise_open_files_limit,
    rss_mb,
    sign_in_users,
    uvicorn_stack,
    workdir_for,
    write_json,
)
from .fakeserver import model_shape

MODEL = "bench-200x20"
MODELS = ("bench-200x20",)
USERS = 50
# Replies per stream, by model and number of concurrent streams.
DEFAULT_ROUNDS = {
    "bench-20x20": {1: 60, 50: 8, 200: 4},
    "bench-200x20": {1: 10, 50: 3, 200: 3},
}
WARM_MODEL = "bench-20x20"


@dataclass(frozen=True)
class Target:
    """One of issue 10's targets: a figure of the summary at ``streams`` streams of
    ``model`` must be at most ``limit``, judged on the median of the runs (``on="max"``:
    on the worst run)."""

    streams: int
    figure: str
    limit: float
    text: str
    on: str = "median"
    model: str = MODEL


TARGETS = (
    Target(1, "added_ttft_p50_ms", 5.0, "one stream: added TTFT p50 ≤ 5 ms"),
    Target(50, "added_ttft_p99_ms", 50.0, "50 streams: added TTFT p99 ≤ 50 ms"),
    Target(50, "app_cpu_percent", 40.0, "50 streams: app CPU ≤ 40 % of one core"),
)


# --- Streams ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """The stream pattern of one level: ``streams`` at once, each sending ``rounds``
    replies of ``model`` one after the other, their starts spread over ``ramp`` seconds."""

    model: str
    streams: int
    rounds: int
    ramp: float

    @property
    def stagger(self) -> float:
        """Seconds between the starts of two streams."""
        return self.ramp / self.streams


class Flight:
    """Replies in flight (request sent, reply not finished), counted as they go."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self.samples: list[int] = []

    def __enter__(self) -> Flight:
        self.now += 1
        self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


def reply_seconds(model: str) -> float:
    """How long the upstream takes to send one reply of ``model``, in seconds."""
    chunks, pause_ms = model_shape(model)
    return chunks * pause_ms / 1000


def expected_deltas(model: str) -> int:
    return model_shape(model)[0]


def openai_client(upstream_url: str, api_key: str = "bench") -> Any:
    """The SDK client as the app builds it: no retries, no cap on connections."""
    import httpx2
    import openai

    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=f"{upstream_url}/v1",
        max_retries=0,
        timeout=60,
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=500)
        ),
    )


async def direct_stream(client: Any, content: str, model: str = MODEL) -> StreamResult:
    """One streamed reply straight from the upstream through the SDK, timed like the
    app's (TTFT, gaps between deltas, deltas counted by text)."""
    result = StreamResult()
    started = time.perf_counter()
    clock = DeltaClock(result, started)
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": content}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        clock.delta(choice.delta.content, time.perf_counter())
        result.total = time.perf_counter() - started
        result.final_status = "complete"
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
    return result


def check_complete(results: list[StreamResult], model: str) -> None:
    """Mark as failed each reply that finished without all the upstream's deltas."""
    wanted = expected_deltas(model)
    for r in results:
        if r.ok and r.tokens != wanted:
            r.error = f"incomplete: {r.tokens} of {wanted} deltas"


async def run_direct(
    upstream_url: str, load: Load, flight: Flight, api_key: str = "bench"
) -> list[StreamResult]:
    """``load`` straight from the upstream through the SDK, from this process."""
    client = openai_client(upstream_url, api_key)
    try:

        async def worker(w: int) -> list[StreamResult]:
            await asyncio.sleep(w * load.stagger)
            out = []
            for r in range(load.rounds):
                with flight:
                    out.append(await direct_stream(client, f"message {w}.{r}", load.model))
            return out

        batches = await asyncio.gather(*(worker(w) for w in range(load.streams)))
    finally:
        await client.close()
    results = [r for batch in batches for r in batch]
    check_complete(results, load.model)
    return results


async def open_conversations(users: list[BenchUser], count: int, model: str) -> list[int]:
    """``count`` new conversations, spread over ``users`` (20 being opened at a time)."""
    gate = asyncio.Semaphore(20)

    async def one(owner: BenchUser) -> int:
        async with gate:
            return await owner.new_conversation(model)

    return await asyncio.gather(*(one(users[w % len(users)]) for w in range(count)))


async def run_app(
    users: list[BenchUser], conversations: list[int], load: Load, flight: Flight
) -> list[StreamResult]:
    """``load`` through the app: stream w sends in ``conversations[w]``."""

    async def worker(w: int) -> list[StreamResult]:
        owner, conversation = users[w % len(users)], conversations[w]
        await asyncio.sleep(w * load.stagger)
        out = []
        for r in range(load.rounds):
            with flight:
                out.append(
                    await owner.send(
                        conversation, f"Benchmark message {w}.{r}", load.model, keep_text=False
                    )
                )
        return out

    batches = await asyncio.gather(*(worker(w) for w in range(load.streams)))
    results = [r for batch in batches for r in batch]
    check_complete(results, load.model)
    return results


async def phase(
    go: Callable[[Flight], Awaitable[list[StreamResult]]], pids: dict[str, int]
) -> tuple[list[StreamResult], dict[str, float]]:
    """Run one side's streams, measuring CPU, load, replies in flight and the app's RSS."""
    flight = Flight()
    rss: list[float] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            flight.samples.append(flight.now)
            rss.append(rss_mb(pids["app"]))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    window = CpuWindow(pids)
    try:
        results = await go(flight)
    finally:
        usage = window.close()
        stop.set()
        await sampler
    # Replies in flight, averaged over the samples taken while the level was at its
    # height (at least half the peak): how many streams were held at once.
    held = [n for n in flight.samples if n >= flight.peak / 2] or [0]
    usage.update(
        peak_in_flight=flight.peak,
        mean_in_flight=statistics.fmean(held),
        app_rss_mb_peak=max(rss, default=0.0),
    )
    return results, usage


# --- Figures ----------------------------------------------------------------------------


def _ms(values: Sequence[float | None]) -> list[float]:
    return [v * 1000 for v in values if v is not None]


def side_figures(results: list[StreamResult]) -> dict[str, float]:
    """TTFT p50 / p99, the gap p99 (pooled), the longest gap of one reply (ms), errors."""
    ok = [r for r in results if r.ok]
    ttft = _ms([r.ttft for r in ok])
    gaps = [g * 1000 for r in ok for g in r.gaps]
    return {
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p99_ms": percentile(ttft, 99),
        "gap_p99_ms": percentile(gaps, 99),
        "max_gap_ms": max(gaps, default=float("nan")),
        "errors": float(len(results) - len(ok)),
        "replies": float(len(results)),
    }


def level_figures(
    direct: list[StreamResult],
    app: list[StreamResult],
    direct_usage: dict[str, float],
    app_usage: dict[str, float],
) -> dict[str, float]:
    """Every figure of one level in one run, flat, with its unit in its name."""
    d, a = side_figures(direct), side_figures(app)
    out = {f"direct_{k}": v for k, v in d.items()} | {f"app_{k}": v for k, v in a.items()}
    relayed = sum(r.tokens for r in app)
    wall = app_usage["wall_s"]
    out.update(
        added_ttft_p50_ms=a["ttft_p50_ms"] - d["ttft_p50_ms"],
        added_ttft_p99_ms=a["ttft_p99_ms"] - d["ttft_p99_ms"],
        ratio_ttft_p50=a["ttft_p50_ms"] / d["ttft_p50_ms"],
        ratio_ttft_p99=a["ttft_p99_ms"] / d["ttft_p99_ms"],
        ratio_gap_p99=a["gap_p99_ms"] / d["gap_p99_ms"],
        app_cpu_percent=100 * app_usage["app_cpu_s"] / wall,
        app_cpu_ms_per_1000_deltas=app_usage["app_cpu_s"] * 1e6 / relayed if relayed else 0.0,
        deltas_relayed=float(relayed),
        app_rss_mb_peak=app_usage["app_rss_mb_peak"],
        app_peak_in_flight=float(app_usage["peak_in_flight"]),
        app_mean_in_flight=app_usage["mean_in_flight"],
        direct_peak_in_flight=float(direct_usage["peak_in_flight"]),
    )
    for side, usage in (("direct", direct_usage), ("app", app_usage)):
        w = usage["wall_s"]
        out[f"{side}_wall_s"] = w
        out[f"{side}_load_before"] = usage["load_before"]
        out[f"{side}_load_after"] = usage["load_after"]
        for who in ("upstream", "client", "others"):
            out[f"{side}_{who}_cpu_percent"] = 100 * usage[f"{who}_cpu_s"] / w
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of one figure over the runs (NaN values left out)."""
    kept = [v for v in values if v == v]
    if not kept:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(kept), "min": min(kept), "max": max(kept)}


def summarize_runs(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {key: spread([run[key] for run in runs]) for key in runs[0]}


# --- Running ----------------------------------------------------------------------------


Side = Callable[[Flight], Awaitable[list[StreamResult]]]


async def side_by_side(
    load: Load, direct: Side, app: Side, pids: dict[str, int], direct_first: bool
) -> dict[str, Any]:
    """One level of one run: the direct phase and the app phase one after the other
    (``direct_first`` sets the order), then their figures (``level_figures``)."""
    sides: dict[str, tuple[list[StreamResult], dict[str, float]]] = {}
    order = ("direct", "app") if direct_first else ("app", "direct")
    load_start = load_average()[0]
    for side in order:
        await asyncio.sleep(1.0)  # let the previous phase's tail settle
        sides[side] = await phase(direct if side == "direct" else app, pids)
    (direct_results, direct_usage), (app_results, app_usage) = sides["direct"], sides["app"]
    figures = level_figures(direct_results, app_results, direct_usage, app_usage)
    figures.update(load_start=load_start, load_end=load_average()[0])
    figures["app_first"] = float(not direct_first)
    examples = sorted({f"app: {r.error}" for r in app_results if r.error})[:3]
    examples += sorted({f"direct: {r.error}" for r in direct_results if r.error})[:3]
    print(summary_line(load, figures, order), flush=True)
    return {"streams": load.streams, "figures": figures, "error_examples": examples}


async def measure(
    upstream: Any,
    app: AppServer,
    usernames: list[str],
    loads: list[Load],
    direct_first: bool = True,
) -> list[dict[str, Any]]:
    """One run: each level's direct and app phases, one after the other."""
    pids = {"app": app.pid, "upstream": upstream.pid}
    users = await sign_in_users(app.url, usernames)
    try:
        # Warm both paths up (imports, first connections, caches).
        warm = Load(WARM_MODEL, 10, 2, 0.0)
        await run_direct(upstream.url, warm, Flight())
        await run_app(users, await open_conversations(users, 10, WARM_MODEL), warm, Flight())
        out = []
        for load in loads:
            conversations = await open_conversations(users, load.streams, load.model)
            direct = functools.partial(run_direct, upstream.url, load)
            through_app = functools.partial(run_app, users, conversations, load)
            out.append(await side_by_side(load, direct, through_app, pids, direct_first))
        return out
    finally:
        await close_users(users)


def summary_line(load: Load, f: dict[str, float], order: Sequence[str]) -> str:
    return (
        f"  {load.model} c={load.streams} ({' then '.join(order)}): TTFT p50 direct "
        f"{fmt(f['direct_ttft_p50_ms'])} / app {fmt(f['app_ttft_p50_ms'])} ms, p99 "
        f"{fmt(f['direct_ttft_p99_ms'])} / {fmt(f['app_ttft_p99_ms'])} ms; gap p99 "
        f"{fmt(f['direct_gap_p99_ms'])} / {fmt(f['app_gap_p99_ms'])} ms; errors "
        f"{f['direct_errors']:.0f} / {f['app_errors']:.0f}; app CPU "
        f"{fmt(f['app_cpu_percent'], 0)}%, {fmt(f['app_cpu_ms_per_1000_deltas'])} ms per "
        f"1,000 deltas; load {f['app_load_before']:.2f} → {f['app_load_after']:.2f}"
    )


def rounds_for(model: str, streams: int, scale: float = 1.0) -> int:
    """Replies per stream: enough samples, a bounded time."""
    base = DEFAULT_ROUNDS.get(model, {}).get(streams)
    if base is None:  # about 400 replies, each stream busy for at most 40 s
        base = max(2, round(min(400 / streams, 40 / max(reply_seconds(model), 0.1))))
    return max(1, round(base * scale))


def loads_for(
    model: str,
    levels: Sequence[int],
    rounds_scale: float = 1.0,
    ramp: float | None = None,
    rounds: int | None = None,
) -> list[Load]:
    """The stream pattern of each level. ``ramp``: seconds over which a level's streams
    start (default: one reply's length); ``rounds``: replies per stream (default:
    ``rounds_for``)."""
    return [
        Load(
            model,
            level,
            rounds or rounds_for(model, level, rounds_scale),
            reply_seconds(model) if ramp is None else ramp,
        )
        for level in levels
    ]


def model_result(model: str, loads: list[Load], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of one model: per level, every run's figures and their median and spread
    (``rows``: what ``side_by_side`` returned, for every run and level)."""
    levels = []
    for load in loads:
        mine = [r for r in rows if r["streams"] == load.streams]
        levels.append(
            {
                "streams": load.streams,
                "rounds": load.rounds,
                "ramp_s": load.ramp,
                "runs": [r["figures"] for r in mine],
                "error_examples": sorted({e for r in mine for e in r["error_examples"]})[:5],
                "summary": summarize_runs([r["figures"] for r in mine]),
            }
        )
    return {"model": model, "levels": levels}


def run(
    db_kind: str = "sqlite",
    levels: list[int] | None = None,
    rounds_scale: float = 1.0,
    models: tuple[str, ...] = MODELS,
    uvicorn_args: list[str] | None = None,
    repeat: int = 3,
    ramp: float | None = None,
    rounds: int | None = None,
    users: int = USERS,
    name: str = "overhead",
) -> dict[str, Any]:
    """The side by side, ``repeat`` times (a fresh app process each time), for each model
    and level; returns the JSON result: per-run figures and their median and spread.
    ``ramp`` and ``rounds``: see ``loads_for``."""
    levels = levels or [1, 50]
    raise_open_files_limit()
    workdir = workdir_for(name)
    out_models = []
    with bench_stack(workdir, db_kind) as (upstream, _db, env):
        usernames = create_users(env, name, users)
        for model in models:
            loads = loads_for(model, levels, rounds_scale, ramp, rounds)
            rows: list[dict[str, Any]] = []
            for i in range(repeat):
                print(f"{name} {model}: run {i + 1} of {repeat}", flush=True)
                with AppServer(env, workdir, *(uvicorn_args or [])) as app:
                    app.start()
                    rows += asyncio.run(measure(upstream, app, usernames, loads, i % 2 == 0))
            out_models.append(model_result(model, loads, rows))
    return {
        "db": db_kind,
        "repeat": repeat,
        "uvicorn_args": uvicorn_args or [],
        "uvicorn": uvicorn_stack(),
        "machine": machine_info(postgres=db_kind == "postgres"),
        "runs": out_models,
    }


# --- The report -------------------------------------------------------------------------


def _cell(s: dict[str, float], digits: int = 1, sign: bool = False, unit: str = "") -> str:
    """``median (min–max)``, or the median alone when all runs agree."""

    def f(v: float) -> str:
        text = fmt(v, digits)
        return ("+" + text if sign and v > 0 else text) + unit

    if s["min"] == s["max"] or s["min"] != s["min"]:
        return f(s["median"])
    return f"{f(s['median'])} ({f(s['min'])} to {f(s['max'])})"


def level_table(level: dict[str, Any]) -> str:
    """Direct, app, app − direct and app / direct for each figure: median (min to max)."""
    s, n = level["summary"], len(level["runs"])
    replies = level["runs"][0]["app_replies"]
    rows = []
    for label, key, ratio in (
        ("TTFT p50 (ms)", "ttft_p50_ms", "ratio_ttft_p50"),
        ("TTFT p99 (ms)", "ttft_p99_ms", "ratio_ttft_p99"),
        ("inter-delta gap p99 (ms)", "gap_p99_ms", "ratio_gap_p99"),
        ("longest gap of one reply (ms)", "max_gap_ms", None),
    ):
        added = {"ttft_p50_ms": "added_ttft_p50_ms", "ttft_p99_ms": "added_ttft_p99_ms"}.get(key)
        rows.append(
            [
                label,
                _cell(s[f"direct_{key}"]),
                _cell(s[f"app_{key}"]),
                _cell(s[added], sign=True) if added else "–",
                _cell(s[ratio], 2, unit="×") if ratio else "–",
            ]
        )
    rows += [
        [
            "errors (worst run)",
            f"{s['direct_errors']['max']:.0f} of {replies:.0f}",
            f"{s['app_errors']['max']:.0f} of {replies:.0f}",
            "–",
            "–",
        ],
        ["app CPU, % of one core", "–", _cell(s["app_cpu_percent"], 0, unit=" %"), "–", "–"],
        [
            "app CPU per 1,000 relayed deltas (ms)",
            "–",
            _cell(s["app_cpu_ms_per_1000_deltas"]),
            "–",
            "–",
        ],
        [
            "replies in flight: peak (mean at height)",
            f"{s['direct_peak_in_flight']['max']:.0f}",
            f"{s['app_peak_in_flight']['max']:.0f} ({fmt(s['app_mean_in_flight']['median'], 0)})",
            "–",
            "–",
        ],
        ["app RSS peak (MB)", "–", _cell(s["app_rss_mb_peak"], 0), "–", "–"],
        [
            "load generator CPU, % of one core",
            _cell(s["direct_client_cpu_percent"], 0),
            _cell(s["app_client_cpu_percent"], 0),
            "–",
            "–",
        ],
        [
            "fake upstream CPU, % of one core",
            _cell(s["direct_upstream_cpu_percent"], 0),
            _cell(s["app_upstream_cpu_percent"], 0),
            "–",
            "–",
        ],
        [
            "others' CPU (not ours), % of one core",
            _cell(s["direct_others_cpu_percent"], 0),
            _cell(s["app_others_cpu_percent"], 0),
            "–",
            "–",
        ],
    ]
    headers = ["direct SDK", "app", "app − direct", "app / direct"]
    return markdown_table([f"{_n(n, 'run')}: median (min to max)", *headers], rows)


def runs_table(level: dict[str, Any]) -> str:
    """One line per run: load, TTFT, gaps, CPU, errors."""
    rows = []
    for i, f in enumerate(level["runs"], 1):
        rows.append(
            [
                i,
                "app" if f.get("app_first") else "direct",
                f"{f['load_start']:.2f} → {f['load_end']:.2f}",
                f"{fmt(f['app_others_cpu_percent'], 0)} %",
                f"{fmt(f['direct_ttft_p50_ms'])} / {fmt(f['direct_ttft_p99_ms'])}",
                f"{fmt(f['app_ttft_p50_ms'])} / {fmt(f['app_ttft_p99_ms'])}",
                f"{fmt(f['added_ttft_p50_ms'])} / {fmt(f['added_ttft_p99_ms'])}",
                f"{fmt(f['direct_gap_p99_ms'])} / {fmt(f['app_gap_p99_ms'])}",
                f"{fmt(f['app_max_gap_ms'], 0)}",
                f"{fmt(f['app_cpu_percent'], 0)} %",
                fmt(f["app_cpu_ms_per_1000_deltas"]),
                f"{f['direct_errors']:.0f} / {f['app_errors']:.0f}",
            ]
        )
    return markdown_table(
        [
            "run",
            "first",
            "load 1-min",
            "others' CPU",
            "direct TTFT p50 / p99",
            "app TTFT p50 / p99",
            "added p50 / p99",
            "gap p99 direct / app",
            "app longest gap",
            "app CPU",
            "app CPU ms / 1k deltas",
            "errors direct / app",
        ],
        rows,
    )


def verdicts(model: str, level: dict[str, Any], targets: Sequence[Target]) -> list[str]:
    """``target: measured …: **met**`` for each target of this model and level."""
    out = []
    for t in targets:
        if t.model != model or t.streams != level["streams"]:
            continue
        s = level["summary"][t.figure]
        value = s[t.on]
        runs = [r[t.figure] for r in level["runs"]]
        met_in = sum(1 for v in runs if v <= t.limit)
        ok = value <= t.limit
        how = "median" if t.on == "median" else "worst run"
        digits = 0 if t.figure.endswith("errors") else 1
        listed = ", ".join(fmt(v, digits) for v in runs)
        out.append(
            f"- {t.text}: {how} {fmt(value, digits)} (runs: {listed}); "
            f"met in {met_in} of {len(runs)} runs: **{'met' if ok else 'missed'}**."
        )
    return out


def _n(count: int, one: str, many: str = "") -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def report(result: dict[str, Any], targets: Sequence[Target] = TARGETS) -> str:
    """The Markdown report: per model and level, the side-by-side table with median and
    spread, the per-run figures, and the targets met or missed."""
    args, stack = result.get("uvicorn_args") or [], result.get("uvicorn", "")
    server = result.get("server") or (
        f"one uvicorn worker ({' '.join(args) or stack or 'defaults'}), {result['db']}"
    )
    parts = []
    for run_ in result["runs"]:
        model = run_["model"]
        chunks, pause = model_shape(model)
        for level in run_["levels"]:
            head = (
                f"**{level['streams']} stream{'s' if level['streams'] != 1 else ''}**, "
                f"{model}: {chunks} deltas {pause} ms apart ({reply_seconds(model):g} s a "
                f"reply), {_n(level['rounds'], 'reply', 'replies')} per stream, starts "
                f"spread over {level['ramp_s']:g} s; {_n(len(level['runs']), 'run')}; "
                f"{server}."
            )
            body = [head, level_table(level), "Per run (ms):", runs_table(level)]
            lines = verdicts(model, level, targets)
            if lines:
                body.append("\n".join(lines))
            if level.get("error_examples"):
                body.append("Errors seen: " + "; ".join(level["error_examples"]))
            parts.append("\n\n".join(body))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark 1: the app's added latency")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--levels", default="1,50", help="concurrent streams, e.g. 1,50,200")
    parser.add_argument("--rounds-scale", type=float, default=1.0)
    parser.add_argument(
        "--models", default=",".join(MODELS), help="bench-<chunks>x<ms>, from fakeserver.MODELS"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of the whole side by side")
    parser.add_argument(
        "--uvicorn-args", default="", help='more uvicorn options, e.g. "--loop asyncio"'
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    result = run(args.db, levels, args.rounds_scale, models, args.uvicorn_args.split(), args.repeat)
    write_json(args.json, result)
    print(report(result))
    if args.json:
        print(f"JSON: {Path(args.json).resolve()}")


if __name__ == "__main__":
    main()
