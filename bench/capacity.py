"""Benchmark 2, capacity: 200 real-paced streams held at once by one worker, side by side
with the same 200 streams read straight from the fake upstream through the SDK::

    python -m bench.capacity [--db sqlite|postgres] [--streams 200] [--repeat 3]
                             [--rounds 3] [--ramp 3] [--json out.json]

Each stream is a 4-second reply at 50 tokens a second (``bench-200x20``: 200 deltas 20 ms
apart), as a real model sends. The N streams start spread over ``--ramp`` seconds (less
than one reply, so all N are in flight together even in the first round) and each sends
``--rounds`` replies one after the other, so the worker holds N streams for the whole
run: 50 new replies and 10,000 relayed deltas a second at 200 streams. It passes with no
error, no reply waiting more than 250 ms between two deltas at p99 (the gap as the
client sees it, pooled over every reply), and an added time to first token p99 of at
most 250 ms. The figures, the runs and their spread are those of ``bench.overhead``
(this is its engine at another level); RSS is the app process's peak.

Before issue 10 this benchmark held 250 to 2,000 streams of one delta a second, which no
model sends; those numbers are kept in BENCHMARKS.md as history only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import overhead
from .common import write_json
from .overhead import Target

MODEL = "bench-200x20"
STREAMS = 200
RAMP_SECONDS = 3.0
ROUNDS = 3
GAP_LIMIT_MS = 250.0
TARGETS = (
    Target(STREAMS, "app_errors", 0, f"{STREAMS} streams: 0 errors", on="max"),
    Target(
        STREAMS,
        "app_gap_p99_ms",
        GAP_LIMIT_MS,
        f"{STREAMS} streams: inter-delta gap p99 ≤ {GAP_LIMIT_MS:g} ms",
    ),
    Target(STREAMS, "added_ttft_p99_ms", 250.0, f"{STREAMS} streams: added TTFT p99 ≤ 250 ms"),
)


def run(
    db_kind: str = "sqlite",
    streams: list[int] | None = None,
    repeat: int = 3,
    rounds: int = ROUNDS,
    ramp: float = RAMP_SECONDS,
    model: str = MODEL,
) -> dict[str, Any]:
    """``bench.overhead.run`` at ``streams`` (default 200) with a ramp shorter than a
    reply, so that all of them are in flight together."""
    return overhead.run(
        db_kind,
        streams or [STREAMS],
        models=(model,),
        repeat=repeat,
        ramp=ramp,
        rounds=rounds,
        users=100,
        name="capacity",
    )


def report(result: dict[str, Any]) -> str:
    """The overhead report, judged against the capacity targets."""
    return overhead.report(result, TARGETS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark 2: real-paced streams held at once by one worker"
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--streams", default=str(STREAMS), help="e.g. 200, or 100,200")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the whole side by side")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="replies per stream")
    parser.add_argument(
        "--ramp", type=float, default=RAMP_SECONDS, help="seconds over which the streams start"
    )
    parser.add_argument("--model", default=MODEL, help="bench-<chunks>x<ms>")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    streams = [int(x) for x in args.streams.split(",")]
    result = run(args.db, streams, args.repeat, args.rounds, args.ramp, args.model)
    write_json(args.json, result)
    print(report(result))
    if args.json:
        print(f"JSON: {Path(args.json).resolve()}")


if __name__ == "__main__":
    main()
