"""Usage over a period: the periods a page offers, one person's sums (only theirs), the
admin dashboard's totals and top lists, days in the local time zone, and a constant
number of aggregate queries."""

from __future__ import annotations

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from usage.models import UsageRecord
from usage.selectors import (
    DEFAULT_PERIOD,
    usage_dashboard,
    usage_period,
    usage_report_for_user,
)
from usage.services import usage_daily_add

TODAY = datetime.date(2026, 5, 14)


def make(
    user: User | None,
    at: datetime.datetime,
    *,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    input_tokens: int | None = 100,
    output_tokens: int | None = 50,
    reasoning_tokens: int | None = None,
    cost: str | None = "0.01",
    outcome: str = UsageRecord.Outcome.COMPLETE,
) -> UsageRecord:
    record = UsageRecord.objects.create(
        user=user,
        source=UsageRecord.Source.CHAT,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning_tokens,
        cost=None if cost is None else Decimal(cost),
        outcome=outcome,
        created_at=at,
    )
    usage_daily_add(record)  # as usage_record_write does
    return record


def local(day: datetime.date, hour: int = 12, minute: int = 0) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour, minute)))


# --- Periods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "first", "last"),
    [
        ("7d", datetime.date(2026, 5, 8), TODAY),
        ("30d", datetime.date(2026, 4, 15), TODAY),
        ("90d", datetime.date(2026, 2, 14), TODAY),
        ("365d", datetime.date(2025, 5, 15), TODAY),
        ("2026-02", datetime.date(2026, 2, 1), datetime.date(2026, 2, 28)),
        ("2026-05", datetime.date(2026, 5, 1), datetime.date(2026, 5, 31)),
    ],
)
def test_period_covers_whole_local_days(
    key: str, first: datetime.date, last: datetime.date
) -> None:
    period = usage_period(key, today=TODAY)

    assert (period.key, period.first_day, period.last_day) == (key, first, last)
    assert len(period.days) == (last - first).days + 1
    assert timezone.localtime(period.start).date() == first
    assert timezone.localtime(period.end).date() == last + datetime.timedelta(days=1)
    assert timezone.localtime(period.start).time() == datetime.time(0, 0)


@pytest.mark.parametrize("key", [None, "", "8d", "30", "2026-13", "2026-06", "1999-12", "x" * 7])
def test_unknown_or_future_period_falls_back_to_the_default(key: str | None) -> None:
    assert usage_period(key, today=TODAY).key == DEFAULT_PERIOD


# --- One person's usage -------------------------------------------------------------------


@pytest.mark.django_db
def test_report_sums_only_the_persons_own_records() -> None:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    today = timezone.localdate()
    make(alice, local(today, 9), input_tokens=1000, output_tokens=200, cost="0.5")
    make(
        alice,
        local(today - datetime.timedelta(days=2)),
        provider="anthropic",
        model="claude-haiku",
        input_tokens=300,
        output_tokens=700,
        reasoning_tokens=100,
        cost="1.25",
        outcome=UsageRecord.Outcome.ERROR,
    )
    make(
        alice,
        local(today - datetime.timedelta(days=2), 15),
        provider="ollama",
        model="llama3.2",
        input_tokens=10,
        output_tokens=20,
        cost=None,
    )
    make(alice, local(today - datetime.timedelta(days=40)), cost="100")  # outside 30 days
    make(bob, local(today, 10), input_tokens=5, output_tokens=5, cost="7")

    report = usage_report_for_user(user=alice, period=usage_period("30d"))

    totals = report.totals
    assert (totals.requests, totals.input_tokens, totals.output_tokens) == (3, 1310, 920)
    assert totals.reasoning_tokens == 100
    assert totals.tokens == 2230
    assert totals.cost == Decimal("1.75")
    assert (totals.unpriced, totals.errors) == (1, 1)
    assert len(report.days) == 30
    by_day = {d.day: d for d in report.days}
    assert by_day[today].cost == Decimal("0.5")
    two_days_ago = by_day[today - datetime.timedelta(days=2)]
    assert (two_days_ago.requests, two_days_ago.tokens) == (2, 1030)
    assert two_days_ago.cost == Decimal("1.25")
    assert by_day[today - datetime.timedelta(days=1)].requests == 0
    assert by_day[today - datetime.timedelta(days=1)].cost is None


@pytest.mark.django_db
def test_report_by_model_and_provider_biggest_cost_first_unknown_cost_last() -> None:
    alice = User.objects.create_user("alice")
    now = timezone.now()
    make(alice, now, model="gpt-4o-mini", cost="0.2")
    make(alice, now, model="gpt-4o-mini", cost="0.3")
    make(alice, now, model="gpt-4o", cost="2")
    make(alice, now, provider="anthropic", model="claude-haiku", cost="1")
    make(alice, now, provider="ollama", model="llama3.2", cost=None, output_tokens=99_999)

    report = usage_report_for_user(user=alice, period=usage_period("7d"))

    assert [(m.provider, m.model, m.requests, m.cost) for m in report.models] == [
        ("openai", "gpt-4o", 1, Decimal("2")),
        ("anthropic", "claude-haiku", 1, Decimal("1")),
        ("openai", "gpt-4o-mini", 2, Decimal("0.5")),
        ("ollama", "llama3.2", 1, None),
    ]
    assert [(p.provider, p.requests, p.cost) for p in report.providers] == [
        ("openai", 3, Decimal("2.5")),
        ("anthropic", 1, Decimal("1")),
        ("ollama", 1, None),
    ]


@pytest.mark.django_db
def test_report_of_a_person_without_records_is_empty_days() -> None:
    alice = User.objects.create_user("alice")
    make(User.objects.create_user("bob"), timezone.now())

    report = usage_report_for_user(user=alice, period=usage_period("7d"))

    assert report.totals.requests == 0
    assert report.totals.cost is None and report.totals.tokens is None
    assert report.models == [] and report.providers == []
    assert [d.requests for d in report.days] == [0] * 7


@pytest.mark.django_db
def test_month_period_counts_its_first_and_last_local_minute() -> None:
    alice = User.objects.create_user("alice")
    today = timezone.localdate()
    first = today.replace(day=1)
    before = first - datetime.timedelta(days=1)
    make(alice, local(before, 23, 59), cost="1")  # the month before
    make(alice, local(first, 0, 0), cost="2")
    make(alice, local(first, 0, 1), cost="4")

    report = usage_report_for_user(user=alice, period=usage_period(first.strftime("%Y-%m")))

    assert report.totals.cost == Decimal("6")
    assert report.days[0].requests == 2


UTC = datetime.UTC


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("zone", "month", "edges"),
    [
        ("Europe/Berlin", 3, []),
        ("America/New_York", 3, []),
        # Skips its midnight (00:00 -> 01:00 on Mar 8).
        ("America/Havana", 3, [datetime.datetime(2026, 3, 8, 4, 59, 59, tzinfo=UTC)]),
        # Goes back from midnight to 23:00 (Apr 5, 00:00 -03 -> Apr 4, 23:00 -04).
        (
            "America/Santiago",
            4,
            [
                datetime.datetime(2026, 4, 5, 2, 59, 59, tzinfo=UTC),
                datetime.datetime(2026, 4, 5, 3, 0, 0, tzinfo=UTC),
                datetime.datetime(2026, 4, 5, 3, 0, 0, 500_000, tzinfo=UTC),
            ],
        ),
        ("Asia/Kathmandu", 3, []),  # +05:45, no change
    ],
)
def test_days_are_local_days_across_a_daylight_saving_change(
    zone: str, month: int, edges: list[datetime.datetime]
) -> None:
    """A record belongs to the day it was on the person's clock, before, on and after the
    day the clocks change, to the second (both databases: SQLite adds the offset itself)."""
    alice = User.objects.create_user("alice")
    tz = zoneinfo.ZoneInfo(zone)
    # The 2026 changes: Europe Mar 29, North America and Cuba Mar 8, Chile Apr 5. A record
    # every 50 minutes from the 1st (UTC) for 24 days, and the seconds around the change.
    instants = [
        datetime.datetime(2026, month, 1, 6, tzinfo=UTC) + datetime.timedelta(minutes=50 * n)
        for n in range(700)
    ] + edges
    for n, instant in enumerate(instants):
        make(alice, instant, input_tokens=n, output_tokens=0, cost="0.001")
    expected: dict[datetime.date, int] = {}
    for instant in instants:
        day = instant.astimezone(tz).date()
        expected[day] = expected.get(day, 0) + 1

    with timezone.override(tz):
        period = usage_period(f"2026-{month:02d}", today=datetime.date(2026, 5, 2))
        report = usage_report_for_user(user=alice, period=period)

    assert {d.day: d.requests for d in report.days if d.requests} == expected


# --- The admin dashboard -----------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_totals_and_top_lists() -> None:
    people = [User.objects.create_user(f"person{n}") for n in range(12)]
    now = timezone.now()
    for n, person in enumerate(people):
        # person0 spends $0.01, ..., person11 $0.12; each uses its own model.
        make(person, now, model=f"model-{n:02d}", cost=f"0.{n + 1:02d}")
    gone = User.objects.create_user("gone")
    make(gone, now, cost="5", outcome=UsageRecord.Outcome.ERROR)
    gone.delete()  # the record stays, without its person
    make(people[0], now - datetime.timedelta(days=60), cost="50")  # outside 30 days

    board = usage_dashboard(period=usage_period("30d"))

    assert board.totals.requests == 13
    assert board.totals.cost == Decimal("5.78")  # 5 + (1 + ... + 12) / 100
    assert board.totals.errors == 1
    assert board.totals.input_tokens == 1300
    assert [(p.user_id, p.username) for p in board.people[:2]] == [
        (None, ""),
        (people[11].pk, "person11"),
    ]
    assert len(board.people) == 10
    assert board.people[-1].username == "person3"
    assert len(board.models) == 10
    assert (board.models[0].model, board.models[0].cost) == ("gpt-4o-mini", Decimal("5"))
    assert board.models[1].model == "model-11"


@pytest.mark.django_db
def test_dashboard_and_report_take_a_fixed_number_of_queries() -> None:
    alice = User.objects.create_user("alice")

    def counts() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as report_queries:
            usage_report_for_user(user=alice, period=usage_period("365d"))
        with CaptureQueriesContext(connection) as board_queries:
            usage_dashboard(period=usage_period("365d"))
        return len(report_queries), len(board_queries)

    make(alice, timezone.now())
    few = counts()
    now = timezone.now()
    for n in range(60):
        person = User.objects.create_user(f"p{n}") if n % 3 else alice
        make(person, now - datetime.timedelta(days=n * 5), model=f"m{n % 15}")
    many = counts()

    assert few == many == (2, 4)
