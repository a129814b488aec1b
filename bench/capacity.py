"""Benchmark 2, capacity: the most concurrent open streams one worker holds with no
errors and no stalled stream, and its memory (RSS) at that point::

    python -m bench.capacity [--db sqlite|postgres] [--levels 250,500,1000,1500,2000]

For each level N (a fresh app process each time) N replies are opened, at most
``--opening`` at a time, and held open together: the upstream sends one delta a second
for long enough that the first reply is still streaming when the last one starts. A
level passes when all N were open at once, every reply arrived complete, and no stream
waited more than STALL_SECONDS between two reads. The run stops at the first level that
fails. RSS is the app process's VmRSS while all N streams are open.
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
    rss_mb,
    sign_in_users,
    workdir_for,
    write_json,
)
from .fakeserver import expected_reply

STALL_SECONDS = 5.0  # the upstream sends a delta every second
TARGET_STREAMS = 1000
TARGET_RSS_MB = 400.0
USERS = 100


def model_for(level: int) -> str:
    """Replies that outlast the ramp-up: at least 20 s plus a second per 25 streams."""
    wanted = 20 + level // 25
    for seconds in (40, 60, 90, 120):
        if seconds >= wanted:
            return f"bench-{seconds}x1000"
    return "bench-120x1000"


async def hold(app: AppServer, users: list[BenchUser], level: int, opening: int) -> dict[str, Any]:
    model = model_for(level)
    owners = [users[i % len(users)] for i in range(level)]
    gate = asyncio.Semaphore(20)

    async def new_conversation(owner: BenchUser) -> int:
        async with gate:
            return await owner.new_conversation(model)

    conversations = await asyncio.gather(*(new_conversation(o) for o in owners))
    opening_gate = asyncio.Semaphore(opening)
    state = {"open": 0, "peak": 0, "all_open_at": None}
    samples: list[tuple[float, float, int]] = []  # (time, rss, open)
    started = time.perf_counter()

    async def stream(i: int) -> StreamResult:
        await opening_gate.acquire()
        released = False

        def on_start() -> None:
            nonlocal released
            state["open"] += 1
            state["peak"] = max(state["peak"], state["open"])
            if state["open"] == level and state["all_open_at"] is None:
                state["all_open_at"] = time.perf_counter() - started
            opening_gate.release()
            released = True

        try:
            return await owners[i].send(
                conversations[i], f"Capacity message {i}", model, on_start=on_start
            )
        finally:
            if released:
                state["open"] -= 1
            else:
                opening_gate.release()

    async def watch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            samples.append((time.perf_counter() - started, rss_mb(app.pid), state["open"]))
            await asyncio.sleep(0.5)

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(stop))
    cpu_before = cpu_seconds(app.pid)
    results = await asyncio.gather(*(stream(i) for i in range(level)))
    wall = time.perf_counter() - started
    stop.set()
    await watcher
    expected = expected_reply(model)
    errors = [r for r in results if not r.ok]
    incomplete = [r for r in results if r.ok and r.text != expected]
    stalled = [r for r in results if r.max_gap > STALL_SECONDS]
    plateau = [rss for _t, rss, open_ in samples if open_ == level]
    ttfts = sorted(r.ttft for r in results if r.ttft is not None)
    row = {
        "streams": level,
        "model": model,
        "peak_open": state["peak"],
        "all_open_after_s": state["all_open_at"],
        "errors": len(errors),
        "incomplete": len(incomplete),
        "stalled": len(stalled),
        "max_gap_s": max((r.max_gap for r in results), default=0.0),
        "rss_mb_all_open": max(plateau) if plateau else None,
        "rss_mb_peak": max((rss for _t, rss, _o in samples), default=None),
        "app_cpu_percent": 100 * (cpu_seconds(app.pid) - cpu_before) / wall,
        "ttft_p50_ms": ttfts[len(ttfts) // 2] * 1000 if ttfts else None,
        "ttft_max_ms": ttfts[-1] * 1000 if ttfts else None,
        "wall_s": wall,
        "load_average": load_average()[0],
        "error_examples": sorted({r.error for r in errors})[:3],
    }
    row["passed"] = row["peak_open"] == level and not errors and not incomplete and not stalled
    return row


async def run_level(
    env: dict[str, str], workdir: Any, usernames: list[str], level: int, opening: int
) -> dict[str, Any]:
    with AppServer(env, workdir) as app:
        app.start()
        users = await sign_in_users(app.url, usernames, request_timeout=300)
        try:
            warm = await users[0].new_conversation("bench-2x0")
            await users[0].send(warm, "warm up", "bench-2x0")
            return await hold(app, users, level, opening)
        finally:
            await close_users(users)


def summary_line(row: dict[str, Any]) -> str:
    return (
        f"capacity {row['streams']}: {'PASS' if row['passed'] else 'FAIL'} peak open "
        f"{row['peak_open']}, errors {row['errors']}, stalled {row['stalled']}, incomplete "
        f"{row['incomplete']}, RSS {fmt(row['rss_mb_all_open'], 0)} MB, CPU "
        f"{fmt(row['app_cpu_percent'], 0)}%, max gap {fmt(row['max_gap_s'], 2)} s"
    )


def run(db_kind: str = "sqlite", levels: list[int] | None = None, opening: int = 50):
    levels = levels or [250, 500, 1000, 1500, 2000]
    raise_open_files_limit()
    workdir = workdir_for("capacity")
    rows = []
    with bench_stack(workdir, db_kind) as (_upstream, _db, env):
        usernames = create_users(env, "capacity", USERS)
        for level in levels:
            row = asyncio.run(run_level(env, workdir, usernames, level, opening))
            rows.append(row)
            print(summary_line(row), flush=True)
            if not row["passed"]:
                break
    passed = [r for r in rows if r["passed"]]
    best = passed[-1] if passed else None
    return {"db": db_kind, "levels": rows, "max_streams": best["streams"] if best else 0}


def report(result: dict[str, Any]) -> str:
    table = markdown_table(
        [
            "streams",
            "all open",
            "errors",
            "stalled",
            "incomplete",
            "longest gap (s)",
            "RSS all open (MB)",
            "app CPU",
            "TTFT p50 / max (ms)",
            "result",
        ],
        [
            [
                r["streams"],
                f"{r['peak_open']} after {fmt(r['all_open_after_s'])} s",
                r["errors"],
                r["stalled"],
                r["incomplete"],
                fmt(r["max_gap_s"], 2),
                fmt(r["rss_mb_all_open"], 0),
                fmt(r["app_cpu_percent"], 0) + "%",
                f"{fmt(r['ttft_p50_ms'], 0)} / {fmt(r['ttft_max_ms'], 0)}",
                "pass" if r["passed"] else "FAIL",
            ]
            for r in result["levels"]
        ],
    )
    at_target = next((r for r in result["levels"] if r["streams"] == TARGET_STREAMS), None)
    if at_target is None:
        return table
    ok = at_target["passed"] and (at_target["rss_mb_all_open"] or 1e9) < TARGET_RSS_MB
    return (
        f"{table}\n\nTarget: {TARGET_STREAMS} streams, zero errors, under "
        f"{TARGET_RSS_MB:g} MB RSS: measured {at_target['errors']} errors, "
        f"{at_target['stalled']} stalled, {fmt(at_target['rss_mb_all_open'], 0)} MB: "
        f"**{'met' if ok else 'missed'}**. Most streams held: {result['max_streams']}."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark 2: concurrent streams on one worker")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--levels", default="250,500,1000,1500,2000")
    parser.add_argument("--opening", type=int, default=50, help="replies being opened at once")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = run(args.db, [int(x) for x in args.levels.split(",")], args.opening)
    write_json(args.json, result)
    print(report(result))


if __name__ == "__main__":
    main()
