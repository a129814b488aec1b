"""Benchmark 4, relay: how many chunks a second one stream relays, and the CPU the app
process spends per 1,000 chunks::

    python -m bench.relay [--db sqlite|postgres] [--runs 3]

The upstream sends 20,000 tiny deltas with no pause (``bench-20000x0``). Chunks per
second are counted at the client between the first and the last delta; CPU is the app
process's user + system time (/proc/<pid>/stat) over the whole reply. The same stream
read straight from the upstream with the SDK, in this process, is the reference: most
of the cost per chunk is the SDK's parsing, which the app cannot avoid.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from .common import (
    AppServer,
    bench_stack,
    close_users,
    cpu_seconds,
    create_users,
    fmt,
    load_average,
    markdown_table,
    raise_open_files_limit,
    sign_in_users,
    workdir_for,
    write_json,
)
from .fakeserver import expected_reply, model_shape
from .overhead import openai_client

MODEL = "bench-20000x0"
CHUNKS = model_shape(MODEL)[0]


async def direct_run(upstream_url: str) -> dict[str, float]:
    client = openai_client(upstream_url)
    try:
        cpu, started = time.process_time(), time.perf_counter()
        first = last = None
        count = 0
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "relay"}], stream=True
        )
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    last = time.perf_counter()
                    first = first or last
                    count += 1
        return {
            "chunks": count,
            "chunks_per_s": (count - 1) / (last - first),
            "cpu_ms_per_1000": (time.process_time() - cpu) / count * 1e6,
            "wall_s": time.perf_counter() - started,
        }
    finally:
        await client.close()


async def app_runs(app: AppServer, username: str, runs: int) -> list[dict[str, Any]]:
    (user,) = await sign_in_users(app.url, [username])
    out = []
    try:
        warm = await user.new_conversation("bench-2x0")
        await user.send(warm, "warm up", "bench-2x0")
        for i in range(runs):
            conversation = await user.new_conversation(MODEL)
            cpu = cpu_seconds(app.pid)
            result = await user.send(conversation, f"relay {i}", MODEL)
            used = cpu_seconds(app.pid) - cpu
            streaming_s = (result.total or 0) - (result.ttft or 0)
            out.append(
                {
                    "ok": result.ok and result.text == expected_reply(MODEL),
                    "events": result.deltas,
                    "chunks_per_s": CHUNKS / streaming_s if streaming_s else None,
                    "cpu_ms_per_1000": used / CHUNKS * 1e6,
                    "wall_s": result.total,
                    "error": result.error,
                }
            )
    finally:
        await close_users([user])
    return out


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def run(db_kind: str = "sqlite", runs: int = 3) -> dict[str, Any]:
    raise_open_files_limit()
    workdir = workdir_for("relay")
    with bench_stack(workdir, db_kind) as (upstream, _db, env):
        (username,) = create_users(env, "relay", 1)
        direct = [asyncio.run(direct_run(upstream.url)) for _ in range(runs)]
        with AppServer(env, workdir) as app:
            app.start()
            through_app = asyncio.run(app_runs(app, username, runs))
    result = {
        "db": db_kind,
        "chunks": CHUNKS,
        "app": through_app,
        "direct": direct,
        "app_chunks_per_s": _median(through_app, "chunks_per_s"),
        "app_cpu_ms_per_1000": _median(through_app, "cpu_ms_per_1000"),
        "direct_chunks_per_s": _median(direct, "chunks_per_s"),
        "direct_cpu_ms_per_1000": _median(direct, "cpu_ms_per_1000"),
        "all_complete": all(r["ok"] for r in through_app),
        "load_average": load_average()[0],
    }
    return result


def report(result: dict[str, Any]) -> str:
    return markdown_table(
        ["path", "chunks / s (median)", "CPU ms per 1,000 chunks", "reply complete"],
        [
            [
                "SDK straight to the upstream (reference)",
                fmt(result["direct_chunks_per_s"], 0),
                fmt(result["direct_cpu_ms_per_1000"]),
                "–",
            ],
            [
                "through the app (uvicorn + Django + SDK), app process",
                fmt(result["app_chunks_per_s"], 0),
                fmt(result["app_cpu_ms_per_1000"]),
                "yes" if result["all_complete"] else "NO",
            ],
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark 4: relay speed of one stream")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = run(args.db, args.runs)
    write_json(args.json, result)
    print(report(result))


if __name__ == "__main__":
    main()
