"""The usage pages: a person's own usage at /usage/ and the admin dashboard at
/admin/usage/dashboard/ (staff with the "view usage record" permission), with charts
drawn on the server, tables beside them and a constant number of queries."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from usage.models import UsageRecord
from usage.services import usage_daily_add
from usage.templatetags.usage_charts import format_compact, format_usd

pytestmark = pytest.mark.django_db

MINE = "/usage/"
DASHBOARD = "/admin/usage/dashboard/"


def make(
    user: User | None,
    *,
    days_ago: int = 0,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    input_tokens: int | None = 1000,
    output_tokens: int | None = 500,
    cost: str | None = "0.25",
    outcome: str = UsageRecord.Outcome.COMPLETE,
) -> UsageRecord:
    record = UsageRecord.objects.create(
        user=user,
        source=UsageRecord.Source.CHAT,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=None if cost is None else Decimal(cost),
        outcome=outcome,
        created_at=timezone.now() - datetime.timedelta(days=days_ago),
    )
    usage_daily_add(record)  # as usage_record_write does
    return record


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


def totals(html: str) -> dict[str, str]:
    """The totals block: {label: value}."""
    block = html.split('class="usage-totals"', 1)[1].split("</dl>", 1)[0]
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)(?: <small>.*?</small>)?</dd>", block)
    return dict(pairs)


# --- A person's page ----------------------------------------------------------------------


def test_usage_page_needs_sign_in() -> None:
    response = Client().get(MINE)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_person_sees_own_totals_models_and_charts_only(alice: User) -> None:
    bob = User.objects.create_user("bob")
    make(alice, input_tokens=1200, output_tokens=300, cost="0.5")
    make(alice, days_ago=3, provider="anthropic", model="claude-haiku", cost="1.25")
    make(alice, days_ago=3, provider="ollama", model="llama3.2", cost=None)
    make(bob, model="bobs-secret-model", cost="99")

    response = signed_in(alice).get(MINE)

    html = response.content.decode()
    assert response.status_code == 200
    assert totals(html) == {
        "Requests": "3",
        "Input tokens": "3,200",
        "Output tokens": "1,300",
        "Cost": "$1.75",
        "Errors": "0",
    }
    assert "claude-haiku" in html and "llama3.2" in html
    assert "bobs-secret-model" not in html and "$99" not in html
    assert "1 request used a model without a known price" in html
    assert html.count('role="img"') == 2  # cost and tokens per day
    assert "<title" in html and "Cost per day (USD)" in html


def test_unknown_cost_shows_a_dash_not_zero(alice: User) -> None:
    make(alice, provider="ollama", model="llama3.2", cost=None)

    html = signed_in(alice).get(MINE).content.decode()

    assert totals(html)["Cost"] == "—"
    model_row = html.split("llama3.2</th>", 1)[1].split("</tr>", 1)[0]
    assert "—" in model_row and "$" not in model_row


def test_empty_period_says_so_without_charts(alice: User) -> None:
    make(alice, days_ago=20)

    html = signed_in(alice).get(MINE, {"period": "7d"}).content.decode()

    assert "No usage in this period" in html
    assert 'role="img"' not in html


@pytest.mark.parametrize(("period", "requests"), [("7d", "1"), ("30d", "2"), ("90d", "3")])
def test_period_choice_limits_the_records(alice: User, period: str, requests: str) -> None:
    make(alice, days_ago=1)
    make(alice, days_ago=10)
    make(alice, days_ago=60)
    make(alice, days_ago=200)

    html = signed_in(alice).get(MINE, {"period": period}).content.decode()

    assert totals(html)["Requests"] == requests
    assert f'<option value="{period}" selected>' in html


def test_month_period_and_a_malformed_period(alice: User) -> None:
    make(alice)
    this_month = timezone.localdate().strftime("%Y-%m")
    client = signed_in(alice)

    month = client.get(MINE, {"period": this_month}).content.decode()
    malformed = client.get(MINE, {"period": "'; DROP TABLE"})

    assert f'<option value="{this_month}" selected>' in month
    assert totals(month)["Requests"] == "1"
    assert malformed.status_code == 200
    assert '<option value="30d" selected>' in malformed.content.decode()


def test_a_year_is_tabled_by_month_and_shorter_periods_by_day(alice: User) -> None:
    make(alice, cost="0.5")
    make(alice, cost="0.25")
    month = timezone.localdate().strftime("%Y-%m")
    client = signed_in(alice)

    year = client.get(MINE, {"period": "365d"}).content.decode()
    week = client.get(MINE, {"period": "7d"}).content.decode()

    assert "The numbers per month, as a table" in year
    assert year.count(f'<time datetime="{month}">') == 1  # months without usage left out
    row = year.split(f'<time datetime="{month}">', 1)[1].split("</tr>", 1)[0]
    assert ">2</td>" in row and "$0.75" in row
    assert "The numbers per day, as a table" in week


def test_usage_page_has_no_inline_style_or_script(alice: User) -> None:
    """The page's Content-Security-Policy forbids inline styles: the charts use none."""
    make(alice)

    html = signed_in(alice).get(MINE).content.decode()

    assert "style=" not in html
    assert "<script>" not in html


def test_usage_page_query_count_does_not_grow_with_records(alice: User) -> None:
    make(alice)
    client = signed_in(alice)
    client.get(MINE)  # warm up (session, content types)
    with CaptureQueriesContext(connection) as few:
        client.get(MINE, {"period": "365d"})
    for n in range(40):
        make(
            alice, days_ago=n * 7, model=f"model-{n % 9}", outcome="error" if n % 5 else "complete"
        )
    with CaptureQueriesContext(connection) as many:
        client.get(MINE, {"period": "365d"})

    assert len(few) == len(many) <= 4


def test_chat_page_links_to_the_usage_page(alice: User) -> None:
    html = signed_in(alice).get("/").content.decode()

    assert 'href="/usage/"' in html


# --- The admin dashboard -----------------------------------------------------------------


def test_dashboard_sends_anonymous_and_non_staff_to_the_admin_sign_in(alice: User) -> None:
    for client in (Client(), signed_in(alice)):
        response = client.get(DASHBOARD)

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_dashboard_refuses_staff_without_permission_to_view_usage(alice: User) -> None:
    alice.is_staff = True
    alice.save()

    assert signed_in(alice).get(DASHBOARD).status_code == 403


def test_dashboard_open_to_staff_allowed_to_view_usage(alice: User) -> None:
    alice.is_staff = True
    alice.save()
    alice.user_permissions.add(Permission.objects.get(codename="view_usagerecord"))

    assert signed_in(alice).get(DASHBOARD).status_code == 200


def test_dashboard_totals_top_people_and_models(alice: User) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    bob = User.objects.create_user("bob")
    make(alice, cost="2", input_tokens=100, output_tokens=10)
    make(alice, days_ago=2, cost="1", outcome="error", input_tokens=100, output_tokens=10)
    make(bob, model="gpt-4o", cost="0.5", input_tokens=40, output_tokens=2)
    make(bob, days_ago=100, cost="1000")  # outside the period

    response = signed_in(admin).get(DASHBOARD, {"period": "30d"})

    html = response.content.decode()
    assert response.status_code == 200
    assert totals(html) == {
        "Requests": "3",
        "Input tokens": "240",
        "Output tokens": "22",
        "Cost": "$3.50",
        "Errors": "1",
    }
    people = html.split('id="usage-people-title"', 1)[1].split("</table>", 1)[0]
    assert people.index(">alice</a>") < people.index(">bob</a>")
    models = html.split('id="usage-models-title"', 1)[1].split("</table>", 1)[0]
    assert models.index("gpt-4o-mini</a>") < models.index("gpt-4o</a>")
    assert f"user__id__exact={alice.pk}" in people


def test_dashboard_links_open_the_records_they_sum(alice: User) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    make(alice, cost="2")
    make(alice, days_ago=40, cost="3")
    gone = User.objects.create_user("gone")
    make(gone, cost="0.5", model="gpt-4o")
    gone.delete()
    client = signed_in(admin)

    html = client.get(DASHBOARD, {"period": "30d"}).content.decode()
    links = dict(
        (name, url.replace("&amp;", "&"))
        for url, name in re.findall(r'<a href="([^"]+)">([^<]+)</a>', html)
    )
    alices = client.get(links["alice"])
    deleted = client.get(links["(deleted accounts)"])

    assert alices.status_code == deleted.status_code == 200
    assert alices.context["usage_totals"]["records"] == 1
    assert alices.context["usage_totals"]["cost_usd"] == Decimal("2")
    assert deleted.context["usage_totals"]["records"] == 1
    assert deleted.context["usage_totals"]["cost_usd"] == Decimal("0.5")


def test_dashboard_query_count_does_not_grow_with_records(alice: User) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    make(alice)
    client = signed_in(admin)
    client.get(DASHBOARD)
    with CaptureQueriesContext(connection) as few:
        client.get(DASHBOARD, {"period": "365d"})
    for n in range(40):
        person = User.objects.create_user(f"p{n}")
        make(person, days_ago=n * 7, model=f"model-{n % 13}")
    with CaptureQueriesContext(connection) as many:
        client.get(DASHBOARD, {"period": "365d"})

    assert len(few) == len(many)


def test_dashboard_empty_period(alice: User) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-123")

    html = signed_in(admin).get(DASHBOARD).content.decode()

    assert "No usage in this period." in html


# --- Numbers as people read them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (Decimal(0), "$0.00"),
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0.42"), "$0.42"),
        (Decimal("0.0421337"), "$0.04213"),
        (Decimal("0.000123456"), "$0.000123"),
        (Decimal("0.0000000005"), "< $0.000001"),
    ],
)
def test_costs_in_dollars_with_sensible_precision(value: Decimal | None, text: str) -> None:
    with translation.override("en"):
        assert format_usd(value) == text


def test_chart_axis_counts_are_compact() -> None:
    with translation.override("en"):
        assert [format_compact(v) for v in (950, 12_000, 1_500_000, 2_000_000)] == [
            "950",
            "12K",
            "1.5M",
            "2M",
        ]


def test_the_usage_records_admin_links_to_the_dashboard(client: Client) -> None:
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw-boss-12345"))
    html = client.get("/admin/usage/usagerecord/").content.decode()
    assert 'href="/admin/usage/dashboard/"' in html
