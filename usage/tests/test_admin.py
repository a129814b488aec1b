"""Admin: usage records listed read only with the filtered set's totals; model prices
editable, a typed price the administrator's, the package's price one action away."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from usage.models import ModelPrice, UsageRecord
from usage.prices import price_for
from usage.services import usage_record_write

pytestmark = pytest.mark.django_db

RECORDS = reverse("admin:usage_usagerecord_changelist")
PRICES = reverse("admin:usage_modelprice_changelist")


@pytest.fixture
def staff_client() -> Client:
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client = Client()
    client.force_login(admin)
    return client


def record(
    user: User, provider: str, model: str, input_tokens: int, output_tokens: int
) -> UsageRecord:
    return usage_record_write(
        user_id=user.pk,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=None,
        ttft_ms=100,
        duration_ms=900,
        outcome="complete",
    )


def test_record_list_shows_totals_of_the_filtered_set(staff_client: Client, user: User) -> None:
    record(user, "openai", "gpt-4o-mini", 1_000_000, 1_000_000)  # $0.75
    record(user, "openai", "gpt-4o-mini", 2_000_000, 0)  # $0.30
    record(user, "local", "smollm2-135m-instruct", 5, 5)
    record(user, "ollama", "llama3.2", 7, 7)  # no price

    everything = staff_client.get(RECORDS)
    openai_only = staff_client.get(RECORDS, {"provider": "openai"})

    assert everything.status_code == openai_only.status_code == 200
    assert everything.context["usage_totals"]["records"] == 4
    assert everything.context["usage_totals"]["unpriced"] == 1
    totals = openai_only.context["usage_totals"]
    assert (totals["records"], totals["input"], totals["output"]) == (
        2,
        3_000_000,
        1_000_000,
    )
    assert totals["cost_usd"] == Decimal("1.05")
    assert "1.050000" in openai_only.content.decode()


def test_record_list_filters_by_model_source_and_outcome(staff_client: Client, user: User) -> None:
    record(user, "openai", "gpt-4o-mini", 10, 10)

    for query in (
        {"model": "openai/gpt-4o-mini"},
        {"source__exact": "chat"},
        {"outcome__exact": "complete"},
    ):
        response = staff_client.get(RECORDS, query)
        assert response.status_code == 200
        assert response.context["usage_totals"]["records"] == 1


def test_records_are_read_only_in_the_admin(staff_client: Client, user: User) -> None:
    usage = record(user, "openai", "gpt-4o-mini", 10, 10)
    change_url = reverse("admin:usage_usagerecord_change", args=[usage.pk])

    page = staff_client.get(change_url)
    posted = staff_client.post(change_url, {"model": "cheaper", "cost": "0"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    assert staff_client.get(reverse("admin:usage_usagerecord_add")).status_code == 403
    assert (
        staff_client.post(reverse("admin:usage_usagerecord_delete", args=[usage.pk])).status_code
        == 403
    )
    usage.refresh_from_db()
    assert usage.model == "gpt-4o-mini"


def test_price_list_renders(staff_client: Client) -> None:
    ModelPrice.objects.create(
        provider="openai", model="gpt-4o", input_per_mtok=1, output_per_mtok=2
    )

    response = staff_client.get(PRICES)

    assert response.status_code == 200
    assert "gpt-4o" in response.content.decode()


def test_a_price_typed_in_the_admin_becomes_the_administrators(staff_client: Client) -> None:
    price = ModelPrice.objects.create(
        provider="openai",
        model="gpt-4o",
        input_per_mtok=Decimal("2.5"),
        output_per_mtok=10,
        source=ModelPrice.Source.GENAI_PRICES,
    )

    response = staff_client.post(
        reverse("admin:usage_modelprice_change", args=[price.pk]),
        {"provider": "openai", "model": "gpt-4o", "input_per_mtok": "2", "output_per_mtok": "8"},
    )

    assert response.status_code == 302
    price.refresh_from_db()
    assert price.source == "admin"
    assert price_for("openai", "gpt-4o").input_per_mtok == Decimal(2)


def test_adding_a_model_without_prices_takes_the_package_price(staff_client: Client) -> None:
    response = staff_client.post(
        reverse("admin:usage_modelprice_add"),
        {
            "provider": "anthropic",
            "model": "claude-3-5-haiku-latest",
            "input_per_mtok": "",
            "output_per_mtok": "",
        },
    )

    assert response.status_code == 302
    price = ModelPrice.objects.get(model="claude-3-5-haiku-latest")
    assert (price.input_per_mtok, price.output_per_mtok, price.source) == (
        Decimal("0.8"),
        Decimal(4),
        "genai-prices",
    )


def test_adding_an_unknown_model_without_prices_asks_for_them(staff_client: Client) -> None:
    response = staff_client.post(
        reverse("admin:usage_modelprice_add"),
        {"provider": "ollama", "model": "llama3.2", "input_per_mtok": "", "output_per_mtok": ""},
    )

    assert response.status_code == 200
    assert "no price for this model" in response.content.decode()
    assert not ModelPrice.objects.exists()


def test_refresh_action_sets_rows_back_to_the_package_price(staff_client: Client) -> None:
    known = ModelPrice.objects.create(
        provider="openai", model="gpt-4o-mini", input_per_mtok=5, output_per_mtok=5
    )
    unknown = ModelPrice.objects.create(
        provider="ollama", model="llama3.2", input_per_mtok=1, output_per_mtok=1
    )

    response = staff_client.post(
        PRICES,
        {"action": "refresh_from_package", "_selected_action": [known.pk, unknown.pk]},
        follow=True,
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "1 price set from genai-prices" in text
    assert "ollama/llama3.2" in text
    known.refresh_from_db()
    unknown.refresh_from_db()
    assert (known.input_per_mtok, known.source) == (Decimal("0.15"), "genai-prices")
    assert (unknown.input_per_mtok, unknown.source) == (Decimal(1), "admin")
    assert price_for("openai", "gpt-4o-mini").input_per_mtok == Decimal("0.15")


def record_at(
    user: User, when: datetime.datetime, provider: str = "openai", model: str = "gpt-4o-mini"
) -> None:
    UsageRecord.objects.filter(pk=record(user, provider, model, 10, 10).pk).update(created_at=when)


def hierarchy_links(response: Any) -> list[str]:
    return [choice["title"] for choice in response.context["choices"] if "link" in choice]


def test_date_hierarchy_lists_only_periods_with_records(staff_client: Client, user: User) -> None:
    tz = timezone.get_current_timezone()
    record_at(user, datetime.datetime(2025, 12, 31, 23, 0, tzinfo=tz))
    record_at(user, datetime.datetime(2026, 1, 5, 9, 0, tzinfo=tz))
    record_at(user, datetime.datetime(2026, 3, 7, 9, 0, tzinfo=tz))

    years = staff_client.get(RECORDS)
    months = staff_client.get(RECORDS, {"created_at__year": "2026"})
    days = staff_client.get(RECORDS, {"created_at__year": "2026", "created_at__month": "3"})

    assert hierarchy_links(years) == ["2025", "2026"]
    assert hierarchy_links(months) == ["January 2026", "March 2026"]
    assert hierarchy_links(days) == ["March 7"]
    assert days.context["usage_totals"]["records"] == 1


def test_record_list_never_scans_every_row_for_filters_or_dates(
    staff_client: Client, user: User
) -> None:
    """DISTINCT over the table (Django's date hierarchy and value filters) takes seconds
    at a million records; seeks on the indexes take milliseconds."""
    record(user, "openai", "gpt-4o-mini", 10, 10)
    record(user, "anthropic", "claude-3-5-haiku-latest", 10, 10)

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(RECORDS, {"created_at__year": str(timezone.now().year)})

    assert response.status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_model_filter_offers_the_chosen_provider_models(staff_client: Client, user: User) -> None:
    record(user, "openai", "gpt-4o-mini", 10, 10)
    record(user, "openai", "gpt-4o", 10, 10)
    record(user, "anthropic", "claude-3-5-haiku-latest", 10, 10)

    response = staff_client.get(RECORDS, {"provider": "openai"})

    model_filter = next(
        spec for spec in response.context["cl"].filter_specs if spec.parameter_name == "model"
    )
    assert [value for value, _label in model_filter.lookup_choices] == [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
    ]
