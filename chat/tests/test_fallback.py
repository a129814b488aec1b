"""Fallback: when the chosen model fails before its first token (unavailable, rate limited
past its retries, timed out), the next model of the chain answers; the reply records
which one answered and why; after the first token there is no fallback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client

from access.admin import FallbackChainForm
from access.models import FallbackChain, ModelAccessRule
from chat import services
from chat.models import Conversation, Message
from chat.providers import PROVIDER_REGISTRY
from chat.providers.errors import (
    AuthenticationError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
)
from chat.services.fallback import fallback_chain_parse
from chat.tests.conftest import read_stream
from chat.tests.fakes.fake_provider import FakeProvider, Script
from chat.tests.fakes.server import FakeUpstream, JsonResponse
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


class SpareProvider(FakeProvider):
    """A second scripted provider ("spare"), sharing the fake's scripts and calls."""

    label = "Spare"
    default_models = ("spare-1",)


@pytest.fixture(autouse=True)
def _no_retries(settings: Any, fake_provider: type) -> Any:
    settings.LLM_MAX_RETRIES = 0  # "past its retries" at once
    settings.CHAT_RATE_LIMIT_MESSAGES = 0
    PROVIDER_REGISTRY["spare"] = SpareProvider
    yield
    PROVIDER_REGISTRY.pop("spare", None)


def _events(chunks: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in b"".join(chunks).decode().split("\n\n"):
        name = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if name:
            out.append((name, data))
    return out


def _chain(provider: str, model: str, *fallbacks: str) -> FallbackChain:
    return FallbackChain.objects.create(
        provider=provider, model=model, fallbacks="\n".join(fallbacks)
    )


async def test_the_next_model_answers_when_the_first_is_unavailable(
    conversation: Conversation, page_stream: Any, fake_provider: type
) -> None:
    await sync_to_async(_chain)("fake", "fake-small", "fake/fake-large")
    fake_provider.scripts.append(Script(chunks=[], error=UnavailableError(provider="Fake")))
    chunks = await page_stream(conversation, Script(chunks=["Saved", " you"]))
    events = _events(chunks)
    names = [name for name, _data in events]
    assert names[0] == "start" and names[1] == "fallback" and names[-1] == "done"
    fallback = events[1][1]
    assert (fallback["provider"], fallback["model"]) == ("fake", "fake-large")
    assert "fake-small was unavailable" in fallback["note"]
    assert [call["model"] for call in fake_provider.calls] == ["fake-small", "fake-large"]
    reply = await Message.objects.aget(role="assistant")
    assert reply.status == "complete" and reply.content == "Saved you"
    assert (reply.provider, reply.model) == ("fake", "fake-large")
    assert reply.fallback == [{"provider": "fake", "model": "fake-small", "kind": "unavailable"}]
    assert "Answered by fake-large" in reply.fallback_note
    # Metered as the model that answered.
    record = await UsageRecord.objects.aget()
    assert (record.provider, record.model) == ("fake", "fake-large")


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (RateLimitedError(provider="Fake"), "was rate limited"),
        (ProviderTimeoutError(provider="Fake"), "timed out"),
    ],
)
async def test_rate_limits_and_timeouts_fall_back_too(
    conversation: Conversation, start_reply: Any, fake_provider: type, error: Any, why: str
) -> None:
    await sync_to_async(_chain)("fake", "*", "spare/spare-1")
    fake_provider.scripts.append(Script(chunks=[], error=error))
    run = await start_reply(conversation, Script(chunks=["ok"]))
    await run.done()
    reply = await Message.objects.aget(role="assistant")
    assert (reply.provider, reply.model, reply.content) == ("spare", "spare-1", "ok")
    assert why in reply.fallback_note


async def test_no_fallback_after_the_first_token(
    conversation: Conversation, start_reply: Any, fake_provider: type
) -> None:
    await sync_to_async(_chain)("fake", "fake-small", "fake/fake-large")
    run = await start_reply(
        conversation, Script(chunks=["Half an"], error=UnavailableError(provider="Fake"))
    )
    await run.done()
    assert len(fake_provider.calls) == 1  # the text would be duplicated by another model
    reply = await Message.objects.aget(role="assistant")
    assert reply.model == "fake-small" and reply.fallback is None
    assert reply.status in ("error", "incomplete") and "Half an" in reply.content


async def test_a_refused_request_does_not_fall_back(
    conversation: Conversation, start_reply: Any, fake_provider: type
) -> None:
    await sync_to_async(_chain)("fake", "fake-small", "fake/fake-large")
    run = await start_reply(
        conversation, Script(chunks=[], error=AuthenticationError(provider="Fake"))
    )
    await run.done()
    assert len(fake_provider.calls) == 1
    reply = await Message.objects.aget(role="assistant")
    assert reply.status == "error" and reply.model == "fake-small"


async def test_when_every_model_fails_the_reply_says_so(
    conversation: Conversation, start_reply: Any, fake_provider: type
) -> None:
    await sync_to_async(_chain)("fake", "fake-small", "fake/fake-large", "spare/spare-1")
    for _ in range(2):
        fake_provider.scripts.append(Script(chunks=[], error=UnavailableError(provider="Fake")))
    run = await start_reply(conversation, Script(chunks=[], error=RateLimitedError()))
    await run.done()
    assert [c["model"] for c in fake_provider.calls] == ["fake-small", "fake-large", "spare-1"]
    reply = await Message.objects.aget(role="assistant")
    assert reply.status == "error" and reply.error_kind == "rate_limited"
    assert (reply.provider, reply.model) == ("spare", "spare-1")
    assert [a["model"] for a in reply.fallback] == ["fake-small", "fake-large"]
    assert "Spare" in reply.error
    # Nobody answered: the note says each was tried, not "Answered by".
    assert reply.fallback_note == (
        "Tried in turn: fake-small was unavailable and fake-large was unavailable, "
        "then spare-1 failed too."
    )
    failed = next(e for e in run.events if type(e).__name__ == "RunFailed")
    assert failed.fallback_note == reply.fallback_note


async def test_the_conversations_chain_replaces_the_admins(
    conversation: Conversation, start_reply: Any, fake_provider: type
) -> None:
    await sync_to_async(_chain)("fake", "fake-small", "fake/fake-large")
    conversation.fallback_models = ["spare/spare-1"]
    await conversation.asave()
    fake_provider.scripts.append(Script(chunks=[], error=UnavailableError()))
    run = await start_reply(conversation, Script(chunks=["from spare"]))
    await run.done()
    assert [c["model"] for c in fake_provider.calls] == ["fake-small", "spare-1"]


async def test_a_model_the_person_may_not_use_is_skipped(
    conversation: Conversation, user: User, start_reply: Any, fake_provider: type
) -> None:
    def rules() -> None:
        team = Group.objects.create(name="team")
        user.groups.add(team)
        ModelAccessRule.objects.create(group=team, provider="fake", model_pattern="fake-small")
        ModelAccessRule.objects.create(group=team, provider="spare", model_pattern="*")
        _chain("fake", "fake-small", "fake/fake-large", "spare/spare-1")

    await sync_to_async(rules)()
    fake_provider.scripts.append(Script(chunks=[], error=UnavailableError()))
    run = await start_reply(conversation, Script(chunks=["allowed"]))
    await run.done()
    # fake-large is not allowed for this person: never asked.
    assert [c["model"] for c in fake_provider.calls] == ["fake-small", "spare-1"]


async def test_compare_and_continue_do_not_fall_back(
    conversation: Conversation, start_reply: Any, fake_provider: type
) -> None:
    await sync_to_async(_chain)("fake", "*", "spare/spare-1")
    fake_provider.scripts.append(Script(chunks=[], error=UnavailableError()))
    run = await start_reply(
        conversation, None, compare=[("fake", "fake-small"), ("fake", "fake-large")]
    )
    assert run.prepared.fallbacks == ()
    assert all(other.fallbacks == () for other in run.prepared.compared)


async def test_the_page_shows_who_answered_after_a_reload(
    conversation: Conversation, user: User, start_reply: Any, fake_provider: type
) -> None:
    await sync_to_async(_chain)("fake", "fake-small", "fake/fake-large")
    fake_provider.scripts.append(Script(chunks=[], error=UnavailableError()))
    run = await start_reply(conversation, Script(chunks=["hi"]))
    await run.done()

    def page() -> str:
        client = Client()
        client.force_login(user)
        return client.get(f"/c/{conversation.pk}/").content.decode()

    html = await sync_to_async(page)()
    assert "Answered by fake-large: fake-small was unavailable." in html


def test_the_settings_dialog_saves_a_conversations_chain(
    conversation: Conversation, user: User
) -> None:
    client = Client()
    client.force_login(user)
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert 'name="fallback_1"' in page and 'value="fake/fake-large"' in page
    url = f"/c/{conversation.pk}/settings/"
    answer = client.post(
        url,
        {"fallback_1": "spare/spare-1", "fallback_2": "fake/fake-large"},
        HTTP_X_REQUESTED_WITH="fetch",
    )
    assert answer.status_code == 200, answer.content
    conversation.refresh_from_db()
    assert conversation.fallback_models == ["spare/spare-1", "fake/fake-large"]
    page = client.get(f"/c/{conversation.pk}/").content.decode()
    assert '<option value="spare/spare-1" selected>' in page
    bad = client.post(url, {"fallback_1": "nowhere/x"}, HTTP_X_REQUESTED_WITH="fetch")
    assert bad.status_code == 400 and "no provider named “nowhere”" in bad.json()["error"]
    conversation.refresh_from_db()
    assert conversation.fallback_models == ["spare/spare-1", "fake/fake-large"]  # kept


def test_a_forbidden_fallback_is_refused_in_the_settings(
    conversation: Conversation, user: User
) -> None:
    team = Group.objects.create(name="team")
    user.groups.add(team)
    ModelAccessRule.objects.create(group=team, provider="fake", model_pattern="*")
    client = Client()
    client.force_login(user)
    answer = client.post(
        f"/c/{conversation.pk}/settings/",
        {"fallback_1": "spare/spare-1"},
        HTTP_X_REQUESTED_WITH="fetch",
    )
    assert answer.status_code == 400
    assert "spare-1" in answer.json()["error"]


def test_chains_are_validated() -> None:
    assert fallback_chain_parse([" openai/gpt-4o ", "", "openai/gpt-4o", "local/x"]) == [
        ("openai", "gpt-4o"),
        ("local", "x"),
    ]
    with pytest.raises(ValidationError, match="provider/model"):
        fallback_chain_parse(["gpt-4o"])
    with pytest.raises(ValidationError, match="at most 3"):
        fallback_chain_parse(["local/a", "local/b", "local/c", "local/d"])
    form = FallbackChainForm(
        data={"provider": "openai", "model": "gpt-4o", "fallbacks": "anthropic claude"}
    )
    assert not form.is_valid() and "provider/model" in str(form.errors["fallbacks"])
    form = FallbackChainForm(
        data={"provider": "openai", "model": "", "fallbacks": "local/smollm2\nlocal/smollm2"}
    )
    assert form.is_valid(), form.errors
    chain = form.save()
    assert (chain.model, chain.chain) == ("*", ["local/smollm2"])
    form = FallbackChainForm(
        data={"provider": "local", "model": "smollm2", "fallbacks": "local/smollm2"}
    )
    assert not form.is_valid() and "its own fallback" in str(form.errors["fallbacks"])


async def test_an_sdk_provider_failing_with_503_falls_back(
    settings: Any, user: User, upstream: FakeUpstream, fake_provider: type
) -> None:
    """The real openai SDK against a fake upstream answering 503: the fake answers."""
    settings.OPENAI_API_KEY = "test-key-openai-fallback"
    settings.OPENAI_BASE_URL = upstream.url + "/v1"
    upstream.add(
        "POST",
        "/v1/chat/completions",
        JsonResponse({"error": {"message": "overloaded", "type": "server_error"}}, status=503),
    )

    def setup() -> Conversation:
        _chain("openai", "gpt-4o-mini", "fake/fake-small")
        return Conversation.objects.create(owner=user, provider="openai", model="gpt-4o-mini")

    conversation = await sync_to_async(setup)()
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=conversation, action="send", content="Hi"
    )
    run = services.get_hub().start_run(prepared)
    chunks = await read_stream(services.run_follow(run))
    assert [name for name, _ in _events(chunks)][:2] == ["start", "fallback"]
    assert len(upstream.requests) == 1
    reply = await Message.objects.aget(role="assistant")
    assert (reply.provider, reply.model, reply.status) == ("fake", "fake-small", "complete")
    assert reply.fallback[0] == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "kind": "unavailable",
    }
