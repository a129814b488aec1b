"""GoogleProvider: pure mapping, then the real google-genai SDK against a fake Gemini API."""

from __future__ import annotations

import asyncio
import contextlib
import os
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
    ProviderTimeoutError,
    RateLimitedError,
    RetryPolicy,
    TextDelta,
    UnavailableError,
    Usage,
)
from chat.providers.google_provider import (
    GoogleProvider,
    _build_request,
    _finish_reason,
    _map_messages,
    _split_api_version,
)
from chat.tests.fakes import google_fake as gf
from chat.tests.fakes.server import Break, FakeUpstream, JsonResponse, StreamResponse

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


def test_build_request_puts_options_in_the_config():
    request = _build_request(HELLO, MODEL, ChatOptions("Be brief.", 0.2, 100))
    assert request["config"] == {
        "automatic_continuation": False,
        "system_instruction": "Be brief.",
        "temperature": 0.2,
        "max_output_tokens": 100,
    }


def test_build_request_leaves_unset_options_to_the_model():
    request = _build_request(HELLO, MODEL, ChatOptions())
    assert request["config"] == {"automatic_continuation": False}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "malformed_function_call"),
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
    assert Usage(10, 24) in events


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
    assert events[-1] == Finish("content_filter")


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
    assert body["generationConfig"] == {"temperature": 0.4, "maxOutputTokens": 64}


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
