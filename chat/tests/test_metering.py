"""Every reply writes one usage record (issue 12): the chat page's replies, whatever
their outcome, with tokens, times and the cost at the price of the moment."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat import services
from chat.models import Conversation
from chat.providers import UnavailableError
from chat.tests.fakes.fake_provider import Script
from usage.models import ModelPrice, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conversation(fake_provider: type) -> Conversation:
    owner = User.objects.create_user("meter", password="pw-meter-123")
    return Conversation.objects.create(owner=owner, provider="fake", model="fake-small")


async def run(conversation: Conversation, **kwargs: Any) -> services.PreparedReply:
    kwargs.setdefault("action", "send")
    prepared = await sync_to_async(services.reply_prepare)(conversation=conversation, **kwargs)
    await services.get_hub().start_run(prepared).done()
    return prepared


async def test_a_chat_reply_writes_its_usage_with_the_cost(
    conversation: Conversation, fake_provider: type
) -> None:
    await ModelPrice.objects.acreate(
        provider="fake",
        model="fake-small",
        input_per_mtok=Decimal("2"),
        output_per_mtok=Decimal("10"),
        source="admin",
    )
    fake_provider.scripts.append(Script(chunks=["Hi"], usage=(1000, 500), usage_reasoning=200))
    prepared = await run(conversation, content="Hello")
    record = await UsageRecord.objects.aget()
    assert record.user_id == conversation.owner_id and record.source == "chat"
    assert (record.provider, record.model, record.reply_id) == (
        "fake",
        "fake-small",
        prepared.reply_id,
    )
    assert (record.input_tokens, record.output_tokens, record.reasoning_tokens) == (1000, 500, 200)
    assert record.cost == Decimal("0.002") + Decimal("0.005")
    assert record.outcome == "complete" and record.duration_ms is not None


async def test_a_failed_reply_is_metered_as_an_error(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts += [
        Script(chunks=[], usage=None, error=UnavailableError("down", provider="Fake"))
        for _ in range(5)
    ]
    await run(conversation, content="Hello")
    record = await UsageRecord.objects.aget()
    assert record.outcome == "error" and record.input_tokens is None and record.cost is None


async def test_a_reply_stopped_before_the_provider_counted_is_metered_by_estimate(
    conversation: Conversation, fake_provider: type
) -> None:
    """Stopped mid-stream, the provider sends no usage, but it bills what it read and
    wrote: the record estimates both (the history sent, the text received) and prices
    them, so a budget cannot be spent by stopping replies."""
    await ModelPrice.objects.acreate(
        provider="fake",
        model="fake-small",
        input_per_mtok=Decimal("2"),
        output_per_mtok=Decimal("10"),
        source="admin",
    )
    fake_provider.scripts.append(Script(chunks=["word " * 40] * 50, pause=0.05, usage=None))
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=conversation, action="send", content="Tell me a long story " * 20
    )
    run_ = services.get_hub().start_run(prepared)
    while not any(type(e).__name__ == "TextDelta" for e in run_.events):
        await run_.wait(len(run_.events))
    run_.stop()
    await run_.done()
    record = await UsageRecord.objects.aget()
    assert record.outcome == "stopped"
    assert record.input_tokens and record.input_tokens > 100  # the long question
    assert record.output_tokens and record.output_tokens >= 60  # at least one piece
    assert record.cost and record.cost > 0


async def test_a_person_over_their_token_budget_is_refused_and_nothing_saved(
    conversation: Conversation, fake_provider: type
) -> None:
    from django.core.exceptions import ValidationError

    from chat.models import Message
    from usage.models import Budget

    await Budget.objects.acreate(user_id=conversation.owner_id, period="day", max_tokens=20)
    fake_provider.scripts.append(Script(chunks=["Hi"], usage=(15, 10)))
    await run(conversation, content="Hello")  # 25 tokens: this one went over
    before = await Message.objects.acount()
    with pytest.raises(ValidationError) as refused:
        await run(conversation, content="Again")
    assert "25 of your 20" in str(refused.value) or "daily" in str(refused.value)
    assert "resets" in str(refused.value)
    assert await Message.objects.acount() == before
