"""Benchmark: the usage pages over a million usage records (issue 12). Fills a bench
database with a year of records for ``--users`` people, then times the admin dashboard
and a person's usage page for the last 30 and the last 365 days: SQL queries per request
and server time (median of ``--runs``), and the selectors alone::

    python -m bench.usage_dashboard [--db sqlite|postgres] [--records 1000000]
                                    [--users 1000] [--runs 7] [--json out.json]

Like bench/history.py it runs Django in this process against a database of its own (a
SQLite file in a temporary folder, or a PostgreSQL database created and dropped for the
run) and requests pages with django.test.Client ("server time" = the time Django takes
to answer, without HTTP). Records are written with executemany (SQLite) or COPY
(PostgreSQL), in id order with time, as the app writes them. People's activity is
skewed as in a real team (a few heavy users): the person measured is the heaviest, the
worst case for their page, and one in the middle.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import time
from decimal import Decimal
from typing import Any

from .common import (
    BenchDatabase,
    CpuWindow,
    app_env,
    fmt,
    load_average,
    machine_info,
    markdown_table,
    workdir_for,
    write_json,
)
from .history import measure, measure_call

TARGET_MS = 500.0
# (provider, model, input and output price in USD per million tokens; None: no price).
MODELS: list[tuple[str, str, Decimal | None, Decimal | None]] = [
    ("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.6")),
    ("openai", "gpt-4o", Decimal("2.5"), Decimal("10")),
    ("openai", "gpt-4.1-mini", Decimal("0.4"), Decimal("1.6")),
    ("openai", "o4-mini", Decimal("1.1"), Decimal("4.4")),
    ("anthropic", "claude-haiku-4-5", Decimal("1"), Decimal("5")),
    ("anthropic", "claude-sonnet-4-5", Decimal("3"), Decimal("15")),
    ("anthropic", "claude-opus-4-1", Decimal("15"), Decimal("75")),
    ("google", "gemini-2.5-flash", Decimal("0.3"), Decimal("2.5")),
    ("google", "gemini-2.5-pro", Decimal("1.25"), Decimal("10")),
    ("mistral", "mistral-small-latest", Decimal("0.1"), Decimal("0.3")),
    ("mistral", "mistral-large-latest", Decimal("2"), Decimal("6")),
    ("local", "smollm2-135m-instruct", Decimal(0), Decimal(0)),
    ("ollama", "llama3.2", None, None),
    ("ollama", "qwen3:8b", None, None),
]
REASONING_MODELS = {"o4-mini", "gemini-2.5-pro", "qwen3:8b"}
MODEL_WEIGHTS = [20, 8, 6, 4, 10, 8, 1, 12, 4, 3, 2, 5, 4, 3]
COLUMNS = (
    "user_id",
    "api_key_id",
    "source",
    "provider",
    "model",
    "reply_id",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost",
    "input_per_mtok",
    "output_per_mtok",
    "time_to_first_token_ms",
    "duration_ms",
    "outcome",
    "created_at",
)
CHUNK = 50_000
MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("1e-10")


def _rows(
    count: int, user_ids: list[int], weights: list[float], now: datetime.datetime, seed: int
) -> Any:
    """``count`` records' column values (COLUMNS), oldest first, spread over the 365 days
    before ``now`` (naive UTC), in chunks of CHUNK rows."""
    rng = random.Random(seed)
    step = datetime.timedelta(days=365) / count
    start = now - datetime.timedelta(days=365)
    outcomes = ["complete"] * 95 + ["error"] * 3 + ["stopped", "incomplete"]
    chunk: list[tuple[Any, ...]] = []
    users = rng.choices(user_ids, weights=weights, k=count)
    models = rng.choices(MODELS, weights=MODEL_WEIGHTS, k=count)
    for n in range(count):
        provider, model, input_price, output_price = models[n]
        outcome = rng.choice(outcomes)
        input_tokens = rng.randint(50, 8000)
        output_tokens = 0 if outcome == "error" else rng.randint(20, 2000)
        reasoning = output_tokens // 2 if model in REASONING_MODELS and output_tokens else None
        cost = None
        if input_price is not None and output_price is not None:
            cost = ((input_tokens * input_price + output_tokens * output_price) / MILLION).quantize(
                COST_QUANTUM
            )
        api = n % 3 == 0
        chunk.append(
            (
                users[n],
                None,
                "api" if api else "chat",
                provider,
                model,
                None,
                input_tokens,
                output_tokens,
                reasoning,
                cost,
                input_price,
                output_price,
                rng.randint(150, 2500),
                rng.randint(500, 60_000),
                outcome,
                start + step * n,
            )
        )
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fill(db_kind: str, records: int, users: int, seed: int = 12) -> dict[str, Any]:
    """``users`` people (activity skewed: the i-th's weight 1 / i^0.8) and ``records``
    usage records over the last 365 days, written straight with SQL. Returns the ids of
    the heaviest person and of one in the middle, their record counts, and
    ``fill_seconds``."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    user_model = get_user_model()
    started = time.perf_counter()
    user_model.objects.bulk_create(
        [user_model(username=f"person{n:04d}", password="!") for n in range(users)],
        batch_size=2000,
    )
    user_ids = list(
        user_model.objects.filter(username__startswith="person")
        .order_by("id")
        .values_list("id", flat=True)
    )
    weights = [1 / (n + 1) ** 0.8 for n in range(len(user_ids))]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    table = "usage_usagerecord"
    with transaction.atomic():
        if db_kind == "sqlite":
            sql = (
                f"INSERT INTO {table} ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join(['?'] * len(COLUMNS))})"
            )
            raw = connection.connection  # sqlite3: executemany without Django's wrapper
            for chunk in _rows(records, user_ids, weights, now, seed):
                raw.executemany(
                    sql,
                    [
                        (
                            *row[:9],
                            None if row[9] is None else str(row[9]),
                            None if row[10] is None else str(row[10]),
                            None if row[11] is None else str(row[11]),
                            *row[12:15],
                            row[15].isoformat(sep=" "),
                        )
                        for row in chunk
                    ],
                )
        else:
            connection.ensure_connection()
            with (
                connection.connection.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy,
            ):
                for chunk in _rows(records, user_ids, weights, now, seed):
                    for row in chunk:
                        copy.write_row((*row[:15], row[15].replace(tzinfo=datetime.UTC)))
    fill_seconds = time.perf_counter() - started
    if db_kind == "postgres":
        # A database in use is vacuumed and analysed by autovacuum; a fresh load is not.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")
    heaviest, middle = user_ids[0], user_ids[len(user_ids) // 2]
    from usage.models import UsageRecord

    return {
        "heaviest_id": heaviest,
        "middle_id": middle,
        "heaviest_records": UsageRecord.objects.filter(user_id=heaviest).count(),
        "middle_records": UsageRecord.objects.filter(user_id=middle).count(),
        "fill_seconds": fill_seconds,
    }


def run(db_kind: str, records: int, users: int, runs: int) -> dict[str, Any]:
    """Fill a bench database of ``db_kind``, time the pages and selectors, drop it."""
    load_before = load_average()
    workdir = workdir_for("usage")
    db = BenchDatabase(db_kind, workdir)
    db.create()
    try:
        env = app_env(db, "http://127.0.0.1:9", ALLOWED_HOSTS="testserver,127.0.0.1")
        os.environ.update(env)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client

        from usage import selectors
        from usage.models import UsageRecord

        call_command("migrate", verbosity=0)
        ids = fill(db_kind, records, users)
        print(
            f"usage: {UsageRecord.objects.count():,} records for {users:,} people in "
            f"{fmt(ids['fill_seconds'], 0)} s",
            flush=True,
        )
        user_model = get_user_model()
        staff = user_model.objects.create_superuser(
            "usage-admin", "admin@example.com", "usage-admin-pass-4821"
        )
        clients = {"admin": Client(), "heaviest": Client(), "middle": Client()}
        clients["admin"].force_login(staff)
        clients["heaviest"].force_login(user_model.objects.get(pk=ids["heaviest_id"]))
        clients["middle"].force_login(user_model.objects.get(pk=ids["middle_id"]))
        heavy_n, middle_n = ids["heaviest_records"], ids["middle_records"]
        pages = []
        for period in ("30d", "365d"):
            days = period[:-1]
            pages += [
                (
                    f"admin dashboard, last {days} days",
                    "admin",
                    f"/admin/usage/dashboard/?period={period}",
                ),
                (
                    f"person's page, heaviest ({heavy_n:,} records a year), last {days} days",
                    "heaviest",
                    f"/usage/?period={period}",
                ),
                (
                    f"person's page, middle ({middle_n:,} records a year), last {days} days",
                    "middle",
                    f"/usage/?period={period}",
                ),
            ]
        rows = []
        window = CpuWindow({})
        for label, who, url in pages:
            row = {"label": label, **measure(clients[who], url, runs)}
            row.pop("branch_navs", None)
            rows.append(row)
            print(
                f"usage: {label}: HTTP {row['status']}, {row['queries']} queries, "
                f"{fmt(row['median_ms'])} ms (worst {fmt(row['max_ms'])}), "
                f"{fmt(row['kb'], 0)} KB",
                flush=True,
            )
        cpu = window.close()
        heaviest = user_model.objects.get(pk=ids["heaviest_id"])
        selector_rows = []
        for period in ("30d", "365d"):
            chosen = selectors.usage_period(period)
            selector_rows.append(
                {
                    "label": f"usage_dashboard, last {period[:-1]} days",
                    **measure_call(lambda p=chosen: selectors.usage_dashboard(period=p), runs),
                }
            )
            selector_rows.append(
                {
                    "label": f"usage_report_for_user (heaviest), last {period[:-1]} days",
                    **measure_call(
                        lambda p=chosen: selectors.usage_report_for_user(user=heaviest, period=p),
                        runs,
                    ),
                }
            )
        return {
            "db": db_kind,
            "records": UsageRecord.objects.count(),
            "users": users,
            **ids,
            "pages": rows,
            "selectors": selector_rows,
            "runs": runs,
            "cpu": cpu,
            "load_before": load_before,
            "load_after": load_average(),
            "machine": machine_info(postgres=db_kind == "postgres"),
        }
    finally:
        from django.db import connections

        connections.close_all()
        db.drop()


def _verdict(row: dict[str, Any]) -> str:
    ok = row["status"] == 200 and row["median_ms"] < TARGET_MS
    return "met" if ok else "**missed**"


def report(result: dict[str, Any]) -> str:
    """The Markdown tables of ``run``'s result and a paragraph on the data and the load."""
    pages = markdown_table(
        ["request", "SQL queries", "server time median (ms)", "worst (ms)", "size (KB)", "target"],
        [
            [
                r["label"] + ("" if r["status"] == 200 else f" (HTTP {r['status']})"),
                r["queries"],
                fmt(r["median_ms"]),
                fmt(r["max_ms"]),
                fmt(r["kb"], 0),
                _verdict(r),
            ]
            for r in result["pages"]
        ],
    )
    alone = markdown_table(
        ["selector alone", "SQL queries", "median (ms)", "worst (ms)"],
        [
            [r["label"], r["queries"], fmt(r["median_ms"]), fmt(r["max_ms"])]
            for r in result["selectors"]
        ],
    )
    cpu = result["cpu"]
    load = " / ".join(fmt(v, 2) for v in result["load_before"])
    load_after = " / ".join(fmt(v, 2) for v in result["load_after"])
    return (
        f"{pages}\n\n{alone}\n\nData ({result['db']}): {result['records']:,} records of "
        f"{result['users']:,} people over 365 days, filled in "
        f"{fmt(result['fill_seconds'], 0)} s. Load average (1, 5, 15 min) before "
        f"{load}, after {load_after}; while measuring, this process used "
        f"{fmt(cpu['client_cpu_s'], 1)} CPU s and other processes "
        f"{fmt(cpu['others_cpu_s'], 1)} CPU s in {fmt(cpu['wall_s'], 1)} s"
        + (
            " (the PostgreSQL server's work for these pages among them)."
            if result["db"] == "postgres"
            else "."
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The usage pages over a million records")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = run(args.db, args.records, args.users, args.runs)
    write_json(args.json, result)
    print(report(result))


if __name__ == "__main__":
    main()
