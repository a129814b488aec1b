"""GoogleProvider: pure mapping, then the real google-genai SDK against a fake Gemini API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache

from chat.providers import get_provider
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
from chat.providers.google_provider import (
    CONTINUE_USER_TURN,
    OPENING_USER_TURN,
    GoogleProvider,
    _build_request,
    _finish,
    _finish_reason,
    _map_messages,
    _split_api_version,
)
from chat.tests.fakes import google_fake as gf
from chat.tests.fakes.server import Break, FakeUpstream, JsonResponse, StreamResponse
from chat.tests.providers import media
from chat.tests.providers.histories import MESSY_HISTORIES

KEY = "AIzaSyFAKE-test-key-0123456789abcdef"
MODEL = "gemini-3.5-flash"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def provider(upstream: FakeUpstream) -> GoogleProvider:
    gf.install(upstream)
    google = GoogleProvider(api_key=KEY, base_url=upstream.url, timeout=2.0)
    google.retry_policy = RetryPolicy(max_retries=2, base_delay=0.01)
    return google


@pytest.fixture
def no_retry(provider: GoogleProvider) -> GoogleProvider:
    provider.retry_policy = RetryPolicy(max_retries=0)
    return provider


async def collect(provider: GoogleProvider, messages=HELLO, options=None) -> list:
    return [event async for event in provider.stream(messages, MODEL, options)]


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


# -- pure mapping --------------------------------------------------------------------------


def test_map_messages_moves_system_prompts_to_system_instruction():
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
    ]
    system, _contents = _map_messages(messages, "Be brief.")
    assert system == "Be brief.\n\nAnswer in French."


def test_map_messages_calls_the_assistant_model():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"},
    ]
    _system, contents = _map_messages(messages)
    assert [c["role"] for c in contents] == ["user", "model", "user"]


def test_map_messages_merges_consecutive_turns_of_one_role():
    messages = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    _system, contents = _map_messages(messages)
    assert contents == [{"role": "user", "parts": [{"text": "one\n\ntwo"}]}]


def test_map_messages_drops_blank_turns():
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "  "},
        {"role": "user", "content": "two"},
    ]
    _system, contents = _map_messages(messages)
    assert contents == [{"role": "user", "parts": [{"text": "one\n\ntwo"}]}]


def test_map_messages_without_any_text_is_a_bad_request():
    with pytest.raises(BadRequestError):
        _map_messages([{"role": "user", "content": " "}])


def test_map_messages_keeps_a_leading_model_turn_after_a_stand_in_user_turn():
    _system, contents = _map_messages(
        [{"role": "assistant", "content": "What's your name?"}, {"role": "user", "content": "Bob"}]
    )
    assert contents == [
        {"role": "user", "parts": [{"text": OPENING_USER_TURN}]},
        {"role": "model", "parts": [{"text": "What's your name?"}]},
        {"role": "user", "parts": [{"text": "Bob"}]},
    ]


def test_map_messages_asks_to_continue_after_a_trailing_model_turn():
    _system, contents = _map_messages(
        [{"role": "user", "content": "Write a poem"}, {"role": "assistant", "content": "Roses"}]
    )
    assert contents[-1] == {"role": "user", "parts": [{"text": CONTINUE_USER_TURN}]}


def test_build_request_puts_options_in_the_config():
    request = _build_request(HELLO, MODEL, ChatOptions("Be brief.", 0.2, 100))
    assert request["config"] == {
        "automatic_continuation": False,
        "automatic_function_calling": {"disable": True},
        "system_instruction": "Be brief.",
        "temperature": 0.2,
        "max_output_tokens": 100,
        "thinking_config": {"include_thoughts": True},
    }


def test_build_request_leaves_unset_options_to_the_model():
    request = _build_request(HELLO, "gemini-2.0-flash", ChatOptions())
    assert request["config"] == {
        "automatic_continuation": False,
        "automatic_function_calling": {"disable": True},
    }


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("CONTINUATION", "length"),
        ("MALFORMED_FUNCTION_CALL", "malformed_function_call"),
        ("FINISH_REASON_UNSPECIFIED", None),
        (None, None),
    ],
)
def test_finish_reason_is_normalised(reason, expected):
    assert _finish_reason(reason) == expected


def test_base_url_ending_in_a_version_is_split():
    assert _split_api_version("https://proxy.example/gemini/v1beta/") == (
        "https://proxy.example/gemini",
        "v1beta",
    )


def test_base_url_without_a_version_is_kept():
    assert _split_api_version("http://127.0.0.1:8000") == ("http://127.0.0.1:8000", None)


def test_missing_package_makes_provider_unusable_with_install_hint():
    class WithoutSdk(GoogleProvider):
        required_packages = ("not_installed_namespace.genai",)

    status = WithoutSdk(api_key=KEY).status()
    assert (status.usable, status.hint) == (False, "pip install google-genai")


def test_module_imports_without_the_sdk():
    code = (
        "import sys; sys.modules['google'] = None; sys.modules['google.genai'] = None\n"
        "from chat.providers.google_provider import GoogleProvider\n"
        "assert GoogleProvider.missing_packages() == ['google.genai']"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr


# -- streaming through the SDK ---------------------------------------------------------------


async def test_stream_yields_text_then_usage_then_finish(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.text_stream("Hel", "lo", prompt_tokens=5))
    events = await collect(provider)
    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(5, 2), Finish("stop")]


async def test_stream_leaves_out_thought_parts(provider, upstream):
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(
            gf.chunk("Let me think", thought=True),
            gf.chunk("Answer", finish_reason="STOP"),
        ),
    )
    assert text_of(await collect(provider)) == "Answer"


async def test_usage_counts_thinking_tokens_as_output(provider, upstream):
    usage = gf.usage_metadata(10, 4, thoughts_tokens=20)
    upstream.add(
        "POST", gf.STREAM_PATH, gf.events(gf.chunk("Hi", finish_reason="STOP", usage=usage))
    )
    events = await collect(provider)
    assert Usage(10, 24, reasoning_tokens=20) in events


async def test_stream_reports_max_tokens_as_length(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.text_stream("cut", finish_reason="MAX_TOKENS"))
    events = await collect(provider)
    assert events[-1] == Finish("length")


async def test_blocked_prompt_finishes_as_content_filter(provider, upstream):
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": gf.usage_metadata(3, 0),
    }
    upstream.add("POST", gf.STREAM_PATH, gf.events(blocked))
    events = await collect(provider)
    assert events[-1] == Finish("content_filter", "prompt blocked: SAFETY")


async def test_stream_without_a_finish_reason_after_text_is_cut_off(provider, upstream):
    # A proxy timing out ends the body cleanly; no candidate ever had a finishReason.
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.text_stream("Step 1. Open the", " settings and", finish_reason=None),
    )
    events = await collect(provider)
    assert (text_of(events), events[-1]) == ("Step 1. Open the settings and", Finish("cut_off"))
    assert len(upstream.requests) == 1


async def test_stream_without_a_finish_reason_or_text_is_retried(provider, upstream):
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(gf.chunk(usage=gf.usage_metadata(7, 0))),
        gf.text_stream("Recovered"),
    )
    events = await collect(provider)
    assert (text_of(events), events[-1]) == ("Recovered", Finish("stop"))


@pytest.mark.parametrize(
    "reason", ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "MODEL_ARMOR"]
)
async def test_filtered_reply_without_content_finishes_as_content_filter(
    provider, upstream, reason
):
    upstream.add("POST", gf.STREAM_PATH, gf.events(gf.safety_block(reason)))
    events = await collect(provider)
    assert events == [Usage(7, 0), Finish("content_filter", reason)]


async def test_reply_filtered_halfway_keeps_its_text(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.events(gf.chunk("Once upon"), gf.safety_block()))
    events = await collect(provider)
    assert (text_of(events), events[-1]) == ("Once upon", Finish("content_filter", "SAFETY"))


async def test_prompt_blocked_without_candidates_finishes_as_content_filter(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.events(gf.blocked_prompt("OTHER")))
    events = await collect(provider)
    assert events == [Usage(7, 0), Finish("content_filter", "prompt blocked: OTHER")]


async def test_thoughts_stream_as_reasoning_then_max_tokens_is_length(provider, upstream):
    usage = gf.usage_metadata(9, 0, thoughts_tokens=256)
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(
            gf.chunk("The user says hello.", thought=True),
            gf.chunk(" I should greet back", thought=True),
            gf.chunk(finish_reason="MAX_TOKENS", usage=usage),
        ),
    )
    events = await collect(provider)
    assert events == [
        ReasoningDelta("The user says hello."),
        ReasoningDelta(" I should greet back"),
        Usage(9, 256, reasoning_tokens=256),
        Finish("length"),
    ]


async def test_thoughts_and_answer_are_kept_apart(provider, upstream):
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(gf.chunk("Let me think", thought=True), gf.chunk("Answer", finish_reason="STOP")),
    )
    events = await collect(provider)
    assert (reasoning_of(events), text_of(events)) == ("Let me think", "Answer")


async def test_unmapped_finish_reason_keeps_its_own_word_and_name(provider, upstream):
    # The SDK drops the Gemini API's finishMessage; the reason alone must still come through.
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(
            gf.chunk(
                finish_reason="MALFORMED_FUNCTION_CALL",
                finish_message="Malformed function call: print(",
            )
        ),
    )
    events = await collect(provider)
    assert events == [Finish("malformed_function_call", "MALFORMED_FUNCTION_CALL")]


def test_finish_message_when_given_is_kept_in_the_detail():
    assert _finish("SAFETY", "Blocked by the dangerous-content filter.") == Finish(
        "content_filter", "SAFETY: Blocked by the dangerous-content filter."
    )


async def test_usage_only_on_the_last_event_is_reported(provider, upstream):
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.text_stream("Hel", "lo", prompt_tokens=5, usage_on_every_event=False),
    )
    events = await collect(provider)
    assert events == [TextDelta("Hel"), TextDelta("lo"), Usage(5, 2), Finish("stop")]


@pytest.mark.parametrize(
    "last",
    [
        gf.chunk(finish_reason="STOP"),  # no content at all
        gf.chunk(parts=[], finish_reason="STOP"),  # content without parts
        gf.chunk(parts=[{"text": ""}], finish_reason="STOP"),  # an empty text part
        gf.chunk(parts=[{"thoughtSignature": "c2lnbmF0dXJl"}], finish_reason="STOP"),
    ],
    ids=["no-content", "no-parts", "empty-text", "signature-only"],
)
async def test_last_event_without_text_still_finishes(provider, upstream, last):
    upstream.add("POST", gf.STREAM_PATH, gf.events(gf.chunk("Hello"), last))
    events = await collect(provider)
    assert events == [TextDelta("Hello"), Finish("stop")]


async def test_citation_metadata_leaves_the_text_as_it_is(provider, upstream):
    source = {"startIndex": 0, "endIndex": 5, "uri": "https://example.com/poem", "license": ""}
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(gf.chunk("Roses are red", finish_reason="STOP", citations=[source])),
    )
    events = await collect(provider)
    assert events == [TextDelta("Roses are red"), Finish("stop")]


async def test_finish_then_a_dropped_connection_still_finishes(provider, upstream):
    last = gf.chunk("All there.", finish_reason="STOP", usage=gf.usage_metadata(3, 2))
    upstream.add("POST", gf.STREAM_PATH, gf.events(last, Break()))
    events = await collect(provider)
    assert events == [TextDelta("All there."), Usage(3, 2), Finish("stop")]


async def test_a_call_logs_no_sdk_notice(provider, upstream, caplog):
    gf.reply(upstream, "ok")
    with caplog.at_level(logging.INFO, logger="google_genai"):
        await collect(provider)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("google_genai")] == []


def test_get_response_returns_the_whole_text(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.text_stream("Hello", ", ", "world"))
    assert provider.get_response(HELLO, MODEL) == "Hello, world"


def test_get_response_returns_a_readable_error_string(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.invalid_key())
    assert provider.get_response(HELLO, MODEL).startswith("Error: Google Gemini: ")


async def test_registry_provider_uses_google_settings(upstream, settings):
    settings.GOOGLE_API_KEY = KEY
    settings.GOOGLE_BASE_URL = upstream.url
    gf.reply(upstream, "from settings")
    events = [e async for e in get_provider("google").stream(HELLO, MODEL)]
    assert text_of(events) == "from settings"


# -- what goes over the wire -------------------------------------------------------------------


async def test_request_path_names_the_model_and_the_stream_endpoint(provider, upstream):
    gf.reply(upstream, "ok")
    await collect(provider)
    assert upstream.requests[0].route_path.endswith(f"/models/{MODEL}:streamGenerateContent")


async def test_request_asks_for_server_sent_events(provider, upstream):
    gf.reply(upstream, "ok")
    await collect(provider)
    assert upstream.requests[0].query == "alt=sse"


async def test_request_sends_the_key_in_x_goog_api_key(provider, upstream):
    gf.reply(upstream, "ok")
    await collect(provider)
    assert upstream.requests[0].headers["x-goog-api-key"] == KEY


async def test_request_body_has_system_instruction_and_contents(provider, upstream):
    gf.reply(upstream, "ok")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    ]
    await collect(provider, messages)
    body = upstream.requests[0].json()
    assert (body["systemInstruction"]["parts"], body["contents"]) == (
        [{"text": "Be brief."}],
        [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "Again"}]},
        ],
    )


async def test_request_body_has_generation_config(provider, upstream):
    gf.reply(upstream, "ok")
    await collect(provider, options=ChatOptions(temperature=0.4, max_tokens=64))
    body = upstream.requests[0].json()
    assert body["generationConfig"] == {
        "temperature": 0.4,
        "maxOutputTokens": 64,
        # MODEL thinks: its thought summaries are always asked for.
        "thinkingConfig": {"include_thoughts": True},
    }


async def test_base_url_version_is_used_in_the_path(upstream):
    gf.reply(upstream, "ok")
    google = GoogleProvider(api_key=KEY, base_url=f"{upstream.url}/v1beta", timeout=2.0)
    await collect(google)
    assert upstream.requests[0].route_path == f"/v1beta/models/{MODEL}:streamGenerateContent"


async def test_missing_key_raises_not_configured_without_a_request(upstream):
    google = GoogleProvider(api_key="", base_url=upstream.url)
    with pytest.raises(NotConfiguredError):
        await collect(google)
    assert upstream.requests == []


# -- models ----------------------------------------------------------------------------------


async def test_fetch_models_lists_chat_models_without_prefix(provider, upstream):
    gf.set_models(
        upstream,
        ["gemini-3.5-flash", gf.model_entry("gemini-embedding-001", methods=["embedContent"])],
    )
    assert await provider.fetch_models() == ["gemini-3.5-flash"]


async def test_fetch_models_follows_pages(provider, upstream):
    upstream.add(
        "GET",
        gf.MODELS_PATH,
        gf.models_response(["gemini-3.5-flash"], next_page_token="page-2"),
        gf.models_response(["gemini-3.1-pro-preview"]),
    )
    assert await provider.fetch_models() == ["gemini-3.5-flash", "gemini-3.1-pro-preview"]


async def test_list_models_falls_back_to_defaults_on_server_error(provider, upstream):
    await cache.aclear()
    upstream.set_default("GET", gf.MODELS_PATH, gf.error_response(500, "Internal error"))
    assert await provider.list_models() == list(GoogleProvider.default_models)


# -- errors ----------------------------------------------------------------------------------


async def test_invalid_key_is_an_authentication_error(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.invalid_key())
    with pytest.raises(AuthenticationError):
        await collect(no_retry)


async def test_error_message_names_the_provider_and_hides_the_key(no_retry, upstream):
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.error_response(400, f"API key not valid: {KEY}", reason="API_KEY_INVALID"),
    )
    with pytest.raises(AuthenticationError) as caught:
        await collect(no_retry)
    message = str(caught.value)
    assert message.startswith("Google Gemini: ") and KEY not in message


async def test_401_is_an_authentication_error(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.error_response(401, "Request had invalid credentials."))
    with pytest.raises(AuthenticationError):
        await collect(no_retry)


async def test_403_is_permission_denied(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.error_response(403, "Permission denied."))
    with pytest.raises(PermissionDeniedError):
        await collect(no_retry)


async def test_unknown_model_is_model_not_found(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.model_not_found(MODEL))
    with pytest.raises(ModelNotFoundError):
        await collect(no_retry)


async def test_other_400_is_a_bad_request(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.error_response(400, "temperature out of range"))
    with pytest.raises(BadRequestError) as caught:
        await collect(no_retry)
    assert str(caught.value) == "Google Gemini: temperature out of range"


async def test_rate_limit_with_retry_after_is_retried(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.rate_limited(retry_after="0"), gf.text_stream("ok"))
    events = await collect(provider)
    assert (text_of(events), len(upstream.requests)) == ("ok", 2)


async def test_persistent_rate_limit_is_rate_limited(provider, upstream):
    upstream.set_default("POST", gf.STREAM_PATH, gf.rate_limited(retry_after="0"))
    with pytest.raises(RateLimitedError):
        await collect(provider)


async def test_rate_limit_retry_delay_from_the_body_is_the_retry_after(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.rate_limited(retry_after=None, retry_delay="3s"))
    with pytest.raises(RateLimitedError) as caught:
        await collect(no_retry)
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_unavailable(no_retry, upstream, status):
    upstream.add("POST", gf.STREAM_PATH, gf.error_response(status, "The model is overloaded."))
    with pytest.raises(UnavailableError):
        await collect(no_retry)


async def test_sdk_does_not_retry_on_its_own(no_retry, upstream):
    upstream.set_default("POST", gf.STREAM_PATH, gf.error_response(503, "overloaded"))
    with pytest.raises(UnavailableError):
        await collect(no_retry)
    assert len(upstream.requests) == 1


async def test_server_error_before_text_is_retried(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.error_response(503, "overloaded"), gf.text_stream("ok"))
    assert text_of(await collect(provider)) == "ok"


async def test_stream_broken_halfway_is_unavailable(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.text_stream("Hel", end=Break()))
    with pytest.raises(UnavailableError):
        await collect(provider)


async def test_stream_broken_halfway_is_not_retried(provider, upstream):
    upstream.set_default("POST", gf.STREAM_PATH, gf.text_stream("Hel", end=Break()))
    received = []
    with pytest.raises(UnavailableError):
        async for event in provider.stream(HELLO, MODEL):
            received.append(event)
    assert (text_of(received), len(upstream.requests)) == ("Hel", 1)


async def test_sdk_does_not_resume_a_broken_stream_by_itself(provider, upstream):
    checkpoint = gf.chunk("Hel")
    checkpoint["candidates"][0]["continuationToken"] = "Y2hlY2twb2ludA=="
    upstream.set_default("POST", gf.STREAM_PATH, gf.events(checkpoint, Break()))
    with pytest.raises(UnavailableError):
        await collect(provider)
    assert len(upstream.requests) == 1


async def test_stream_broken_before_text_is_retried(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, StreamResponse([Break()]), gf.text_stream("ok"))
    assert text_of(await collect(provider)) == "ok"


async def test_malformed_event_is_unavailable(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, StreamResponse([b"data: {not json\r\n\r\n"]))
    with pytest.raises(UnavailableError):
        await collect(no_retry)


async def test_error_event_inside_the_stream_is_unavailable(no_retry, upstream):
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(gf.chunk("Hel"), gf.error_body(503, "The model is overloaded.")),
    )
    with pytest.raises(UnavailableError):
        await collect(no_retry)


async def test_empty_stream_is_unavailable(no_retry, upstream):
    upstream.add("POST", gf.STREAM_PATH, StreamResponse([]))
    with pytest.raises(UnavailableError):
        await collect(no_retry)


async def test_slow_upstream_times_out(upstream):
    upstream.add("POST", gf.STREAM_PATH, JsonResponse({}, delay=3.0))
    google = GoogleProvider(api_key=KEY, base_url=upstream.url, timeout=0.3, max_retries=0)
    with pytest.raises(ProviderTimeoutError):
        await collect(google)


async def test_stalled_stream_times_out(upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.text_stream("Hel", "lo", pause=3.0))
    google = GoogleProvider(api_key=KEY, base_url=upstream.url, timeout=0.3, max_retries=0)
    with pytest.raises(ProviderTimeoutError):
        await collect(google)


async def test_unreachable_upstream_is_unavailable():
    with FakeUpstream() as closed:
        url = closed.url  # nothing listens here once stopped
    google = GoogleProvider(api_key=KEY, base_url=url, timeout=0.5, max_retries=0)
    with pytest.raises(UnavailableError):
        await collect(google)


# -- histories the API accepts ----------------------------------------------------------------

_HISTORIES = MESSY_HISTORIES


@pytest.mark.parametrize("name", list(_HISTORIES))
def test_the_fake_rejects_these_histories_as_the_api_does(name):
    roles = {"user": "user", "assistant": "model"}
    as_is = [
        {"role": roles[m["role"]], "parts": [{"text": m["content"]}]} for m in _HISTORIES[name]
    ]
    assert gf.check_contents({"contents": as_is}) is not None


@pytest.mark.parametrize("name", list(_HISTORIES))
async def test_history_is_mapped_to_one_the_api_accepts(provider, upstream, name):
    upstream.add("POST", gf.STREAM_PATH, gf.validated(gf.text_stream("Answer.")))
    events = await collect(provider, _HISTORIES[name])
    assert text_of(events) == "Answer."
    assert gf.check_contents(upstream.requests[0].json()) is None


async def test_repeated_question_reaches_the_api_as_one_user_turn(provider, upstream):
    gf.reply(upstream, "Paris.")
    await collect(provider, _HISTORIES["user-user"])
    question = "What is the capital of France?"
    assert upstream.requests[0].json()["contents"] == [
        {"role": "user", "parts": [{"text": f"{question}\n\n{question}"}]}
    ]


# -- the fault matrix: every fault, its kind, never the key ---------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_FAULTS = {
    "400-bad-key": (
        lambda: gf.error_response(400, f"API key not valid: {KEY}", reason="API_KEY_INVALID"),
        AuthenticationError,
    ),
    "401": (lambda: gf.error_response(401, f"Invalid credentials {KEY}"), AuthenticationError),
    "403": (lambda: gf.error_response(403, f"{KEY} lacks permission"), PermissionDeniedError),
    "404-model": (lambda: gf.model_not_found(MODEL), ModelNotFoundError),
    "429": (lambda: gf.rate_limited(retry_after="60"), RateLimitedError),
    "500": (lambda: gf.error_response(500, f"Internal error for {KEY}"), UnavailableError),
    "503": (lambda: gf.error_response(503, "The model is overloaded."), UnavailableError),
    "stream-dropped": (lambda: gf.text_stream("Hello", " wor", end=Break()), UnavailableError),
    "malformed-event": (
        lambda: StreamResponse([b"data: {not json\r\n\r\n"]),
        UnavailableError,
    ),
    "html-error-page": (
        lambda: JsonResponse(raw=b"<html>Bad gateway</html>", status=502, content_type="text/html"),
        UnavailableError,
    ),
    "error-event-503": (
        lambda: gf.events(gf.chunk("Hel"), gf.error_body(503, "The model is overloaded.")),
        UnavailableError,
    ),
    "error-event-429": (
        lambda: gf.events(gf.error_body(429, f"Quota exceeded for {KEY}")),
        RateLimitedError,
    ),
    "timeout": (lambda: JsonResponse({}, delay=2.0), ProviderTimeoutError),
}


@pytest.mark.parametrize("fault", list(_FAULTS))
async def test_fault_raises_its_kind_without_the_key(upstream, fault):
    response, kind = _FAULTS[fault]
    upstream.set_default("POST", gf.STREAM_PATH, response())
    google = GoogleProvider(api_key=KEY, base_url=upstream.url, timeout=0.5, max_retries=0)
    with pytest.raises(ProviderError) as caught:
        await collect(google)
    assert type(caught.value) is kind
    assert KEY not in str(caught.value) and KEY not in caught.value.message


async def test_refused_connection_raises_unavailable_without_the_key():
    google = GoogleProvider(
        api_key=KEY, base_url=f"http://127.0.0.1:{_free_port()}", timeout=0.5, max_retries=0
    )
    with pytest.raises(UnavailableError) as caught:
        await collect(google)
    assert KEY not in str(caught.value)


# -- stopping early ---------------------------------------------------------------------------


async def test_closing_the_stream_early_closes_the_upstream_response(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.text_stream("one", "two", pause=10.0))
    events = provider.stream(HELLO, MODEL)
    assert await anext(events) == TextDelta("one")
    await events.aclose()
    closed = await asyncio.to_thread(upstream.requests[0].client_closed.wait, 1.0)
    assert closed


async def test_cancelling_the_stream_closes_the_upstream_response(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.text_stream("one", "two", pause=10.0))
    first = asyncio.Event()

    async def consume() -> None:
        async for _event in provider.stream(HELLO, MODEL):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    closed = await asyncio.to_thread(upstream.requests[0].client_closed.wait, 1.0)
    assert closed


@pytest.mark.parametrize(
    ("model_id", "chat"),
    [
        ("gemini-2.5-flash", True),
        ("models/gemini-3.1-pro-preview", True),
        ("gemini-2.5-flash-preview-tts", False),
        ("gemini-2.5-flash-image", False),
        ("imagen-4.0-generate-001", False),
        ("gemini-embedding-001", False),
        ("gemini-2.5-flash-native-audio-preview", False),
    ],
)
def test_model_menu_keeps_only_text_chat_models(model_id: str, chat: bool) -> None:
    from chat.providers.google_provider import is_text_chat_model

    assert is_text_chat_model(model_id) is chat


# -- images, PDFs, thinking and model capabilities -----------------------------------------


@pytest.fixture
def fresh_cache(settings):
    """A private Django cache: the model list's capabilities are kept there."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"google-{os.getpid()}-{id(settings)}",
        }
    }


def test_map_messages_turns_images_and_pdfs_into_inline_data_parts():
    history = [{"role": "user", "content": [media.image(), media.pdf(), media.text("Compare")]}]
    _system, [content] = _map_messages(history)
    image, document, text = content["parts"]
    assert (image.inline_data.mime_type, image.inline_data.data) == ("image/png", media.PNG)
    assert (document.inline_data.mime_type, document.inline_data.data) == (
        "application/pdf",
        media.PDF,
    )
    assert text == {"text": "Compare"}


def inline_data(part: dict) -> tuple[str, bytes]:
    """(MIME type, bytes) of an ``inlineData`` part as the SDK sent it (URL-safe base64;
    the API reads either spelling of the type's key)."""
    inline = part["inlineData"]
    return inline.get("mimeType") or inline["mime_type"], base64.urlsafe_b64decode(inline["data"])


async def test_image_reaches_gemini_as_inline_data(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.validated(gf.text_stream("A dot.")))
    events = await collect(provider, media.ask_about_image())
    assert text_of(events) == "A dot."
    [content] = upstream.requests[0].json()["contents"]
    image, question = content["parts"]
    assert inline_data(image) == ("image/png", media.PNG)
    assert question == {"text": "What is in this picture?"}


async def test_pdf_reaches_gemini_as_inline_data(provider, upstream):
    upstream.add("POST", gf.STREAM_PATH, gf.validated(gf.text_stream("A report.")))
    events = await collect(provider, media.ask_about_pdf())
    assert events[-1] == Finish("stop")
    [content] = upstream.requests[0].json()["contents"]
    assert inline_data(content["parts"][0]) == ("application/pdf", media.PDF)


async def test_thinking_budget_and_thoughts_are_asked_for(provider, upstream):
    gf.reply(upstream, "ok", model="gemini-2.5-flash")
    options = ChatOptions(thinking_budget=4096, reasoning_effort="high")
    await collect_model(provider, "gemini-2.5-flash", options)
    config = upstream.requests[0].json()["generationConfig"]
    # Gemini 2.5 takes a budget, not a thinking level.
    assert config["thinkingConfig"] == {"include_thoughts": True, "thinking_budget": 4096}


@pytest.mark.parametrize(("effort", "level"), [("minimal", "MINIMAL"), ("high", "HIGH")])
async def test_reasoning_effort_is_the_thinking_level_of_gemini_3(
    provider, upstream, effort, level
):
    gf.reply(upstream, "ok")
    options = ChatOptions(reasoning_effort=effort, thinking_budget=4096)
    await collect(provider, options=options)
    config = upstream.requests[0].json()["generationConfig"]
    # A level and a budget together are refused: the level wins.
    assert config["thinkingConfig"] == {"include_thoughts": True, "thinking_level": level}


async def test_a_model_that_does_not_think_gets_no_thinking_config(provider, upstream):
    gf.reply(upstream, "ok", model="gemini-2.0-flash")
    options = ChatOptions(thinking_budget=4096, reasoning_effort="low")
    await collect_model(provider, "gemini-2.0-flash", options)
    assert "thinkingConfig" not in upstream.requests[0].json().get("generationConfig", {})


async def test_thought_parts_stream_as_reasoning_with_their_tokens(provider, upstream):
    usage = gf.usage_metadata(8, 2, thoughts_tokens=30)
    upstream.add(
        "POST",
        gf.STREAM_PATH,
        gf.events(
            gf.chunk("Two and two", thought=True),
            gf.chunk(" make four.", thought=True),
            gf.chunk("Four.", finish_reason="STOP", usage=usage),
        ),
    )
    events = await collect(provider, options=ChatOptions(thinking_budget=2048))
    assert events == [
        ReasoningDelta("Two and two"),
        ReasoningDelta(" make four."),
        TextDelta("Four."),
        Usage(8, 32, reasoning_tokens=30),
        Finish("stop"),
    ]


async def test_model_list_says_which_models_think(provider, upstream, fresh_cache):
    gf.set_models(
        upstream,
        [
            gf.model_entry("gemini-3.5-flash", thinking=True),
            gf.model_entry("gemini-2.5-flash-lite", thinking=False),
        ],
    )
    assert await provider.list_models() == ["gemini-3.5-flash", "gemini-2.5-flash-lite"]
    assert provider.capabilities("gemini-3.5-flash") == ModelCapabilities(True, True, True)
    assert provider.capabilities("gemini-2.5-flash-lite") == ModelCapabilities(True, True, False)
    assert provider.unsupported_options("gemini-3.5-flash") == {}
    assert set(provider.unsupported_options("gemini-2.5-flash-lite")) == {
        "thinking_budget",
        "reasoning_effort",
    }
    gf.reply(upstream, "ok", model="gemini-2.5-flash-lite")
    await collect_model(provider, "gemini-2.5-flash-lite", ChatOptions(thinking_budget=2048))
    assert "thinkingConfig" not in upstream.requests[-1].json().get("generationConfig", {})


def test_gemini_2_5_takes_a_budget_but_no_effort(provider):
    assert set(provider.unsupported_options("gemini-2.5-pro")) == {"reasoning_effort"}
    assert set(provider.unsupported_options("gemini-2.0-flash")) == {
        "reasoning_effort",
        "thinking_budget",
    }


async def collect_model(provider: GoogleProvider, model: str, options: ChatOptions) -> list:
    return [event async for event in provider.stream(HELLO, model, options)]


# --- Stop sequences ---------------------------------------------------------------------


async def test_stop_sequences_go_in_the_generation_config_and_end_as_a_stop(provider, upstream):
    gf.reply(upstream, "1, 2, 3", finish_reason="STOP")  # what Gemini says at a stop sequence
    events = await collect(provider, options=ChatOptions(stop=("END", "\n\n")))
    config = upstream.requests[0].json()["generationConfig"]
    assert config["stopSequences"] == ["END", "\n\n"]
    assert text_of(events) == "1, 2, 3"
    assert events[-1] == Finish("stop")


async def test_no_stop_sequences_sends_none(provider, upstream):
    gf.reply(upstream, "ok")
    await collect(provider)
    assert "stopSequences" not in upstream.requests[0].json()["generationConfig"]
