"""Benchmark 1, overhead: time to first token (TTFT) and total time of a reply through
the app, against the same SDK (openai.AsyncOpenAI) calling the same fake upstream
directly, at 1, 50 and 200 concurrent streams on one worker::

    python -m bench.overhead [--db sqlite|postgres] [--levels 1,50,200] [--json out.json]

The upstream streams 20 deltas 20 ms apart (``bench-20x20``), so a direct call has a
TTFT of about 20 ms and a total of about 420 ms; what the app adds is the difference.
Each of the C concurrent streams runs ``rounds`` replies one after the other (the app's
in a conversation of its own), and every reply is one sample.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from .common import (
    AppServer,
    BenchUser,
    StreamResult,
    bench_stack,
    close_users,
    cpu_seconds,
    create_users,
    fmt,
    load_average,
    markdown_table,
    raise_open_files_limit,
    sign_in_users,
    summarize,
    uvicorn_stack,
    workdir_for,
    write_json,
)
from .fakeserver import model_shape

MODEL = "bench-20x20"
MODELS = ("bench-20x20", "bench-200x20")
TARGET_TTFT_P50_MS = 5.0
TARGET_TTFT_P99_MS = 25.0
TARGET_LEVEL = 50
# Replies per stream, by model and number of concurrent streams.
DEFAULT_ROUNDS = {
    "bench-20x20": {1: 60, 50: 8, 200: 4},
    "bench-200x20": {1: 8, 50: 3, 200: 2},
}


def reply_seconds(model: str) -> float:
    chunks, pause_ms = model_shape(model)
    return chunks * pause_ms / 1000


def stagger(model: str, concurrency: int) -> float:
    """Seconds between the starts of two streams: the C streams start spread over one
    reply's length, so requests arrive steadily rather than all in the same instant."""
    return reply_seconds(model) / concurrency


def openai_client(upstream_url: str) -> Any:
    """The SDK client as the app builds it: no retries, no cap on connections."""
    import httpx2
    import openai

    return openai.AsyncOpenAI(
        api_key="bench",
        base_url=f"{upstream_url}/v1",
        max_retries=0,
        timeout=60,
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100)
        ),
    )


async def direct_stream(client: Any, content: str, model: str = MODEL) -> StreamResult:
    """One streamed reply straight from the upstream through the SDK."""
    result = StreamResult()
    started = time.perf_counter()
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
                        if result.ttft is None:
                            result.ttft = time.perf_counter() - started
                        result.deltas += 1
        result.total = time.perf_counter() - started
        result.final_status = "complete"
    except Exception as e:
        result.error = f"{type(e).__name__}: {e}"
    return result


async def run_direct(
    upstream_url: str, concurrency: int, rounds: int, model: str = MODEL
) -> list[StreamResult]:
    client = openai_client(upstream_url)
    try:

        async def worker(w: int) -> list[StreamResult]:
            await asyncio.sleep(w * stagger(model, concurrency))
            return [await direct_stream(client, f"message {w}.{r}", model) for r in range(rounds)]

        batches = await asyncio.gather(*(worker(w) for w in range(concurrency)))
    finally:
        await client.close()
    return [r for batch in batches for r in batch]


async def run_app(
    users: list[BenchUser], concurrency: int, rounds: int, model: str = MODEL
) -> tuple[list[StreamResult], float]:
    """C workers, each in a new conversation of its own; returns results and wall time."""
    owners = [users[w % len(users)] for w in range(concurrency)]
    conversations = await asyncio.gather(*(owner.new_conversation(model) for owner in owners))

    async def worker(w: int) -> list[StreamResult]:
        owner, conversation = owners[w], conversations[w]
        await asyncio.sleep(w * stagger(model, concurrency))
        return [
            await owner.send(conversation, f"Benchmark message {w}.{r}", model, keep_text=False)
            for r in range(rounds)
        ]

    started = time.perf_counter()
    batches = await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return [r for batch in batches for r in batch], time.perf_counter() - started


def _ms(results: list[StreamResult], attr: str) -> dict[str, float]:
    values = [getattr(r, attr) * 1000 for r in results if r.ok and getattr(r, attr) is not None]
    return summarize(values)


async def measure(
    upstream_url: str,
    app: AppServer,
    usernames: list[str],
    levels: list[int],
    rounds: dict[int, int],
    model: str = MODEL,
) -> list[dict[str, Any]]:
    users = await sign_in_users(app.url, usernames)
    try:
        # Warm both paths up (imports, first connections, caches).
        await run_direct(upstream_url, 10, 2)
        await run_app(users, 10, 2)
        out = []
        for level in levels:
            n = rounds.get(level) or max(2, 400 // level)
            print(f"overhead {model} c={level}: {n} replies per stream", flush=True)
            direct = await run_direct(upstream_url, level, n, model)
            cpu_before = cpu_seconds(app.pid)
            through_app, wall = await run_app(users, level, n, model)
            app_cpu = cpu_seconds(app.pid) - cpu_before
            row = {
                "concurrency": level,
                "samples": len(through_app),
                "direct_errors": sum(1 for r in direct if not r.ok),
                "app_errors": sum(1 for r in through_app if not r.ok),
                "direct_ttft_ms": _ms(direct, "ttft"),
                "app_ttft_ms": _ms(through_app, "ttft"),
                "direct_total_ms": _ms(direct, "total"),
                "app_total_ms": _ms(through_app, "total"),
                "app_cpu_percent": 100 * app_cpu / wall if wall else None,
                "load_average": load_average()[0],
                "error_examples": sorted({r.error for r in through_app if r.error})[:3],
            }
            out.append(row)
            print(summary_line(row), flush=True)
        return out
    finally:
        await close_users(users)


def summary_line(row: dict[str, Any]) -> str:
    a, d = row["app_ttft_ms"], row["direct_ttft_ms"]
    return (
        f"overhead c={row['concurrency']}: TTFT app p50 {fmt(a['p50'])} / direct "
        f"{fmt(d['p50'])} ms, p99 {fmt(a['p99'])} / {fmt(d['p99'])} ms; errors "
        f"{row['app_errors']}; app CPU {fmt(row['app_cpu_percent'], 0)}%"
    )


def run(
    db_kind: str = "sqlite",
    levels: list[int] | None = None,
    rounds_scale: float = 1.0,
    models: tuple[str, ...] = MODELS,
    uvicorn_args: list[str] | None = None,
) -> dict[str, Any]:
    levels = levels or [1, 50, 200]
    raise_open_files_limit()
    workdir = workdir_for("overhead")
    runs = []
    with bench_stack(workdir, db_kind) as (upstream, _db, env):
        usernames = create_users(env, "overhead", 50)
        for model in models:
            base = DEFAULT_ROUNDS.get(model, DEFAULT_ROUNDS[MODEL])
            rounds = {k: max(2, round(v * rounds_scale)) for k, v in base.items()}
            with AppServer(env, workdir, *(uvicorn_args or [])) as app:
                app.start()
                rows = asyncio.run(measure(upstream.url, app, usernames, levels, rounds, model))
            runs.append({"model": model, "levels": rows})
    return {
        "db": db_kind,
        "uvicorn_args": uvicorn_args or [],
        "uvicorn": uvicorn_stack(),
        "runs": runs,
    }


def report(result: dict[str, Any]) -> str:
    args, stack = result.get("uvicorn_args") or [], result.get("uvicorn", "")
    return "\n\n".join(_report_one(run, args, stack) for run in result["runs"])


def _report_one(result: dict[str, Any], uvicorn_args: list[str], stack: str) -> str:
    rows = []
    for row in result["levels"]:
        for metric in ("ttft", "total"):
            a, d = row[f"app_{metric}_ms"], row[f"direct_{metric}_ms"]
            rows.append(
                [
                    row["concurrency"],
                    "TTFT" if metric == "ttft" else "total",
                    *(f"{fmt(d[p])} → {fmt(a[p])}" for p in ("p50", "p95", "p99")),
                    *(fmt(a[p] - d[p]) for p in ("p50", "p95", "p99")),
                    fmt(a["p50"] / d["p50"], 2) + "×",
                    f"{row['app_errors']} / {row['samples']}",
                    fmt(row["app_cpu_percent"], 0) + "%",
                ]
            )
    table = markdown_table(
        [
            "streams",
            "metric",
            "p50 direct → app (ms)",
            "p95 direct → app",
            "p99 direct → app",
            "added p50",
            "added p95",
            "added p99",
            "ratio p50",
            "errors",
            "app CPU",
        ],
        rows,
    )
    chunks, pause = model_shape(result["model"])
    intro = (
        f"Upstream reply: {chunks} deltas, {pause} ms apart ({result['model']}, "
        f"{reply_seconds(result['model']):g} s); the C streams start "
        f"{fmt(1000 * reply_seconds(result['model']) / 50)} ms apart at C=50; uvicorn "
        f"{' '.join(uvicorn_args) or 'defaults'} ({stack or 'asyncio + h11'})."
        "\n\n"
    )
    verdict = ""
    for row in result["levels"]:
        if row["concurrency"] == TARGET_LEVEL:
            a, d = row["app_ttft_ms"], row["direct_ttft_ms"]
            p50, p99 = a["p50"] - d["p50"], a["p99"] - d["p99"]
            ok = p50 <= TARGET_TTFT_P50_MS and p99 <= TARGET_TTFT_P99_MS
            verdict = (
                f"\nTarget at {TARGET_LEVEL} streams: added TTFT p50 ≤ {TARGET_TTFT_P50_MS:g} ms "
                f"and p99 ≤ {TARGET_TTFT_P99_MS:g} ms: measured p50 {fmt(p50)} ms, p99 "
                f"{fmt(p99)} ms: **{'met' if ok else 'missed'}**."
            )
    return intro + table + verdict


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark 1: the app's added latency")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--levels", default="1,50,200")
    parser.add_argument("--rounds-scale", type=float, default=1.0)
    parser.add_argument(
        "--models", default=",".join(MODELS), help="bench-<chunks>x<ms>, from fakeserver.MODELS"
    )
    parser.add_argument(
        "--uvicorn-args", default="", help='more uvicorn options, e.g. "--loop uvloop"'
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    result = run(args.db, levels, args.rounds_scale, models, args.uvicorn_args.split())
    write_json(args.json, result)
    print(report(result))


if __name__ == "__main__":
    main()
