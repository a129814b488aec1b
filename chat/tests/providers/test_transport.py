"""The shared error mapping (chat/providers/transport.py), through each real SDK against
its loopback fake: the same fault gives the same kind and, for transport faults, the same
words from every provider, and never the key."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from chat.providers import (
    AuthenticationError,
    BadRequestError,
    BaseProvider,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    TextDelta,
    UnavailableError,
)
from chat.providers.anthropic_provider import AnthropicProvider
from chat.providers.google_provider import GoogleProvider
from chat.providers.mistral_provider import MistralProvider
from chat.providers.openai_provider import OpenAIProvider
from chat.tests.fakes import anthropic_fake, google_fake, mistral_fake, openai_fake
from chat.tests.fakes.server import (
    Break,
    FakeUpstream,
    JsonResponse,
    Pause,
    Response,
    StreamResponse,
    sse,
)

KEY = "sk-transport-SECRET0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello"}]
TIMEOUT = 0.3  # the providers' request timeout, in seconds
LATE = 1.5  # how late a slow upstream answers


@dataclass(frozen=True)
class Wire:
    """One provider and how its fake upstream answers."""

    name: str
    provider: Callable[..., BaseProvider]  # (api_key=, base_url=, timeout=, max_retries=)
    base_path: str  # appended to the fake's URL
    path: str  # the chat route
    model: str
    setting: str  # the key's settings name
    error: Callable[[int, str, dict[str, str]], Response]  # (status, message, headers)
    text_then: Callable[[Any], Response]  # a reply of "Hel", then the given item


def _openai_text_then(item: Any) -> Response:
    role = openai_fake.chunk("c", delta={"role": "assistant", "content": ""})
    return StreamResponse([sse(role), sse(openai_fake.chunk("c", delta={"content": "Hel"})), item])


def _anthropic_text_then(item: Any) -> Response:
    events = anthropic_fake.stream_events(["Hel"])
    last_text = max(
        i for i, e in enumerate(events) if isinstance(e, bytes) and b'"text_delta"' in e
    )
    return StreamResponse([*events[: last_text + 1], item])


def _google_text_then(item: Any) -> Response:
    return StreamResponse([google_fake.event(google_fake.chunk("Hel")), item])


def _mistral_text_then(item: Any) -> Response:
    role = sse(mistral_fake.chunk("", role="assistant"))
    return mistral_fake.raw_stream([role, sse(mistral_fake.chunk("Hel")), item])


WIRES = [
    Wire(
        "openai",
        OpenAIProvider,
        "/v1",
        openai_fake.CHAT_PATH,
        "gpt-4o-mini",
        "OPENAI_API_KEY",
        lambda status, message, headers: openai_fake.error_response(
            status, message, headers=headers
        ),
        _openai_text_then,
    ),
    Wire(
        "anthropic",
        AnthropicProvider,
        "",
        anthropic_fake.MESSAGES_PATH,
        anthropic_fake.DEFAULT_MODEL,
        "ANTHROPIC_API_KEY",
        lambda status, message, headers: anthropic_fake.error_response(
            status, message, headers=headers
        ),
        _anthropic_text_then,
    ),
    Wire(
        "google",
        GoogleProvider,
        "",
        google_fake.STREAM_PATH,
        "gemini-3.5-flash",
        "GOOGLE_API_KEY",
        lambda status, message, headers: google_fake.error_response(
            status, message, headers=headers
        ),
        _google_text_then,
    ),
    Wire(
        "mistral",
        MistralProvider,
        "",
        mistral_fake.CHAT_PATH,
        mistral_fake.DEFAULT_MODEL,
        "MISTRAL_API_KEY",
        lambda status, message, headers: mistral_fake.error_response(
            status, message, headers=headers
        ),
        _mistral_text_then,
    ),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _stream_until_error(
    wire: Wire, base_url: str
) -> tuple[list[Any], ProviderError, BaseProvider]:
    provider = wire.provider(
        api_key=KEY, base_url=base_url + wire.base_path, timeout=TIMEOUT, max_retries=0
    )
    events: list[Any] = []
    with pytest.raises(ProviderError) as caught:
        async for event in provider.stream(HELLO, wire.model):
            events.append(event)
    return events, caught.value, provider


# --- transport faults: one kind and one wording for every provider ---------------------

TRANSPORT_FAULTS: dict[str, tuple[Callable[[Wire], Response], type, str, list[Any]]] = {
    # id: (the fake's answer, the error raised, its words ({host}), events before it)
    "no-answer-before-the-timeout": (
        lambda wire: JsonResponse({}, delay=LATE),
        ProviderTimeoutError,
        "the request timed out (no answer from {host} within 0.3 s)",
        [],
    ),
    "stream-stalls-past-the-timeout": (
        lambda wire: wire.text_then(Pause(LATE)),
        ProviderTimeoutError,
        "the request timed out (no answer from {host} within 0.3 s)",
        [TextDelta("Hel")],
    ),
    "connection-cut-mid-reply": (
        lambda wire: wire.text_then(Break()),
        UnavailableError,
        "the connection to {host} was lost",
        [TextDelta("Hel")],
    ),
}


@pytest.mark.parametrize("fault", list(TRANSPORT_FAULTS))
@pytest.mark.parametrize("wire", WIRES, ids=lambda wire: wire.name)
async def test_transport_fault_has_one_kind_and_wording_for_every_provider(
    upstream: FakeUpstream, wire: Wire, fault: str
) -> None:
    response, kind, words, before = TRANSPORT_FAULTS[fault]
    upstream.set_default("POST", wire.path, response(wire))
    events, error, provider = await _stream_until_error(wire, upstream.url)
    host = f"127.0.0.1:{upstream.port}"
    assert (events, type(error), str(error)) == (
        before,
        kind,
        f"{provider.label}: {words.format(host=host)}",
    )


@pytest.mark.parametrize("wire", WIRES, ids=lambda wire: wire.name)
async def test_refused_connection_has_one_wording_for_every_provider(wire: Wire) -> None:
    port = _free_port()  # nothing listens there
    _events, error, provider = await _stream_until_error(wire, f"http://127.0.0.1:{port}")
    assert (type(error), str(error)) == (
        UnavailableError,
        f"{provider.label}: could not connect to 127.0.0.1:{port}",
    )


# --- HTTP statuses: one kind per status for every provider, never the key -------------

STATUSES = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (408, ProviderTimeoutError),
    (429, RateLimitedError),
    (500, UnavailableError),
    (503, UnavailableError),
    (504, ProviderTimeoutError),
]


@pytest.mark.parametrize(("status", "kind"), STATUSES, ids=[str(s) for s, _ in STATUSES])
@pytest.mark.parametrize("wire", WIRES, ids=lambda wire: wire.name)
async def test_http_status_has_one_kind_for_every_provider_without_the_key(
    upstream: FakeUpstream, wire: Wire, status: int, kind: type
) -> None:
    headers = {"retry-after": "7"} if status == 429 else {}
    upstream.set_default("POST", wire.path, wire.error(status, f"no, {KEY} may not", headers))
    _events, error, _provider = await _stream_until_error(wire, upstream.url)
    assert type(error) is kind
    assert KEY not in str(error) and "SECRET0123456789" not in str(error)
    if status == 401:
        assert error.message == f"invalid API key (check {wire.setting})"
    if status == 429:
        assert error.retry_after == 7


# --- a provider written from the guide's template -------------------------------------


class _GuideStyleProvider(BaseProvider):
    """Only the guide's three methods; its HTTP library's timeout escapes as it is."""

    label = "Guide"

    def get_response(self, messages: list[dict[str, str]], model: str, **kwargs: Any) -> str:
        raise TimeoutError("timed out")

    def get_available_models(self) -> list[str]:
        return ["m"]

    def validate_config(self) -> bool:
        return True


async def test_guide_style_provider_timeout_is_a_timeout_in_the_shared_words() -> None:
    provider = _GuideStyleProvider(
        "guide-key-123456", base_url="http://guide.example/v1", timeout=5, max_retries=0
    )
    with pytest.raises(ProviderTimeoutError) as caught:
        async for _event in provider.stream(HELLO, "m"):
            pass
    assert str(caught.value) == (
        "Guide: the request timed out (no answer from guide.example within 5 s)"
    )
