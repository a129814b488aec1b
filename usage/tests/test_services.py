"""usage_record_write: one record per reply, costed with the price fixed on it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User

from usage.models import ModelPrice, UsageRecord
from usage.services import outcome_from_reply, usage_record_write

pytestmark = pytest.mark.django_db


def write(user: User, **overrides: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "user_id": user.pk,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1_000,
        "output_tokens": 500,
        "reasoning_tokens": None,
        "ttft_ms": 320,
        "duration_ms": 2_400,
        "outcome": "complete",
    }
    values.update(overrides)
    return usage_record_write(**values)


def admin_price(model: str, input_price: str, output_price: str) -> ModelPrice:
    return ModelPrice.objects.create(
        provider="openai",
        model=model,
        input_per_mtok=Decimal(input_price),
        output_per_mtok=Decimal(output_price),
    )


def test_record_holds_who_what_and_how_it_went(user: User) -> None:
    record = write(user, api_key_id=7, source="api")

    record.refresh_from_db()
    assert (record.user, record.api_key_id, record.source) == (user, 7, "api")
    assert (record.provider, record.model, record.outcome) == ("openai", "gpt-4o-mini", "complete")
    assert (record.input_tokens, record.output_tokens) == (1_000, 500)
    assert (record.time_to_first_token_ms, record.duration_ms) == (320, 2_400)


def test_cost_is_input_plus_output_at_the_package_price(user: User) -> None:
    record = write(user)  # gpt-4o-mini: $0.15 in, $0.60 out per million

    record.refresh_from_db()
    assert record.cost == Decimal("0.00045")  # 1000 * 0.15e-6 + 500 * 0.6e-6
    assert (record.input_per_mtok, record.output_per_mtok) == (Decimal("0.15"), Decimal("0.6"))


def test_reasoning_tokens_are_counted_once_as_output(user: User) -> None:
    admin_price("o3-mini", "2", "8")

    record = write(
        user, model="o3-mini", input_tokens=1_000, output_tokens=500, reasoning_tokens=300
    )

    record.refresh_from_db()
    # 500 output tokens include the 300 reasoning ones: 1000 x $2 + 500 x $8 per million.
    assert record.cost == Decimal("0.006")
    assert record.reasoning_tokens == 300


def test_price_is_fixed_on_the_record_when_the_price_changes_later(user: User) -> None:
    price = admin_price("gpt-4o-mini", "1", "2")
    before = write(user)

    price.input_per_mtok, price.output_per_mtok = Decimal(10), Decimal(20)
    price.save()
    after = write(user)

    before.refresh_from_db()
    assert (before.cost, before.input_per_mtok, before.output_per_mtok) == (
        Decimal("0.002"),
        Decimal(1),
        Decimal(2),
    )
    assert (after.cost, after.input_per_mtok) == (Decimal("0.02"), Decimal(10))


def test_the_tier_price_for_this_request_size_is_the_one_recorded(user: User) -> None:
    record = write(
        user,
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=250_000,
        output_tokens=1_000,
    )

    record.refresh_from_db()
    assert (record.input_per_mtok, record.output_per_mtok) == (Decimal(6), Decimal("22.5"))
    assert record.cost == Decimal("1.5225")  # 250000 x $6 + 1000 x $22.5 per million


def test_unknown_model_is_recorded_without_a_cost(user: User) -> None:
    record = write(user, provider="ollama", model="llama3.2")

    record.refresh_from_db()
    assert record.cost is None
    assert (record.input_per_mtok, record.output_per_mtok) == (None, None)
    assert record.input_tokens == 1_000


def test_local_model_costs_zero(user: User) -> None:
    record = write(user, provider="local", model="smollm2-135m-instruct")

    record.refresh_from_db()
    assert record.cost == Decimal(0)


def test_no_token_counts_means_unknown_cost_but_the_price_is_kept(user: User) -> None:
    record = write(user, input_tokens=None, output_tokens=None, outcome="stopped")

    record.refresh_from_db()
    assert record.cost is None
    assert record.input_per_mtok == Decimal("0.15")


def test_cost_keeps_a_single_cheap_token(user: User) -> None:
    record = write(
        user, provider="mistral", model="mistral-small-latest", input_tokens=1, output_tokens=0
    )

    record.refresh_from_db()
    assert record.cost == Decimal("0.00000015")


@pytest.mark.parametrize(
    "bad", [{"outcome": "finished"}, {"source": "email"}, {"output_tokens": -1}]
)
def test_bad_values_are_refused_before_anything_is_written(user: User, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        write(user, **bad)
    assert not UsageRecord.objects.exists()


def test_record_outlives_its_reply_and_its_user(user: User) -> None:
    from chat.models import Conversation, Message

    conversation = Conversation.objects.create(owner=user, provider="openai", model="gpt-4o-mini")
    reply = Message.objects.create(conversation=conversation, role="assistant", content="hi")
    record = write(user, reply_id=reply.pk)

    conversation.delete()
    user.delete()

    record.refresh_from_db()
    assert (record.reply_id, record.user_id) == (None, None)
    assert record.cost == Decimal("0.00045")


@pytest.mark.parametrize(
    ("status", "finish_reason", "outcome"),
    [
        ("complete", "stop", "complete"),
        ("incomplete", "length", "incomplete"),
        ("incomplete", "time_limit", "incomplete"),
        ("incomplete", "interrupted", "interrupted"),
        ("stopped", "", "stopped"),
        ("error", "", "error"),
    ],
)
def test_outcome_from_a_reply_status(status: str, finish_reason: str, outcome: str) -> None:
    assert outcome_from_reply(status, finish_reason) == outcome


def test_a_reply_still_streaming_has_no_outcome() -> None:
    with pytest.raises(ValueError):
        outcome_from_reply("streaming")


def test_a_free_model_costs_nothing_even_without_token_counts(user: User) -> None:
    """The local model is free: a reply it did not count (it failed, it was stopped
    before any text) costs $0, not "no known price"."""
    record = write(
        user,
        provider="local",
        model="smollm2-135m-instruct",
        input_tokens=None,
        output_tokens=None,
        outcome="error",
    )
    record.refresh_from_db()
    assert record.cost == Decimal(0)
