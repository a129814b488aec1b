"""Where a model's price comes from: the genai-prices package (offline), an admin's
price, nothing for unknown models, zero for the local model.

The package's figures asserted here are those of the pinned genai-prices 0.2.3; the
network guard (conftest.py) fails any test whose lookup tried to fetch prices."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from usage.models import ModelPrice
from usage.prices import Price, price_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("provider", "model", "input_price", "output_price"),
    [
        ("openai", "gpt-4o-mini", "0.15", "0.6"),
        ("openai", "gpt-4o", "2.5", "10"),
        ("anthropic", "claude-3-5-haiku-latest", "0.8", "4"),
        ("anthropic", "claude-sonnet-4-5-20250929", "3", "15"),
        ("google", "gemini-2.5-flash", "0.3", "2.5"),
        ("mistral", "mistral-small-latest", "0.15", "0.6"),
    ],
)
def test_known_models_are_priced_from_the_package(
    provider: str, model: str, input_price: str, output_price: str
) -> None:
    price = price_for(provider, model)

    assert price is not None
    assert price.source == "genai-prices"
    assert (price.input_per_mtok, price.output_per_mtok) == (
        Decimal(input_price),
        Decimal(output_price),
    )


def test_gemini_full_resource_name_finds_the_same_price() -> None:
    assert price_for("google", "models/gemini-2.5-flash") == price_for("google", "gemini-2.5-flash")


def test_cost_matches_the_package_own_calculation_above_a_tier() -> None:
    """Claude Sonnet 4.5 costs more per token above 200,000 input tokens."""
    price = price_for("anthropic", "claude-sonnet-4-5")
    assert price is not None

    for input_tokens in (1_000, 250_000):
        expected = calc_price(
            Usage(input_tokens=input_tokens, output_tokens=2_000),
            "claude-sonnet-4-5",
            provider_id="anthropic",
        ).total_price
        assert price.cost(input_tokens, 2_000) == expected
    assert price.for_request(250_000).input_per_mtok == Decimal("6")


def test_a_price_set_in_the_admin_wins_over_the_package() -> None:
    ModelPrice.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        input_per_mtok=Decimal("1.5"),
        output_per_mtok=Decimal("7"),
        source=ModelPrice.Source.ADMIN,
    )

    assert price_for("openai", "gpt-4o-mini") == Price(Decimal("1.5"), Decimal("7"), "admin")


def test_a_copied_package_row_does_not_hide_the_package_current_price() -> None:
    ModelPrice.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        input_per_mtok=Decimal("9"),
        output_per_mtok=Decimal("9"),
        source=ModelPrice.Source.GENAI_PRICES,
    )

    price = price_for("openai", "gpt-4o-mini")

    assert price is not None
    assert (price.input_per_mtok, price.source) == (Decimal("0.15"), "genai-prices")


def test_a_copied_package_row_prices_a_model_the_package_no_longer_lists() -> None:
    ModelPrice.objects.create(
        provider="openai",
        model="gpt-retired",
        input_per_mtok=Decimal("4"),
        output_per_mtok=Decimal("8"),
        source=ModelPrice.Source.GENAI_PRICES,
    )

    assert price_for("openai", "gpt-retired") == Price(Decimal(4), Decimal(8), "genai-prices")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "no-such-model"),
        ("anthropic", ""),
        ("ollama", "llama3.2"),  # an OpenAI-compatible endpoint
        ("openrouter", "openai/gpt-4o"),
    ],
)
def test_unknown_models_and_compatible_endpoints_have_no_price(provider: str, model: str) -> None:
    assert price_for(provider, model) is None


def test_an_admin_can_price_a_compatible_endpoint_model() -> None:
    ModelPrice.objects.create(
        provider="ollama", model="llama3.2", input_per_mtok=1, output_per_mtok=2
    )

    assert price_for("ollama", "llama3.2") == Price(Decimal(1), Decimal(2), "admin")


def test_the_local_model_costs_nothing() -> None:
    assert price_for("local", "smollm2-135m-instruct") == Price(Decimal(0), Decimal(0), "local")


def test_prices_are_cached_but_a_saved_price_applies_at_once(
    django_assert_num_queries: object,
) -> None:
    price_for("openai", "gpt-4o")
    with django_assert_num_queries(0):  # type: ignore[operator]
        price_for("openai", "gpt-4o")

    ModelPrice.objects.create(
        provider="openai", model="gpt-4o", input_per_mtok=1, output_per_mtok=1
    )

    assert price_for("openai", "gpt-4o") == Price(Decimal(1), Decimal(1), "admin")


def test_the_hub_loads_the_price_data_before_the_first_reply(monkeypatch) -> None:
    """Starting the reply hub loads genai-prices in a worker thread, once per process,
    so the first reply's metering does not wait for it."""
    import asyncio

    from chat.services.hub import ReplyHub
    from usage import prices

    calls: list[str] = []
    monkeypatch.setattr(prices, "_warmed", False)
    monkeypatch.setattr(prices, "package_price", lambda p, m: calls.append(f"{p}/{m}"))

    async def boot() -> None:
        ReplyHub().start()
        await asyncio.sleep(0.05)
        ReplyHub().start()
        await asyncio.sleep(0.05)

    asyncio.run(boot())
    assert calls == ["openai/gpt-4o-mini"]
