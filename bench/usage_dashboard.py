"""Benchmark: the usage pages over a million usage records (issue 12). Fills a bench
database with a year of records for ``--users`` people, counts the daily tables from
them (``usage_daily_rebuild``, as the migration does), then times the admin dashboard
and a person's usage page for the last 30 and the last 365 days: SQL queries per request
and server time (median of ``--runs``), the selectors alone from the daily tables and
from the records (as before the daily tables, at the same moment), a team's monthly
budget, and the cost of writing a record with its daily rows, ``--repeat`` rounds::

    python -m bench.usage_dashboard [--db sqlite|postgres] [--records 1000000]
                                    [--users 1000] [--runs 7] [--repeat 3] [--json out.json]

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
import statistics
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


def _timed(func: Any, runs: int) -> list[float]:
    """``func()`` once to warm up, then ``runs`` times: milliseconds each."""
    func()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _writes(count: int, user_id: int, daily: bool) -> float:
    """Microseconds per record for ``count`` records written one transaction each, as
    ``usage_record_write`` writes them: the record alone, or (``daily``) with its
    daily rows (``usage_daily_add``)."""
    from django.db import transaction

    from usage.models import UsageRecord
    from usage.services import usage_daily_add

    started = time.perf_counter()
    for n in range(count):
        with transaction.atomic():
            record = UsageRecord.objects.create(
                user_id=user_id,
                source="api" if n % 3 == 0 else "chat",
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=500 + n,
                output_tokens=100,
                cost=Decimal("0.0001350000"),
                outcome="complete",
            )
            if daily:
                usage_daily_add(record)
    return (time.perf_counter() - started) / count * 1e6


def run(db_kind: str, records: int, users: int, runs: int, repeat: int) -> dict[str, Any]:
    """Fill a bench database of ``db_kind``, count its daily tables (as the migration
    does), then ``repeat`` rounds of: the pages, the selectors alone from the daily
    tables and from the records (the code before them), the budget checks, and the
    cost of writing a record with and without its daily rows. Drops the database."""
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
        from django.contrib.auth.models import Group
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Count, Q, Sum
        from django.db.models.functions import Coalesce
        from django.test import Client
        from django.utils import timezone

        from usage import budgets, selectors
        from usage.models import Budget, UsageRecord
        from usage.services import usage_daily_rebuild

        call_command("migrate", verbosity=0)
        ids = fill(db_kind, records, users)
        print(
            f"usage: {UsageRecord.objects.count():,} records for {users:,} people in "
            f"{fmt(ids['fill_seconds'], 0)} s",
            flush=True,
        )
        started = time.perf_counter()
        daily_rows = usage_daily_rebuild()
        rebuild_seconds = time.perf_counter() - started
        if db_kind == "postgres":
            with connection.cursor() as cursor:
                for table in (
                    "usage_usagedaily",
                    "usage_usagedailyperson",
                    "usage_usagedailymodel",
                ):
                    cursor.execute(f"VACUUM ANALYZE {table}")
        print(
            f"usage: daily tables counted in {fmt(rebuild_seconds, 1)} s: {daily_rows}", flush=True
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

        # A team budget over the 20 heaviest people and a month budget of the heaviest.
        heaviest = user_model.objects.get(pk=ids["heaviest_id"])
        members = list(
            UsageRecord.objects.values("user_id")
            .annotate(n=Count("id"))
            .order_by("-n")
            .values_list("user_id", flat=True)[:20]
        )
        team = Group.objects.create(name="bench team")
        team.user_set.add(*members)
        big = Decimal(10**6)
        Budget.objects.create(group=team, period="month", max_cost=big, max_tokens=10**12)
        Budget.objects.create(user=heaviest, period="month", max_cost=big, max_tokens=10**12)
        now = timezone.now()
        month_start = budgets.period_bounds("month", now)[0]
        team_records = UsageRecord.objects.filter(
            user_id__in=members, created_at__gte=month_start, created_at__lte=now
        )
        team_month_records = team_records.count()
        tokens = Coalesce("input_tokens", 0) + Coalesce("output_tokens", 0)

        def team_month_from_records() -> Any:  # the query budgets made before
            return team_records.order_by().aggregate(cost=Sum("cost"), tokens=Sum(tokens))

        def team_month_now() -> Any:
            starts = {"month": month_start}
            return budgets._used(Q(user_id__in=members), starts, now, False)

        assert team_month_from_records()["cost"] == team_month_now()["cost:month"] or (
            db_kind == "sqlite"  # float sums: compared to the cent below
            and abs(team_month_from_records()["cost"] - team_month_now()["cost:month"]) < 0.01
        )

        rounds: list[dict[str, Any]] = []
        for number in range(repeat):
            load = load_average()
            print(f"usage: round {number + 1} of {repeat} (load {load[0]:.2f})", flush=True)
            window = CpuWindow({})
            page_rows = []
            for label, who, url in pages:
                row = {"label": label, **measure(clients[who], url, runs)}
                row.pop("branch_navs", None)
                row.pop("sql", None)
                page_rows.append(row)
                print(
                    f"usage: {label}: HTTP {row['status']}, {row['queries']} queries, "
                    f"{fmt(row['median_ms'])} ms (worst {fmt(row['max_ms'])})",
                    flush=True,
                )
            selector_rows = []
            for period in ("30d", "365d"):
                chosen = selectors.usage_period(period)
                for label, call in (
                    (
                        f"usage_dashboard, last {period[:-1]} days",
                        lambda p=chosen: selectors.usage_dashboard(period=p),
                    ),
                    (
                        f"usage_report_for_user (heaviest), last {period[:-1]} days",
                        lambda p=chosen: selectors.usage_report_for_user(user=heaviest, period=p),
                    ),
                ):
                    daily = measure_call(call, runs)
                    original = selectors.daily_tables_apply
                    selectors.daily_tables_apply = lambda: False
                    try:
                        before = measure_call(call, min(runs, 3))
                    finally:
                        selectors.daily_tables_apply = original
                    selector_rows.append({"label": label, "daily": daily, "records": before})
                    print(
                        f"usage: {label}: {fmt(daily['median_ms'])} ms from the daily tables, "
                        f"{fmt(before['median_ms'])} ms from the records",
                        flush=True,
                    )
            budget_rows = [
                {
                    "label": "team's month (20 people), from the records (the query before)",
                    "times": _timed(team_month_from_records, runs),
                },
                {
                    "label": "team's month (20 people), daily rows + today's records",
                    "times": _timed(team_month_now, runs),
                },
                {
                    "label": "budget_status of the heaviest (own month + team month)",
                    "times": _timed(lambda: budgets.budget_status(user=heaviest, now=now), runs),
                },
            ]
            writes = {
                "record_us": _writes(200, ids["middle_id"], daily=False),
                "record_daily_us": _writes(200, ids["middle_id"], daily=True),
            }
            rounds.append(
                {
                    "load": load,
                    "pages": page_rows,
                    "selectors": selector_rows,
                    "budgets": budget_rows,
                    "writes": writes,
                    "cpu": window.close(),
                }
            )
        return {
            "db": db_kind,
            "records": records,
            "users": users,
            **ids,
            "rebuild_seconds": rebuild_seconds,
            "daily_rows": daily_rows,
            "team_month_records": team_month_records,
            "month_day": timezone.localdate(now).day,
            "rounds": rounds,
            "runs": runs,
            "repeat": repeat,
            "load_before": load_before,
            "load_after": load_average(),
            "machine": machine_info(postgres=db_kind == "postgres"),
        }
    finally:
        from django.db import connections

        connections.close_all()
        db.drop()


def _range(values: list[float]) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))} to {fmt(max(values))})"


def report(result: dict[str, Any]) -> str:
    """The Markdown tables of ``run``'s result (each time: the median of the rounds'
    medians, and their lowest to highest) and a paragraph on the data and the load."""
    rounds = result["rounds"]
    page_rows = []
    for n, first in enumerate(rounds[0]["pages"]):
        medians = [r["pages"][n]["median_ms"] for r in rounds]
        worst = max(r["pages"][n]["max_ms"] for r in rounds)
        ok = all(r["pages"][n]["status"] == 200 for r in rounds)
        target = "met" if ok and statistics.median(medians) < TARGET_MS else "**missed**"
        page_rows.append(
            [
                first["label"],
                first["queries"],
                _range(medians),
                fmt(worst),
                fmt(first["kb"], 0),
                target,
            ]
        )
    pages = markdown_table(
        [
            "request",
            "SQL queries",
            "server time, median (rounds' range) ms",
            "worst (ms)",
            "size (KB)",
            "target",
        ],
        page_rows,
    )
    selector_rows = []
    for n, first in enumerate(rounds[0]["selectors"]):
        daily = [r["selectors"][n]["daily"]["median_ms"] for r in rounds]
        before = [r["selectors"][n]["records"]["median_ms"] for r in rounds]
        selector_rows.append(
            [
                first["label"],
                first["daily"]["queries"],
                _range(daily),
                _range(before),
                f"{statistics.median(before) / statistics.median(daily):,.1f}×",
            ]
        )
    alone = markdown_table(
        ["selector alone", "SQL queries", "daily tables (ms)", "records, as before (ms)", "faster"],
        selector_rows,
    )
    budget_rows = [
        [first["label"], _range([statistics.median(r["budgets"][n]["times"]) for r in rounds])]
        for n, first in enumerate(rounds[0]["budgets"])
    ]
    team = markdown_table(["budgets", "median (rounds' range) ms"], budget_rows)
    record_us = [r["writes"]["record_us"] for r in rounds]
    daily_us = [r["writes"]["record_daily_us"] for r in rounds]
    loads = ", ".join(fmt(r["load"][0], 2) for r in rounds)
    cpu = [r["cpu"] for r in rounds]
    rows = ", ".join(f"{table} {count:,}" for table, count in result["daily_rows"].items())
    return (
        f"{pages}\n\n{alone}\n\n{team}\n\n"
        f"Data ({result['db']}): {result['records']:,} records of {result['users']:,} people "
        f"over 365 days, filled in {fmt(result['fill_seconds'], 0)} s; the daily tables "
        f"counted from them in {fmt(result['rebuild_seconds'], 1)} s ({rows} rows). The "
        f"team: the 20 heaviest people, {result['team_month_records']:,} records this month "
        f"(day {result['month_day']}). Writing a record, one transaction each: "
        f"{_range(record_us)} µs alone, {_range(daily_us)} µs with its daily rows. "
        f"{result['repeat']} rounds of {result['runs']} runs; 1-minute load at the start of "
        f"each round {loads} (before the run {fmt(result['load_before'][0], 2)}, after "
        f"{fmt(result['load_after'][0], 2)}); other processes used "
        + ", ".join(f"{fmt(c['others_cpu_s'], 1)}" for c in cpu)
        + " CPU s during the rounds ("
        + ", ".join(f"{fmt(c['wall_s'], 1)}" for c in cpu)
        + " s each)."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The usage pages over a million records")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of measurements")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = run(args.db, args.records, args.users, args.runs, args.repeat)
    write_json(args.json, result)
    print(report(result))


if __name__ == "__main__":
    main()
