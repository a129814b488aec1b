"""Writing usage records (and their days' sums, in the same transaction), recounting
those sums, and keeping model prices in step with genai-prices.

Other apps call these (the reply run's final database step, the API); they never write
``usage`` tables themselves.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Count, F, Max, Min, Model, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import (
    COST_DIGITS,
    ModelPrice,
    UsageDaily,
    UsageDailyModel,
    UsageDailyPerson,
    UsageRecord,
)
from .prices import package_price, price_cache_clear, price_for

COST_QUANTUM = Decimal(1).scaleb(-COST_DIGITS["decimal_places"])

# A reply's status and finish reason (chat.models.Message) -> a record's outcome.
_OUTCOME_BY_STATUS = {
    "complete": UsageRecord.Outcome.COMPLETE,
    "incomplete": UsageRecord.Outcome.INCOMPLETE,
    "stopped": UsageRecord.Outcome.STOPPED,
    "error": UsageRecord.Outcome.ERROR,
}


def outcome_from_reply(status: str, finish_reason: str = "") -> str:
    """The ``UsageRecord.Outcome`` value for a reply that ended with ``status``
    ("complete", "incomplete", "stopped", "error") and ``finish_reason`` (the chat's
    vocabulary: "interrupted" means the server shut down mid-reply). Raises ValueError
    for any other status (a reply still streaming has no outcome yet)."""
    if finish_reason == "interrupted":
        return UsageRecord.Outcome.INTERRUPTED
    try:
        return _OUTCOME_BY_STATUS[status]
    except KeyError:
        raise ValueError(f"a reply with status {status!r} has no usage outcome") from None


def usage_record_write(
    *,
    user_id: int | None,
    provider: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    reasoning_tokens: int | None,
    ttft_ms: int | None,
    duration_ms: int | None,
    outcome: str,
    source: str = UsageRecord.Source.CHAT,
    api_key_id: int | None = None,
    reply_id: int | None = None,
) -> UsageRecord:
    """Write one reply's usage record, with its cost, and return it.

    Token counts are as the provider reported them (None: it did not say).
    ``output_tokens`` includes ``reasoning_tokens`` (as ``chat.providers.Usage`` says),
    so cost = input_tokens x input price + output_tokens x output price, per million
    tokens, in US dollars, rounded to 10 decimal places; reasoning tokens are not added
    again. The price (``price_for``, resolved for this request's input size) is copied
    onto the record: changing it later does not change this record. ``cost`` is None
    when no price is known or the provider reported no token counts (0 for a free
    model whatever the counts).

    ``ttft_ms`` and ``duration_ms`` are milliseconds; ``outcome`` is a
    ``UsageRecord.Outcome`` value (see ``outcome_from_reply``), ``source`` "chat" or
    "api". Sync: call it in a database step, never while waiting on a provider. Raises
    ValueError for an unknown outcome or source, or a negative token count."""
    if outcome not in UsageRecord.Outcome.values:
        raise ValueError(f"unknown usage outcome {outcome!r}")
    if source not in UsageRecord.Source.values:
        raise ValueError(f"unknown usage source {source!r}")
    for count in (input_tokens, output_tokens, reasoning_tokens):
        if count is not None and count < 0:
            raise ValueError("token counts cannot be negative")

    price = price_for(provider, model)
    cost = input_price = output_price = None
    if price is not None:
        flat = price.for_request(input_tokens or 0)
        input_price, output_price = flat.input_per_mtok, flat.output_per_mtok
        if (
            not input_price
            and not output_price
            and not price.input_tiers
            and not (price.output_tiers)
        ):
            cost = Decimal(0)  # a free model (the local one) costs nothing, counted or not
        elif input_tokens is not None or output_tokens is not None:
            cost = flat.cost(input_tokens or 0, output_tokens or 0).quantize(
                COST_QUANTUM, rounding=ROUND_HALF_UP
            )
    with transaction.atomic():
        record = UsageRecord.objects.create(
            user_id=user_id,
            api_key_id=api_key_id,
            source=source,
            provider=provider,
            model=model,
            reply_id=reply_id,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            cost=cost,
            input_per_mtok=input_price,
            output_per_mtok=output_price,
            time_to_first_token_ms=ttft_ms,
            duration_ms=duration_ms,
            outcome=outcome,
        )
        usage_daily_add(record)
    return record


# --- The daily tables ---------------------------------------------------------------------

_TOKEN_FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens")


def _daily_keys(record: UsageRecord, day: datetime.date) -> list[tuple[type[Model], dict]]:
    """Each daily table with the key of ``record``'s row in it."""
    return [
        (
            UsageDaily,
            {
                "user_id": record.user_id,
                "day": day,
                "provider": record.provider,
                "model": record.model,
                "source": record.source,
            },
        ),
        (UsageDailyPerson, {"user_id": record.user_id, "day": day}),
        (UsageDailyModel, {"day": day, "provider": record.provider, "model": record.model}),
    ]


def usage_daily_add(record: UsageRecord) -> None:
    """Add a usage record just written to the daily tables (``UsageDaily``,
    ``UsageDailyPerson``, ``UsageDailyModel``): its day's row in each (the day of
    ``created_at`` in the server's ``TIME_ZONE``) gets one more request and the record's
    tokens, cost, unpriced and error counts. Call it once per record, in the transaction
    that wrote it (``usage_record_write`` does), so that a reader sees both or neither.

    Safe when requests write at once. On SQLite and PostgreSQL each row is one
    ``INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n``, atomic in both
    (Django's ``bulk_create(update_conflicts=True)`` can only overwrite a column, not add
    to it); PostgreSQL gets the three in one statement (one round trip). A row without
    a person (``user`` None: a unique key never matches NULL, and a deleted person's
    rows join earlier ones) is added to with ``UPDATE ... SET n = n + ...`` on one row,
    the oldest, or inserted when there is none (two writers at once may insert two such
    rows: readers add them up). On another database every row goes that way, the
    ``INSERT`` in a savepoint; if another transaction inserted the row first (refused by
    the unique key), the ``UPDATE`` runs again and finds it."""
    day = timezone.localtime(record.created_at, timezone.get_default_timezone()).date()
    sums: dict[str, Any] = {
        "requests": 1,
        **{name: getattr(record, name) for name in _TOKEN_FIELDS},
        "cost": record.cost,
        "unpriced": 0 if record.cost is not None else 1,
        "errors": 1 if record.outcome == UsageRecord.Outcome.ERROR else 0,
    }
    alias = router.db_for_write(UsageDaily)
    connection = connections[alias]
    upserts = []
    with transaction.atomic(using=alias):
        for table, key in _daily_keys(record, day):
            if connection.vendor in _UPSERT_VENDORS and None not in key.values():
                upserts.append(_upsert(connection, table, key, sums))
            else:
                _row_add(table, key, sums)
        if connection.vendor == "postgresql" and len(upserts) > 1:
            # One round trip: the first upserts as data-modifying WITH queries.
            heads = [f"u{n} AS ({sql} RETURNING 1)" for n, (sql, _) in enumerate(upserts[:-1])]
            sql = f"WITH {', '.join(heads)} {upserts[-1][0]}"
            upserts = [(sql, [value for _, params in upserts for value in params])]
        with connection.cursor() as cursor:
            for sql, params in upserts:
                cursor.execute(sql, params)


_UPSERT_VENDORS = ("sqlite", "postgresql")
_SUM_FIELDS = ("requests", *_TOKEN_FIELDS, "cost", "unpriced", "errors")
_COUNT_FIELDS = ("requests", "unpriced", "errors")
_upsert_statements: dict[tuple[str, type[Model], tuple[str, ...]], str] = {}


def _upsert(
    connection: Any, table: type[Model], key: dict[str, Any], sums: dict[str, Any]
) -> tuple[str, list[Any]]:
    """The statement and parameters that ``INSERT`` the row of ``table`` with ``key``
    and ``sums``, or add ``sums`` to it."""
    names = tuple(key)
    statement = _upsert_statements.get((connection.vendor, table, names))
    if statement is None:
        quote = connection.ops.quote_name
        name = quote(table._meta.db_table)
        columns = ", ".join(quote(column) for column in (*names, *_SUM_FIELDS))
        values = ", ".join(["%s"] * (len(names) + len(_SUM_FIELDS)))
        added = []
        for field in _SUM_FIELDS:
            column = quote(field)
            mine, theirs = f"{name}.{column}", f"excluded.{column}"
            if field in _COUNT_FIELDS:
                added.append(f"{column} = {mine} + {theirs}")
            else:  # NULL + n is NULL: a sum stays NULL only while both are
                added.append(f"{column} = COALESCE({mine} + {theirs}, {mine}, {theirs})")
        conflict = f"ON CONFLICT ({', '.join(map(quote, names))})"
        # Names are the model's own; values are parameters.
        statement = f"INSERT INTO {name} ({columns}) VALUES ({values}) {conflict} DO UPDATE SET "  # noqa: S608
        statement += ", ".join(added)
        _upsert_statements[(connection.vendor, table, names)] = statement
    ops = connection.ops
    params = [
        ops.adapt_datefield_value(value) if name == "day" else value for name, value in key.items()
    ]
    for name in _SUM_FIELDS:
        value = sums[name]
        if name == "cost" and value is not None:
            value = ops.adapt_decimalfield_value(
                value, COST_DIGITS["max_digits"], COST_DIGITS["decimal_places"]
            )
        params.append(value)
    return statement, params


def _row_add(table: type[Model], key: dict[str, Any], sums: dict[str, Any]) -> None:
    """Add ``sums`` to the row of ``table`` with ``key`` (one of them when ``key`` has a
    NULL), or insert it when there is none."""
    more: dict[str, Any] = {}
    for name in _SUM_FIELDS:
        value = sums[name]
        if name in _COUNT_FIELDS:
            if value:
                more[name] = F(name) + value
        elif value is not None:
            zero = Value(Decimal(0)) if name == "cost" else Value(0)
            more[name] = Coalesce(F(name), zero) + Value(value)
    rows = table._default_manager.filter(**key)
    if None in key.values():
        # NULL is never equal to NULL in a unique key: several rows may match (a deleted
        # person's rows join those of earlier ones). Add to one of them only.
        rows = table._default_manager.filter(pk=Subquery(rows.order_by("pk").values("pk")[:1]))
    if rows.update(**more):
        return
    try:
        with transaction.atomic():
            table._default_manager.create(**key, **sums)
        return
    except IntegrityError:
        pass  # another transaction inserted the row meanwhile (and has committed): add to it
    if not rows.update(**more):  # pragma: no cover - the key exists, by the error above
        raise RuntimeError(f"daily usage row {table.__name__} {key} neither found nor added")


def usage_daily_rebuild(*, apps: Apps = global_apps, chunk_days: int = 31) -> dict[str, int]:
    """Recount the daily tables from the usage records: every row deleted, then written
    again from the records with one ``INSERT ... SELECT ... GROUP BY`` per table for each
    run of ``chunk_days`` local days (the database sums; Python sees no record). Days
    are calendar days in the server's ``TIME_ZONE``: run it after changing that setting
    (``manage.py usage_daily_rebuild``) or after records were deleted by hand. The
    migration that created the tables runs it once. ``apps``: the app registry (a
    migration passes its own).

    In one transaction; on PostgreSQL the records table is locked against writes
    (``SHARE`` mode) meanwhile, so a record written during the rebuild waits and is then
    counted exactly once. Returns the number of rows of each table by model name.
    Raises ValueError for ``chunk_days`` under 1."""
    from .selectors import LocalDate, midnight

    if chunk_days < 1:
        raise ValueError("chunk_days must be at least 1")
    records = apps.get_model("usage", "UsageRecord")
    detail = apps.get_model("usage", "UsageDaily")
    people = apps.get_model("usage", "UsageDailyPerson")
    models = apps.get_model("usage", "UsageDailyModel")
    alias = router.db_for_write(records)
    connection = connections[alias]
    zone = timezone.get_default_timezone()
    with transaction.atomic(using=alias):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                table = connection.ops.quote_name(records._meta.db_table)
                cursor.execute(f"LOCK TABLE {table} IN SHARE MODE")
        for table in (detail, people, models):
            table._base_manager.using(alias).all().delete()
        span = records._base_manager.using(alias).aggregate(
            first=Min("created_at"), last=Max("created_at")
        )
        if span["first"] is not None:
            day = timezone.localtime(span["first"], zone).date()
            last_day = timezone.localtime(span["last"], zone).date()
            while day <= last_day:
                after = day + datetime.timedelta(days=chunk_days)
                start, end = midnight(day, zone), midnight(after, zone)
                in_chunk = (
                    records._base_manager.using(alias)
                    .filter(created_at__gte=start, created_at__lt=end)
                    .order_by()
                    .annotate(day=LocalDate("created_at", tz=zone, start=start, end=end))
                )
                _insert_grouped(
                    connection,
                    detail,
                    in_chunk.values("day", "user_id", "provider", "model", "source").annotate(
                        **_record_aggregates()
                    ),
                    ("day", "user_id", "provider", "model", "source"),
                )
                written = (
                    detail._base_manager.using(alias).filter(day__gte=day, day__lt=after).order_by()
                )
                _insert_grouped(
                    connection,
                    people,
                    written.values("day", "user_id").annotate(**_daily_aggregates()),
                    ("day", "user_id"),
                )
                _insert_grouped(
                    connection,
                    models,
                    written.values("day", "provider", "model").annotate(**_daily_aggregates()),
                    ("day", "provider", "model"),
                )
                day = after
        return {
            table.__name__: table._base_manager.using(alias).count()
            for table in (detail, people, models)
        }


def _record_aggregates() -> dict[str, Any]:
    """A group of records' sums, named ``sum_<field of DailySums>``."""
    return {
        "sum_requests": Count("id"),
        **{f"sum_{name}": Sum(name) for name in (*_TOKEN_FIELDS, "cost")},
        "sum_unpriced": Count("id", filter=Q(cost__isnull=True)),
        "sum_errors": Count("id", filter=Q(outcome=UsageRecord.Outcome.ERROR)),
    }


def _daily_aggregates() -> dict[str, Any]:
    """A group of daily rows' sums, named as ``_record_aggregates``'s."""
    return {f"sum_{name}": Sum(name) for name in _SUM_FIELDS}


def _insert_grouped(
    connection: Any, table: type[Model], grouped: Any, key: tuple[str, ...]
) -> None:
    """``INSERT INTO table (key..., sums...) SELECT ... FROM (grouped)``: the rows of the
    ``grouped`` query (``values(*key).annotate(sum_<field>=...)``) written by the database."""
    sql, params = grouped.query.get_compiler(connection=connection).as_sql()
    quote = connection.ops.quote_name
    # The key's names are the columns' names in both tables (user_id: the column).
    columns = [*key, *_SUM_FIELDS]
    selected = [*key, *(f"sum_{name}" for name in _SUM_FIELDS)]
    # Names are the models' own; values are parameters.
    into = f"{quote(table._meta.db_table)} ({', '.join(map(quote, columns))})"
    insert = f"INSERT INTO {into} SELECT {', '.join(map(quote, selected))} FROM ({sql}) grouped"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(insert, params)


@dataclass
class PricesRefreshed:
    """What ``model_prices_refresh`` did: the rows it set to the package's price and
    those the package has no price for (left as they were)."""

    updated: list[ModelPrice] = field(default_factory=list)
    unknown: list[ModelPrice] = field(default_factory=list)


def model_prices_refresh(*, prices: Iterable[ModelPrice]) -> PricesRefreshed:
    """Set each of ``prices`` to the genai-prices package's current base price (source
    "genai-prices"), an administrator's price included: this is how an override is
    undone. Rows for models the package does not price stay as they are and are
    returned in ``unknown``."""
    result = PricesRefreshed()
    for row in prices:
        price = package_price(row.provider, row.model)
        if price is None:
            result.unknown.append(row)
            continue
        row.input_per_mtok = price.input_per_mtok
        row.output_per_mtok = price.output_per_mtok
        row.source = ModelPrice.Source.GENAI_PRICES
        row.save(update_fields=["input_per_mtok", "output_per_mtok", "source", "updated_at"])
        result.updated.append(row)
    price_cache_clear()
    return result
