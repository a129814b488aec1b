"""Budgets: may this person start a reply now? Money, tokens and a request rate.

Who is held to what (``usage.models.Budget`` says it in full, ``BUDGET_HELP`` to admins):
a person's own budgets, every budget of each of their groups (money and tokens counted
over the group's current members together, a team budget; a group's request rate applies
to each member), and the defaults for everyone (``CHAT_BUDGET_*`` settings), which a
limit of the same kind and period on the person's own budget replaces. Periods are
calendar days and months in the server's ``TIME_ZONE``; the rate is replies started in
any 60 seconds. Staff are held to budgets unless ``CHAT_BUDGET_STAFF_EXEMPT`` is true.

What counts as used: the ``UsageRecord`` rows of the period (cost, None counting $0;
tokens = input + output, output including reasoning; the days before today summed from
``UsageDailyPerson``, written in each record's transaction), plus the replies still being
written (``BudgetReservation`` rows). A limit is reached when used >= limit; the refusal
names the limit that resets last among those reached (the time the person can send
again) and when.

Races, and why at most one reply can take a budget over its limit
-----------------------------------------------------------------
A check that reads "spent so far" and then lets the reply start races with itself: two
requests at once both read $4.95 of $5.00 and both start. ``budget_reserve`` closes it:

1. In one transaction it locks a small ``BudgetLock`` row for the person, then one for
   each of their groups with a team budget (ascending ids, the same order in every
   transaction, so two of them never wait on each other in a circle). PostgreSQL's
   ``SELECT ... FOR UPDATE`` makes a second request of the same person or team wait
   there; on SQLite the project's ``BEGIN IMMEDIATE`` transactions already run one at a
   time.
2. Under the lock it reads what was used, including the replies in flight, decides, and
   on "yes" inserts a ``BudgetReservation`` for the new reply before committing. The
   next request, once it gets the lock, sees that row.
3. A reservation counts at the reply's largest possible size: its input estimate plus
   its ``max_tokens`` (or ``CHAT_BUDGET_RESERVE_OUTPUT_TOKENS`` when it sets none),
   priced at the model's price. So while replies are in flight, the budget is counted
   as if each will cost its most. A new reply may start only while that sum is under
   the limit; only the last reply admitted can then end above it, by at most its own
   cost. (A reply that writes more than ``max_tokens``, or a model with no known price,
   is the only way past that, and then only by what was under-estimated.)
4. ``budget_settle`` writes the reply's usage record and deletes its reservation in one
   transaction: the real cost replaces the estimate with no moment where the reply
   counts twice or not at all. A reservation whose process died (a crash, kill -9) stops
   counting at ``expires_at`` (``CHAT_STALE_STREAM_SECONDS`` after it was made).

Usage on a front door (chat page, API), before anything is saved::

    try:
        reservation = budget_reserve(user=user, provider=p, model=m,
                                     input_tokens=estimate, max_output_tokens=max_tokens)
    except BudgetExceeded as refused:
        refuse(refused.verdict.message)  # HTTP 429, Retry-After: refused.verdict.retry_after
    ...
    # when the reply ends, instead of usage_record_write(...):
    budget_settle(reservation_id=reservation.id, user_id=..., provider=..., ...)

Cost: one query for the budgets that apply, then for the person one aggregate over their
records of today (the ``usage_user_created`` index) and, in the same query, their daily
rows (``UsageDailyPerson``) for this month's days before today when a monthly limit
applies, and one over their reservations; two more per group with a team budget (its
members' records and daily rows, and their reservations). Nothing at all is read beyond
the first query when no limit applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count, F, Func, Min, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import formats, timezone
from django.utils.translation import gettext

from .models import (
    COST_DIGITS,
    Budget,
    BudgetLock,
    BudgetReservation,
    UsageDailyPerson,
    UsageRecord,
)
from .prices import price_for

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

__all__ = [
    "BudgetExceeded",
    "BudgetLine",
    "BudgetVerdict",
    "Reservation",
    "budget_check",
    "budget_release",
    "budget_reserve",
    "budget_settle",
    "budget_status",
    "period_bounds",
    "reservation_estimate",
]

COST = "cost"
TOKENS = "tokens"
REQUESTS = "requests"

SCOPE_USER = "user"  # the person's own budget
SCOPE_GROUP = "group"  # one of the person's groups (a team budget for money and tokens)
SCOPE_DEFAULT = "default"  # the CHAT_BUDGET_* settings
_SCOPE_ORDER = {SCOPE_USER: 0, SCOPE_GROUP: 1, SCOPE_DEFAULT: 2}

DAY = Budget.Period.DAY.value
MONTH = Budget.Period.MONTH.value
MINUTE = "minute"
RATE_WINDOW = timedelta(minutes=1)

# (kind, period, setting name) of the defaults for everyone.
_DEFAULTS = (
    (COST, DAY, "CHAT_BUDGET_DAILY_COST"),
    (COST, MONTH, "CHAT_BUDGET_MONTHLY_COST"),
    (TOKENS, DAY, "CHAT_BUDGET_DAILY_TOKENS"),
    (TOKENS, MONTH, "CHAT_BUDGET_MONTHLY_TOKENS"),
    (REQUESTS, MINUTE, "CHAT_BUDGET_REQUESTS_PER_MINUTE"),
)

Amount = Decimal | int


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One limit a person is held to, and where they stand against it.

    ``kind``: "cost" (``limit``/``used``/``reserved`` are US dollars, ``Decimal``),
    "tokens" (input + output tokens, ``int``) or "requests" (replies started in the last
    minute, ``int``). ``period``: "day", "month" or "minute". ``scope``: "user" (their own
    budget ``budget_id``), "group" (the budget ``budget_id`` of group ``group_name``;
    money and tokens are the whole group's) or "default" (a ``CHAT_BUDGET_*`` setting).
    ``used``: from usage records; ``reserved``: replies still being written, at their
    largest possible size (for "requests": how many are running). ``resets_at``: when the
    period ends (aware datetime; for "requests", about when the oldest counted request
    leaves the minute)."""

    kind: str
    period: str
    scope: str
    limit: Amount
    used: Amount
    reserved: Amount
    resets_at: datetime
    budget_id: int | None = None
    group_name: str = ""

    @property
    def total(self) -> Amount:
        """``used`` + ``reserved``: what the limit is compared with."""
        return self.used + self.reserved

    @property
    def reached(self) -> bool:
        """True when no new reply may start under this limit (``total >= limit``)."""
        return self.total >= self.limit


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """The answer of a budget check. ``allowed`` False comes with the ``line`` reached
    (the one that resets last, when several are), ``message`` (a translated sentence
    naming the limit, what is used and when it resets) and ``retry_after`` (whole
    seconds until then, at least 1: for an HTTP ``Retry-After`` header)."""

    allowed: bool
    line: BudgetLine | None = None
    message: str = ""
    retry_after: int = 0

    def __bool__(self) -> bool:
        return self.allowed


class BudgetExceeded(ValidationError):
    """Raised by ``budget_reserve`` when a limit is reached. ``str(error)`` and
    ``error.message`` are the translated sentence to show; ``error.verdict`` has the
    details (``retry_after`` for a 429's ``Retry-After``). A ``ValidationError``, so a
    chat-page refusal path that shows ``ValidationError`` messages shows it as is."""

    def __init__(self, verdict: BudgetVerdict) -> None:
        super().__init__(verdict.message, code="budget_exceeded")
        self.verdict = verdict

    def __str__(self) -> str:
        return self.verdict.message


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reply allowed to start. ``id`` is its ``BudgetReservation`` row, to pass to
    ``budget_settle`` (or ``budget_release``) when the reply ends; None when no limit
    applies to the person (nothing was held: settling just writes the record)."""

    id: int | None
    estimated_tokens: int = 0
    estimated_cost: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class _Limit:
    kind: str
    period: str
    scope: str
    value: Amount
    budget_id: int | None = None
    group_id: int | None = None
    group_name: str = ""


# --- periods ------------------------------------------------------------------------------


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The calendar ``period`` ("day" or "month") holding ``now``, as aware datetimes
    ``(start, end)`` in the server's ``TIME_ZONE`` (not the request's active time zone):
    a day from 00:00 to the next 00:00, a month from 00:00 on the 1st to the next 1st.
    Raises ValueError for another period."""
    zone = timezone.get_default_timezone()
    today = timezone.localtime(now, zone).date()
    if period == DAY:
        first, after = today, today + timedelta(days=1)
    elif period == MONTH:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return (
        datetime.combine(first, time(), tzinfo=zone),
        datetime.combine(after, time(), tzinfo=zone),
    )


# --- which limits apply -------------------------------------------------------------------


def _exempt(user: Any) -> bool:
    return bool(
        getattr(settings, "CHAT_BUDGET_STAFF_EXEMPT", False)
        and (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    )


def _memberships() -> Any:
    return get_user_model().groups.through.objects  # type: ignore[attr-defined]


def _limits_for(user: Any) -> list[_Limit]:
    """Every limit ``user`` is held to. One query (their budgets and their groups').
    Raises ValueError for a user not saved (an anonymous visitor has no budgets)."""
    if user.pk is None:
        raise ValueError("budgets apply to signed-in people only")
    if _exempt(user):
        return []
    budgets = Budget.objects.filter(
        Q(user_id=user.pk)
        | Q(group_id__in=_memberships().filter(user_id=user.pk).values("group_id"))
    ).select_related("group")
    limits: list[_Limit] = []
    own: set[tuple[str, str]] = set()
    for budget in budgets:
        scope = SCOPE_GROUP if budget.group_id else SCOPE_USER
        group_name = budget.group.name if budget.group_id else ""
        for kind, period, value in (
            (COST, budget.period, budget.max_cost),
            (TOKENS, budget.period, budget.max_tokens),
            (REQUESTS, MINUTE, budget.max_requests_per_minute),
        ):
            if value is None:
                continue
            limits.append(
                _Limit(kind, period, scope, value, budget.pk, budget.group_id, group_name)
            )
            if scope == SCOPE_USER:
                own.add((kind, period))
    for kind, period, name in _DEFAULTS:
        value = getattr(settings, name, None)
        if value is not None and value != "" and (kind, period) not in own:
            value = Decimal(str(value)) if kind == COST else int(value)
            limits.append(_Limit(kind, period, SCOPE_DEFAULT, value))
    return limits


# --- measuring ----------------------------------------------------------------------------


def _tokens() -> Any:
    return Coalesce("input_tokens", 0) + Coalesce("output_tokens", 0)


def _used(user_ids: Q, starts: dict[str, datetime], now: datetime, rate: bool) -> dict[str, Any]:
    """What the records of the people ``user_ids`` (a filter on ``user_id``) used from
    each of ``starts`` to ``now``: cost and tokens (keys "cost:<period>",
    "tokens:<period>", None or 0 when nothing), and with ``rate`` the count and oldest
    time of those in the last minute (keys "recent", "oldest_recent").

    One aggregate query (one snapshot): today and the last minute from the records (the
    ``usage_user_created`` index); the whole days before today (in ``TIME_ZONE``) of a
    period that began before today from ``UsageDailyPerson``, a row per person and day
    written in each record's transaction, so the sums are the records' own."""
    zone = timezone.get_default_timezone()
    # A record's day (UsageDailyPerson.day) is before today exactly when it was written
    # before today began: a day begins at its local midnight, as a period does.
    today_begins = period_bounds(DAY, now)[0]
    today = timezone.localtime(today_begins, zone).date()
    lows = [now - RATE_WINDOW] if rate else []
    sums: dict[str, Any] = {}
    for period, start in starts.items():
        lows.append(max(start, today_begins))
        first = timezone.localtime(start, zone).date()
        earlier = None
        if first < today:
            earlier = UsageDailyPerson.objects.filter(user_ids, day__gte=first, day__lt=today)
        since = Q(created_at__gte=max(start, today_begins))
        cost = Sum("cost", filter=since)
        tokens = Sum(_tokens(), filter=since, output_field=models.BigIntegerField())
        if earlier is not None:
            cost = Coalesce(cost, _ZERO_COST) + _daily_sum(earlier, F("cost"), _COST_FIELD)
            tokens = Coalesce(tokens, 0) + _daily_sum(earlier, _tokens(), _TOKENS_FIELD)
        sums[f"cost:{period}"] = cost
        sums[f"tokens:{period}"] = tokens
    if rate:
        recent = Q(created_at__gt=now - RATE_WINDOW)
        sums["recent"] = Count("id", filter=recent)
        sums["oldest_recent"] = Min("created_at", filter=recent)
    records = UsageRecord.objects.filter(user_ids, created_at__gte=min(lows), created_at__lte=now)
    used = records.order_by().aggregate(**sums)
    for period in starts:  # PostgreSQL adds a bigint to a numeric as a numeric
        if used[f"tokens:{period}"] is not None:
            used[f"tokens:{period}"] = int(used[f"tokens:{period}"])
    return used


_COST_FIELD = models.DecimalField(**COST_DIGITS)
_TOKENS_FIELD = models.BigIntegerField()
_ZERO_COST = Value(Decimal(0), output_field=_COST_FIELD)


def _daily_sum(rows: models.QuerySet[UsageDailyPerson], expression: Any, field: Any) -> Any:
    """``SUM(expression)`` over ``rows``, 0 when there are none, as a scalar subquery."""
    total = Func(expression, function="SUM", output_field=field)
    zero = _ZERO_COST if field is _COST_FIELD else Value(0)
    return Coalesce(Subquery(rows.order_by().values(total=total), output_field=field), zero)


def _reserved(reservations: models.QuerySet[BudgetReservation], now: datetime) -> dict[str, Any]:
    """Replies in flight among ``reservations`` (not expired at ``now``): their count
    and estimated cost and tokens. One query."""
    return (
        reservations.filter(expires_at__gt=now)
        .order_by()
        .aggregate(
            running=Count("id"),
            cost=Sum("estimated_cost"),
            tokens=Sum("estimated_tokens"),
        )
    )


def _lines(user: Any, limits: list[_Limit], now: datetime) -> list[BudgetLine]:
    """Where ``user`` stands against each of ``limits`` at ``now``."""
    if not limits:
        return []
    bounds = {period: period_bounds(period, now) for period in (DAY, MONTH)}
    personal = [limit for limit in limits if limit.scope != SCOPE_GROUP or limit.kind == REQUESTS]
    teams: dict[int, list[_Limit]] = {}
    for limit in limits:
        if limit.scope == SCOPE_GROUP and limit.kind != REQUESTS:
            teams.setdefault(limit.group_id, []).append(limit)  # type: ignore[arg-type]

    lines: list[BudgetLine] = []
    if personal:
        starts = {lim.period: bounds[lim.period][0] for lim in personal if lim.period != MINUTE}
        rate = any(lim.kind == REQUESTS for lim in personal)
        used = _used(Q(user_id=user.pk), starts, now, rate)
        flight = _reserved(BudgetReservation.objects.filter(user_id=user.pk), now)
        lines.extend(_line(lim, used, flight, bounds, now) for lim in personal)
    for group_id, group_limits in sorted(teams.items()):
        members = _memberships().filter(group_id=group_id).values("user_id")
        starts = {lim.period: bounds[lim.period][0] for lim in group_limits}
        used = _used(Q(user_id__in=members), starts, now, False)
        flight = _reserved(BudgetReservation.objects.filter(user_id__in=members), now)
        lines.extend(_line(lim, used, flight, bounds, now) for lim in group_limits)
    return lines


def _line(
    limit: _Limit,
    used: dict[str, Any],
    flight: dict[str, Any],
    bounds: dict[str, tuple[datetime, datetime]],
    now: datetime,
) -> BudgetLine:
    if limit.kind == REQUESTS:
        oldest = used["oldest_recent"]
        spent: Amount = used["recent"] or 0
        reserved: Amount = flight["running"] or 0
        resets_at = (oldest + RATE_WINDOW) if oldest is not None else now + RATE_WINDOW
    elif limit.kind == COST:
        spent = used[f"cost:{limit.period}"] or Decimal(0)
        reserved = flight["cost"] or Decimal(0)
        resets_at = bounds[limit.period][1]
    else:
        spent = used[f"tokens:{limit.period}"] or 0
        reserved = flight["tokens"] or 0
        resets_at = bounds[limit.period][1]
    return BudgetLine(
        kind=limit.kind,
        period=limit.period,
        scope=limit.scope,
        limit=limit.value,
        used=spent,
        reserved=reserved,
        resets_at=resets_at,
        budget_id=limit.budget_id,
        group_name=limit.group_name,
    )


def _verdict(lines: list[BudgetLine], now: datetime) -> BudgetVerdict:
    reached = [line for line in lines if line.reached]
    if not reached:
        return BudgetVerdict(allowed=True)
    line = max(reached, key=lambda line: line.resets_at)
    wait = max(1, math.ceil((line.resets_at - now).total_seconds()))
    return BudgetVerdict(
        allowed=False, line=line, message=refusal_message(line, now), retry_after=wait
    )


# --- public API ---------------------------------------------------------------------------


def budget_status(*, user: AbstractBaseUser, now: datetime | None = None) -> list[BudgetLine]:
    """Every limit ``user`` is held to and where they stand (for a usage page): own
    budgets, their groups' and the defaults, in that order. Empty for an exempt staff
    member or when no limit applies. ``now``: an aware datetime (default: now). Reads
    only (no lock): see ``budget_reserve`` for the check that holds under concurrency.
    Raises ValueError for an unsaved (anonymous) user, as every function here does."""
    now = now or timezone.now()
    lines = _lines(user, _limits_for(user), now)
    return sorted(lines, key=lambda line: _SCOPE_ORDER[line.scope])


def budget_check(*, user: AbstractBaseUser, now: datetime | None = None) -> BudgetVerdict:
    """May ``user`` start a reply at ``now`` (aware; default now)? ``BudgetVerdict``:
    allowed, or refused with the limit reached, what is used and when it resets, as a
    translated sentence such as "You have used $5.00 of your $5.00 daily budget. It
    resets at 00:00 (in 5 h 12 min)." Reads only and reserves nothing: two requests at
    once can both pass it, so front doors call ``budget_reserve`` instead; this is for
    showing the state ahead (a disabled Send button, an API pre-flight)."""
    now = now or timezone.now()
    return _verdict(budget_status(user=user, now=now), now)


def reservation_estimate(
    *, provider: str, model: str, input_tokens: int, max_output_tokens: int | None
) -> tuple[int, Decimal]:
    """The largest a reply may be: ``(tokens, cost in US dollars)``. Tokens are
    ``input_tokens`` (an estimate of the prompt) plus ``max_output_tokens``, or
    ``CHAT_BUDGET_RESERVE_OUTPUT_TOKENS`` when it is None; the cost is those tokens at the
    model's price (``usage.prices.price_for``), 0 when no price is known."""
    input_tokens = max(0, int(input_tokens or 0))
    output = max_output_tokens if max_output_tokens else settings.CHAT_BUDGET_RESERVE_OUTPUT_TOKENS
    output = max(0, int(output))
    price = price_for(provider, model) if provider and model else None
    cost = price.cost(input_tokens, output) if price is not None else Decimal(0)
    return input_tokens + output, cost.quantize(Decimal("1e-10"), rounding=ROUND_HALF_UP)


def _lock(**owner: int) -> None:
    """Lock the BudgetLock row of ``owner`` (user_id= or group_id=) until the end of the
    transaction, creating it the first time (a concurrent creation is tolerated)."""
    locked = BudgetLock.objects.select_for_update().filter(**owner).values_list("pk", flat=True)
    if locked.first() is not None:
        return
    try:
        with transaction.atomic():
            BudgetLock.objects.create(**owner)
    except IntegrityError:
        pass  # another request created it meanwhile: wait for its lock below
    locked.first()


def budget_reserve(
    *,
    user: AbstractBaseUser,
    provider: str = "",
    model: str = "",
    input_tokens: int = 0,
    max_output_tokens: int | None = None,
    now: datetime | None = None,
) -> Reservation:
    """Check ``user``'s budgets and, when allowed, hold a place for the reply about to
    start, so that requests at once are checked one after the other and each sees the
    replies still in flight (the module docstring explains how). ``provider``/``model``
    price the reservation; ``input_tokens`` (estimated prompt) and ``max_output_tokens``
    (the request's max_tokens, None: ``CHAT_BUDGET_RESERVE_OUTPUT_TOKENS``) size it.

    Returns a ``Reservation``: pass its ``id`` to ``budget_settle`` when the reply ends
    (or ``budget_release`` if it never starts). Raises ``BudgetExceeded`` (nothing held)
    when a limit is reached. Sync; call it before the transaction that saves the
    person's message (inside one also works: the lock is then held until it commits).
    ``now``: aware datetime, default now. Raises ValueError for an anonymous user."""
    now = now or timezone.now()
    limits = _limits_for(user)
    if not limits:
        return Reservation(id=None)
    tokens, cost = reservation_estimate(
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        max_output_tokens=max_output_tokens,
    )
    teams = sorted(
        {lim.group_id for lim in limits if lim.scope == SCOPE_GROUP and lim.kind != REQUESTS}
    )
    with transaction.atomic():
        _lock(user_id=user.pk)
        for group_id in teams:
            _lock(group_id=group_id)  # type: ignore[arg-type]
        BudgetReservation.objects.filter(user_id=user.pk, expires_at__lte=now).delete()
        verdict = _verdict(_lines(user, limits, now), now)
        if not verdict.allowed:
            raise BudgetExceeded(verdict)
        row = BudgetReservation.objects.create(
            user_id=user.pk,
            estimated_tokens=tokens,
            estimated_cost=cost,
            created_at=now,
            expires_at=now + timedelta(seconds=max(60, settings.CHAT_STALE_STREAM_SECONDS)),
        )
    return Reservation(id=row.pk, estimated_tokens=tokens, estimated_cost=cost)


def budget_release(*, reservation_id: int | None) -> None:
    """Stop counting a reservation (its reply never started, or its record was written
    by other means). None or an id already released: nothing happens."""
    if reservation_id is not None:
        BudgetReservation.objects.filter(pk=reservation_id).delete()


def budget_settle(*, reservation_id: int | None, **record: Any) -> UsageRecord:
    """Write a reply's usage record (``usage.services.usage_record_write(**record)``,
    same keyword arguments and errors) and release its reservation in one transaction,
    so the real cost replaces the estimate at once. ``reservation_id`` None: only the
    record. Returns the record."""
    from .services import usage_record_write

    with transaction.atomic():
        written = usage_record_write(**record)
        budget_release(reservation_id=reservation_id)
    return written


# --- the refusal, in words ----------------------------------------------------------------


def _usd(amount: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    text = formats.number_format(
        amount.quantize(quantum, rounding=ROUND_HALF_UP), places, force_grouping=True
    )
    return gettext("$%(amount)s") % {"amount": text}


def _count(value: int) -> str:
    return formats.number_format(value, 0, force_grouping=True)


def wait_text(seconds: float) -> str:
    """A wait, for a person: "42 s", "7 min", "5 h 12 min", "3 d 4 h" (translated). Whole
    minutes are rounded up, so the time said is never earlier than the real one."""
    if seconds < 60:
        return gettext("%(s)d s") % {"s": max(1, math.ceil(seconds))}
    minutes = math.ceil(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return gettext("%(d)d d %(h)d h") % {"d": days, "h": hours}
    if hours:
        return gettext("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    return gettext("%(m)d min") % {"m": minutes}


def _used_sentence(line: BudgetLine) -> str:
    if line.kind == COST:
        exponent = line.limit.normalize().as_tuple().exponent  # type: ignore[union-attr]
        places = max(2, min(4, -exponent)) if isinstance(exponent, int) else 2
        values = {"used": _usd(line.total, places), "limit": _usd(line.limit, places)}  # type: ignore[arg-type]
    else:
        values = {"used": _count(line.total), "limit": _count(line.limit)}  # type: ignore[arg-type]
    values["group"] = line.group_name
    team = line.scope == SCOPE_GROUP
    sentences = {
        (False, COST, DAY): gettext("You have used %(used)s of your %(limit)s daily budget."),
        (False, COST, MONTH): gettext("You have used %(used)s of your %(limit)s monthly budget."),
        (False, TOKENS, DAY): gettext("You have used %(used)s of your %(limit)s daily tokens."),
        (False, TOKENS, MONTH): gettext("You have used %(used)s of your %(limit)s monthly tokens."),
        (True, COST, DAY): gettext(
            "Your group “%(group)s” has used %(used)s of its %(limit)s daily budget."
        ),
        (True, COST, MONTH): gettext(
            "Your group “%(group)s” has used %(used)s of its %(limit)s monthly budget."
        ),
        (True, TOKENS, DAY): gettext(
            "Your group “%(group)s” has used %(used)s of its %(limit)s daily tokens."
        ),
        (True, TOKENS, MONTH): gettext(
            "Your group “%(group)s” has used %(used)s of its %(limit)s monthly tokens."
        ),
    }
    return sentences[(team, line.kind, line.period)] % values


def refusal_message(line: BudgetLine, now: datetime) -> str:
    """The translated sentence refusing a reply because ``line`` is reached at ``now``:
    the limit, what is used (replies still being written included, and said so) and when
    it resets, in the server's time zone, with the wait."""
    wait = wait_text((line.resets_at - now).total_seconds())
    if line.kind == REQUESTS:
        parts = [
            gettext(
                "You have sent %(used)s requests in the last minute; your limit is "
                "%(limit)s a minute."
            )
            % {"used": _count(line.total), "limit": _count(line.limit)},  # type: ignore[arg-type]
            gettext("Try again in %(wait)s.") % {"wait": wait},
        ]
        if line.reserved:
            parts.append(gettext("Replies still being written count too."))
        return " ".join(parts)
    local = timezone.localtime(line.resets_at, timezone.get_default_timezone())
    at = {"time": formats.date_format(local, "H:i"), "wait": wait}
    if line.period == DAY:
        resets = gettext("It resets at %(time)s (in %(wait)s).") % at
    else:
        at["date"] = formats.date_format(local, "MONTH_DAY_FORMAT")
        resets = gettext("It resets on %(date)s at %(time)s (in %(wait)s).") % at
    parts = [_used_sentence(line), resets]
    if line.reserved:
        parts.append(gettext("Replies still being written count at their largest possible size."))
    return " ".join(parts)
