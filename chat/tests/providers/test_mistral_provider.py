"""MistralProvider: pure mapping, then the real ``mistralai`` SDK against a fake upstream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chat.providers.base_provider import (
    AuthenticationError,
    BadRequestError,
    ChatOptions,
    Finish,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ReasoningDelta,
    RetryPolicy,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
)
from chat.providers.capabilities import ModelCapabilities
from chat.providers.mistral_provider import (
    CONTINUE_USER_TURN,
    MistralProvider,
    _build_request,
    _map_messages,
)
from chat.tests.fakes import mistral_fake as fake
from chat.tests.fakes.server import Break, FakeUpstream, JsonResponse, Pause, StreamResponse
from chat.tests.providers import media
from chat.tests.providers.histories import MESSY_HISTORIES

FAKE_KEY = "sk-mistral-test-0123456789abcdef"
MODEL = "mistral-small-latest"
HELLO = [{"role": "user", "content": "Hello?"}]


def make_provider(
    upstream: FakeUpstream, *, timeout: float = 2.0, max_retries: int = 2
) -> MistralProvider:
    provider = MistralProvider(
        api_key=FAKE_KEY, base_url=upstream.url, timeout=timeout, max_retries=max_retries
    )
    provider.retry_policy = RetryPolicy(max_retries=max_retries, base_delay=0.01)
    return provider


async def collect(
    provider: MistralProvider, options: ChatOptions | None = None, messages=HELLO
) -> list[StreamEvent]:
    return [event async for event in provider.stream(messages, MODEL, options)]


def reply_text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


@pytest.fixture
def upstream(upstream: FakeUpstream) -> FakeUpstream:
    return fake.install(upstream)


@pytest.fixture
def locmem_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


# --- pure mapping ------------------------------------------------------------------------


def test_map_messages_puts_system_prompt_first():
    messages = [{"role": "user", "content": "Hi"}]

    assert _map_messages(messages, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


def test_map_messages_without_system_prompt_keeps_history_as_is():
    messages = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]

    assert _map_messages(messages, "  ") == messages


def test_map_messages_drops_assistant_turns_without_text():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Anyone?"},
    ]

    assert [m["content"] for m in _map_messages(messages)] == ["Hi", "Anyone?"]


def test_map_messages_moves_every_system_message_to_one_at_the_start():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "system", "content": "Answer in French from now on."},
        {"role": "user", "content": "How are you?"},
    ]

    assert _map_messages(messages, "Be brief.") == [
        {"role": "system", "content": "Be brief.\n\nAnswer in French from now on."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]


def test_map_messages_asks_to_continue_after_a_trailing_assistant_turn():
    messages = [{"role": "user", "content": "Write a poem"}, {"role": "assistant", "content": "Ro"}]

    assert _map_messages(messages)[-1] == {"role": "user", "content": CONTINUE_USER_TURN}


def test_map_messages_keeps_a_repeated_question_as_two_user_turns():
    messages = [{"role": "user", "content": "Capital?"}, {"role": "user", "content": "Capital?"}]

    assert _map_messages(messages) == messages


def test_build_request_carries_model_temperature_and_max_tokens():
    request = _build_request(HELLO, MODEL, ChatOptions(temperature=0.3, max_tokens=64))

    assert request == {"model": MODEL, "messages": HELLO, "temperature": 0.3, "max_tokens": 64}


def test_build_request_leaves_unset_options_to_the_api():
    request = _build_request(HELLO, MODEL, ChatOptions())

    assert set(request) == {"model", "messages"}


def test_default_models_are_real_api_ids():
    models = MistralProvider.default_models

    assert "mistral-small-latest" in models
    assert not {"mistral-7b-instruct", "mistral-8x7b-instruct"} & set(models)


def test_module_imports_and_reports_missing_sdk_without_mistralai():
    code = (
        "import sys\n"
        "for name in ('mistralai', 'mistralai.client'): sys.modules[name] = None\n"
        "from chat.providers.mistral_provider import MistralProvider\n"
        "print(MistralProvider(api_key='k').status().reason)\n"
    )
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env, timeout=30
    )

    assert result.stdout.strip() == "Python package missing: mistralai", result.stderr


# --- streaming through the SDK -------------------------------------------------------------


async def test_stream_yields_text_then_usage_then_finish(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["Hel", "lo"], usage=(12, 3)))

    events = await collect(make_provider(upstream))

    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(12, 3), Finish("stop")]


def test_get_response_returns_the_whole_reply(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["Bonjour", " !"]))

    assert make_provider(upstream).get_response(HELLO, MODEL) == "Bonjour !"


async def test_request_goes_to_chat_completions_with_bearer_key(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream())

    await collect(make_provider(upstream))

    request = upstream.requests[0]
    assert (request.method, request.route_path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"


async def test_request_body_has_model_messages_and_system_prompt(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream())

    await collect(make_provider(upstream), ChatOptions(system_prompt="Answer in French."))

    body = upstream.requests[0].json()
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello?"},
    ]


async def test_request_body_has_temperature_and_max_tokens(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream())

    await collect(make_provider(upstream), ChatOptions(temperature=0.2, max_tokens=100))

    body = upstream.requests[0].json()
    assert (body["temperature"], body["max_tokens"]) == (0.2, 100)


async def test_base_url_ending_in_v1_still_reaches_chat_completions(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["ok"]))
    provider = make_provider(upstream)
    provider.base_url = f"{upstream.url}/v1/"

    assert reply_text(await collect(provider)) == "ok"


async def test_model_length_finish_is_reported_as_length(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["cut"], finish_reason="model_length"))

    events = await collect(make_provider(upstream))

    assert events[-1] == Finish("length", "model_length")


async def test_length_finish_is_reported_as_length(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["cut"], finish_reason="length"))

    events = await collect(make_provider(upstream))

    assert events[-1] == Finish("length")


async def test_finish_reason_error_raises_unavailable(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["half"], finish_reason="error"))

    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream, max_retries=0))


async def test_thinking_chunks_are_not_part_of_the_reply(upstream):
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "Let me see."}]}
    upstream.add(
        "POST",
        fake.CHAT_PATH,
        fake.raw_stream(
            [
                fake.sse(fake.chunk([thinking])),
                fake.sse(fake.chunk([{"type": "text", "text": "42"}], finish_reason="stop")),
                fake.sse("[DONE]"),
            ]
        ),
    )

    assert reply_text(await collect(make_provider(upstream))) == "42"


async def test_magistral_thinking_and_text_chunks_stream_apart(upstream):
    upstream.add(
        "POST",
        fake.CHAT_PATH,
        fake.chat_stream(["Hello", "!"], thinking=["It's a greeting.", " Answer warmly."]),
    )

    events = await collect(make_provider(upstream))

    assert events == [
        ReasoningDelta("It's a greeting."),
        ReasoningDelta(" Answer warmly."),
        TextDelta("Hello"),
        TextDelta("!"),
        Usage(10, 5),
        Finish("stop"),
    ]


async def test_content_as_list_then_as_string_both_reach_the_reply(upstream):
    upstream.add(
        "POST",
        fake.CHAT_PATH,
        fake.raw_stream(
            [
                fake.sse(fake.chunk([fake.thinking_chunk("It's a greeting")])),
                fake.sse(fake.chunk([fake.text_chunk("Hello")])),
                fake.sse(fake.chunk("!", finish_reason="stop")),
                fake.sse("[DONE]"),
            ]
        ),
    )

    events = await collect(make_provider(upstream))

    assert (reasoning_text(events), reply_text(events)) == ("It's a greeting", "Hello!")


async def test_reasoning_that_used_up_max_tokens_finishes_as_length(upstream):
    upstream.add(
        "POST",
        fake.CHAT_PATH,
        fake.chat_stream([], thinking=["Step one...", " step two"], finish_reason="length"),
    )

    events = await collect(make_provider(upstream))

    assert (reply_text(events), reasoning_text(events)) == ("", "Step one... step two")
    assert events[-1] == Finish("length")


async def test_usage_only_in_the_last_chunk_is_reported(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["Hi"], usage=(7, 1)))

    events = await collect(make_provider(upstream))

    assert events[-2:] == [Usage(7, 1), Finish("stop")]


async def test_stream_without_finish_reason_after_text_is_cut_off(upstream):
    # A proxy timing out ends the body cleanly: no finish_reason, no [DONE].
    stream = fake.chat_stream(["Step 1. Open the", " settings and"], finish_reason=None, done=False)
    upstream.add("POST", fake.CHAT_PATH, stream)

    events = await collect(make_provider(upstream))

    assert reply_text(events) == "Step 1. Open the settings and"
    assert events[-1] == Finish("cut_off")
    assert len(upstream.requests) == 1


async def test_done_without_a_finish_reason_is_cut_off(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["Partial"], finish_reason=None))

    events = await collect(make_provider(upstream))

    assert events[-1] == Finish("cut_off")


async def test_stream_without_finish_reason_or_text_is_retried(upstream):
    upstream.add(
        "POST",
        fake.CHAT_PATH,
        fake.chat_stream([], finish_reason=None, done=False),
        fake.chat_stream(["Recovered"]),
    )

    events = await collect(make_provider(upstream))

    assert (reply_text(events), events[-1]) == ("Recovered", Finish("stop"))


async def test_finish_reason_error_after_text_raises_without_retry(upstream):
    upstream.set_default("POST", fake.CHAT_PATH, fake.chat_stream(["half"], finish_reason="error"))
    received: list[StreamEvent] = []

    with pytest.raises(UnavailableError):
        async for event in make_provider(upstream).stream(HELLO, MODEL):
            received.append(event)

    assert (received, len(upstream.requests)) == ([TextDelta("half")], 1)


# --- histories Mistral accepts -----------------------------------------------------------

_HISTORIES = {
    **MESSY_HISTORIES,
    # A system message after the assistant (an API client's history).
    "system-after-assistant": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "How are you?"},
    ],
}
_REJECTED_AS_IS = ["user-empty-user", "user-assistant", "system-after-assistant"]


@pytest.mark.parametrize("name", _REJECTED_AS_IS)
def test_the_fake_rejects_these_histories_as_mistral_does(name):
    assert fake.check_messages(_HISTORIES[name]) is not None


@pytest.mark.parametrize("name", list(_HISTORIES))
async def test_history_is_mapped_to_one_mistral_accepts(upstream, name):
    upstream.add("POST", fake.CHAT_PATH, fake.validated(fake.chat_stream(["Answer."])))

    events = await collect(make_provider(upstream, max_retries=0), messages=_HISTORIES[name])

    assert reply_text(events) == "Answer."
    assert fake.check_messages(upstream.requests[0].json()["messages"]) is None


def test_the_fake_accepts_what_mistral_accepts_as_it_is():
    # Mistral takes user after user and an opening assistant turn: nothing to merge.
    assert fake.check_messages(_HISTORIES["user-user"]) is None
    assert fake.check_messages(_HISTORIES["assistant-user"]) is None


# --- models ------------------------------------------------------------------------------


async def test_list_models_returns_live_chat_model_ids_sorted(upstream, locmem_cache):
    upstream.add(
        "GET",
        fake.MODELS_PATH,
        fake.models_response(
            ["mistral-small-latest", "codestral-latest", "mistral-large-latest"],
            other_ids=["mistral-embed"],
        ),
    )

    models = await make_provider(upstream).list_models()

    assert models == ["codestral-latest", "mistral-large-latest", "mistral-small-latest"]


async def test_list_models_falls_back_to_defaults_on_500(upstream, locmem_cache):
    upstream.add("GET", fake.MODELS_PATH, fake.error_response(500, "boom"))

    models = await make_provider(upstream).list_models()

    assert models == list(MistralProvider.default_models)


# --- errors ------------------------------------------------------------------------------


async def test_401_raises_authentication_error_naming_mistral_without_the_key(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.error_response(401))

    with pytest.raises(AuthenticationError) as info:
        await collect(make_provider(upstream))

    assert str(info.value).startswith("Mistral AI: ")
    assert FAKE_KEY not in str(info.value)


async def test_401_is_not_retried(upstream):
    upstream.set_default("POST", fake.CHAT_PATH, fake.error_response(401))

    with pytest.raises(AuthenticationError):
        await collect(make_provider(upstream))

    assert len(upstream.requests) == 1


async def test_404_raises_model_not_found(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.error_response(404, "Model not found"))

    with pytest.raises(ModelNotFoundError):
        await collect(make_provider(upstream))


async def test_invalid_model_400_raises_model_not_found(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.invalid_model_response("mistral-7b-instruct"))

    with pytest.raises(ModelNotFoundError, match="Invalid model: mistral-7b-instruct"):
        await collect(make_provider(upstream))


async def test_422_raises_bad_request_with_the_validation_message(upstream):
    detail = [{"loc": ["body", "temperature"], "msg": "Input should be <= 1.5", "type": "x"}]
    upstream.add("POST", fake.CHAT_PATH, JsonResponse({"detail": detail}, status=422))

    with pytest.raises(BadRequestError, match=re.escape("Input should be <= 1.5")):
        await collect(make_provider(upstream))


async def test_html_error_page_gives_a_readable_message(upstream):
    page = JsonResponse(raw=b"<html><body>Bad gateway</body></html>", status=502)
    page.content_type = "text/html"
    upstream.add("POST", fake.CHAT_PATH, page)

    with pytest.raises(UnavailableError) as info:
        await collect(make_provider(upstream, max_retries=0))

    assert "<html>" not in str(info.value)


async def test_429_with_retry_after_is_retried_then_succeeds(upstream):
    upstream.add(
        "POST",
        fake.CHAT_PATH,
        fake.error_response(429, "Rate limit exceeded", headers={"Retry-After": "0"}),
        fake.chat_stream(["after wait"]),
    )

    events = await collect(make_provider(upstream))

    assert reply_text(events) == "after wait"
    assert len(upstream.requests) == 2


async def test_persistent_429_raises_rate_limited_with_retry_after(upstream):
    limited = fake.error_response(429, "Rate limit exceeded", headers={"Retry-After": "0.05"})
    upstream.set_default("POST", fake.CHAT_PATH, limited)

    with pytest.raises(RateLimitedError) as info:
        await collect(make_provider(upstream, max_retries=1))

    assert info.value.retry_after == pytest.approx(0.05)
    assert len(upstream.requests) == 2


async def test_500_raises_unavailable(upstream):
    upstream.set_default("POST", fake.CHAT_PATH, fake.error_response(500, "Internal error"))

    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream))


async def test_sdk_does_not_retry_on_its_own(upstream):
    upstream.set_default("POST", fake.CHAT_PATH, fake.error_response(503, "Overloaded"))

    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream, max_retries=0))

    assert len(upstream.requests) == 1


async def test_stream_broken_halfway_raises_unavailable_without_retry(upstream):
    upstream.set_default("POST", fake.CHAT_PATH, fake.broken_stream(["Hello"]))
    received: list[StreamEvent] = []

    with pytest.raises(UnavailableError):
        async for event in make_provider(upstream).stream(HELLO, MODEL):
            received.append(event)

    assert received == [TextDelta("Hello")]
    assert len(upstream.requests) == 1


async def test_reply_losing_only_its_done_marker_still_completes(upstream):
    events = fake.chat_events(["All there."], usage=(4, 2), done=False)
    upstream.add("POST", fake.CHAT_PATH, fake.raw_stream([*events, Break()]))

    events = await collect(make_provider(upstream))

    assert events == [TextDelta("All there."), Usage(4, 2), Finish("stop")]


async def test_malformed_chunk_raises_unavailable(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.raw_stream(["data: {not json\n\n"]))

    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream, max_retries=0))


async def test_slow_upstream_raises_timeout(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(delay=1.0))

    with pytest.raises(ProviderTimeoutError):
        await collect(make_provider(upstream, timeout=0.3, max_retries=0))


async def test_unreachable_upstream_raises_unavailable(upstream):
    provider = make_provider(upstream, max_retries=0)
    upstream.stop()  # nothing listens on the port any more

    with pytest.raises(UnavailableError):
        await collect(provider)


# --- the fault matrix: every fault, its kind, never the key -------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_FAULTS = {
    "401": (lambda: fake.error_response(401), AuthenticationError),
    "403": (
        lambda: fake.error_response(403, f"Key {FAKE_KEY} may not use this model"),
        PermissionDeniedError,
    ),
    "404-model": (lambda: fake.error_response(404, "Model not found"), ModelNotFoundError),
    "400-invalid-model": (lambda: fake.invalid_model_response(MODEL), ModelNotFoundError),
    "429": (
        lambda: fake.error_response(
            429, f"Rate limit exceeded for {FAKE_KEY}", headers={"Retry-After": "60"}
        ),
        RateLimitedError,
    ),
    "500": (lambda: fake.error_response(500, f"Internal error ({FAKE_KEY})"), UnavailableError),
    "503": (lambda: fake.error_response(503, "Service unavailable"), UnavailableError),
    "stream-dropped": (lambda: fake.broken_stream(["Hello", " wor"]), UnavailableError),
    "malformed-event": (lambda: fake.raw_stream(["data: {not json\n\n"]), UnavailableError),
    "error-event": (
        lambda: fake.raw_stream(
            [fake.sse(fake.chunk("", role="assistant")), fake.error_event("Overloaded")]
        ),
        UnavailableError,
    ),
    "error-event-capacity": (
        lambda: fake.raw_stream(
            [fake.error_event("Service tier capacity exceeded", "service_tier_capacity_exceeded")]
        ),
        RateLimitedError,
    ),
    "error-event-gateway-shape": (
        lambda: fake.raw_stream([fake.sse({"error": {"message": "The server is overloaded"}})]),
        UnavailableError,
    ),
    "finish-reason-error": (
        lambda: fake.chat_stream([], finish_reason="error"),
        UnavailableError,
    ),
    "timeout": (lambda: fake.chat_stream(delay=2.0), ProviderTimeoutError),
}


@pytest.mark.parametrize("fault", list(_FAULTS))
async def test_fault_raises_its_kind_without_the_key(upstream, fault):
    response, kind = _FAULTS[fault]
    upstream.set_default("POST", fake.CHAT_PATH, response())

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(upstream, timeout=0.5, max_retries=0))

    assert type(caught.value) is kind
    assert FAKE_KEY not in str(caught.value) and FAKE_KEY not in caught.value.message


async def test_error_event_keeps_the_upstream_message(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.raw_stream([fake.error_event("Model overloaded")]))

    with pytest.raises(UnavailableError, match="Model overloaded"):
        await collect(make_provider(upstream, max_retries=0))


async def test_refused_connection_raises_unavailable_without_the_key():
    provider = MistralProvider(
        api_key=FAKE_KEY, base_url=f"http://127.0.0.1:{_free_port()}", max_retries=0
    )
    provider.retry_policy = RetryPolicy(max_retries=0)

    with pytest.raises(UnavailableError) as caught:
        await collect(provider)

    assert FAKE_KEY not in str(caught.value)


async def test_503_before_text_is_retried_then_answers(upstream):
    upstream.add(
        "POST",
        fake.CHAT_PATH,
        fake.error_response(503, "Service unavailable"),
        fake.chat_stream(["Fine"]),
    )

    events = await collect(make_provider(upstream))

    assert (reply_text(events), len(upstream.requests)) == ("Fine", 2)


# --- stop --------------------------------------------------------------------------------


def _long_reply() -> StreamResponse:
    """A reply of five seconds: "first" at once, then a word every 50 ms."""
    items: list[bytes | Pause] = [fake.sse(fake.chunk("first"))]
    items += [Pause(0.05), fake.sse(fake.chunk(" more"))] * 100
    return fake.raw_stream(items)


async def test_closing_the_stream_early_closes_the_upstream_response(upstream):
    upstream.add("POST", fake.CHAT_PATH, _long_reply())
    events = make_provider(upstream).stream(HELLO, MODEL)

    assert await anext(events) == TextDelta("first")
    await events.aclose()

    closed = await asyncio.to_thread(upstream.requests[0].client_closed.wait, 1.0)
    assert closed


async def test_cancelling_the_consumer_closes_the_upstream_response(upstream):
    upstream.add("POST", fake.CHAT_PATH, _long_reply())
    first = asyncio.Event()

    async def consume() -> None:
        async for _event in make_provider(upstream).stream(HELLO, MODEL):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    task.cancel()

    closed = await asyncio.to_thread(upstream.requests[0].client_closed.wait, 1.0)
    assert closed
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --- images, PDFs, reasoning effort and model capabilities --------------------------------


@pytest.fixture
def fresh_cache(settings):
    """A private Django cache: the model list's capabilities are kept there."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"mistral-{id(settings)}",
        }
    }


async def test_image_reaches_mistral_as_an_image_url_chunk(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.validated(fake.chat_stream(["A dot."])))

    events = await collect(make_provider(upstream), messages=media.ask_about_image())

    assert reply_text(events) == "A dot."
    [message] = upstream.requests[0].json()["messages"]
    assert message == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": media.PNG_URL},
            {"type": "text", "text": "What is in this picture?"},
        ],
    }


async def test_a_pdf_is_refused_before_any_request_as_mistral_reads_none_natively(upstream):
    with pytest.raises(BadRequestError, match="Mistral AI: cannot read PDF files"):
        await collect(make_provider(upstream), messages=media.ask_about_pdf())
    assert upstream.requests == []


async def test_reasoning_effort_is_sent_to_a_model_that_reasons(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["ok"], model="magistral-medium-latest"))
    provider = make_provider(upstream)
    options = ChatOptions(reasoning_effort="high", thinking_budget=2048)

    _ = [e async for e in provider.stream(HELLO, "magistral-medium-latest", options)]

    body = upstream.requests[0].json()
    assert body["reasoning_effort"] == "high"
    assert "thinking_budget" not in body


async def test_reasoning_effort_is_not_sent_to_a_model_that_does_not_reason(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["ok"]))

    await collect(make_provider(upstream), ChatOptions(reasoning_effort="high"))

    assert "reasoning_effort" not in upstream.requests[0].json()


async def test_model_list_says_which_models_see_images_and_reason(upstream, fresh_cache):
    upstream.add(
        "GET",
        fake.MODELS_PATH,
        fake.models_response(
            ["mistral-small-latest", "codestral-latest", "magistral-small-latest"],
            vision=["mistral-small-latest", "magistral-small-latest"],
            reasoning=["magistral-small-latest"],
        ),
    )
    provider = make_provider(upstream)

    await provider.list_models()

    assert provider.capabilities("mistral-small-latest") == ModelCapabilities(True, False, False)
    assert provider.capabilities("codestral-latest") == ModelCapabilities(False, False, False)
    assert provider.capabilities("magistral-small-latest") == ModelCapabilities(True, False, True)
    assert set(provider.unsupported_options("magistral-small-latest")) == {"thinking_budget"}
    assert set(provider.unsupported_options("mistral-small-latest")) == {
        "thinking_budget",
        "reasoning_effort",
    }


def test_capabilities_table_when_the_list_was_not_fetched():
    provider = MistralProvider(api_key=FAKE_KEY)
    assert provider.capabilities("pixtral-large-latest").images is True
    assert provider.capabilities("mistral-medium-2505").images is True
    assert provider.capabilities("mistral-small-2501").images is None  # not known: try
    assert provider.capabilities("magistral-medium-latest").reasoning is True
    assert all(provider.capabilities(m).pdf is False for m in ("pixtral-12b", "x-unknown"))


def test_map_messages_drops_blank_text_chunks_and_keeps_a_lone_image():
    mapped = _map_messages([{"role": "user", "content": [media.text(" "), media.image()]}])
    assert mapped == [
        {"role": "user", "content": [{"type": "image_url", "image_url": media.PNG_URL}]}
    ]


# --- Stop sequences ---------------------------------------------------------------------


async def test_stop_sequences_go_as_stop_and_end_as_a_complete_reply(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream(["1, 2, 3"], finish_reason="stop"))

    events = await collect(make_provider(upstream), ChatOptions(stop=("END", "\n\n")))

    assert upstream.requests[0].json()["stop"] == ["END", "\n\n"]
    assert reply_text(events) == "1, 2, 3"
    assert events[-1] == Finish("stop")


async def test_no_stop_sequences_sends_no_stop(upstream):
    upstream.add("POST", fake.CHAT_PATH, fake.chat_stream())

    await collect(make_provider(upstream))

    assert "stop" not in upstream.requests[0].json()
