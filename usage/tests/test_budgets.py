"""Budgets: money, tokens and a request rate per person, per group (a team) and for
everyone; refused with the limit and when it resets; held under concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from usage import budgets
from usage.budgets import (
    BudgetExceeded,
    budget_check,
    budget_release,
    budget_reserve,
    budget_settle,
    budget_status,
)
from usage.models import Budget, BudgetReservation, ModelPrice, UsageRecord
from usage.services import usage_daily_add

pytestmark = pytest.mark.django_db

# 18:48 UTC: 5 h 12 min before the day resets.
NOW = datetime(2026, 3, 10, 18, 48, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _english_utc_no_defaults(settings: Any) -> Iterator[None]:
    settings.TIME_ZONE = "UTC"
    settings.CHAT_BUDGET_STAFF_EXEMPT = False
    for name in (
        "CHAT_BUDGET_DAILY_COST",
        "CHAT_BUDGET_MONTHLY_COST",
        "CHAT_BUDGET_DAILY_TOKENS",
        "CHAT_BUDGET_MONTHLY_TOKENS",
        "CHAT_BUDGET_REQUESTS_PER_MINUTE",
    ):
        setattr(settings, name, None)
    settings.CHAT_BUDGET_RESERVE_OUTPUT_TOKENS = 1_000
    with translation.override("en"):
        yield


def spend(
    user: User,
    *,
    cost: str | None = "0",
    tokens: tuple[int, int] = (0, 0),
    at: datetime = NOW - timedelta(hours=1),
) -> UsageRecord:
    record = UsageRecord.objects.create(
        user=user,
        source="chat",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=None if cost is None else Decimal(cost),
        outcome="complete",
        created_at=at,
    )
    usage_daily_add(record)  # as usage_record_write does
    return record


def member(name: str, group: Group) -> User:
    person = User.objects.create_user(name)
    person.groups.add(group)
    return person


# --- money -----------------------------------------------------------------------------


def test_under_the_daily_money_limit_a_reply_is_allowed(user: User) -> None:
    Budget.objects.create(user=user, period="day", max_cost=Decimal("5"))
    spend(user, cost="4.98")

    verdict = budget_check(user=user, now=NOW)

    assert verdict.allowed
    assert verdict.message == ""


def test_at_the_daily_money_limit_refusal_says_limit_used_and_reset(user: User) -> None:
    Budget.objects.create(user=user, period="day", max_cost=Decimal("5"))
    spend(user, cost="4.98")
    spend(user, cost="0.02")

    verdict = budget_check(user=user, now=NOW)

    assert not verdict.allowed
    assert verdict.message == (
        "You have used $5.00 of your $5.00 daily budget. It resets at 00:00 (in 5 h 12 min)."
    )
    assert verdict.retry_after == 5 * 3600 + 12 * 60
    assert (verdict.line.kind, verdict.line.period, verdict.line.scope) == ("cost", "day", "user")


def test_yesterdays_spend_does_not_count_today(user: User) -> None:
    Budget.objects.create(user=user, period="day", max_cost=Decimal("5"))
    spend(user, cost="9", at=datetime(2026, 3, 9, 23, 59, tzinfo=UTC))

    assert budget_check(user=user, now=NOW).allowed


def test_records_without_a_cost_count_no_money_but_their_tokens(user: User) -> None:
    Budget.objects.create(user=user, period="day", max_cost=Decimal("1"), max_tokens=1_000)
    spend(user, cost=None, tokens=(600, 400))  # a model with no known price

    verdict = budget_check(user=user, now=NOW)

    assert verdict.line.kind == "tokens"
    assert verdict.message.startswith("You have used 1,000 of your 1,000 daily tokens.")


# --- tokens ----------------------------------------------------------------------------


def test_token_limit_counts_input_plus_output(user: User) -> None:
    Budget.objects.create(user=user, period="day", max_tokens=100_000)
    spend(user, tokens=(60_000, 39_999))
    assert budget_check(user=user, now=NOW).allowed

    spend(user, tokens=(1, 0))
    verdict = budget_check(user=user, now=NOW)

    assert verdict.message == (
        "You have used 100,000 of your 100,000 daily tokens. It resets at 00:00 (in 5 h 12 min)."
    )


# --- request rate ----------------------------------------------------------------------


def test_requests_in_the_last_minute_are_limited_and_say_when_to_retry(user: User) -> None:
    Budget.objects.create(user=user, max_requests_per_minute=3)
    spend(user, at=NOW - timedelta(seconds=61))  # outside the minute
    spend(user, at=NOW - timedelta(seconds=40))
    spend(user, at=NOW - timedelta(seconds=10))
    assert budget_check(user=user, now=NOW).allowed

    spend(user, at=NOW - timedelta(seconds=5))
    verdict = budget_check(user=user, now=NOW)

    assert verdict.message == (
        "You have sent 3 requests in the last minute; your limit is 3 a minute. Try again in 20 s."
    )
    assert verdict.retry_after == 20


def test_replies_still_running_count_towards_the_rate(user: User) -> None:
    Budget.objects.create(user=user, max_requests_per_minute=2)
    budget_reserve(user=user, now=NOW)
    budget_reserve(user=user, now=NOW)

    with pytest.raises(BudgetExceeded) as refused:
        budget_reserve(user=user, now=NOW)

    assert refused.value.verdict.message == (
        "You have sent 2 requests in the last minute; your limit is 2 a minute. "
        "Try again in 1 min. Replies still being written count too."
    )


# --- groups (team budgets) ---------------------------------------------------------------


def test_group_budget_counts_its_members_together() -> None:
    team = Group.objects.create(name="Research")
    ann, bob = member("ann", team), member("bob", team)
    outsider = User.objects.create_user("olga")
    Budget.objects.create(group=team, period="month", max_cost=Decimal("5"))
    spend(ann, cost="3")
    spend(outsider, cost="100")
    assert budget_check(user=bob, now=NOW).allowed

    spend(bob, cost="2.5")

    message = (
        "Your group “Research” has used $5.50 of its $5.00 monthly budget. It resets on "
        "April 1 at 00:00 (in 21 d 5 h)."
    )
    assert budget_check(user=ann, now=NOW).message == message
    assert budget_check(user=bob, now=NOW).message == message
    assert budget_check(user=outsider, now=NOW).allowed


def test_group_request_rate_applies_to_each_member_on_their_own() -> None:
    team = Group.objects.create(name="Interns")
    ann, bob = member("ann", team), member("bob", team)
    Budget.objects.create(group=team, max_requests_per_minute=1)
    spend(ann, at=NOW - timedelta(seconds=5))

    assert not budget_check(user=ann, now=NOW).allowed
    assert budget_check(user=bob, now=NOW).allowed


# --- defaults, own budgets, staff ----------------------------------------------------------


def test_defaults_from_settings_hold_everyone(settings: Any, user: User) -> None:
    settings.CHAT_BUDGET_DAILY_COST = Decimal("1")
    spend(user, cost="1.2")

    verdict = budget_check(user=user, now=NOW)

    assert verdict.line.scope == "default"
    assert verdict.message.startswith("You have used $1.20 of your $1.00 daily budget.")


def test_own_budget_replaces_the_default_of_its_kind_and_period(settings: Any, user: User) -> None:
    settings.CHAT_BUDGET_DAILY_COST = Decimal("1")
    settings.CHAT_BUDGET_DAILY_TOKENS = 100
    Budget.objects.create(user=user, period="day", max_cost=Decimal("50"))
    spend(user, cost="10", tokens=(50, 0))
    assert budget_check(user=user, now=NOW).allowed  # $50 replaces $1; 100 tokens still hold

    spend(user, tokens=(50, 0))

    assert budget_check(user=user, now=NOW).line.scope == "default"


def test_staff_are_held_unless_the_setting_exempts_them(settings: Any) -> None:
    boss = User.objects.create_user("boss", is_staff=True)
    settings.CHAT_BUDGET_DAILY_COST = Decimal("1")
    spend(boss, cost="2")
    assert not budget_check(user=boss, now=NOW).allowed

    settings.CHAT_BUDGET_STAFF_EXEMPT = True

    assert budget_check(user=boss, now=NOW).allowed
    assert budget_reserve(user=boss, now=NOW).id is None


def test_no_limit_at_all_costs_one_query_and_reserves_nothing(user: User) -> None:
    with CaptureQueriesContext(connection) as queries:
        reservation = budget_reserve(user=user, now=NOW)

    assert reservation.id is None
    assert len(queries) == 1
    assert not BudgetReservation.objects.exists()


def test_check_is_a_few_aggregate_queries(settings: Any, user: User) -> None:
    settings.CHAT_BUDGET_MONTHLY_TOKENS = 10**9
    team = Group.objects.create(name="Research")
    user.groups.add(team)
    Budget.objects.create(user=user, period="day", max_cost=Decimal("5"))
    Budget.objects.create(user=user, period="month", max_requests_per_minute=10)
    Budget.objects.create(group=team, period="month", max_cost=Decimal("50"))
    for hour in range(1, 6):
        spend(user, cost="0.1", at=NOW - timedelta(hours=hour))

    with CaptureQueriesContext(connection) as queries:
        lines = budget_status(user=user, now=NOW)

    # budgets; the person's records and reservations; the team's records and reservations
    assert len(queries) == 5
    assert {(line.kind, line.scope) for line in lines} == {
        ("cost", "user"),
        ("requests", "user"),
        ("tokens", "default"),
        ("cost", "group"),
    }


# --- calendar periods in the server's time zone --------------------------------------------


def test_month_resets_at_local_midnight_on_the_first(settings: Any, user: User) -> None:
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in winter
    Budget.objects.create(user=user, period="month", max_cost=Decimal("10"))
    # 23:30 on 31 January in Berlin (22:30 UTC): January's spend.
    spend(user, cost="10", at=datetime(2026, 1, 31, 22, 30, tzinfo=UTC))

    before = budget_check(user=user, now=datetime(2026, 1, 31, 22, 50, tzinfo=UTC))
    after = budget_check(user=user, now=datetime(2026, 1, 31, 23, 10, tzinfo=UTC))

    assert before.message == (
        "You have used $10.00 of your $10.00 monthly budget. It resets on February 1 at "
        "00:00 (in 10 min)."
    )
    assert after.allowed  # 00:10 on 1 February in Berlin, still 31 January in UTC


def test_februarys_spend_made_before_utc_midnight_counts_in_february(
    settings: Any, user: User
) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    Budget.objects.create(user=user, period="month", max_cost=Decimal("10"))
    spend(user, cost="10", at=datetime(2026, 1, 31, 23, 5, tzinfo=UTC))  # 00:05, 1 Feb

    assert not budget_check(user=user, now=datetime(2026, 2, 1, 12, tzinfo=UTC)).allowed


# --- reservations: replies in flight -------------------------------------------------------


def gpt_price() -> None:
    # $1 per million input tokens, $2 per million output tokens.
    ModelPrice.objects.create(
        provider="openai", model="gpt-x", input_per_mtok=Decimal(1), output_per_mtok=Decimal(2)
    )


def test_a_reply_in_flight_counts_at_its_largest_size_until_settled(user: User) -> None:
    gpt_price()
    Budget.objects.create(user=user, period="day", max_cost=Decimal("1"))
    spend(user, cost="0.5")
    held = budget_reserve(
        user=user,
        provider="openai",
        model="gpt-x",
        input_tokens=100_000,
        max_output_tokens=200_000,
        now=NOW,
    )
    assert held.estimated_cost == Decimal("0.5")  # 0.1 + 0.4

    verdict = budget_check(user=user, now=NOW)
    assert verdict.message == (
        "You have used $1.00 of your $1.00 daily budget. It resets at 00:00 (in 5 h 12 min). "
        "Replies still being written count at their largest possible size."
    )

    budget_settle(
        reservation_id=held.id,
        user_id=user.pk,
        provider="openai",
        model="gpt-x",
        input_tokens=100_000,
        output_tokens=1_000,  # $0.102: far less than the most it could have cost
        reasoning_tokens=None,
        ttft_ms=100,
        duration_ms=900,
        outcome="complete",
    )

    assert not BudgetReservation.objects.exists()
    assert budget_check(user=user, now=NOW).allowed


def test_released_and_expired_reservations_stop_counting(settings: Any, user: User) -> None:
    settings.CHAT_STALE_STREAM_SECONDS = 900
    Budget.objects.create(user=user, max_requests_per_minute=1)
    held = budget_reserve(user=user, now=NOW)
    assert not budget_check(user=user, now=NOW).allowed

    budget_release(reservation_id=held.id)
    assert budget_check(user=user, now=NOW).allowed

    budget_reserve(user=user, now=NOW)  # its process dies: never settled
    assert budget_check(user=user, now=NOW + timedelta(seconds=901)).allowed


def test_refused_reservation_holds_nothing(user: User) -> None:
    Budget.objects.create(user=user, period="day", max_tokens=10)
    spend(user, tokens=(10, 0))

    with pytest.raises(BudgetExceeded) as refused:
        budget_reserve(user=user, now=NOW)

    assert str(refused.value).startswith("You have used 10 of your 10 daily tokens.")
    assert refused.value.messages == [str(refused.value)]  # shown as a ValidationError
    assert not BudgetReservation.objects.exists()


def test_the_limit_that_resets_last_is_the_one_named(user: User) -> None:
    Budget.objects.create(user=user, period="day", max_cost=Decimal("1"))
    Budget.objects.create(user=user, period="month", max_tokens=10, max_requests_per_minute=1)
    spend(user, cost="2", tokens=(20, 0), at=NOW - timedelta(seconds=5))

    verdict = budget_check(user=user, now=NOW)

    assert (verdict.line.kind, verdict.line.period) == ("tokens", "month")


# --- concurrency ---------------------------------------------------------------------------


def in_thread(work: Any) -> Any:
    """Run ``work()`` in a new thread, with its own database connection (closed after),
    as a request on another worker thread would; return its result or raise its error."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as error:  # raised again below
            result["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def shared_database(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that several threads can use at once. Django tests SQLite on a
    shared-cache in-memory database, whose table locks fail at once ("database table is
    locked") instead of waiting like the file the app runs on: on SQLite, threads use a
    migrated file in ``tmp_path`` with the app's own options (WAL, BEGIN IMMEDIATE, a
    timeout). PostgreSQL's test database is used as it is."""
    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        return
    from django.core.management import call_command

    # New connections (one per thread) read this dictionary.
    monkeypatch.setitem(connection.settings_dict, "NAME", str(tmp_path / "race.sqlite3"))
    in_thread(lambda: call_command("migrate", verbosity=0))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["one person", "two members of a team"])
def test_two_requests_at_once_when_only_one_fits_one_is_refused(
    shared_database: None, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    def arrange() -> tuple[User, User]:
        gpt_price()
        if who == "one person":
            first = second = User.objects.create_user("racer")
            Budget.objects.create(user=first, period="day", max_cost=Decimal("1"))
        else:
            team = Group.objects.create(name="Racers")
            first, second = member("ann", team), member("bob", team)
            Budget.objects.create(group=team, period="day", max_cost=Decimal("1"))
        spend(first, cost="0.95")  # one more reply (at most $0.10) fits, not two
        return first, second

    people = iter(in_thread(arrange))
    # Widen the window between reading what was used and holding the reply, so that
    # without the lock both requests would read $0.95 before either holds anything.
    measured = budgets._lines

    def slow_lines(*args: Any, **kwargs: Any) -> Any:
        lines = measured(*args, **kwargs)
        time.sleep(0.3)
        return lines

    monkeypatch.setattr(budgets, "_lines", slow_lines)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def request(user: User) -> None:
        start.wait()
        try:
            budget_reserve(
                user=user,
                provider="openai",
                model="gpt-x",
                input_tokens=0,
                max_output_tokens=50_000,  # at most $0.10
                now=NOW,
            )
            outcomes.append("allowed")
        except BudgetExceeded:
            outcomes.append("refused")

    racers = [
        threading.Thread(target=in_thread, args=(lambda user=user: request(user),))
        for user in people
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)

    assert sorted(outcomes) == ["allowed", "refused"]
    assert in_thread(BudgetReservation.objects.count) == 1


# --- admin ---------------------------------------------------------------------------------

BUDGET_ADD = "/admin/usage/budget/add/"


@pytest.fixture
def staff_client() -> Any:
    from django.test import Client

    admin = User.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client = Client()
    client.force_login(admin)
    return client


def budget_form(**values: Any) -> dict[str, Any]:
    form = {
        "user": "",
        "group": "",
        "period": "day",
        "max_cost": "",
        "max_tokens": "",
        "max_requests_per_minute": "",
    }
    form.update({key: str(value) for key, value in values.items()})
    return form


def test_admin_form_explains_how_budgets_combine(staff_client: Any) -> None:
    page = staff_client.get(BUDGET_ADD).content.decode()

    assert "A person is held to their own budgets, to every budget of each of their" in page
    assert "A group&#x27;s money and tokens are a team budget" in page
    assert "A limit on a person&#x27;s own budget replaces the default" in page
    assert "unless the setting CHAT_BUDGET_STAFF_EXEMPT is true" in page


def test_admin_adds_a_team_budget_and_lists_it(staff_client: Any) -> None:
    team = Group.objects.create(name="Research")

    response = staff_client.post(BUDGET_ADD, budget_form(group=team.pk, max_cost="50"))

    assert response.status_code == 302
    budget = Budget.objects.get()
    assert (budget.group, budget.period, budget.max_cost) == (team, "day", Decimal("50"))
    assert "group Research" in staff_client.get("/admin/usage/budget/").content.decode()


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"max_cost": "5"}, "Choose a person or a group (one of them, not both)."),
        ({"both": True, "max_cost": "5"}, "Choose a person or a group (one of them, not both)."),
        ({"person": True}, "Set at least one limit: money, tokens or requests per minute."),
        ({"person": True, "max_tokens": "0"}, "Limits must be greater than zero."),
        ({"person": True, "twice": True, "max_cost": "5"}, "already has a budget for this period"),
    ],
)
def test_admin_refuses_a_budget_that_makes_no_sense(
    staff_client: Any, user: User, values: dict[str, Any], error: str
) -> None:
    team = Group.objects.create(name="Research")
    if values.pop("twice", False):
        Budget.objects.create(user=user, period="day", max_tokens=10)
    if values.pop("person", False):
        values["user"] = user.pk
    if values.pop("both", False):
        values.update(user=user.pk, group=team.pk)

    response = staff_client.post(BUDGET_ADD, budget_form(**values))

    assert response.status_code == 200
    assert error in response.content.decode()
