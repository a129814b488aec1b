"""Reads of usage records: one person's usage and the admin dashboard over a period.

Everything here is an aggregate query: the database sums and Python gets at most one row
per day, per model or per person (never the records themselves), so a page costs the
same few queries whether a period holds ten records or a million.

Days are calendar days in the current time zone (``TIME_ZONE``, or the one a request
activated). In ``TIME_ZONE`` the sums come from the daily tables (``UsageDaily``,
``UsageDailyPerson``, ``UsageDailyModel``: a few rows per day, kept up to date as each
record is written, today included), with the same numbers as summing the records; in
another zone, from the records themselves. Money is in US dollars (``Decimal``); a cost
is None when no record of the group had a known price (``unpriced`` says how many
records had none).
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, DateField, F, Func, Model, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from .models import UsageDaily, UsageDailyModel, UsageDailyPerson, UsageRecord

# Periods a page offers: the last N days (today included), or a calendar month.
PERIOD_DAYS = (7, 30, 90, 365)
DEFAULT_PERIOD = "30d"
MONTHS_OFFERED = 12
# The oldest month a period may name (older ones fall back to the default).
FIRST_YEAR = 2000
TOP_COUNT = 10


# --- Periods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsagePeriod:
    """A run of whole local days: ``first_day`` to ``last_day`` included, that is
    ``start`` (aware, local midnight of ``first_day``) included to ``end`` (local midnight
    after ``last_day``) excluded. ``key`` is how a URL names it: "7d", "30d", "90d",
    "365d" (the last N days, today included) or "YYYY-MM" (a calendar month)."""

    key: str
    first_day: datetime.date
    last_day: datetime.date
    start: datetime.datetime
    end: datetime.datetime

    @property
    def is_month(self) -> bool:
        return not self.key.endswith("d")

    @property
    def days(self) -> list[datetime.date]:
        """Every day of the period, oldest first."""
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + datetime.timedelta(days=n) for n in range(count)]


def midnight(day: datetime.date, tz: datetime.tzinfo) -> datetime.datetime:
    """The aware instant a local day starts (a zone's DST gap at midnight: the first
    valid instant after it, as zoneinfo's fold rules give it)."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=tz)


def usage_period(key: str | None, *, today: datetime.date | None = None) -> UsagePeriod:
    """The period ``key`` names ("7d", "30d", "90d", "365d" or "YYYY-MM"), in the
    current time zone, ending today (``today``: the local date, for tests). An empty,
    unknown or malformed key, or a month before FIRST_YEAR or after this one, gives the
    default period (DEFAULT_PERIOD); nothing is raised."""
    tz = timezone.get_current_timezone()
    today = today or timezone.localdate()
    key = (key or "").strip()
    first = last = None
    if key.endswith("d") and key[:-1].isdigit() and int(key[:-1]) in PERIOD_DAYS:
        first, last = today - datetime.timedelta(days=int(key[:-1]) - 1), today
    elif len(key) == 7 and key[4] == "-" and key[:4].isdigit() and key[5:].isdigit():
        year, month = int(key[:4]), int(key[5:])
        if 1 <= month <= 12 and FIRST_YEAR <= year and (year, month) <= (today.year, today.month):
            first = datetime.date(year, month, 1)
            last = datetime.date(year, month, calendar.monthrange(year, month)[1])
    if first is None or last is None:
        return usage_period(DEFAULT_PERIOD, today=today)
    return UsagePeriod(
        key=key,
        first_day=first,
        last_day=last,
        start=midnight(first, tz),
        end=midnight(last + datetime.timedelta(days=1), tz),
    )


def recent_months(*, today: datetime.date | None = None) -> list[str]:
    """Keys ("YYYY-MM") of this month and the MONTHS_OFFERED - 1 before it, newest first."""
    today = today or timezone.localdate()
    year, month = today.year, today.month
    keys = []
    for _ in range(MONTHS_OFFERED):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return keys


# --- The local day of a record, in SQL ----------------------------------------------------


def _offset_changes(
    start: datetime.datetime, end: datetime.datetime, tz: datetime.tzinfo
) -> list[tuple[datetime.datetime | None, int]]:
    """Runs of one UTC offset between ``start`` and ``end``: ``[(until, seconds), ...]``,
    ``until`` the UTC instant the next run starts (None for the last). A time zone
    without daylight saving time gives one run."""
    utc = datetime.UTC

    def offset(instant: datetime.datetime) -> int:
        delta = instant.astimezone(tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    runs: list[tuple[datetime.datetime | None, int]] = []
    current = offset(start)
    day = start.astimezone(utc)
    end_utc = end.astimezone(utc)
    while day < end_utc:
        following = min(day + datetime.timedelta(days=1), end_utc)
        if offset(following) != current:
            # Zones change offset on a whole second: search the seconds in between for
            # the first with the new offset (offset(low) == current, offset(high) not).
            low, high = int(day.timestamp()), int(following.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                if offset(datetime.datetime.fromtimestamp(middle, utc)) == current:
                    low = middle
                else:
                    high = middle
            change = datetime.datetime.fromtimestamp(high, utc)
            runs.append((change, current))
            current = offset(change)
        day = following
    runs.append((None, current))
    return runs


class LocalDate(Func):
    """The local calendar date of a DateTimeField, for grouping by day.

    PostgreSQL (and any other database): Django's ``TruncDate`` in the zone (``AT TIME
    ZONE``, native). SQLite: Django's ``TruncDate`` calls a Python function per row
    (grouping a million rows by it took 6.9 s here, against 0.5 s for this); this adds
    the zone's UTC offset with SQLite's own ``date()`` instead, one offset per run of the
    period without a daylight saving change (``_offset_changes``), so it is exact for
    every record in the period."""

    output_field = DateField()

    def __init__(
        self,
        expression: Any,
        *,
        tz: datetime.tzinfo,
        start: datetime.datetime,
        end: datetime.datetime,
    ) -> None:
        super().__init__(expression)
        self.tz, self.start, self.end = tz, start, end

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        truncated = TruncDate(self.source_expressions[0], tzinfo=self.tz)
        return compiler.compile(truncated)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, column_params = compiler.compile(self.source_expressions[0])
        runs = _offset_changes(self.start, self.end, self.tz)
        sql, params = "", []
        for until, seconds in runs[:-1]:
            sql += f" WHEN {column} < %s THEN date({column}, %s)"
            params += [
                *column_params,
                connection.ops.adapt_datetimefield_value(until),
                *column_params,
                f"{seconds:+d} seconds",
            ]
        last = f"date({column}, %s)"
        last_params = [*column_params, f"{runs[-1][1]:+d} seconds"]
        if not sql:
            return last, last_params
        return f"CASE{sql} ELSE {last} END", [*params, *last_params]


# --- Sums ---------------------------------------------------------------------------------


@dataclass(kw_only=True)
class UsageSums:
    """What a group of records spent: ``requests`` (records), token sums (None when no
    record of the group reported that count), ``cost`` in US dollars (None when no
    record had a price), ``unpriced`` (records without a cost, left out of ``cost``) and
    ``errors`` (records whose reply failed)."""

    requests: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: Decimal | None = None
    unpriced: int = 0
    errors: int = 0

    @property
    def tokens(self) -> int | None:
        """Input plus output tokens (output includes reasoning); None when neither is known."""
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def add(self, other: UsageSums) -> None:
        """Add ``other``'s sums to these (a None stays None only if both are)."""
        for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cost"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is not None:
                setattr(self, name, theirs if mine is None else mine + theirs)
        self.requests += other.requests
        self.unpriced += other.unpriced
        self.errors += other.errors


_SUM_NAMES = tuple(f.name for f in fields(UsageSums))


# Aggregates are named apart from the model's fields (Django refuses an annotation that
# shares a field's name).
_PREFIX = "sum_"


def _record_sums() -> dict[str, Any]:
    """The aggregates behind ``UsageSums`` over records, by field name with _PREFIX."""
    aggregates = {
        "requests": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "reasoning_tokens": Sum("reasoning_tokens"),
        "cost": Sum("cost"),
        "unpriced": Count("id", filter=Q(cost__isnull=True)),
        "errors": Count("id", filter=Q(outcome=UsageRecord.Outcome.ERROR)),
    }
    return {_PREFIX + name: aggregate for name, aggregate in aggregates.items()}


def _daily_sums() -> dict[str, Any]:
    """The same aggregates over rows of a daily table (``DailySums``): sums of sums."""
    return {_PREFIX + name: Sum(name) for name in _SUM_NAMES}


_COUNTS = frozenset(_SUM_NAMES) - {"cost"}


def _sums_of(row: dict[str, Any]) -> dict[str, Any]:
    # PostgreSQL sums a bigint column as numeric (a Decimal here): counts are ints.
    return {
        name: int(value) if name in _COUNTS and value is not None else value
        for name, value in ((name, row[_PREFIX + name]) for name in _SUM_NAMES)
    }


def daily_tables_apply() -> bool:
    """True when the daily tables can answer for the current time zone: it is the
    server's ``TIME_ZONE``, the zone their days are counted in (a request that activated
    another zone is answered from the records)."""
    return timezone.get_current_timezone_name() == settings.TIME_ZONE


def _biggest_first(groups: QuerySet[Any], *then: str) -> QuerySet[Any]:
    """Groups (``values(...).annotate(**_sums())``) ordered by cost (unknown last), then
    tokens, then requests, then the fields ``then`` (ties in a stable order)."""
    tokens = Coalesce(F(f"{_PREFIX}input_tokens"), Value(0)) + Coalesce(
        F(f"{_PREFIX}output_tokens"), Value(0)
    )
    return groups.annotate(sum_all_tokens=tokens).order_by(
        F(f"{_PREFIX}cost").desc(nulls_last=True),
        F("sum_all_tokens").desc(),
        F(f"{_PREFIX}requests").desc(),
        *then,
    )


@dataclass(kw_only=True)
class DayUsage(UsageSums):
    """One local day's sums."""

    day: datetime.date


@dataclass(kw_only=True)
class ModelUsage(UsageSums):
    """One provider's model's sums."""

    provider: str
    model: str


@dataclass(kw_only=True)
class ProviderUsage(UsageSums):
    """One provider's sums, all its models together."""

    provider: str


@dataclass(kw_only=True)
class PersonUsage(UsageSums):
    """One person's sums; ``user_id`` None (and ``username`` "") for records of
    accounts since deleted."""

    user_id: int | None
    username: str = ""


@dataclass(kw_only=True)
class MonthUsage(UsageSums):
    """One calendar month's sums (``month``: its first day), or the part of it in a
    period."""

    month: datetime.date


def months_of(days: Iterable[DayUsage]) -> list[MonthUsage]:
    """``days`` summed by calendar month, in their order (no query)."""
    months: dict[datetime.date, MonthUsage] = {}
    for row in days:
        first = row.day.replace(day=1)
        months.setdefault(first, MonthUsage(month=first)).add(row)
    return list(months.values())


def _in_period(records: QuerySet[UsageRecord], period: UsagePeriod) -> QuerySet[UsageRecord]:
    return records.filter(created_at__gte=period.start, created_at__lt=period.end).order_by()


def _daily_in_period(rows: QuerySet[Model], period: UsagePeriod) -> QuerySet[Model]:
    return rows.filter(day__gte=period.first_day, day__lte=period.last_day).order_by()


def _records_by_day(records: QuerySet[UsageRecord], period: UsagePeriod) -> QuerySet[Any]:
    """``records`` of ``period`` summed by local day (``day``)."""
    day = LocalDate(
        "created_at", tz=timezone.get_current_timezone(), start=period.start, end=period.end
    )
    return _in_period(records, period).values(day=day).annotate(**_record_sums())


def _days(by_day: Iterable[dict[str, Any]], period: UsagePeriod) -> list[DayUsage]:
    """Every day of ``period`` with its sums from ``by_day`` (an aggregate query's rows
    with ``day``; one query), zeros on days without any."""
    rows = {row["day"]: row for row in by_day}
    return [
        DayUsage(day=d, **_sums_of(rows[d])) if d in rows else DayUsage(day=d) for d in period.days
    ]


def _models(
    rows: QuerySet[Any], sums: dict[str, Any], limit: int | None = None
) -> list[ModelUsage]:
    """``rows`` (records, or rows of a daily table) summed by provider and model with
    ``sums``, biggest first."""
    rows = _biggest_first(rows.values("provider", "model").annotate(**sums), "provider", "model")
    if limit is not None:
        rows = rows[:limit]
    return [
        ModelUsage(provider=row["provider"], model=row["model"], **_sums_of(row)) for row in rows
    ]


def _total(groups: Iterable[UsageSums]) -> UsageSums:
    total = UsageSums()
    for group in groups:
        total.add(group)
    return total


def _providers(models: Iterable[ModelUsage]) -> list[ProviderUsage]:
    """Providers' sums from their models' (no query), biggest first."""
    providers: dict[str, ProviderUsage] = {}
    for row in models:
        providers.setdefault(row.provider, ProviderUsage(provider=row.provider)).add(row)

    def size(p: ProviderUsage) -> tuple[bool, Decimal, int, int]:
        return (p.cost is not None, p.cost or Decimal(0), p.tokens or 0, p.requests)

    return sorted(providers.values(), key=size, reverse=True)


@dataclass
class UsageReport:
    """One person's usage over ``period``: ``days`` (every day, oldest first),
    ``totals``, and the sums by provider and by model (biggest cost first)."""

    period: UsagePeriod
    days: list[DayUsage]
    totals: UsageSums
    providers: list[ProviderUsage] = field(default_factory=list)
    models: list[ModelUsage] = field(default_factory=list)

    @property
    def months(self) -> list[MonthUsage]:
        return months_of(self.days)


def usage_report_for_user(*, user: AbstractBaseUser, period: UsagePeriod) -> UsageReport:
    """``user``'s own usage over ``period`` (no one else's records, ever). Two
    aggregate queries: over the person's ``UsageDaily`` rows of the period (its
    (user, day, ...) key), or in another time zone than ``TIME_ZONE`` over their
    records (the (user, created_at) index)."""
    if daily_tables_apply():
        rows = _daily_in_period(UsageDaily.objects.filter(user=user), period)
        days = _days(rows.values("day").annotate(**_daily_sums()), period)
        models = _models(rows, _daily_sums())
    else:
        records = UsageRecord.objects.filter(user=user)
        days = _days(_records_by_day(records, period), period)
        models = _models(_in_period(records, period), _record_sums())
    return UsageReport(
        period=period,
        days=days,
        totals=_total(days),
        providers=_providers(models),
        models=models,
    )


@dataclass
class UsageDashboard:
    """Everyone's usage over ``period``: ``days`` (every day, oldest first),
    ``totals``, the top people and the top models (at most TOP_COUNT each, biggest cost
    first, then tokens)."""

    period: UsagePeriod
    days: list[DayUsage]
    totals: UsageSums
    people: list[PersonUsage]
    models: list[ModelUsage]

    @property
    def months(self) -> list[MonthUsage]:
        return months_of(self.days)


def usage_dashboard(*, period: UsagePeriod, top: int = TOP_COUNT) -> UsageDashboard:
    """The admin dashboard's numbers over ``period``: four queries (per day, top
    people, their names, top models). Per day and top models sum the period's
    ``UsageDailyModel`` rows, top people its ``UsageDailyPerson`` rows; in another time
    zone than ``TIME_ZONE``, each sums the period's records."""
    if daily_tables_apply():
        by_model = _daily_in_period(UsageDailyModel.objects.all(), period)
        days = _days(by_model.values("day").annotate(**_daily_sums()), period)
        by_person = _daily_in_period(UsageDailyPerson.objects.all(), period).values("user_id")
        by_person = by_person.annotate(**_daily_sums())
        models = _models(by_model, _daily_sums(), limit=top)
    else:
        records = _in_period(UsageRecord.objects.all(), period)
        days = _days(_records_by_day(UsageRecord.objects.all(), period), period)
        by_person = records.values("user_id").annotate(**_record_sums())
        models = _models(records, _record_sums(), limit=top)
    person_rows = list(_biggest_first(by_person, "user_id")[:top])
    user_model = get_user_model()
    ids = [row["user_id"] for row in person_rows if row["user_id"] is not None]
    names = dict(
        user_model._default_manager.filter(pk__in=ids).values_list("pk", user_model.USERNAME_FIELD)
    )
    people = [
        PersonUsage(user_id=row["user_id"], username=names.get(row["user_id"], ""), **_sums_of(row))
        for row in person_rows
    ]
    return UsageDashboard(
        period=period,
        days=days,
        totals=_total(days),
        people=people,
        models=models,
    )
