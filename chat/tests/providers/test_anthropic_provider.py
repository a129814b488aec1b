"""AnthropicProvider: pure mapping, then the real ``anthropic`` SDK against a loopback fake
of the Messages API (chat/tests/fakes/anthropic_fake.py)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chat.providers.anthropic_provider import (
    CONTINUE_USER_TURN,
    DEFAULT_MAX_TOKENS,
    OPENING_USER_TURN,
    AnthropicProvider,
    _build_request,
    _finish_reason,
    _map_messages,
)
from chat.providers.base_provider import (
    AuthenticationError,
    BadRequestError,
    ChatOptions,
    Finish,
    ModelNotFoundError,
    NotConfiguredError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ReasoningDelta,
    RetryPolicy,
    TextDelta,
    UnavailableError,
    Usage,
)
from chat.providers.capabilities import ModelCapabilities
from chat.tests.fakes import anthropic_fake as fake
from chat.tests.fakes.server import Break, FakeUpstream, JsonResponse, Pause, StreamResponse, sse
from chat.tests.providers import media
from chat.tests.providers.histories import MESSY_HISTORIES

KEY = "sk-ant-test-SECRET0123456789"
MODEL = "claude-sonnet-5-5"
HELLO = [{"role": "user", "content": "Hello"}]


def make_provider(
    upstream: FakeUpstream, *, timeout: float = 2.0, retries: int = 2
) -> AnthropicProvider:
    provider = AnthropicProvider(api_key=KEY, base_url=upstream.url, timeout=timeout)
    provider.retry_policy = RetryPolicy(max_retries=retries, base_delay=0.01)
    return provider


async def collect(provider: AnthropicProvider, messages=HELLO, options=None) -> list:
    return [event async for event in provider.stream(messages, MODEL, options)]


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


async def collect_until_error(
    provider: AnthropicProvider, messages=HELLO
) -> tuple[list, Exception]:
    received: list = []
    with pytest.raises(ProviderError) as caught:
        async for event in provider.stream(messages, MODEL):
            received.append(event)
    return received, caught.value


# --- Pure mapping -----------------------------------------------------------------------


def test_map_messages_moves_system_messages_out_of_the_turns():
    system, turns = _map_messages(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert system == "Be brief."
    assert turns == [{"role": "user", "content": "Hi"}]


def test_map_messages_puts_the_options_system_prompt_first():
    system, _ = _map_messages(
        [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi"}],
        "You are a helpful assistant.",
    )
    assert system == "You are a helpful assistant.\n\nAnswer in French."


def test_map_messages_merges_consecutive_turns_of_one_role():
    _, turns = _map_messages(
        [
            {"role": "user", "content": "First"},
            {"role": "user", "content": "Second"},
            {"role": "assistant", "content": "Reply"},
            {"role": "user", "content": "Third"},
        ]
    )
    assert turns == [
        {"role": "user", "content": "First\n\nSecond"},
        {"role": "assistant", "content": "Reply"},
        {"role": "user", "content": "Third"},
    ]


def test_map_messages_keeps_a_leading_assistant_turn_after_a_stand_in_user_turn():
    _, turns = _map_messages(
        [{"role": "assistant", "content": "What's your name?"}, {"role": "user", "content": "Bob"}]
    )
    assert turns == [
        {"role": "user", "content": OPENING_USER_TURN},
        {"role": "assistant", "content": "What's your name?"},
        {"role": "user", "content": "Bob"},
    ]


def test_map_messages_drops_blank_turns_and_merges_around_them():
    _, turns = _map_messages(
        [
            {"role": "user", "content": "One"},
            {"role": "assistant", "content": "  "},
            {"role": "user", "content": "Two"},
        ]
    )
    assert turns == [{"role": "user", "content": "One\n\nTwo"}]


def test_map_messages_asks_to_continue_after_a_trailing_assistant_turn():
    _, turns = _map_messages(
        [{"role": "user", "content": "Write a poem"}, {"role": "assistant", "content": "Roses "}]
    )
    assert turns == [
        {"role": "user", "content": "Write a poem"},
        {"role": "assistant", "content": "Roses "},
        {"role": "user", "content": CONTINUE_USER_TURN},
    ]


def test_build_request_defaults_max_tokens_when_not_given():
    request = _build_request(HELLO, MODEL, ChatOptions())
    assert request["max_tokens"] == DEFAULT_MAX_TOKENS


def test_build_request_uses_the_chosen_max_tokens():
    request = _build_request(HELLO, MODEL, ChatOptions(max_tokens=100))
    assert request["max_tokens"] == 100


def test_build_request_leaves_temperature_out_as_the_api_rejects_it():
    request = _build_request(HELLO, MODEL, ChatOptions(temperature=0.2))
    assert "temperature" not in request


def test_build_request_has_no_system_field_without_a_system_prompt():
    request = _build_request(HELLO, MODEL, ChatOptions())
    assert "system" not in request


def test_build_request_rejects_a_conversation_of_blank_turns():
    with pytest.raises(BadRequestError):
        _build_request([{"role": "user", "content": " "}], MODEL, ChatOptions())


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "refusal"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "pause_turn"),
    ],
)
def test_finish_reason_is_normalised(stop_reason, finish):
    assert _finish_reason(stop_reason) == finish


def test_module_imports_without_the_sdk_installed():
    # In a fresh interpreter where "anthropic" (and its httpx2) cannot be imported; the
    # package's __init__ is skipped so that only this module is judged.
    code = """
import sys, types
sys.modules["anthropic"] = None
sys.modules["httpx2"] = None
package = types.ModuleType("chat.providers")
package.__path__ = ["chat/providers"]
sys.modules["chat.providers"] = package
from chat.providers.anthropic_provider import AnthropicProvider
assert AnthropicProvider.missing_packages() == ["anthropic"]
"""
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()


# --- Streaming through the SDK ----------------------------------------------------------


async def test_stream_yields_the_text_then_usage_then_finish(upstream):
    upstream.add(
        "POST",
        fake.MESSAGES_PATH,
        fake.stream_response(["Hel", "lo", " there"], input_tokens=21, output_tokens=3),
    )
    events = await collect(make_provider(upstream))
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta(" there"),
        Usage(input_tokens=21, output_tokens=3),
        Finish("stop"),
    ]


async def test_stream_leaves_thinking_out_of_the_reply(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.stream_response(["Four."], thinking="2 + 2 is 4"))
    events = await collect(make_provider(upstream))
    assert text_of(events) == "Four."


async def test_stream_finishes_with_length_when_max_tokens_is_reached(upstream):
    upstream.add(
        "POST", fake.MESSAGES_PATH, fake.stream_response(["Cut"], stop_reason="max_tokens")
    )
    events = await collect(make_provider(upstream))
    assert events[-1] == Finish("length")


def test_get_response_returns_the_whole_text(upstream):
    fake.install(upstream, reply="Hello there, friend.")
    provider = make_provider(upstream)
    assert provider.get_response(HELLO, MODEL) == "Hello there, friend."


def test_get_response_returns_a_readable_error_string_on_failure(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.error_response(401))
    provider = make_provider(upstream)
    assert provider.get_response(HELLO, MODEL) == (
        "Error: Anthropic: invalid API key (check ANTHROPIC_API_KEY)"
    )


# --- The request on the wire ------------------------------------------------------------


async def test_request_streams_from_v1_messages(upstream):
    fake.install(upstream)
    await collect(make_provider(upstream))
    request = upstream.requests[0]
    assert (request.method, request.route_path) == ("POST", "/v1/messages")
    assert request.json()["stream"] is True


async def test_request_sends_the_key_as_a_bearer_token(upstream):
    # SDK 2.x authenticates with "Authorization: Bearer", no longer with x-api-key.
    fake.install(upstream)
    await collect(make_provider(upstream))
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_request_sends_an_anthropic_version_header(upstream):
    fake.install(upstream)
    await collect(make_provider(upstream))
    assert upstream.requests[0].headers.get("anthropic-version")


async def test_request_carries_system_and_messages_separately(upstream):
    fake.install(upstream)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]
    await collect(make_provider(upstream), messages)
    body = upstream.requests[0].json()
    assert body["system"] == "Be brief."
    assert body["messages"] == messages[1:]


async def test_request_asks_for_the_chosen_model(upstream):
    fake.install(upstream)
    await collect(make_provider(upstream))
    assert upstream.requests[0].json()["model"] == MODEL


# --- Why a reply ended: stop reasons, refusals, thinking ---------------------------------


async def test_refusal_without_text_finishes_as_refusal_with_its_category(upstream):
    details = {"type": "refusal", "category": "cyber", "explanation": "Could enable malware."}
    upstream.add(
        "POST",
        fake.MESSAGES_PATH,
        fake.stream_response([], stop_reason="refusal", stop_details=details, output_tokens=2),
    )
    events = await collect(make_provider(upstream))
    assert events == [Usage(12, 2), Finish("refusal", "cyber: Could enable malware.")]


async def test_refusal_without_details_finishes_as_refusal(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.stream_response([], stop_reason="refusal"))
    events = await collect(make_provider(upstream))
    assert events[-1] == Finish("refusal")


async def test_thinking_streams_as_reasoning_apart_from_the_reply(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.stream_response(["Four."], thinking="2 + 2 is 4"))
    events = await collect(make_provider(upstream))
    assert (reasoning_of(events), text_of(events)) == ("2 + 2 is 4", "Four.")


async def test_thinking_that_used_up_max_tokens_finishes_as_length_with_its_tokens(upstream):
    upstream.add(
        "POST",
        fake.MESSAGES_PATH,
        fake.stream_response(
            [],
            thinking="The user greets me. I should",
            stop_reason="max_tokens",
            output_tokens=256,
            thinking_tokens=256,
        ),
    )
    events = await collect(make_provider(upstream))
    assert reasoning_of(events) == "The user greets me. I should"
    assert events[-2:] == [Usage(12, 256, reasoning_tokens=256), Finish("length")]
    assert text_of(events) == ""


async def test_redacted_thinking_adds_nothing_to_read(upstream):
    upstream.add(
        "POST", fake.MESSAGES_PATH, fake.stream_response(["Sure."], redacted_thinking=True)
    )
    events = await collect(make_provider(upstream))
    assert events == [TextDelta("Sure."), Usage(12, 2), Finish("stop")]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", Finish("stop")),
        ("stop_sequence", Finish("stop")),
        ("tool_use", Finish("tool_calls")),
        ("pause_turn", Finish("pause_turn")),
        ("model_context_window_exceeded", Finish("length", "model_context_window_exceeded")),
    ],
)
async def test_stop_reason_on_the_wire_becomes_the_finish(upstream, stop_reason, finish):
    upstream.add("POST", fake.MESSAGES_PATH, fake.stream_response(["Hi"], stop_reason=stop_reason))
    events = await collect(make_provider(upstream))
    assert events[-1] == finish


async def test_message_stop_without_a_stop_reason_is_a_normal_stop(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.stream_response(["Hi"], stop_reason=None))
    events = await collect(make_provider(upstream))
    assert events[-1] == Finish("stop")


# --- Stream shapes the API sends ----------------------------------------------------------


async def test_pings_between_blocks_and_deltas_are_ignored(upstream):
    ping = sse({"type": "ping"}, event="ping")
    events = fake.stream_events(["Hel", "lo"], thinking="hm")
    interleaved = [item for event in events for item in (event, ping)]
    upstream.add("POST", fake.MESSAGES_PATH, StreamResponse(interleaved))
    events = await collect(make_provider(upstream))
    assert (text_of(events), reasoning_of(events), events[-1]) == ("Hello", "hm", Finish("stop"))


async def test_usage_counts_cached_input_from_the_final_message_delta(upstream):
    events = fake.stream_events(["Hi"])
    final_usage = {
        "input_tokens": 5,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 100,
        "output_tokens": 7,
    }
    delta = sse(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": final_usage},
        event="message_delta",
    )
    upstream.add("POST", fake.MESSAGES_PATH, StreamResponse([*events[:-2], delta, events[-1]]))
    events = await collect(make_provider(upstream))
    assert Usage(125, 7) in events


async def test_block_types_and_events_without_text_are_skipped(upstream):
    # Citations, tool input and event types newer than this code carry no reply text.
    citation = sse(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {
                "type": "citations_delta",
                "citation": {"type": "char_location", "cited_text": "x", "document_index": 0},
            },
        },
        event="content_block_delta",
    )
    unknown = sse({"type": "compaction_progress", "percent": 50}, event="compaction_progress")
    events = fake.stream_events(["Hello"])
    upstream.add(
        "POST", fake.MESSAGES_PATH, StreamResponse([*events[:4], citation, unknown, *events[4:]])
    )
    events = await collect(make_provider(upstream))
    assert (text_of(events), events[-1]) == ("Hello", Finish("stop"))


# --- Histories the API accepts ------------------------------------------------------------

_HISTORIES = MESSY_HISTORIES


@pytest.mark.parametrize("name", list(_HISTORIES))
def test_the_fake_rejects_these_histories_as_they_are(name):
    assert fake.check_messages(_HISTORIES[name]) is not None


@pytest.mark.parametrize("name", list(_HISTORIES))
async def test_history_is_mapped_to_one_the_api_accepts(upstream, name):
    fake.install(upstream, reply="Answer.")
    events = await collect(make_provider(upstream, retries=0), _HISTORIES[name])
    assert text_of(events) == "Answer."
    assert fake.check_messages(upstream.requests[0].json()["messages"]) is None


async def test_repeated_question_reaches_the_api_as_one_user_turn(upstream):
    fake.install(upstream)
    await collect(make_provider(upstream), _HISTORIES["user-user"])
    assert upstream.requests[0].json()["messages"] == [
        {
            "role": "user",
            "content": "What is the capital of France?\n\nWhat is the capital of France?",
        }
    ]


# --- The fault matrix: every fault, its kind, never the key -------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_FAULTS = {
    "401": (lambda: fake.error_response(401, f"invalid x-api-key {KEY}"), AuthenticationError),
    "402-billing": (
        lambda: fake.error_response(402, f"Credit balance too low for {KEY}"),
        PermissionDeniedError,
    ),
    "403": (lambda: fake.error_response(403, f"{KEY} may not use {MODEL}"), PermissionDeniedError),
    "404-model": (lambda: fake.model_not_found(MODEL), ModelNotFoundError),
    "429": (
        lambda: fake.error_response(429, f"Rate limit for {KEY}", headers={"retry-after": "60"}),
        RateLimitedError,
    ),
    "500": (lambda: fake.error_response(500, f"Internal error ({KEY})"), UnavailableError),
    "529-overloaded": (lambda: fake.error_response(529), UnavailableError),
    "stream-dropped": (lambda: fake.broken_stream(["Hello", " wor"]), UnavailableError),
    "malformed-event": (
        lambda: StreamResponse(
            [fake.stream_events()[0], b"event: content_block_delta\ndata: {not json\n\n"]
        ),
        UnavailableError,
    ),
    "html-error-page": (
        lambda: JsonResponse(raw=b"<html>Bad gateway</html>", status=502, content_type="text/html"),
        UnavailableError,
    ),
    "error-event-overloaded": (
        lambda: StreamResponse([fake.stream_events()[0], fake.error_event("overloaded_error")]),
        UnavailableError,
    ),
    "error-event-rate-limit": (
        lambda: StreamResponse([fake.stream_events()[0], fake.error_event("rate_limit_error")]),
        RateLimitedError,
    ),
    "error-event-api-error": (
        lambda: StreamResponse([fake.stream_events()[0], fake.error_event("api_error")]),
        UnavailableError,
    ),
    "error-event-timeout": (
        lambda: StreamResponse([fake.stream_events()[0], fake.error_event("timeout_error")]),
        ProviderTimeoutError,
    ),
    "error-event-invalid-request": (
        lambda: StreamResponse(
            [fake.stream_events()[0], fake.error_event("invalid_request_error", f"bad {KEY}")]
        ),
        BadRequestError,
    ),
    "timeout": (lambda: fake.stream_response(["Late"], delay=2.0), ProviderTimeoutError),
}


@pytest.mark.parametrize("fault", list(_FAULTS))
async def test_fault_raises_its_kind_without_the_key(upstream, fault):
    response, kind = _FAULTS[fault]
    upstream.set_default("POST", fake.MESSAGES_PATH, response())
    _received, error = await collect_until_error(make_provider(upstream, timeout=0.5, retries=0))
    assert type(error) is kind
    assert KEY not in str(error) and "SECRET0123456789" not in error.message


async def test_refused_connection_raises_unavailable_without_the_key():
    provider = AnthropicProvider(api_key=KEY, base_url=f"http://127.0.0.1:{_free_port()}")
    provider.retry_policy = RetryPolicy(max_retries=0)
    with pytest.raises(UnavailableError) as caught:
        await collect(provider)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("status", [500, 529])
async def test_server_error_before_text_is_retried_then_answers(upstream, status):
    upstream.add(
        "POST", fake.MESSAGES_PATH, fake.error_response(status), fake.stream_response(["Fine"])
    )
    events = await collect(make_provider(upstream))
    assert (text_of(events), len(upstream.requests)) == ("Fine", 2)


# --- Models -----------------------------------------------------------------------------


async def test_fetch_models_lists_live_ids_without_retired_ones(upstream):
    upstream.add(
        "GET",
        fake.MODELS_PATH,
        fake.models_response(["claude-opus-5-5", "claude-haiku-5-5"], retired=["claude-2"]),
    )
    assert await make_provider(upstream).fetch_models() == ["claude-opus-5-5", "claude-haiku-5-5"]


async def test_list_models_falls_back_to_the_defaults_when_the_api_fails(upstream, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    upstream.set_default("GET", fake.MODELS_PATH, fake.error_response(500))
    models = await make_provider(upstream).list_models()
    assert models == list(AnthropicProvider.default_models)


# --- Errors -----------------------------------------------------------------------------


async def test_invalid_key_raises_authentication_error_with_a_plain_message(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.error_response(401))
    with pytest.raises(AuthenticationError) as caught:
        await collect(make_provider(upstream))
    assert str(caught.value) == "Anthropic: invalid API key (check ANTHROPIC_API_KEY)"


async def test_error_messages_never_contain_the_api_key(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.error_response(400, f"bad key {KEY} here"))
    with pytest.raises(BadRequestError) as caught:
        await collect(make_provider(upstream))
    assert "SECRET0123456789" not in str(caught.value)


async def test_unknown_model_raises_model_not_found(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.model_not_found(MODEL))
    with pytest.raises(ModelNotFoundError):
        await collect(make_provider(upstream))


async def test_rate_limit_with_retry_after_is_retried_then_answers(upstream):
    upstream.add(
        "POST",
        fake.MESSAGES_PATH,
        fake.error_response(429, headers={"retry-after": "0"}),
        fake.stream_response(["Done"]),
    )
    events = await collect(make_provider(upstream))
    assert (text_of(events), len(upstream.requests)) == ("Done", 2)


async def test_persistent_rate_limit_raises_rate_limited_with_retry_after(upstream):
    upstream.set_default(
        "POST", fake.MESSAGES_PATH, fake.error_response(429, headers={"retry-after-ms": "10"})
    )
    with pytest.raises(RateLimitedError) as caught:
        await collect(make_provider(upstream, retries=1))
    assert caught.value.retry_after == pytest.approx(0.01)


async def test_long_retry_after_is_reported_without_waiting(upstream):
    upstream.set_default(
        "POST", fake.MESSAGES_PATH, fake.error_response(429, headers={"retry-after": "120"})
    )
    with pytest.raises(RateLimitedError):
        await collect(make_provider(upstream))
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("status", [500, 529])
async def test_server_error_or_overload_raises_unavailable(upstream, status):
    upstream.set_default("POST", fake.MESSAGES_PATH, fake.error_response(status))
    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream, retries=0))


async def test_sdk_does_not_retry_on_its_own(upstream):
    upstream.set_default("POST", fake.MESSAGES_PATH, fake.error_response(529))
    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream, retries=0))
    assert len(upstream.requests) == 1


async def test_error_event_mid_stream_raises_unavailable(upstream):
    events = fake.stream_events(["Partial"])
    upstream.add(
        "POST",
        fake.MESSAGES_PATH,
        StreamResponse([*events[:4], fake.error_event("overloaded_error")]),
    )
    received = []
    with pytest.raises(UnavailableError):
        async for event in make_provider(upstream).stream(HELLO, MODEL):
            received.append(event)
    assert (text_of(received), len(upstream.requests)) == ("Partial", 1)


async def test_error_event_before_any_text_is_retried(upstream):
    upstream.add(
        "POST",
        fake.MESSAGES_PATH,
        StreamResponse([fake.stream_events()[0], fake.error_event("overloaded_error")]),
        fake.stream_response(["Recovered"]),
    )
    events = await collect(make_provider(upstream))
    assert text_of(events) == "Recovered"


async def test_stream_broken_after_text_raises_unavailable_without_retry(upstream):
    upstream.set_default("POST", fake.MESSAGES_PATH, fake.broken_stream(["Hello", " wor"]))
    received = []
    with pytest.raises(UnavailableError):
        async for event in make_provider(upstream).stream(HELLO, MODEL):
            received.append(event)
    assert (text_of(received), len(upstream.requests)) == ("Hello wor", 1)


async def test_stream_ending_without_a_stop_reason_after_text_is_cut_off(upstream):
    # A proxy timing out ends the body cleanly, without message_delta or message_stop.
    events = fake.without_end(fake.stream_events(["Step 1. Open the", " settings and"]))
    upstream.add("POST", fake.MESSAGES_PATH, StreamResponse(events))
    events = await collect(make_provider(upstream))
    assert (text_of(events), events[-1]) == ("Step 1. Open the settings and", Finish("cut_off"))


async def test_stream_ending_without_a_stop_reason_after_text_is_not_retried(upstream):
    events = fake.without_end(fake.stream_events(["Step 1."]))
    upstream.set_default("POST", fake.MESSAGES_PATH, StreamResponse(events))
    await collect(make_provider(upstream))
    assert len(upstream.requests) == 1


async def test_stream_ending_without_a_stop_reason_before_text_is_retried(upstream):
    upstream.add(
        "POST",
        fake.MESSAGES_PATH,
        StreamResponse(fake.without_end(fake.stream_events([]))),
        fake.stream_response(["Recovered"]),
    )
    events = await collect(make_provider(upstream))
    assert (text_of(events), events[-1]) == ("Recovered", Finish("stop"))


async def test_stream_ending_without_a_stop_reason_or_text_raises_unavailable(upstream):
    events = fake.without_end(fake.stream_events([]))
    upstream.set_default("POST", fake.MESSAGES_PATH, StreamResponse(events))
    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream, retries=1))


async def test_stop_reason_then_a_dropped_connection_still_finishes(upstream):
    # message_delta said end_turn; only message_stop was lost with the connection.
    events = fake.stream_events(["All there."], output_tokens=3)
    upstream.add("POST", fake.MESSAGES_PATH, StreamResponse([*events[:-1], Break()]))
    events = await collect(make_provider(upstream))
    assert events[-2:] == [Usage(12, 3), Finish("stop")]


async def test_malformed_event_raises_unavailable(upstream):
    start = fake.stream_events()[0]
    garbage = b"event: content_block_delta\ndata: {not json\n\n"
    upstream.add("POST", fake.MESSAGES_PATH, StreamResponse([start, garbage]))
    with pytest.raises(UnavailableError):
        await collect(make_provider(upstream, retries=0))


async def test_slow_upstream_raises_timeout(upstream):
    upstream.set_default("POST", fake.MESSAGES_PATH, fake.stream_response(["Late"], delay=2.0))
    with pytest.raises(ProviderTimeoutError):
        await collect(make_provider(upstream, timeout=0.3, retries=0))


async def test_stream_stalling_midway_raises_timeout(upstream):
    events = fake.stream_events(["Hello", " world"])
    upstream.add("POST", fake.MESSAGES_PATH, StreamResponse([*events[:4], Pause(2.0), *events[4:]]))
    with pytest.raises(ProviderTimeoutError):
        await collect(make_provider(upstream, timeout=0.3))


async def test_missing_api_key_raises_not_configured_without_a_request(upstream):
    provider = AnthropicProvider(api_key="", base_url=upstream.url)
    with pytest.raises(NotConfiguredError):
        await collect(provider)
    assert upstream.requests == []


def slow_stream() -> StreamResponse:
    events = fake.stream_events(["Hello", " and", " more"])
    return StreamResponse([*events[:4], Pause(5.0), *events[4:]])  # after "Hello"


async def test_closing_the_stream_early_closes_the_upstream_response(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, slow_stream())
    events = make_provider(upstream).stream(HELLO, MODEL)
    assert await anext(events) == TextDelta("Hello")
    started = time.monotonic()
    await events.aclose()  # the user pressed Stop
    closed = await asyncio.to_thread(upstream.requests[0].client_closed.wait, 1.0)
    assert closed and time.monotonic() - started < 1.0


async def test_cancelling_the_consumer_closes_the_upstream_response(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, slow_stream())
    received: list = []

    async def consume() -> None:
        async for event in make_provider(upstream).stream(HELLO, MODEL):
            received.append(event)

    task = asyncio.ensure_future(consume())
    for _ in range(200):  # until "Hello" arrived; the next read waits on the upstream
        if received:
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    task.cancel()  # the browser went away
    with pytest.raises(asyncio.CancelledError):
        await task
    closed = await asyncio.to_thread(upstream.requests[0].client_closed.wait, 1.0)
    assert closed and time.monotonic() - started < 1.0


def test_claude_says_it_takes_no_temperature_so_the_settings_can_disable_it():
    provider = AnthropicProvider(api_key="sk-ant-test")
    assert "temperature" in provider.unsupported_options(fake.DEFAULT_MODEL)
    request = _build_request(
        [{"role": "user", "content": "hi"}], fake.DEFAULT_MODEL, ChatOptions(temperature=0.5)
    )
    assert "temperature" not in request


# --- Images, PDFs, extended thinking and model capabilities -------------------------------


@pytest.fixture
def fresh_cache(settings):
    """A private Django cache: the model list's capabilities are kept there."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"anthropic-{time.monotonic_ns()}",
        }
    }


def test_map_messages_turns_parts_into_image_and_document_blocks():
    history = [{"role": "user", "content": [media.image(), media.pdf("q3.pdf"), media.text("Hi")]}]
    _system, turns = _map_messages(history)
    assert turns == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": media.PNG_B64},
                },
                {
                    "type": "document",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": media.PDF_B64,
                    },
                    "title": "q3.pdf",
                },
                {"type": "text", "text": "Hi"},
            ],
        }
    ]


def test_map_messages_merges_an_image_turn_with_the_next_question():
    history = [*media.ask_about_image("Look"), {"role": "user", "content": "  "}]
    history += [{"role": "user", "content": "Well?"}]
    _system, turns = _map_messages(history)
    assert [block["type"] for block in turns[0]["content"]] == ["image", "text", "text"]
    assert len(turns) == 1


async def test_image_reaches_claude_as_a_base64_image_block(upstream):
    fake.install(upstream, reply="A single pixel.")
    events = await collect(make_provider(upstream), media.ask_about_image())
    assert text_of(events) == "A single pixel."
    [message] = upstream.requests[0].json()["messages"]
    assert message["content"] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": media.PNG_B64},
        },
        {"type": "text", "text": "What is in this picture?"},
    ]


async def test_pdf_reaches_claude_as_a_base64_document_block(upstream):
    fake.install(upstream, reply="A quarterly report.")
    events = await collect(make_provider(upstream), media.ask_about_pdf())
    assert events[-1] == Finish("stop")
    [message] = upstream.requests[0].json()["messages"]
    assert message["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": media.PDF_B64},
        "title": "report.pdf",
    }


async def test_thinking_budget_turns_extended_thinking_on(upstream):
    fake.install(upstream, reply="Four.", thinking="2 + 2 makes 4.")
    options = ChatOptions(thinking_budget=2048, temperature=0.5)
    events = await collect(make_provider(upstream), options=options)
    body = upstream.requests[0].json()
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048, "display": "summarized"}
    # The budget counts against max_tokens, which must exceed it: room for the reply too.
    assert body["max_tokens"] == 2048 + DEFAULT_MAX_TOKENS
    assert "temperature" not in body
    assert (reasoning_of(events), text_of(events)) == ("2 + 2 makes 4.", "Four.")
    # Thinking deltas come before the text, and the signature delta adds nothing.
    assert (
        isinstance(events[0], ReasoningDelta)
        and len([e for e in events if isinstance(e, ReasoningDelta)]) == 2
    )
    # Output tokens include the thinking, which is also counted apart.
    assert Usage(input_tokens=12, output_tokens=6 + 2, reasoning_tokens=6) in events


async def test_thinking_budget_adds_the_chosen_max_tokens_for_the_reply(upstream):
    fake.install(upstream)
    await collect(
        make_provider(upstream), options=ChatOptions(thinking_budget=4096, max_tokens=300)
    )
    assert upstream.requests[0].json()["max_tokens"] == 4096 + 300


async def test_no_thinking_is_asked_for_without_a_budget(upstream):
    fake.install(upstream)
    await collect(make_provider(upstream))
    body = upstream.requests[0].json()
    assert "thinking" not in body and "output_config" not in body


def test_a_model_that_does_not_think_gets_no_thinking_budget():
    options = ChatOptions(thinking_budget=2048)
    request = _build_request(HELLO, "claude-3-5-sonnet-20241022", options)
    assert "thinking" not in request and request["max_tokens"] == DEFAULT_MAX_TOKENS
    assert "thinking" in _build_request(HELLO, "claude-3-7-sonnet-20250219", options)


@pytest.mark.parametrize(("effort", "sent"), [("minimal", "low"), ("high", "high")])
async def test_reasoning_effort_is_output_config_effort_where_the_model_takes_it(
    upstream, effort, sent
):
    fake.install(upstream)
    await collect(make_provider(upstream), options=ChatOptions(reasoning_effort=effort))
    assert upstream.requests[0].json()["output_config"] == {"effort": sent}


def test_reasoning_effort_is_not_sent_to_a_model_without_effort():
    request = _build_request(
        HELLO, "claude-sonnet-4-20250514", ChatOptions(reasoning_effort="high")
    )
    assert "output_config" not in request


async def test_model_list_capabilities_say_what_each_model_reads(upstream, fresh_cache):
    fake.install(
        upstream,
        capabilities={
            "claude-sonnet-5-5": fake.capabilities_json(),
            "claude-haiku-5-5": fake.capabilities_json(
                pdf=False, thinking_budget=False, effort=False
            ),
        },
    )
    provider = make_provider(upstream)
    assert provider.capabilities("claude-haiku-5-5") == ModelCapabilities(
        images=True, pdf=True, reasoning=True
    )  # before the list is fetched: the table
    await provider.list_models()
    assert provider.capabilities("claude-sonnet-5-5") == ModelCapabilities(True, True, True)
    assert provider.capabilities("claude-haiku-5-5") == ModelCapabilities(True, False, True)
    assert set(provider.unsupported_options("claude-sonnet-5-5")) == {"temperature"}
    assert set(provider.unsupported_options("claude-haiku-5-5")) == {
        "temperature",
        "thinking_budget",
        "reasoning_effort",
    }
    # A request for a model the list says takes no budget and no effort sends neither.
    options = ChatOptions(thinking_budget=2048, reasoning_effort="low")
    events = [e async for e in provider.stream(HELLO, "claude-haiku-5-5", options)]
    assert events[-1] == Finish("stop")
    body = upstream.requests[-1].json()
    assert "thinking" not in body and "output_config" not in body


def test_capabilities_table_covers_claude_generations():
    provider = AnthropicProvider(api_key="sk-ant-test")
    assert provider.capabilities("claude-3-haiku-20240307") == ModelCapabilities(True, True, False)
    assert provider.capabilities("claude-opus-4-1") == ModelCapabilities(True, True, True)
    assert provider.capabilities("claude-2.1") == ModelCapabilities(False, False, False)
    assert "thinking_budget" in provider.unsupported_options("claude-3-5-haiku-20241022")


# --- Stop sequences ---------------------------------------------------------------------


async def test_stop_sequences_go_as_stop_sequences_and_end_as_a_complete_reply(upstream):
    events = fake.stream_events(["1, 2, 3"], stop_reason="stop_sequence")
    # What the API says when a stop sequence ended the reply: which one.
    events = [
        e.replace(b'"stop_sequence": null', b'"stop_sequence": "END"')
        if isinstance(e, bytes) and b"message_delta" in e
        else e
        for e in events
    ]
    upstream.add("POST", fake.MESSAGES_PATH, StreamResponse(events))
    received = await collect(make_provider(upstream), options=ChatOptions(stop=("END", "##")))
    assert upstream.requests[0].json()["stop_sequences"] == ["END", "##"]
    assert text_of(received) == "1, 2, 3"
    assert received[-1] == Finish("stop")


async def test_no_stop_sequences_sends_no_field(upstream):
    upstream.add("POST", fake.MESSAGES_PATH, fake.stream_response(["Hi"]))
    await collect(make_provider(upstream))
    assert "stop_sequences" not in upstream.requests[0].json()


async def test_a_whitespace_stop_sequence_is_refused_before_any_request(upstream):
    provider = make_provider(upstream)
    with pytest.raises(BadRequestError) as refused:
        await collect(provider, options=ChatOptions(stop=("END", "\n")))
    assert "whitespace" in refused.value.user_message
    assert upstream.requests == []
