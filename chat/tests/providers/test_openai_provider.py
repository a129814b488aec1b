"""OpenAIProvider and OpenAICompatibleProvider: pure mapping, then the real ``openai``
SDK against the loopback fake upstream (chat/tests/fakes/openai_fake.py)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chat.providers import (
    PROVIDER_REGISTRY,
    AuthenticationError,
    BadRequestError,
    ChatOptions,
    Finish,
    ModelNotFoundError,
    NotConfiguredError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    TextDelta,
    UnavailableError,
    Usage,
    get_provider,
    register_openai_compatible,
)
from chat.providers.base_provider import RetryPolicy
from chat.providers.openai_provider import (
    KEY_PLACEHOLDER,
    OpenAICompatibleProvider,
    OpenAIProvider,
    accepts_temperature,
    is_chat_model,
)
from chat.tests.fakes.openai_fake import (
    install_openai_error,
    install_openai_models,
    install_openai_stream,
)
from chat.tests.fakes.server import FakeUpstream, StreamResponse, sse

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


def test_map_messages_puts_the_system_prompt_first() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    mapped = OpenAIProvider._map_messages(messages, "You are a pirate.")
    assert mapped == [{"role": "system", "content": "You are a pirate."}, *messages]


def test_map_messages_without_system_prompt_keeps_messages() -> None:
    assert OpenAIProvider._map_messages(HELLO, "  ") == HELLO


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
