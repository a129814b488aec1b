"""The OpenAI-compatible API with the official ``openai`` SDK as the client (issue 12):
the SDK talks to the app through httpx's ASGI transport (no network), the app answers
with the scripted fake provider. Streamed and whole completions, usage, reasoning, the
model list, OpenAI-shaped errors for bad keys, unknown models and bad requests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx
import openai
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from accounts.services import api_key_revoke
from chat.models import Conversation, Message
from chat.providers.errors import RateLimitedError
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_whole_completion_has_the_text_usage_and_finish_reason(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["Hello", " there"], usage=(12, 4)))
    completion = await client.chat.completions.create(
        model="fake/fake-small",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "fake/fake-small"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 4)
    sent = fake_provider.calls[-1]
    assert sent["model"] == "fake-small"
    assert sent["messages"][-1] == {"role": "user", "content": "Hi"}
    assert sent["options"].temperature == 0.2 and sent["options"].max_tokens == 50
    # Not stored as a conversation.
    assert not await Conversation.objects.aexists()
    assert not await Message.objects.aexists()


async def test_a_streamed_completion_arrives_in_chunks_with_usage_last(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts.append(
        Script(reasoning=["Let me think."], chunks=["One", " two", " three"], usage=(9, 7))
    )
    stream = await client.chat.completions.create(
        model="fake/fake-small",
        messages=[{"role": "user", "content": "Count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, reasoning, finish, usage = [], [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
            finish = choice.finish_reason or finish
    assert "".join(text) == "One two three"
    assert "".join(reasoning) == "Let me think."
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 7


async def test_a_cut_reply_finishes_with_length(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["Half"], finish="length"))
    completion = await client.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": "Tell all"}]
    )
    assert completion.choices[0].finish_reason == "length"


async def test_the_model_list_names_models_provider_slash_model(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    models = [m.id async for m in client.models.list()]
    assert "fake/fake-small" in models and "fake/fake-large" in models


async def test_a_bad_key_gets_openai_shaped_401(fake_provider: type) -> None:
    from chat_ai.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        bad = openai.AsyncOpenAI(
            api_key="cai_not-a-key", base_url="http://testserver/v1", http_client=http
        )
        with pytest.raises(openai.AuthenticationError) as refused:
            await bad.chat.completions.create(
                model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}]
            )
        assert refused.value.code == "invalid_api_key"
        response = await http.post("/v1/chat/completions", json={})
        assert response.status_code == 401
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_a_revoked_key_stops_working_at_once(
    client: openai.AsyncOpenAI, alice: User, raw_key: str, fake_provider: type
) -> None:
    await client.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}]
    )
    from accounts.models import ApiKey

    key = await ApiKey.objects.aget(user=alice)
    await sync_to_async(api_key_revoke)(key_id=key.pk, by=alice)
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(
            model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}]
        )


@pytest.mark.parametrize(
    ("model", "status"),
    [("fake/no-such-model", 404), ("nope/x", 404), ("gpt-4o", 400)],
)
async def test_an_unknown_or_badly_named_model_is_refused(
    client: openai.AsyncOpenAI, fake_provider: type, model: str, status: int
) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.status_code == status
    assert "model" in refused.value.message
    assert fake_provider.calls == []


@pytest.mark.parametrize(
    "fields",
    [
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}], "temperature": 7},
        {"messages": [{"role": "user", "content": "hi"}], "n": 3},
    ],
    ids=["no-messages", "bad-role", "temperature", "n"],
)
async def test_bad_requests_get_a_clear_400(
    client: openai.AsyncOpenAI, fake_provider: type, fields: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="fake/fake-small", **fields)
    assert refused.value.message
    assert fake_provider.calls == []


async def test_a_provider_failure_before_the_first_token_is_an_http_error(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts += [  # the first try and every retry
        Script(chunks=[], error=RateLimitedError("slow down", provider="Fake", status_code=429))
        for _ in range(5)
    ]
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}]
        )


async def test_a_client_that_goes_away_stops_the_upstream_request(
    alice: User, raw_key: str, fake_provider: type
) -> None:
    """Unlike the chat page (whose replies outlive the tab), an API stream nobody reads
    is stopped: the server cancels the task sending the response when the client
    disconnects (Django's ASGI handler), and that cancels the provider's request."""
    from django.test import AsyncRequestFactory

    from api.views import chat_completions
    from chat import services

    fake_provider.scripts.append(Script(chunks=[f"w{i} " for i in range(200)], pause=0.02))
    request = AsyncRequestFactory().post(
        "/v1/chat/completions",
        data={
            "model": "fake/fake-small",
            "stream": True,
            "messages": [{"role": "user", "content": "Go"}],
        },
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw_key}"},
    )
    response = await chat_completions(request)
    received: list[bytes] = []

    async def client() -> None:
        async for chunk in response.streaming_content:
            received.append(chunk)

    reading = asyncio.create_task(client())
    async with asyncio.timeout(5):
        while len(received) < 3:
            await asyncio.sleep(0.01)
    reading.cancel()  # the client went away
    async with asyncio.timeout(5):
        await services.get_hub().wait_idle()
    assert b"chat.completion.chunk" in received[0]
    assert fake_provider.cancelled == [True]
    assert len(b"".join(received)) < 200 * 20  # it did not run to its end


async def test_access_rules_limit_the_model_list_and_refuse_others_with_403(
    client: openai.AsyncOpenAI, alice: User, fake_provider: type
) -> None:
    from django.contrib.auth.models import Group

    from access.models import ModelAccessRule

    group = await Group.objects.acreate(name="interns")
    await group.user_set.aadd(alice)
    await ModelAccessRule.objects.acreate(group=group, provider="fake", model_pattern="fake-small")
    models = [m.id async for m in client.models.list()]
    assert "fake/fake-small" in models and "fake/fake-large" not in models
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(
            model="fake/fake-large", messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.code == "model_not_allowed"
    assert fake_provider.calls == []


async def test_an_api_call_is_metered_with_its_key(
    client: openai.AsyncOpenAI, alice: User, fake_provider: type
) -> None:
    from accounts.models import ApiKey
    from usage.models import UsageRecord

    fake_provider.scripts.append(Script(chunks=["Hi"], usage=(30, 5)))
    await client.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}]
    )
    record = await UsageRecord.objects.aget()
    key = await ApiKey.objects.aget(user=alice)
    assert (record.source, record.user_id, record.api_key_id) == ("api", alice.pk, key.pk)
    assert (record.input_tokens, record.output_tokens, record.reply_id) == (30, 5, None)


async def test_a_spent_budget_gets_429_insufficient_quota_with_retry_after(
    client: openai.AsyncOpenAI, alice: User, fake_provider: type
) -> None:
    from usage.models import Budget

    await Budget.objects.acreate(user=alice, period="day", max_tokens=10)
    fake_provider.scripts.append(Script(chunks=["Hi"], usage=(30, 5)))
    await client.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}]
    )
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(
            model="fake/fake-small", messages=[{"role": "user", "content": "Again"}]
        )
    assert refused.value.code == "insufficient_quota"
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert "resets" in refused.value.message
    assert len(fake_provider.calls) == 1
