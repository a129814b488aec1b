"""The daily usage tables (UsageDaily, UsageDailyPerson, UsageDailyModel): written with
each record in its transaction, right when writers race, recounted by the rebuild (and
the migration), and giving the usage pages and budgets exactly the numbers the records
give."""

from __future__ import annotations

import datetime
import io
import random
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from usage import budgets, selectors, services
from usage.models import Budget, UsageDaily, UsageDailyModel, UsageDailyPerson, UsageRecord
from usage.services import usage_daily_add, usage_daily_rebuild, usage_record_write
from usage.tests.test_budgets import in_thread, shared_database  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
TODAY = datetime.date(2026, 4, 20)  # after Santiago's clocks went back (Apr 5, 00:00 -> 23:00)
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "o4-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("ollama", "llama3.2"),
    ("google", "gemini-2.5-flash"),
]
PERIODS = ["7d", "30d", "90d", "365d", "2026-04", "2026-03", "2025-10"]
TABLES = (UsageDaily, UsageDailyPerson, UsageDailyModel)


def record(
    user: User | None,
    at: datetime.datetime,
    *,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    source: str = "chat",
    input_tokens: int | None = 100,
    output_tokens: int | None = 50,
    reasoning_tokens: int | None = None,
    cost: Decimal | None = Decimal("0.01"),
    outcome: str = "complete",
    daily: bool = True,
) -> UsageRecord:
    """A record written at ``at`` and (``daily``) added to the daily tables, as
    ``usage_record_write`` does for one written now."""
    written = UsageRecord.objects.create(
        user=user,
        source=source,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning_tokens,
        cost=cost,
        outcome=outcome,
        created_at=at,
    )
    if daily:
        usage_daily_add(written)
    return written


def random_records(rng: random.Random, people: list[User | None], count: int) -> None:
    """``count`` records of ``people`` at random instants of the 400 local days up to
    TODAY, half of them within a second of a local midnight or of Santiago's clock
    change, with random models, doors, token counts (some unknown), costs (some
    unknown) and outcomes (some errors)."""
    zone = timezone.get_default_timezone()
    first = selectors.midnight(TODAY - datetime.timedelta(days=400), zone)
    last = selectors.midnight(TODAY + datetime.timedelta(days=1), zone)
    seconds = int((last - first).total_seconds())
    # Santiago: 00:00 -03 became 23:00 -04 at 03:00 UTC; Apr 5 began at 04:00 UTC.
    edges = [datetime.datetime(2026, 4, 5, hour, tzinfo=UTC) for hour in (3, 4)]
    for n in range(count):
        if n % 2:
            at = first + datetime.timedelta(seconds=rng.randrange(seconds))
        else:
            day = TODAY - datetime.timedelta(days=rng.randrange(400))
            edge = selectors.midnight(day, zone) if n % 4 else rng.choice(edges)
            at = edge + datetime.timedelta(seconds=rng.choice([-1, 0, 1]))
        provider, model = rng.choice(MODELS)
        output = None if rng.random() < 0.1 else rng.randrange(5000)
        record(
            rng.choice(people),
            at,
            provider=provider,
            model=model,
            source=rng.choice(["chat", "api"]),
            input_tokens=None if rng.random() < 0.1 else rng.randrange(20000),
            output_tokens=output,
            reasoning_tokens=None if output is None or rng.random() < 0.5 else output // 2,
            cost=None if rng.random() < 0.25 else Decimal(rng.randrange(2 * 10**10)).scaleb(-10),
            outcome="error" if rng.random() < 0.1 else "complete",
        )


def write(user_id: int | None, **values: Any) -> UsageRecord:
    """``usage_record_write`` of a chat reply of gpt-4o-mini, with ``values`` changed."""
    arguments: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1_000,
        "output_tokens": 500,
        "reasoning_tokens": None,
        "ttft_ms": None,
        "duration_ms": None,
        "outcome": "complete",
    }
    return usage_record_write(user_id=user_id, **{**arguments, **values})


def from_records(monkeypatch: pytest.MonkeyPatch, read: Any) -> Any:
    """``read()`` with the selectors summing the records themselves (as before the daily
    tables, and as in a time zone other than TIME_ZONE)."""
    with monkeypatch.context() as patched:
        patched.setattr(selectors, "daily_tables_apply", lambda: False)
        return read()


def expected_totals(
    records: list[UsageRecord], period: selectors.UsagePeriod, user: User | None = None
) -> dict[str, Any]:
    """The period's totals computed in Python from ``records`` (``user``: only theirs)."""
    zone = timezone.get_default_timezone()
    rows = [
        r
        for r in records
        if period.first_day <= timezone.localtime(r.created_at, zone).date() <= period.last_day
        and (user is None or r.user_id == user.pk)
    ]
    costs = [r.cost for r in rows if r.cost is not None]
    inputs = [r.input_tokens for r in rows if r.input_tokens is not None]
    return {
        "requests": len(rows),
        "input_tokens": sum(inputs) if inputs else None,
        "cost": sum(costs) if costs else None,
        "unpriced": len(rows) - len(costs),
        "errors": sum(r.outcome == "error" for r in rows),
    }


def totals_of(sums: selectors.UsageSums) -> dict[str, Any]:
    return {
        "requests": sums.requests,
        "input_tokens": sums.input_tokens,
        "cost": sums.cost,
        "unpriced": sums.unpriced,
        "errors": sums.errors,
    }


# --- The same numbers as the records --------------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "America/Santiago", "Asia/Kathmandu"])
def test_pages_from_the_daily_tables_equal_the_records_for_every_period(
    settings: Any, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    settings.TIME_ZONE = zone
    rng = random.Random(f"daily-{zone}")
    people: list[User | None] = [User.objects.create_user(f"p{n}") for n in range(5)]
    gone = User.objects.create_user("gone")
    random_records(rng, [*people, None, gone], 240)
    gone.delete()  # their records and rows stay, without a person
    records = list(UsageRecord.objects.all())

    assert selectors.daily_tables_apply()
    for key in PERIODS:
        period = selectors.usage_period(key, today=TODAY)
        board = selectors.usage_dashboard(period=period, top=4)
        assert board == from_records(
            monkeypatch, lambda p=period: selectors.usage_dashboard(period=p, top=4)
        ), key
        assert totals_of(board.totals) == expected_totals(records, period), key
        for person in people[:3]:
            report = selectors.usage_report_for_user(user=person, period=period)
            assert report == from_records(
                monkeypatch,
                lambda p=period, u=person: selectors.usage_report_for_user(user=u, period=p),
            ), (key, person)
            assert totals_of(report.totals) == expected_totals(records, period, person), (
                key,
                person,
            )


def test_the_pages_read_the_daily_tables_not_the_records(user: User) -> None:
    record(user, timezone.now())
    period = selectors.usage_period("365d")

    with CaptureQueriesContext(connection) as queries:
        board = selectors.usage_dashboard(period=period)
        report = selectors.usage_report_for_user(user=user, period=period)

    assert board.totals.requests == report.totals.requests == 1
    assert not [q["sql"] for q in queries if "usage_usagerecord" in q["sql"]]


def test_another_time_zone_than_the_servers_is_answered_from_the_records(
    settings: Any, user: User
) -> None:
    settings.TIME_ZONE = "UTC"
    # 23:30 UTC on Apr 19 is 08:30 on Apr 20 in Tokyo.
    record(user, datetime.datetime(2026, 4, 19, 23, 30, tzinfo=UTC))

    with timezone.override(datetime.timezone(datetime.timedelta(hours=9))):
        assert not selectors.daily_tables_apply()
        report = selectors.usage_report_for_user(
            user=user, period=selectors.usage_period("7d", today=TODAY)
        )

    assert [d.day for d in report.days if d.requests] == [TODAY]


# --- Writing ------------------------------------------------------------------------------


def rows(table: type[Any]) -> list[dict[str, Any]]:
    """Every row of ``table`` without its id, in a stable order."""
    values = [{k: v for k, v in row.items() if k != "id"} for row in table.objects.values()]
    return sorted(values, key=lambda row: sorted((k, str(v)) for k, v in row.items()))


def test_a_written_record_is_added_to_its_days_rows(settings: Any, user: User) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    write(user.pk)
    write(user.pk, source="api", outcome="error", reasoning_tokens=200)
    write(user.pk, provider="ollama", model="llama3.2", input_tokens=None, output_tokens=None)

    today = timezone.localdate(timezone.now(), timezone.get_default_timezone())
    person = UsageDailyPerson.objects.get()
    assert (person.user_id, person.day, person.requests) == (user.pk, today, 3)
    assert (person.input_tokens, person.output_tokens, person.reasoning_tokens) == (2000, 1000, 200)
    assert (person.cost, person.unpriced, person.errors) == (Decimal("0.0009"), 1, 1)
    gpt = UsageDailyModel.objects.get(model="gpt-4o-mini")
    assert (gpt.requests, gpt.cost, gpt.unpriced, gpt.errors) == (2, Decimal("0.0009"), 0, 1)
    llama = UsageDailyModel.objects.get(model="llama3.2")
    assert (llama.requests, llama.input_tokens, llama.cost, llama.unpriced) == (1, None, None, 1)
    assert sorted(UsageDaily.objects.values_list("model", "source", "requests")) == [
        ("gpt-4o-mini", "api", 1),
        ("gpt-4o-mini", "chat", 1),
        ("llama3.2", "chat", 1),
    ]


def test_a_record_and_its_daily_rows_are_written_together_or_not_at_all(
    monkeypatch: pytest.MonkeyPatch, user: User
) -> None:
    added = services._upsert

    def fails_on_the_models_table(connection: Any, table: Any, *args: Any) -> Any:
        if table is UsageDailyModel:
            raise RuntimeError("the database went away")
        return added(connection, table, *args)

    monkeypatch.setattr(services, "_upsert", fails_on_the_models_table)
    with pytest.raises(RuntimeError):
        write(user.pk)

    assert not UsageRecord.objects.exists()
    assert not UsageDaily.objects.exists() and not UsageDailyPerson.objects.exists()


def test_a_row_another_writer_inserted_meanwhile_is_added_to(
    monkeypatch: pytest.MonkeyPatch, user: User
) -> None:
    """Without ``ON CONFLICT`` (another database): this writer's UPDATE found no row,
    then another transaction inserted it; the INSERT is refused by the unique key and
    the UPDATE runs again."""
    monkeypatch.setattr(services, "_UPSERT_VENDORS", ())
    now = timezone.now()
    record(user, now)
    update = QuerySet.update
    missed: set[type[Any]] = set()

    def first_update_misses(self: QuerySet[Any], **values: Any) -> int:
        if self.model in TABLES and self.model not in missed:
            missed.add(self.model)
            return 0
        return update(self, **values)

    monkeypatch.setattr(QuerySet, "update", first_update_misses)
    record(user, now, cost=Decimal("0.02"))

    assert len(missed) == 3
    for table in TABLES:
        row = table.objects.get()
        assert (row.requests, row.cost) == (2, Decimal("0.03")), table


@pytest.mark.django_db(transaction=True)
def test_writers_at_once_on_a_new_day_count_every_record(shared_database: None) -> None:  # noqa: F811
    """Threads writing the first records of a day at once (PostgreSQL: truly at once,
    racing for the INSERT; SQLite: one after the other) lose none."""
    person = in_thread(lambda: User.objects.create_user("racer"))
    start = threading.Barrier(4)

    def writer() -> None:
        start.wait()
        for _ in range(5):
            write(person.pk, model="gpt-x", input_tokens=10, output_tokens=1)

    threads = [threading.Thread(target=in_thread, args=(writer,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    counts = in_thread(
        lambda: [list(t.objects.values_list("requests", "input_tokens")) for t in TABLES]
    )
    assert counts == [[(20, 200)]] * 3


def test_records_without_a_person_add_to_one_row_only(user: User) -> None:
    now = timezone.now()
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    record(ann, now)
    record(bob, now)
    ann.delete()
    bob.delete()  # two rows of the day without a person now
    assert UsageDailyPerson.objects.filter(user=None).count() == 2

    write(None)

    board = selectors.usage_dashboard(period=selectors.usage_period("7d"))
    assert board.totals.requests == 3
    assert [(p.user_id, p.requests) for p in board.people] == [(None, 3)]


# --- Rebuilding ---------------------------------------------------------------------------


def test_the_migration_counts_the_records_written_before_it(settings: Any, user: User) -> None:
    settings.TIME_ZONE = "America/Santiago"
    random_records(random.Random(7), [user, None], 120)
    kept = [rows(table) for table in TABLES]
    UsageDaily.objects.all().delete()
    UsageDailyPerson.objects.all().delete()
    UsageDailyModel.objects.all().delete()
    state = MigrationLoader(connection).project_state(("usage", "0003_daily_tables"))

    counted = usage_daily_rebuild(apps=state.apps, chunk_days=7)

    assert [rows(table) for table in TABLES] == kept
    assert counted == {table.__name__: len(k) for table, k in zip(TABLES, kept, strict=True)}


def test_rebuild_after_a_time_zone_change_recounts_the_days(
    settings: Any, monkeypatch: pytest.MonkeyPatch, user: User
) -> None:
    settings.TIME_ZONE = "UTC"
    random_records(random.Random(3), [user], 60)
    settings.TIME_ZONE = "Asia/Tokyo"
    period = selectors.usage_period("90d", today=TODAY)

    def report() -> Any:
        return selectors.usage_report_for_user(user=user, period=period)

    assert report() != from_records(monkeypatch, report)  # the days were counted in UTC
    out = io.StringIO()
    call_command("usage_daily_rebuild", stdout=out)

    assert report() == from_records(monkeypatch, report)
    assert out.getvalue().startswith("UsageDaily: ")


def test_rebuild_refuses_chunks_of_no_days() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        call_command("usage_daily_rebuild", "--chunk-days", "0")


# --- Budgets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [
        datetime.datetime(2026, 4, 5, 3, 30, tzinfo=UTC),  # 23:30 on Apr 4, the second time
        datetime.datetime(2026, 4, 5, 4, 0, 1, tzinfo=UTC),  # 00:00:01 on Apr 5
        datetime.datetime(2026, 4, 20, 15, tzinfo=UTC),
        datetime.datetime(2026, 5, 1, 3, 59, tzinfo=UTC),  # 23:59 on Apr 30
        datetime.datetime(2026, 5, 1, 4, 1, tzinfo=UTC),  # 00:01 on May 1
    ],
)
def test_budgets_count_earlier_days_from_the_daily_rows_exactly(
    settings: Any, now: datetime.datetime
) -> None:
    """A team's and a person's month and day, at moments around midnights and
    Santiago's clock change, equal the records' sums from the period's start to now
    (records written later the same day included in the data, and not counted)."""
    settings.TIME_ZONE = "America/Santiago"
    settings.CHAT_BUDGET_STAFF_EXEMPT = False
    for kind in ("DAILY_COST", "MONTHLY_COST", "DAILY_TOKENS", "MONTHLY_TOKENS"):
        setattr(settings, f"CHAT_BUDGET_{kind}", None)
    settings.CHAT_BUDGET_REQUESTS_PER_MINUTE = None
    team = Group.objects.create(name="Team")
    members = [User.objects.create_user(f"m{n}") for n in range(3)]
    team.user_set.add(*members)
    outsider = User.objects.create_user("outsider")
    for period in ("day", "month"):
        Budget.objects.create(group=team, period=period, max_cost=10**6, max_tokens=10**12)
        Budget.objects.create(user=members[0], period=period, max_cost=10**6, max_tokens=10**12)
    rng = random.Random(5)
    start = datetime.datetime(2026, 3, 25, tzinfo=UTC)
    for n in range(150):
        at = start + datetime.timedelta(seconds=rng.randrange(40 * 86400))
        if n % 3 == 0:  # near now and near the clock change
            at = rng.choice([now, datetime.datetime(2026, 4, 5, 3, 30, tzinfo=UTC)])
            at += datetime.timedelta(seconds=rng.randrange(-4000, 4000))
        record(
            rng.choice([*members, outsider]),
            at,
            input_tokens=rng.randrange(1000),
            output_tokens=None if n % 7 == 0 else rng.randrange(1000),
            cost=None if n % 5 == 0 else Decimal(rng.randrange(10**8)).scaleb(-8),
        )

    lines = budgets.budget_status(user=members[0], now=now)

    assert len(lines) == 8
    for line in lines:
        since = budgets.period_bounds(line.period, now)[0]
        who = members if line.scope == "group" else members[:1]
        counted = [
            r for r in UsageRecord.objects.filter(user__in=who) if since <= r.created_at <= now
        ]
        if line.kind == "cost":
            assert line.used == sum((r.cost or 0 for r in counted), Decimal(0)), line
        else:
            tokens = sum((r.input_tokens or 0) + (r.output_tokens or 0) for r in counted)
            assert line.used == tokens, line
            assert isinstance(line.used, int)
