"""OpenAIProvider and OpenAICompatibleProvider: pure mapping, then the real ``openai``
SDK against the loopback fake upstream (chat/tests/fakes/openai_fake.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chat.providers import (
    PROVIDER_REGISTRY,
    AuthenticationError,
    BadRequestError,
    ChatOptions,
    Finish,
    FinishReason,
    ModelNotFoundError,
    NotConfiguredError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ReasoningDelta,
    TextDelta,
    UnavailableError,
    Usage,
    get_provider,
    register_openai_compatible,
)
from chat.providers.base_provider import RetryPolicy
from chat.providers.openai_provider import (
    KEY_PLACEHOLDER,
    OPENING_USER_TURN,
    OpenAICompatibleProvider,
    OpenAIProvider,
    accepts_temperature,
    is_chat_model,
)
from chat.tests.fakes.openai_fake import (
    CloseDelimitedUpstream,
    choice,
    envelope,
    events_response,
    install_openai_error,
    install_openai_models,
    install_openai_stream,
    roles_alternate,
)
from chat.tests.fakes.server import (
    Break,
    FakeUpstream,
    JsonResponse,
    Response,
    StreamResponse,
    sse,
)
from chat.tests.providers import media

KEY = "sk-proj-TESTKEY0123456789abcdefghij"
HELLO = [{"role": "user", "content": "Hello"}]
FAST_RETRIES = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)


def openai_provider(upstream: FakeUpstream, **kwargs: Any) -> OpenAIProvider:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("base_url", upstream.url + "/v1")
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("max_retries", 0)
    return OpenAIProvider(**kwargs)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in stream]


async def collect_until_error(stream: AsyncIterator[Any]) -> tuple[list[Any], ProviderError]:
    events: list[Any] = []
    with pytest.raises(ProviderError) as caught:
        async for event in stream:
            events.append(event)
    return events, caught.value


@pytest.fixture
def registry() -> Iterator[dict[str, Any]]:
    """PROVIDER_REGISTRY, restored after the test."""
    saved = dict(PROVIDER_REGISTRY)
    yield PROVIDER_REGISTRY
    PROVIDER_REGISTRY.clear()
    PROVIDER_REGISTRY.update(saved)


@pytest.fixture
def models_cache(settings: Any) -> None:
    """A fresh, private Django cache for the model-list cache of list_models."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"openai-tests-{uuid.uuid4()}",
        }
    }


# --- Pure: messages, request, model filters -----------------------------------------------


def test_map_messages_puts_one_system_message_first() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    mapped = OpenAIProvider._map_messages(messages, "You are a pirate.")
    assert mapped == [
        {"role": "system", "content": "You are a pirate.\n\nBe brief."},
        *messages[1:],
    ]


def test_map_messages_without_system_prompt_keeps_messages() -> None:
    assert OpenAIProvider._map_messages(HELLO, "  ") == HELLO


def test_map_messages_merges_a_question_asked_again_after_a_failed_reply() -> None:
    # The failed reply is left out of the history, so two user turns meet.
    messages = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "user", "content": "What is the capital of France?!"},
    ]
    assert OpenAIProvider._map_messages(messages) == [
        {
            "role": "user",
            "content": "What is the capital of France?\n\nWhat is the capital of France?!",
        }
    ]


def test_map_messages_drops_blank_turns_and_merges_what_then_meets() -> None:
    messages = [
        {"role": "user", "content": "Tell me a joke"},
        {"role": "assistant", "content": "   "},  # a stopped reply with no text
        {"role": "user", "content": "Another one?"},
        {"role": "assistant", "content": "Why did..."},
        {"role": "assistant", "content": "...the chicken cross?"},
        {"role": "user", "content": ""},
        {"role": "user", "content": "Ha"},
    ]
    assert OpenAIProvider._map_messages(messages) == [
        {"role": "user", "content": "Tell me a joke\n\nAnother one?"},
        {"role": "assistant", "content": "Why did...\n\n...the chicken cross?"},
        {"role": "user", "content": "Ha"},
    ]


def test_map_messages_opens_with_a_user_turn_before_a_greeting() -> None:
    messages = [
        {"role": "assistant", "content": "Hi! I'm Ada. Ask me anything."},
        {"role": "user", "content": "What's your name?"},
    ]
    mapped = OpenAIProvider._map_messages(messages, "Be kind.")
    assert mapped == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": OPENING_USER_TURN},
        *messages,
    ]


@pytest.mark.parametrize(
    "roles",
    [
        ["user", "user"],
        ["user", "user", "user", "assistant", "user"],
        ["assistant", "assistant", "user"],
        ["system", "user", "system", "user"],
        ["user", "assistant", "assistant", "user", "user"],
        ["assistant", "user", "assistant"],
    ],
    ids=lambda roles: "-".join(roles),
)
def test_map_messages_always_gives_a_history_strict_templates_accept(roles: list[str]) -> None:
    messages = [{"role": role, "content": f"turn {i}"} for i, role in enumerate(roles)]
    mapped = OpenAICompatibleProvider._map_messages(messages, "System.")
    assert roles_alternate(mapped)
    assert [m["role"] for m in mapped].count("system") == 1
    texts = "".join(m["content"] for m in mapped)
    assert all(f"turn {i}" in texts for i in range(len(roles)))  # nothing lost


def test_build_request_with_only_blank_turns_raises_bad_request() -> None:
    blank = [{"role": "user", "content": "  "}]
    with pytest.raises(BadRequestError, match="no message to answer"):
        OpenAIProvider(KEY)._build_request(blank, "gpt-4o-mini", ChatOptions(system_prompt="Hi"))


def test_build_request_maps_options_for_openai() -> None:
    provider = OpenAIProvider(KEY)
    options = ChatOptions(system_prompt="Be brief.", temperature=0.2, max_tokens=50)
    request = provider._build_request(HELLO, "gpt-4o-mini", options)
    assert request == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, *HELLO],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_completion_tokens": 50,
    }


def test_build_request_leaves_unset_options_out() -> None:
    request = OpenAIProvider(KEY)._build_request(HELLO, "gpt-4o-mini", ChatOptions())
    assert "temperature" not in request
    assert "max_completion_tokens" not in request
    assert "max_tokens" not in request


def test_build_request_drops_temperature_for_reasoning_models() -> None:
    request = OpenAIProvider(KEY)._build_request(HELLO, "o4-mini", ChatOptions(temperature=0.2))
    assert "temperature" not in request


def test_build_request_sends_max_tokens_for_compatible_servers() -> None:
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:1/v1", name="ollama")
    request = provider._build_request(HELLO, "o4-mini", ChatOptions(temperature=0.3, max_tokens=64))
    assert request["max_tokens"] == 64
    assert "max_completion_tokens" not in request
    assert request["temperature"] == 0.3  # no OpenAI model rules for other servers


@pytest.mark.parametrize(
    ("model_id", "chat"),
    [
        ("gpt-4o-mini", True),
        ("gpt-4.1-2025-04-14", True),
        ("o4-mini", True),
        ("chatgpt-4o-latest", True),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", True),
        ("text-embedding-3-small", False),
        ("whisper-1", False),
        ("tts-1-hd", False),
        ("gpt-4o-mini-tts", False),
        ("dall-e-3", False),
        ("gpt-image-1", False),
        ("omni-moderation-latest", False),
        ("gpt-4o-realtime-preview", False),
        ("gpt-4o-transcribe", False),
        ("gpt-3.5-turbo-instruct", False),
        ("davinci-002", False),
        ("o1-pro", False),
    ],
)
def test_is_chat_model(model_id: str, chat: bool) -> None:
    assert is_chat_model(model_id) is chat


@pytest.mark.parametrize(
    ("model", "accepts"),
    [
        ("gpt-4o", True),
        ("gpt-4.1-mini", True),
        ("gpt-5-chat-latest", True),
        ("o1", False),
        ("o3-mini", False),
        ("o4-mini", False),
        ("gpt-5-mini", False),
    ],
)
def test_accepts_temperature(model: str, accepts: bool) -> None:
    assert accepts_temperature(model) is accepts


def test_default_models_start_with_the_cheap_default() -> None:
    assert OpenAIProvider.default_models[0] == "gpt-4o-mini"
    assert all(is_chat_model(m) for m in OpenAIProvider.default_models)


# --- Configuration and status -------------------------------------------------------------


def test_without_key_status_says_how_to_enable() -> None:
    status = OpenAIProvider().status()
    assert (status.usable, status.reason) == (False, "no API key")
    assert "OPENAI_API_KEY" in status.hint


def test_validate_config_needs_the_key() -> None:
    assert OpenAIProvider(KEY).validate_config() is True
    assert OpenAIProvider("").validate_config() is False


async def test_stream_without_key_raises_not_configured_without_a_request(
    upstream: FakeUpstream,
) -> None:
    provider = openai_provider(upstream, api_key="")
    with pytest.raises(NotConfiguredError):
        await collect(provider.stream(HELLO, "gpt-4o-mini"))
    assert upstream.requests == []


def test_repr_does_not_show_the_key() -> None:
    assert KEY not in repr(OpenAIProvider(KEY))


# --- Streaming through the SDK ------------------------------------------------------------


async def test_stream_yields_text_then_usage_then_finish(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["Hel", "lo"], usage=(12, 3))
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))
    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(12, 3), Finish("stop")]


@pytest.mark.parametrize("reason", ["length", "content_filter"])
async def test_stream_reports_the_finish_reason(upstream: FakeUpstream, reason: str) -> None:
    install_openai_stream(upstream, ["Hi"], finish_reason=reason)
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))
    assert events[-1] == Finish(reason)


async def test_stream_without_usage_chunk_still_finishes(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["Hi"], usage=None)
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))
    assert events == [TextDelta("Hi"), Finish("stop")]


async def test_request_has_path_key_model_messages_and_options(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["ok"])
    options = ChatOptions(system_prompt="Be brief.", temperature=0.5, max_tokens=20)
    await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini", options))
    [request] = upstream.requests
    body = request.json()
    assert (request.method, request.route_path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, *HELLO]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.5
    assert body["max_completion_tokens"] == 20


def test_get_response_returns_the_whole_text(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["Hel", "lo", "!"])
    provider = OpenAIProvider(KEY, base_url=upstream.url + "/v1", max_retries=0)
    assert provider.get_response(HELLO, "gpt-4o-mini", temperature=0.1) == "Hello!"


def test_get_response_returns_a_readable_error_string(upstream: FakeUpstream) -> None:
    install_openai_error(upstream, 401, f"Incorrect API key provided: {KEY}.")
    provider = OpenAIProvider(KEY, base_url=upstream.url + "/v1", max_retries=0)
    answer = provider.get_response(HELLO, "gpt-4o-mini")
    assert answer.startswith("Error: OpenAI: ")
    assert KEY not in answer


# --- Errors -------------------------------------------------------------------------------


async def test_401_raises_authentication_error_without_the_key(upstream: FakeUpstream) -> None:
    install_openai_error(upstream, 401, f"Incorrect API key provided: {KEY}.")
    provider = openai_provider(upstream)
    provider.retry_policy = FAST_RETRIES
    with pytest.raises(AuthenticationError) as caught:
        await collect(provider.stream(HELLO, "gpt-4o-mini"))
    message = str(caught.value)
    assert message.startswith("OpenAI: ")
    assert "OPENAI_API_KEY" in message
    assert KEY not in message and KEY[:12] not in message
    assert len(upstream.requests) == 1  # not retried


async def test_404_unknown_model_raises_model_not_found(upstream: FakeUpstream) -> None:
    install_openai_error(
        upstream, 404, "The model `gpt-9` does not exist or you do not have access to it."
    )
    with pytest.raises(ModelNotFoundError) as caught:
        await collect(openai_provider(upstream).stream(HELLO, "gpt-9"))
    assert "gpt-9" in str(caught.value)


async def test_429_with_retry_after_is_retried_then_succeeds(upstream: FakeUpstream) -> None:
    install_openai_error(upstream, 429, "Rate limit reached", headers={"retry-after": "0"})
    install_openai_stream(upstream, ["after", " wait"])
    provider = openai_provider(upstream)
    provider.retry_policy = FAST_RETRIES
    events = await collect(provider.stream(HELLO, "gpt-4o-mini"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["after", " wait"]
    assert len(upstream.requests) == 2


async def test_429_every_time_raises_rate_limited_with_retry_after(upstream: FakeUpstream) -> None:
    install_openai_error(
        upstream, 429, "Rate limit reached", headers={"retry-after": "0.05"}, default=True
    )
    provider = openai_provider(upstream)
    provider.retry_policy = FAST_RETRIES
    with pytest.raises(RateLimitedError) as caught:
        await collect(provider.stream(HELLO, "gpt-4o-mini"))
    assert caught.value.retry_after == pytest.approx(0.05)
    assert caught.value.status_code == 429
    assert len(upstream.requests) == 3  # the first try and two retries


async def test_500_raises_unavailable(upstream: FakeUpstream) -> None:
    install_openai_error(upstream, 500, "The server had an error", default=True)
    with pytest.raises(UnavailableError) as caught:
        await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))
    assert caught.value.status_code == 500
    assert str(caught.value).startswith("OpenAI: ")


async def test_500_then_success_is_retried(upstream: FakeUpstream) -> None:
    install_openai_error(upstream, 503, "overloaded")
    install_openai_stream(upstream, ["fine"])
    provider = openai_provider(upstream)
    provider.retry_policy = FAST_RETRIES
    events = await collect(provider.stream(HELLO, "gpt-4o-mini"))
    assert TextDelta("fine") in events
    assert len(upstream.requests) == 2


async def test_stream_broken_after_text_raises_without_retry(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["Hel", "lo", " world"], break_after=2)
    install_openai_stream(upstream, ["a retry would duplicate the text"])
    provider = openai_provider(upstream)
    provider.retry_policy = FAST_RETRIES
    events, error = await collect_until_error(provider.stream(HELLO, "gpt-4o-mini"))
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(error, UnavailableError)
    assert len(upstream.requests) == 1


async def test_error_event_inside_the_stream_raises_unavailable(upstream: FakeUpstream) -> None:
    upstream.add(
        "POST",
        "/v1/chat/completions",
        StreamResponse([sse({"error": {"message": "The server is overloaded"}})]),
    )
    with pytest.raises(UnavailableError, match="overloaded"):
        await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))


async def test_unreadable_chunk_raises_unavailable(upstream: FakeUpstream) -> None:
    upstream.add("POST", "/v1/chat/completions", StreamResponse([b"data: {not json\n\n"]))
    with pytest.raises(UnavailableError):
        await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))


async def test_slow_upstream_raises_timeout(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["late"], delay=1.5)
    provider = openai_provider(upstream, timeout=0.3)
    with pytest.raises(ProviderTimeoutError) as caught:
        await collect(provider.stream(HELLO, "gpt-4o-mini"))
    assert str(caught.value).startswith("OpenAI: ")


async def test_refused_connection_raises_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(UnavailableError, match="could not connect"):
        await collect(provider.stream(HELLO, "gpt-4o-mini"))


# --- Stopping ------------------------------------------------------------------------------


async def test_closing_the_consumer_closes_the_upstream_connection(
    upstream: FakeUpstream,
) -> None:
    install_openai_stream(upstream, ["one", " two", " three", " four"], pause=0.2)
    stream = openai_provider(upstream).stream(HELLO, "gpt-4o-mini")
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    [request] = upstream.requests
    assert await asyncio.to_thread(request.client_closed.wait, 1.0)


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    upstream: FakeUpstream,
) -> None:
    install_openai_stream(upstream, ["one", " two", " three", " four"], pause=0.2)
    first = asyncio.Event()

    async def consume() -> None:
        async for event in openai_provider(upstream).stream(HELLO, "gpt-4o-mini"):
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [request] = upstream.requests
    assert await asyncio.to_thread(request.client_closed.wait, 1.0)


# --- Model list ----------------------------------------------------------------------------


async def test_list_models_keeps_chat_models_sorted(
    upstream: FakeUpstream, models_cache: None
) -> None:
    install_openai_models(
        upstream,
        [
            "gpt-4o-mini",
            "text-embedding-3-small",
            "whisper-1",
            "gpt-4.1",
            "dall-e-3",
            "tts-1",
            "omni-moderation-latest",
            "o4-mini",
            "gpt-image-1",
        ],
    )
    provider = openai_provider(upstream)
    assert await provider.list_models() == ["gpt-4.1", "gpt-4o-mini", "o4-mini"]
    assert await provider.list_models() == ["gpt-4.1", "gpt-4o-mini", "o4-mini"]
    assert len(upstream.requests) == 1  # the second answer came from the cache
    [request] = upstream.requests
    assert (request.method, request.route_path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_list_models_falls_back_to_defaults_on_500(
    upstream: FakeUpstream, models_cache: None
) -> None:
    install_openai_error(upstream, 500, "oops", method="GET", path="/v1/models", default=True)
    models = await openai_provider(upstream).list_models()
    assert models == list(OpenAIProvider.default_models)


def test_get_available_models_without_key_gives_defaults(models_cache: None) -> None:
    assert OpenAIProvider("").get_available_models() == list(OpenAIProvider.default_models)


# --- OpenAI-compatible endpoints -----------------------------------------------------------


async def test_compatible_endpoint_streams_without_a_key(
    upstream: FakeUpstream, registry: dict[str, Any]
) -> None:
    register_openai_compatible(
        {"ollama": {"base_url": upstream.url + "/v1", "models": ["llama3.2:1b"], "label": "Ollama"}}
    )
    provider = get_provider("ollama")
    assert provider.label == "Ollama"
    assert provider.status().usable
    install_openai_stream(upstream, ["Hi", " there"], usage=(4, 2), model="llama3.2:1b")
    options = ChatOptions(max_tokens=32)
    events = await collect(provider.stream(HELLO, "llama3.2:1b", options))
    assert events == [TextDelta("Hi"), TextDelta(" there"), Usage(4, 2), Finish("stop")]
    [request] = upstream.requests
    assert request.route_path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY_PLACEHOLDER}"
    assert request.json()["max_tokens"] == 32
    assert "max_completion_tokens" not in request.json()


async def test_compatible_endpoint_sends_its_key_when_set(
    upstream: FakeUpstream, registry: dict[str, Any]
) -> None:
    register_openai_compatible(
        {"openrouter": {"base_url": upstream.url + "/v1", "api_key": "or-key-123"}}
    )
    install_openai_stream(upstream, ["ok"])
    await collect(get_provider("openrouter").stream(HELLO, "meta/llama"))
    assert upstream.requests[0].headers["authorization"] == "Bearer or-key-123"


async def test_compatible_configured_models_need_no_request(
    upstream: FakeUpstream, registry: dict[str, Any]
) -> None:
    register_openai_compatible(
        {"ollama": {"base_url": upstream.url + "/v1", "models": ["qwen2.5:0.5b", "llama3.2:1b"]}}
    )
    assert await get_provider("ollama").list_models() == ["qwen2.5:0.5b", "llama3.2:1b"]
    assert upstream.requests == []


async def test_compatible_live_models_are_not_filtered(
    upstream: FakeUpstream, registry: dict[str, Any], models_cache: None
) -> None:
    register_openai_compatible({"vllm": {"base_url": upstream.url + "/v1"}})
    install_openai_models(upstream, ["nomic-embed-text", "Qwen/Qwen2.5-0.5B"])
    assert await get_provider("vllm").list_models() == ["Qwen/Qwen2.5-0.5B", "nomic-embed-text"]


@pytest.mark.parametrize(
    ("name", "setting"), [("vllm", "VLLM_BASE_URL"), ("lm-studio", "LM_STUDIO_BASE_URL")]
)
def test_compatible_without_base_url_is_unusable_with_hint(
    registry: dict[str, Any], name: str, setting: str
) -> None:
    register_openai_compatible({name: {"base_url": ""}})
    provider = get_provider(name)
    status = provider.status()
    assert (status.usable, status.reason, status.hint) == (False, "no base URL", f"set {setting}")
    assert provider.validate_config() is False


async def test_compatible_without_base_url_raises_not_configured(
    registry: dict[str, Any],
) -> None:
    register_openai_compatible({"vllm": {"base_url": ""}})
    with pytest.raises(NotConfiguredError, match="VLLM_BASE_URL"):
        await collect(get_provider("vllm").stream(HELLO, "some-model"))


async def test_compatible_wrong_path_says_to_check_the_base_url(
    upstream: FakeUpstream, registry: dict[str, Any]
) -> None:
    register_openai_compatible({"ollama": {"base_url": upstream.url}})  # "/v1" forgotten
    with pytest.raises(BadRequestError) as caught:
        await collect(get_provider("ollama").stream(HELLO, "llama3.2:1b"))
    assert not isinstance(caught.value, ModelNotFoundError)
    assert "base URL" in str(caught.value)


async def test_compatible_401_names_its_key_setting(
    upstream: FakeUpstream, registry: dict[str, Any]
) -> None:
    register_openai_compatible({"groq": {"base_url": upstream.url + "/v1", "label": "Groq"}})
    install_openai_error(upstream, 401, "Invalid API Key")
    with pytest.raises(AuthenticationError) as caught:
        await collect(get_provider("groq").stream(HELLO, "llama-3.1-8b-instant"))
    assert str(caught.value).startswith("Groq: ")
    assert "GROQ_API_KEY" in str(caught.value)


# --- History every server accepts (issue 8, item 4) ----------------------------------------


@pytest.mark.parametrize("provider_class", [OpenAIProvider, OpenAICompatibleProvider])
async def test_server_requiring_alternating_roles_accepts_a_user_user_history(
    upstream: FakeUpstream, provider_class: type[OpenAIProvider]
) -> None:
    install_openai_stream(upstream, ["Paris."], require_alternating_roles=True, default=True)
    provider = provider_class(KEY, base_url=upstream.url + "/v1", max_retries=0, name="vllm")
    history = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "user", "content": "What is the capital of France?"},  # asked again
    ]
    events = await collect(provider.stream(history, "some-model", ChatOptions(system_prompt="Hi")))
    assert TextDelta("Paris.") in events
    [request] = upstream.requests
    assert roles_alternate(request.json()["messages"])


# --- Issue 8, items 1-4: shapes, reasoning, finish reasons ---------------------------------


def compatible(upstream: FakeUpstream, **kwargs: Any) -> OpenAICompatibleProvider:
    kwargs.setdefault("base_url", upstream.url + "/v1")
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("name", "compat")
    kwargs.setdefault("label", "Compat")
    return OpenAICompatibleProvider(**kwargs)


def serve(upstream: FakeUpstream, response: Any) -> None:
    upstream.add("POST", "/v1/chat/completions", response)


def content(text: Any, **kwargs: Any) -> dict[str, Any]:
    """A chunk whose delta carries ``content``."""
    return envelope(choices=[choice({"content": text}, **kwargs)])


def finish(reason: str, **fields: Any) -> dict[str, Any]:
    return envelope(choices=[choice({}, finish_reason=reason)], **fields)


USAGE_9_2 = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}


async def test_usage_chunk_without_a_choices_key_ends_a_complete_reply(
    upstream: FakeUpstream,
) -> None:
    serve(
        upstream,
        events_response(
            content("Hello"), content(" world"), finish("stop"), envelope(usage=USAGE_9_2)
        ),
    )
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))
    assert events == [TextDelta("Hello"), TextDelta(" world"), Usage(9, 2), Finish("stop")]


async def test_content_as_typed_parts_gives_reasoning_apart_and_the_text(
    upstream: FakeUpstream,
) -> None:
    thinking = [{"type": "thinking", "thinking": [{"type": "text", "text": "It's a greeting"}]}]
    serve(
        upstream,
        events_response(
            content(thinking),
            content([{"type": "text", "text": "Hello"}]),
            content("!"),
            finish("stop"),
        ),
    )
    events = await collect(compatible(upstream).stream(HELLO, "magistral-medium-2509"))
    assert events == [
        ReasoningDelta("It's a greeting"),
        TextDelta("Hello"),
        TextDelta("!"),
        Finish("stop"),
    ]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_fields_stream_as_reasoning(upstream: FakeUpstream, field: str) -> None:
    serve(
        upstream,
        events_response(
            envelope(choices=[choice({"role": "assistant", "content": None, field: "Let me"})]),
            envelope(choices=[choice({"content": None, field: " think."})]),
            envelope(choices=[choice({"content": "Hi!", field: None})]),
            finish("stop"),
        ),
    )
    events = await collect(compatible(upstream).stream(HELLO, "deepseek-reasoner"))
    assert events == [
        ReasoningDelta("Let me"),
        ReasoningDelta(" think."),
        TextDelta("Hi!"),
        Finish("stop"),
    ]


async def test_both_reasoning_fields_with_the_same_text_count_once(upstream: FakeUpstream) -> None:
    delta = {"reasoning_content": "Same thought", "reasoning": "Same thought"}
    serve(
        upstream, events_response(envelope(choices=[choice(delta)]), content("ok"), finish("stop"))
    )
    events = await collect(compatible(upstream).stream(HELLO, "m"))
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [ReasoningDelta("Same thought")]


async def test_think_block_split_over_chunks_streams_as_reasoning(upstream: FakeUpstream) -> None:
    pieces = ["<th", "ink>\nThe user", " says hi.</th", "ink>\n\nHello", " there"]
    serve(upstream, events_response(*[content(p) for p in pieces], finish("stop")))
    events = await collect(compatible(upstream).stream(HELLO, "qwen3:0.6b"))
    assert events == [
        ReasoningDelta("The user"),
        ReasoningDelta(" says hi."),
        TextDelta("Hello"),
        TextDelta(" there"),
        Finish("stop"),
    ]


async def test_unclosed_think_block_cut_by_the_token_limit_stays_reasoning(
    upstream: FakeUpstream,
) -> None:
    serve(
        upstream,
        events_response(content("<think>Step 1"), content(", step 2"), finish("length")),
    )
    events = await collect(compatible(upstream).stream(HELLO, "qwen3:0.6b"))
    assert events == [ReasoningDelta("Step 1"), ReasoningDelta(", step 2"), Finish("length")]


async def test_usage_reasoning_tokens_are_reported(upstream: FakeUpstream) -> None:
    usage = {
        **USAGE_9_2,
        "completion_tokens": 300,
        "completion_tokens_details": {"reasoning_tokens": 256},
    }
    serve(
        upstream, events_response(content("Hi"), finish("stop"), envelope(choices=[], usage=usage))
    )
    events = await collect(openai_provider(upstream).stream(HELLO, "o4-mini"))
    assert Usage(9, 300, reasoning_tokens=256) in events


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        ("stop", FinishReason.STOP, ""),
        ("length", FinishReason.LENGTH, ""),
        ("content_filter", FinishReason.CONTENT_FILTER, ""),
        ("tool_calls", FinishReason.TOOL_CALLS, ""),
        ("function_call", FinishReason.TOOL_CALLS, "function_call"),
        ("eos_token", FinishReason.STOP, "eos_token"),  # text-generation-inference
        ("max_tokens", FinishReason.LENGTH, "max_tokens"),  # Anthropic's word via a proxy
        ("recitation", "recitation", ""),  # no equivalent: the server's own word
    ],
)
async def test_finish_reasons_are_normalised(
    upstream: FakeUpstream, raw: str, reason: str, detail: str
) -> None:
    serve(upstream, events_response(content("Hi"), finish(raw)))
    events = await collect(compatible(upstream).stream(HELLO, "m"))
    assert events[-1] == Finish(reason, detail)


@pytest.mark.parametrize("done", [True, False], ids=["with-done", "without-done"])
async def test_stream_ending_without_a_finish_reason_is_cut_off(
    upstream: FakeUpstream, done: bool
) -> None:
    serve(
        upstream,
        events_response(content("Step 1. Open the"), content(" settings and"), done=done),
    )
    events = await collect(compatible(upstream).stream(HELLO, "m"))
    assert events == [
        TextDelta("Step 1. Open the"),
        TextDelta(" settings and"),
        Finish(FinishReason.CUT_OFF),
    ]


async def test_body_ended_by_closing_the_connection_without_a_finish_is_cut_off() -> None:
    body = sse(content("Step 1. Open the")) + sse(content(" settings and"))
    with CloseDelimitedUpstream(body) as server:
        provider = OpenAICompatibleProvider(base_url=server.url + "/v1", max_retries=0)
        events = await collect(provider.stream(HELLO, "m"))
    assert events == [
        TextDelta("Step 1. Open the"),
        TextDelta(" settings and"),
        Finish(FinishReason.CUT_OFF),
    ]


AZURE_PROMPT_FILTER = envelope(
    "",
    model="",
    object="",
    created=0,
    choices=[],
    prompt_filter_results=[
        {
            "prompt_index": 0,
            "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
        }
    ],
)


async def test_azure_content_filter_with_no_text_ends_filtered(upstream: FakeUpstream) -> None:
    filtered = {
        "hate": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "high"},
    }
    serve(
        upstream,
        events_response(
            AZURE_PROMPT_FILTER,
            envelope(
                choices=[
                    choice({}, finish_reason="content_filter", content_filter_results=filtered)
                ]
            ),
        ),
    )
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o"))
    assert events == [Finish(FinishReason.CONTENT_FILTER, "violence")]


async def test_azure_prompt_blocked_with_a_400_ends_filtered(upstream: FakeUpstream) -> None:
    body = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": {"filtered": True, "severity": "high"},
                    "sexual": {"filtered": False, "severity": "safe"},
                },
            },
        }
    }
    serve(upstream, JsonResponse(body, status=400))
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o"))
    assert events == [Finish(FinishReason.CONTENT_FILTER, "prompt blocked: hate")]


async def test_reasoning_only_then_length_ends_at_the_token_limit(upstream: FakeUpstream) -> None:
    serve(
        upstream,
        events_response(
            envelope(choices=[choice({"reasoning_content": "First, consider"})]),
            envelope(choices=[choice({"reasoning_content": " the options"})]),
            finish("length"),
        ),
    )
    events = await collect(compatible(upstream).stream(HELLO, "deepseek-reasoner"))
    assert events == [
        ReasoningDelta("First, consider"),
        ReasoningDelta(" the options"),
        Finish("length"),
    ]


async def test_refusal_is_shown_and_ends_as_refused(upstream: FakeUpstream) -> None:
    serve(
        upstream,
        events_response(
            envelope(choices=[choice({"role": "assistant", "content": None, "refusal": ""})]),
            envelope(choices=[choice({"refusal": "I can't help with that."})]),
            finish("stop"),
        ),
    )
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o"))
    assert events == [TextDelta("I can't help with that."), Finish(FinishReason.REFUSAL, "refusal")]


async def test_connection_lost_after_the_finish_reason_keeps_the_reply_complete(
    upstream: FakeUpstream,
) -> None:
    serve(upstream, events_response(content("All done."), finish("stop"), Break(), done=False))
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini"))
    assert events == [TextDelta("All done."), Finish("stop")]


# --- Issue 8, item 5: what real compatible servers send ------------------------------------
#
# Each case is one server's documented or reported stream shape (sources in the ids'
# comments), served by the fake through the real SDK: it either reads as the events
# listed, or fails with a ProviderError of the kind listed and a clear message.

OPENROUTER_COMMENT = b": OPENROUTER PROCESSING\n\n"  # openrouter.ai/docs, "Streaming"
KEEP_ALIVE = b": keep-alive\n\n"  # api-docs.deepseek.com, "Rate Limit"


@dataclass(frozen=True)
class Shape:
    id: str
    response: Callable[[], Response]
    events: list[Any] | None = None  # what the provider yields, in order
    error: type[ProviderError] | None = None  # or the error it raises
    message: str = ""  # a fragment of the error's message
    partial: list[Any] = field(default_factory=list)  # events before the error


READ_SHAPES = [
    Shape(
        "openrouter-processing-comments",
        lambda: events_response(
            OPENROUTER_COMMENT,
            OPENROUTER_COMMENT,
            envelope(choices=[choice({"role": "assistant", "content": ""})]),
            content("Hi"),
            OPENROUTER_COMMENT,
            finish("stop"),
            envelope(choices=[], usage=USAGE_9_2),
        ),
        events=[TextDelta("Hi"), Usage(9, 2), Finish("stop")],
    ),
    Shape(
        "openrouter-reasoning-field-with-reasoning-details",
        lambda: events_response(
            envelope(
                choices=[
                    choice(
                        {
                            "role": "assistant",
                            "content": "",
                            "reasoning": "Weighing it",
                            "reasoning_details": [
                                {"type": "reasoning.text", "text": "Weighing it"}
                            ],
                        }
                    )
                ]
            ),
            content("Yes."),
            finish("stop"),
        ),
        events=[ReasoningDelta("Weighing it"), TextDelta("Yes."), Finish("stop")],
    ),
    Shape(
        "deepseek-keep-alive-reasoning-content-and-usage-in-finish-chunk",
        lambda: events_response(
            KEEP_ALIVE,
            KEEP_ALIVE,
            envelope(
                choices=[
                    choice({"role": "assistant", "content": None, "reasoning_content": ""}),
                ],
            ),
            envelope(choices=[choice({"content": None, "reasoning_content": "Hmm."})]),
            envelope(choices=[choice({"content": "Hello", "reasoning_content": None})]),
            envelope(
                choices=[choice({"content": "", "reasoning_content": None}, finish_reason="stop")],
                usage={
                    "prompt_tokens": 9,
                    "completion_tokens": 20,
                    "total_tokens": 29,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 18},
                    "prompt_cache_hit_tokens": 0,
                    "prompt_cache_miss_tokens": 9,
                },
            ),
        ),
        events=[
            ReasoningDelta("Hmm."),
            TextDelta("Hello"),
            Usage(9, 20, reasoning_tokens=18),
            Finish("stop"),
        ],
    ),
    Shape(
        "groq-usage-under-x_groq",
        lambda: events_response(
            envelope(
                choices=[choice({"role": "assistant", "content": ""})], x_groq={"id": "req_1"}
            ),
            content("Fast"),
            envelope(
                choices=[choice({}, finish_reason="stop")],
                x_groq={
                    "id": "req_1",
                    "usage": {
                        "queue_time": 0.07,
                        "prompt_tokens": 23,
                        "prompt_time": 0.006,
                        "completion_tokens": 19,
                        "completion_time": 0.022,
                        "total_tokens": 42,
                        "total_time": 0.028,
                    },
                },
            ),
        ),
        events=[TextDelta("Fast"), Usage(23, 19), Finish("stop")],
    ),
    Shape(
        "vllm-continuous-usage-on-every-chunk-last-wins",
        lambda: events_response(
            envelope(
                choices=[choice({"content": "a"})], usage={**USAGE_9_2, "completion_tokens": 1}
            ),
            envelope(choices=[choice({"content": "b"})], usage=USAGE_9_2),
            envelope(choices=[choice({}, finish_reason="stop", stop_reason=None)], usage=USAGE_9_2),
        ),
        events=[TextDelta("a"), TextDelta("b"), Usage(9, 2), Finish("stop")],
    ),
    Shape(
        "llamacpp-role-chunk-null-content-timings-usage-in-finish-chunk",
        lambda: events_response(
            {
                "choices": [
                    {
                        "finish_reason": None,
                        "index": 0,
                        "delta": {"role": "assistant", "content": None},
                    }
                ],
                "created": 1,
                "id": "chatcmpl-1",
                "model": "gemma.gguf",
                "system_fingerprint": "b9554",
                "object": "chat.completion.chunk",
            },
            {
                "choices": [{"finish_reason": None, "index": 0, "delta": {"content": "Bonjour"}}],
                "object": "chat.completion.chunk",
                "timings": {"prompt_n": 10, "predicted_n": 1},
            },
            {
                "choices": [{"finish_reason": "stop", "index": 0, "delta": {}}],
                "object": "chat.completion.chunk",
                "usage": USAGE_9_2,
                "timings": {"prompt_n": 10, "predicted_n": 2},
            },
        ),
        events=[TextDelta("Bonjour"), Usage(9, 2), Finish("stop")],
    ),
    Shape(
        "lmstudio-reasoning-content-then-empty-delta-finish",
        lambda: events_response(
            envelope(choices=[choice({"role": "assistant", "reasoning_content": "le"})]),
            envelope(choices=[choice({"role": "assistant", "content": "Joke."})]),
            envelope(choices=[choice({}, finish_reason="stop")]),
        ),
        events=[ReasoningDelta("le"), TextDelta("Joke."), Finish("stop")],
    ),
    Shape(
        "ollama-reasoning-field-with-empty-content-and-usage-chunk",
        lambda: events_response(
            envelope(choices=[choice({"role": "assistant", "content": "", "reasoning": "We"})]),
            envelope(choices=[choice({"content": "", "reasoning": " need"})]),
            envelope(choices=[choice({"content": "42"})]),
            envelope(choices=[choice({"content": ""}, finish_reason="stop")]),
            envelope(choices=[], usage=USAGE_9_2),
        ),
        events=[
            ReasoningDelta("We"),
            ReasoningDelta(" need"),
            TextDelta("42"),
            Usage(9, 2),
            Finish("stop"),
        ],
    ),
    Shape(
        "delta-null-in-the-finish-chunk",
        lambda: events_response(
            content("Hi"), envelope(choices=[choice(None, finish_reason="stop")])
        ),
        events=[TextDelta("Hi"), Finish("stop")],
    ),
    Shape(
        "choice-without-delta-key",
        lambda: events_response(
            content("Hi"), envelope(choices=[{"index": 0, "finish_reason": "stop"}])
        ),
        events=[TextDelta("Hi"), Finish("stop")],
    ),
    Shape(
        "usage-with-null-counts-is-no-usage",
        lambda: events_response(
            content("Hi"),
            finish("stop"),
            envelope(
                choices=[],
                usage={"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
            ),
        ),
        events=[TextDelta("Hi"), Finish("stop")],
    ),
    Shape(
        "usage-with-a-null-prompt-count",
        lambda: events_response(
            content("Hi"),
            finish("stop"),
            envelope(choices=[], usage={"prompt_tokens": None, "completion_tokens": 1}),
        ),
        events=[TextDelta("Hi"), Usage(0, 1), Finish("stop")],
    ),
    Shape(
        "usage-null-on-every-chunk",
        lambda: events_response(content("Hi", usage=None), finish("stop", usage=None)),
        events=[TextDelta("Hi"), Finish("stop")],
    ),
    Shape(
        "litellm-choice-numbered-1",
        lambda: events_response(
            content("Hel", index=1),
            content("lo", index=1),
            content("", index=1, finish_reason="stop"),
        ),
        events=[TextDelta("Hel"), TextDelta("lo"), Finish("stop")],
    ),
    Shape(
        "two-choices-only-the-first-is-the-reply",
        lambda: events_response(
            envelope(choices=[choice({"content": "A"}), choice({"content": "B"}, index=1)]),
            envelope(
                choices=[
                    choice({}, finish_reason="stop"),
                    choice({}, finish_reason="length", index=1),
                ]
            ),
        ),
        events=[TextDelta("A"), Finish("stop")],
    ),
    Shape(
        "empty-string-finish-reason-on-every-chunk",  # LocalAI and some proxies
        lambda: events_response(
            content("Hi", finish_reason=""), content("!", finish_reason="stop")
        ),
        events=[TextDelta("Hi"), TextDelta("!"), Finish("stop")],
    ),
    Shape(
        "azure-annotation-chunks-with-empty-choices",
        lambda: events_response(
            AZURE_PROMPT_FILTER,
            envelope(
                choices=[
                    choice(
                        {"content": "Safe"},
                        content_filter_results={"hate": {"filtered": False, "severity": "safe"}},
                    )
                ]
            ),
            envelope(choices=[], prompt_filter_results=[]),
            finish("stop"),
        ),
        events=[TextDelta("Safe"), Finish("stop")],
    ),
    Shape(
        "mistral-compatible-text-parts-only",
        lambda: events_response(
            content([{"type": "text", "text": "Bon"}]),
            content([{"type": "text", "text": "jour"}]),
            finish("stop"),
        ),
        events=[TextDelta("Bon"), TextDelta("jour"), Finish("stop")],
    ),
    Shape(
        "data-null-event-is-skipped",
        lambda: events_response(b"data: null\n\n", content("Hi"), finish("stop")),
        events=[TextDelta("Hi"), Finish("stop")],
    ),
    Shape(
        "crlf-line-endings",
        lambda: StreamResponse(
            [
                b"data: " + json.dumps(content("Hi")).encode() + b"\r\n\r\n",
                b"data: " + json.dumps(finish("stop")).encode() + b"\r\n\r\n",
                b"data: [DONE]\r\n\r\n",
            ]
        ),
        events=[TextDelta("Hi"), Finish("stop")],
    ),
    Shape(
        "server-ignoring-stream-answers-one-json-completion",
        lambda: JsonResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "<think>Easy.</think>Whole answer",
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": USAGE_9_2,
            }
        ),
        events=[ReasoningDelta("Easy."), TextDelta("Whole answer"), Usage(9, 2), Finish("stop")],
    ),
]


FAIL_SHAPES = [
    Shape(
        "openrouter-error-chunk-after-text",  # openrouter.ai/docs, "Errors": streaming
        lambda: events_response(
            content("Hel"),
            envelope(
                error={"code": 502, "message": "Provider returned error"},
                choices=[choice({"content": ""}, finish_reason="error")],
            ),
        ),
        partial=[TextDelta("Hel")],
        error=UnavailableError,
        message="Provider returned error",
    ),
    Shape(
        "openrouter-error-chunk-with-a-word-code",
        lambda: events_response(
            envelope(
                error={"code": "server_error", "message": "Provider disconnected unexpectedly"},
                choices=[choice({"content": ""}, finish_reason="error")],
            ),
        ),
        error=UnavailableError,
        message="Provider disconnected unexpectedly",
    ),
    Shape(
        "finish-reason-error-without-an-error-object",
        lambda: events_response(content("Par"), finish("error")),
        partial=[TextDelta("Par")],
        error=UnavailableError,
        message="error while answering",
    ),
    Shape(
        "deepseek-insufficient-system-resource",
        lambda: events_response(content("Par"), finish("insufficient_system_resource")),
        partial=[TextDelta("Par")],
        error=UnavailableError,
        message="ran out of resources",
    ),
    Shape(
        "openai-error-event-rate-limited",
        lambda: events_response(
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            }
        ),
        error=RateLimitedError,
        message="Rate limit reached",
    ),
    Shape(
        "vllm-error-object-top-level",  # vLLM < 0.9: {"object": "error", ...}
        lambda: events_response(
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        ),
        error=BadRequestError,
        message="maximum context length",
    ),
    Shape(
        "vllm-error-object-wrapped",
        lambda: events_response(
            {
                "error": {
                    "object": "error",
                    "message": "The model `x` does not exist.",
                    "type": "NotFoundError",
                    "param": None,
                    "code": 404,
                }
            }
        ),
        error=ModelNotFoundError,
        message="does not exist",
    ),
    Shape(
        "llamacpp-error-field-is-not-data-so-the-reply-is-cut",
        # llama.cpp's server writes "error: {...}" lines, which SSE readers skip: what
        # arrived is kept and marked cut off by the missing finish reason.
        lambda: events_response(
            content("Par"),
            b'error: {"code":500,"message":"slot unavailable","type":"server_error"}\n\n',
            done=False,
        ),
        events=[TextDelta("Par"), Finish(FinishReason.CUT_OFF)],
    ),
    Shape(
        "event-that-is-not-json",
        lambda: events_response(content("Hi"), b"data: <html>oops</html>\n\n"),
        partial=[TextDelta("Hi")],
        error=UnavailableError,
        message="could not be read",
    ),
    Shape(
        "event-that-is-a-json-array",
        lambda: events_response(b"data: [1, 2]\n\n"),
        error=UnavailableError,
        message="not a JSON object",
    ),
    Shape(
        "done-and-nothing-else",
        lambda: events_response(),
        error=UnavailableError,
        message="sent no reply events",
    ),
    Shape(
        "200-web-page-instead-of-a-stream",
        lambda: JsonResponse(
            raw=b"<!doctype html><title>Open WebUI</title>", content_type="text/html; charset=utf-8"
        ),
        error=UnavailableError,
        message="web page",
    ),
    Shape(
        "200-plain-text-that-is-not-sse",
        lambda: StreamResponse([b"Hello, I am not an event stream\n"], content_type="text/plain"),
        error=UnavailableError,
        message="sent no reply events (content type text/plain)",
    ),
    Shape(
        "ollama-native-ndjson-at-the-wrong-path",
        lambda: StreamResponse(
            [b'{"model":"llama3.2","message":{"role":"assistant","content":"Hi"},"done":false}\n'],
            content_type="application/x-ndjson",
        ),
        error=UnavailableError,
        message="application/x-ndjson",
    ),
    Shape(
        "200-json-error-body",
        lambda: JsonResponse({"error": {"message": "Invalid API key", "code": 401}}),
        error=AuthenticationError,
        message="",
    ),
    Shape(
        "200-json-that-is-not-a-completion",
        lambda: JsonResponse({"status": "ok"}),
        error=UnavailableError,
        message="not a chat completion",
    ),
]


@pytest.mark.parametrize("shape", READ_SHAPES, ids=lambda shape: shape.id)
async def test_compatible_server_shape_is_read(upstream: FakeUpstream, shape: Shape) -> None:
    serve(upstream, shape.response())
    events = await collect(compatible(upstream).stream(HELLO, "m"))
    assert events == shape.events


@pytest.mark.parametrize(
    "shape", [s for s in FAIL_SHAPES if s.events is not None], ids=lambda shape: shape.id
)
async def test_compatible_server_failure_shape_ends_the_reply(
    upstream: FakeUpstream, shape: Shape
) -> None:
    serve(upstream, shape.response())
    events = await collect(compatible(upstream).stream(HELLO, "m"))
    assert events == shape.events


@pytest.mark.parametrize(
    "shape", [s for s in FAIL_SHAPES if s.error is not None], ids=lambda shape: shape.id
)
async def test_compatible_server_failure_shape_raises_a_clear_error(
    upstream: FakeUpstream, shape: Shape
) -> None:
    serve(upstream, shape.response())
    events, error = await collect_until_error(compatible(upstream).stream(HELLO, "m"))
    assert events == shape.partial
    assert type(error) is shape.error
    assert str(error).startswith("Compat: ")
    assert shape.message in error.message
    assert KEY not in str(error)


# --- Images, PDFs and reasoning settings ------------------------------------------------------


async def test_image_and_text_parts_reach_openai_as_its_own_parts(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["A cat."])
    events = await collect(openai_provider(upstream).stream(media.ask_about_image(), "gpt-4o"))
    assert TextDelta("A cat.") in events
    [message] = upstream.requests[0].json()["messages"]
    assert message == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": media.PNG_URL}},
            {"type": "text", "text": "What is in this picture?"},
        ],
    }


async def test_a_pdf_reaches_openai_as_a_file_part(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["It is a report."])
    await collect(openai_provider(upstream).stream(media.ask_about_pdf(), "gpt-4.1"))
    [message] = upstream.requests[0].json()["messages"]
    assert message["content"][0] == {
        "type": "file",
        "file": {"filename": "report.pdf", "file_data": media.PDF_URL},
    }


async def test_compatible_server_gets_image_parts_as_they_are(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["A dot."])
    await collect(compatible(upstream).stream(media.ask_about_image(), "llava:7b"))
    [message] = upstream.requests[0].json()["messages"]
    assert message["content"][0] == {"type": "image_url", "image_url": {"url": media.PNG_URL}}


async def test_strict_server_gets_an_image_turn_and_the_next_question_merged(
    upstream: FakeUpstream,
) -> None:
    install_openai_stream(upstream, ["ok"], require_alternating_roles=True)
    history = [*media.ask_about_image("Look"), {"role": "user", "content": "Well?"}]
    events = await collect(compatible(upstream).stream(history, "llava:7b"))
    assert Finish("stop") in events
    [message] = upstream.requests[0].json()["messages"]
    assert message["content"] == [
        {"type": "image_url", "image_url": {"url": media.PNG_URL}},
        {"type": "text", "text": "Look"},
        {"type": "text", "text": "Well?"},
    ]


async def test_a_bad_image_part_fails_before_any_request(upstream: FakeUpstream) -> None:
    history = [{"role": "user", "content": [media.image("https://example.com/cat.png")]}]
    _events, error = await collect_until_error(openai_provider(upstream).stream(history, "gpt-4o"))
    assert isinstance(error, BadRequestError)
    assert "links are not fetched" in str(error)
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("model", "effort", "sent"),
    [
        ("o4-mini", "high", "high"),
        ("o3", "minimal", "low"),  # the o-series starts at "low"
        ("gpt-5", "minimal", "minimal"),
        ("gpt-5-mini", "medium", "medium"),
    ],
)
async def test_reasoning_effort_is_sent_to_openai_reasoning_models(
    upstream: FakeUpstream, model: str, effort: str, sent: str
) -> None:
    install_openai_stream(upstream, ["ok"], model=model)
    options = ChatOptions(reasoning_effort=effort, thinking_budget=4096)
    await collect(openai_provider(upstream).stream(HELLO, model, options))
    body = upstream.requests[0].json()
    assert body["reasoning_effort"] == sent
    assert "thinking" not in json.dumps(body)  # no budget field in this API


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1", "gpt-5-chat-latest"])
async def test_reasoning_effort_is_not_sent_to_other_openai_models(
    upstream: FakeUpstream, model: str
) -> None:
    install_openai_stream(upstream, ["ok"], model=model)
    await collect(
        openai_provider(upstream).stream(HELLO, model, ChatOptions(reasoning_effort="high"))
    )
    assert "reasoning_effort" not in upstream.requests[0].json()


async def test_compatible_server_gets_the_reasoning_effort_as_given(
    upstream: FakeUpstream,
) -> None:
    install_openai_stream(upstream, ["ok"])
    options = ChatOptions(reasoning_effort="low", thinking_budget=2048)
    await collect(compatible(upstream).stream(HELLO, "gpt-oss:20b", options))
    body = upstream.requests[0].json()
    assert body["reasoning_effort"] == "low"
    assert set(body) == {"model", "messages", "stream", "stream_options", "reasoning_effort"}


def test_settings_say_which_options_each_openai_model_takes() -> None:
    provider = OpenAIProvider(KEY)
    reasoning = provider.unsupported_options("o4-mini")
    plain = provider.unsupported_options("gpt-4o-mini")
    assert set(reasoning) == {"temperature", "stop", "thinking_budget"}
    assert set(plain) == {"reasoning_effort", "thinking_budget"}
    assert plain["reasoning_effort"] == "this model does not reason"


def test_settings_of_a_compatible_server_disable_only_the_thinking_budget() -> None:
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:1/v1", name="ollama")
    assert set(provider.unsupported_options("qwen3:8b")) == {"thinking_budget"}


# --- Stop sequences ---------------------------------------------------------------------


async def test_stop_sequences_reach_openai_as_the_stop_list(upstream: FakeUpstream) -> None:
    install_openai_stream(upstream, ["1, 2, 3"], finish_reason="stop")
    options = ChatOptions(stop=("END", "\n\n"))
    events = await collect(openai_provider(upstream).stream(HELLO, "gpt-4o-mini", options))
    assert upstream.requests[0].json()["stop"] == ["END", "\n\n"]
    assert events[-1] == Finish(FinishReason.STOP)


@pytest.mark.parametrize("model", ["o4-mini", "gpt-5-mini"])
async def test_a_reasoning_model_is_sent_no_stop_and_says_it_takes_none(
    upstream: FakeUpstream, model: str
) -> None:
    install_openai_stream(upstream, ["ok"], model=model)
    provider = openai_provider(upstream)
    events = await collect(provider.stream(HELLO, model, ChatOptions(stop=("END",))))
    assert "stop" not in upstream.requests[0].json()
    assert events[-1] == Finish(FinishReason.STOP)
    assert provider.unsupported_options(model)["stop"] == "reasoning models take no stop sequences"
    assert "stop" not in provider.unsupported_options("gpt-5-chat-latest")


async def test_a_compatible_server_gets_the_stop_sequences_as_given(
    upstream: FakeUpstream,
) -> None:
    install_openai_stream(upstream, ["ok"])
    options = ChatOptions(stop="</answer>")
    await collect(compatible(upstream).stream(HELLO, "o4-mini", options))
    assert upstream.requests[0].json()["stop"] == ["</answer>"]
    assert "stop" not in compatible(upstream).unsupported_options("o4-mini")


async def test_a_compatible_servers_stop_sequence_finish_is_a_normal_stop(
    upstream: FakeUpstream,
) -> None:
    install_openai_stream(upstream, ["Hi"], finish_reason="stop_sequence")  # TGI's word
    events = await collect(compatible(upstream).stream(HELLO, "tgi-model"))
    assert events[-1] == Finish(FinishReason.STOP, "stop_sequence")
