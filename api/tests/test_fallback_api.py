"""/v1 follows the admin's fallback chains: a model that fails before its first token is
replaced by the next one, and the response names the model that answered."""

from __future__ import annotations

import openai
import pytest

from access.models import FallbackChain
from chat.providers.errors import UnavailableError
from chat.tests.fakes.fake_provider import Script
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _chain(settings: object) -> None:
    """fake-small falls back to fake-large; no retries (past them at once)."""
    settings.LLM_MAX_RETRIES = 0  # type: ignore[attr-defined]
    FallbackChain.objects.create(provider="fake", model="fake-small", fallbacks="fake/fake-large")


async def test_a_whole_completion_comes_from_the_fallback_model(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts += [
        Script(chunks=[], error=UnavailableError(provider="Fake")),
        Script(chunks=["Rescued"]),
    ]
    completion = await client.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content == "Rescued"
    assert completion.model == "fake/fake-large"
    assert [call["model"] for call in fake_provider.calls] == ["fake-small", "fake-large"]
    record = await UsageRecord.objects.aget()
    assert (record.model, record.source) == ("fake-large", "api")


async def test_a_stream_names_the_fallback_model_in_every_chunk(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts += [
        Script(chunks=[], error=UnavailableError(provider="Fake")),
        Script(chunks=["A", "B"]),
    ]
    stream = await client.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert {chunk.model for chunk in chunks} == {"fake/fake-large"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "AB"


async def test_without_a_chain_the_failure_is_the_answer(
    client: openai.AsyncOpenAI, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=[], error=UnavailableError(provider="Fake")))
    with pytest.raises(openai.APIStatusError) as failure:
        await client.chat.completions.create(
            model="fake/fake-large", messages=[{"role": "user", "content": "Hi"}]
        )
    assert failure.value.status_code == 503
