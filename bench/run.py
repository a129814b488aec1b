"""All four benchmarks with one command (``make bench``)::

    python -m bench.run [--only overhead,capacity,history,relay] [--db sqlite|postgres]
                        [--quick] [--out DIR]

Each benchmark runs in a process of its own (``python -m bench.<name>``) and writes
JSON; this script prints the machine, the load average and a Markdown report of the
results, and saves both in ``--out`` (a new temporary folder by default). History also
runs on PostgreSQL when a server is reachable (postgres@127.0.0.1:5432, or the server
of BENCH_POSTGRES_URL / DATABASE_URL). See BENCHMARKS.md for what each one measures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import capacity, history, overhead, relay
from .common import PYTHON, ROOT, load_average, machine_info, markdown_table

BENCHMARKS = {
    "overhead": overhead,
    "capacity": capacity,
    "history": history,
    "relay": relay,
}
QUICK_ARGS = {
    "overhead": ["--rounds-scale", "0.3", "--repeat", "1"],
    "capacity": ["--repeat", "1", "--rounds", "1"],
    "history": ["--conversations", "2000", "--messages", "40000", "--runs", "5"],
    "relay": ["--runs", "1"],
}


def postgres_reachable() -> bool:
    try:
        import psycopg

        from .common import postgres_server_url

        psycopg.connect(postgres_server_url(), connect_timeout=3).close()
        return True
    except Exception:
        return False


def run_one(name: str, db: str, out: Path, quick: bool) -> dict[str, Any] | None:
    path = out / f"{name}-{db}.json"
    args = [PYTHON, "-m", f"bench.{name}", "--db", db, "--json", str(path)]
    if quick:
        args += QUICK_ARGS[name]
    print(f"\n== {name} on {db}: {' '.join(args[1:])}", flush=True)
    started = time.monotonic()
    # Bounded: the longest (overhead, three runs of each level) takes about ten minutes.
    completed = subprocess.run(args, cwd=ROOT, timeout=3600, check=False)
    print(f"== {name} on {db}: {time.monotonic() - started:.0f} s", flush=True)
    if completed.returncode != 0 or not path.exists():
        print(f"== {name} on {db} FAILED (exit {completed.returncode})", flush=True)
        return None
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the benchmark suite")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", help="folder for the JSON results and report.md")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    out = Path(args.out or tempfile.mkdtemp(prefix="chat_ai_bench-"))
    out.mkdir(parents=True, exist_ok=True)

    info = machine_info()
    load_before = load_average()
    started = datetime.datetime.now(datetime.UTC)
    sections: list[str] = []
    results: dict[str, Any] = {}
    for name in names:
        dbs = [args.db]
        if name == "history" and args.db == "sqlite" and postgres_reachable():
            dbs.append("postgres")
        for db in dbs:
            result = run_one(name, db, out, args.quick)
            results[f"{name}-{db}"] = result
            body = BENCHMARKS[name].report(result) if result else "(failed: see the output)"
            sections.append(f"### {name} ({db})\n\n{body}")

    machine = markdown_table(
        ["", ""],
        [
            ["CPU", f"{info.get('cpu', '?')}, {info.get('cores')} cores"],
            ["memory", f"{info.get('memory_gb', '?')} GB"],
            ["Python", info["python"]],
            ["SQLite", info["sqlite"]],
            ["uvicorn loop + HTTP parser", info["uvicorn"]],
            ["PostgreSQL", info.get("postgresql", "not reachable")],
            ["load average before / after", f"{load_before[0]:.2f} / {load_average()[0]:.2f}"],
            ["started", started.strftime("%Y-%m-%d %H:%M UTC")],
            ["command", "python -m bench.run " + " ".join(argv or sys.argv[1:])],
        ],
    )
    report = "## Machine\n\n" + machine + "\n\n" + "\n\n".join(sections) + "\n"
    (out / "report.md").write_text(report)
    (out / "results.json").write_text(json.dumps({"machine": info, **results}, indent=2))
    print("\n" + report)
    print(f"Results: {out}/report.md and {out}/results.json")
    if any(r is None for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
