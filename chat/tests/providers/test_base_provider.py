"""The base class: options, errors, message helpers, the retry loop and the guide's
interface, with small in-process providers (no HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat.providers.base_provider import (
    AuthenticationError,
    BadRequestError,
    BaseProvider,
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
    clean_upstream_message,
    error_for_status,
    merge_consecutive,
    normalize_messages,
    parse_retry_after,
    split_system,
    with_system_prompt,
)
from chat.providers.capabilities import ModelCapabilities
from chat.tests.providers.media import image as image_part
from chat.tests.providers.media import pdf as pdf_part
from chat.tests.providers.media import text as text_part

HELLO = [{"role": "user", "content": "hi"}]

# --- options --------------------------------------------------------------------------


def test_options_accept_values_in_range() -> None:
    options = ChatOptions(system_prompt="be brief", temperature=0.7, max_tokens=100)
    assert (options.temperature, options.max_tokens) == (0.7, 100)


@pytest.mark.parametrize("temperature", [-0.1, 2.5, "hot"])
def test_options_reject_temperature_out_of_range(temperature: Any) -> None:
    with pytest.raises(BadRequestError, match="temperature"):
        ChatOptions(temperature=temperature)


@pytest.mark.parametrize("max_tokens", [0, -5, 10**9, 1.5, True])
def test_options_reject_bad_max_tokens(max_tokens: Any) -> None:
    with pytest.raises(BadRequestError, match="max tokens"):
        ChatOptions(max_tokens=max_tokens)


def test_options_from_kwargs_reject_unknown_option() -> None:
    with pytest.raises(BadRequestError, match="top_q"):
        ChatOptions.from_kwargs(top_q=0.5)


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high"])
def test_options_accept_each_reasoning_effort(effort: str) -> None:
    assert ChatOptions(reasoning_effort=effort).reasoning_effort == effort


@pytest.mark.parametrize("effort", ["none", "xhigh", "HIGH", "", 3])
def test_options_reject_other_reasoning_efforts(effort: Any) -> None:
    with pytest.raises(BadRequestError, match="reasoning effort must be one of minimal"):
        ChatOptions(reasoning_effort=effort)


@pytest.mark.parametrize("budget", [1024, 8000, 128_000])
def test_options_accept_thinking_budgets_in_range(budget: int) -> None:
    assert ChatOptions(thinking_budget=budget).thinking_budget == budget


@pytest.mark.parametrize("budget", [0, 1023, 128_001, 2048.0, True, "4096"])
def test_options_reject_bad_thinking_budgets(budget: Any) -> None:
    with pytest.raises(BadRequestError, match=r"thinking budget must be .* from 1024 to 128000"):
        ChatOptions(thinking_budget=budget)


def test_options_from_kwargs_take_the_reasoning_settings() -> None:
    options = ChatOptions.from_kwargs(reasoning_effort="low", thinking_budget=2048)
    assert (options.reasoning_effort, options.thinking_budget) == ("low", 2048)


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, ModelNotFoundError),
        (408, ProviderTimeoutError),
        (504, ProviderTimeoutError),
        (429, RateLimitedError),
        (400, BadRequestError),
        (422, BadRequestError),
        (500, UnavailableError),
        (503, UnavailableError),
        (529, UnavailableError),
    ],
)
def test_error_for_status_picks_the_kind(status: int, cls: type) -> None:
    error = error_for_status(status, "boom", provider="Acme")
    assert type(error) is cls
    assert error.status_code == status


def test_error_message_names_the_provider() -> None:
    assert str(AuthenticationError(provider="Anthropic")) == "Anthropic: invalid API key"


def test_upstream_message_hides_key_like_strings() -> None:
    text = clean_upstream_message("Incorrect API key provided: sk-proj-abcdef1234567890XYZ.")
    assert "abcdef1234567890" not in text
    assert "[redacted]" in text


def test_upstream_message_is_one_short_line() -> None:
    text = clean_upstream_message("line one\nline two " + "x" * 1000)
    assert "\n" not in text and len(text) <= 300


def test_retry_after_reads_seconds_and_milliseconds() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({}) is None


def test_retry_after_reads_an_http_date() -> None:
    seconds = parse_retry_after({"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert seconds is not None and seconds > 1000


# --- message helpers ------------------------------------------------------------------


def test_normalize_rejects_unknown_role() -> None:
    with pytest.raises(BadRequestError, match="role"):
        normalize_messages([{"role": "tool", "content": "x"}])


def test_normalize_rejects_history_without_a_turn() -> None:
    with pytest.raises(BadRequestError, match="no message"):
        normalize_messages([{"role": "system", "content": "be brief"}])


def test_split_system_puts_options_prompt_first() -> None:
    system, turns = split_system(
        [{"role": "system", "content": "from history"}, {"role": "user", "content": "q"}],
        "from options",
    )
    assert system == "from options\n\nfrom history"
    assert turns == [{"role": "user", "content": "q"}]


def test_merge_consecutive_joins_same_role_turns() -> None:
    merged = merge_consecutive(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
        ]
    )
    assert merged == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
    ]


def test_with_system_prompt_prepends_a_system_message() -> None:
    assert with_system_prompt(HELLO, "be brief")[0] == {"role": "system", "content": "be brief"}
    assert with_system_prompt(HELLO, "  ") == HELLO


# --- retry policy ---------------------------------------------------------------------


def test_retry_policy_backs_off_and_stops() -> None:
    policy = RetryPolicy(max_retries=2, base_delay=1.0, max_delay=8.0)
    error = UnavailableError()
    first, second = policy.delay(1, error), policy.delay(2, error)
    assert first is not None and second is not None
    assert 0.75 <= first <= 1.25 and 1.5 <= second <= 2.5
    assert policy.delay(3, error) is None


def test_retry_policy_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=2, base_delay=0.01)
    assert policy.delay(1, RateLimitedError(retry_after=3.0)) == 3.0


def test_retry_policy_gives_up_on_a_long_retry_after() -> None:
    policy = RetryPolicy(max_retries=2, max_retry_after=20)
    assert policy.delay(1, RateLimitedError(retry_after=120)) is None


def test_retry_policy_never_retries_auth_errors() -> None:
    assert RetryPolicy().delay(1, AuthenticationError()) is None


# --- the streaming path and its retries -----------------------------------------------


class Flaky(BaseProvider):
    """Fails with the queued errors, then answers; records each attempt."""

    label = "Flaky"
    requires_api_key = False

    def __init__(self, failures: list[Exception], fail_after_text: bool = False) -> None:
        super().__init__()
        self.failures = failures
        self.fail_after_text = fail_after_text
        self.attempts = 0
        self.retry_policy = RetryPolicy(max_retries=2, base_delay=0.001)

    async def _stream(self, messages: Any, model: str, options: ChatOptions) -> AsyncIterator[Any]:
        self.attempts += 1
        if self.fail_after_text:
            yield TextDelta("partial ")
        if self.failures:
            raise self.failures.pop(0)
        yield TextDelta("ok")
        yield Usage(5, 1)
        yield Finish("stop")


async def test_stream_retries_before_the_first_token() -> None:
    provider = Flaky([UnavailableError(), RateLimitedError(retry_after=0.01)])
    events = [e async for e in provider.stream(HELLO, "m")]
    assert provider.attempts == 3
    assert events == [TextDelta("ok"), Usage(5, 1), Finish("stop")]


async def test_stream_never_retries_after_text() -> None:
    provider = Flaky([UnavailableError()], fail_after_text=True)
    received = []
    with pytest.raises(UnavailableError):
        async for event in provider.stream(HELLO, "m"):
            received.append(event)
    assert provider.attempts == 1
    assert received == [TextDelta("partial ")]


async def test_stream_gives_up_after_max_retries() -> None:
    provider = Flaky([UnavailableError(), UnavailableError(), UnavailableError()])
    with pytest.raises(UnavailableError) as info:
        _ = [e async for e in provider.stream(HELLO, "m")]
    assert provider.attempts == 3
    assert info.value.provider == "Flaky"


async def test_stream_does_not_retry_a_bad_key() -> None:
    provider = Flaky([AuthenticationError()])
    with pytest.raises(AuthenticationError):
        _ = [e async for e in provider.stream(HELLO, "m")]
    assert provider.attempts == 1


async def test_stream_without_key_is_not_configured() -> None:
    class NeedsKey(Flaky):
        requires_api_key = True
        api_key_setting = "NEEDSKEY_API_KEY"

    with pytest.raises(NotConfiguredError, match="NEEDSKEY_API_KEY"):
        _ = [e async for e in NeedsKey([]).stream(HELLO, "m")]


def test_get_response_drains_the_stream() -> None:
    assert Flaky([]).get_response(HELLO, "m") == "ok"


def test_get_response_returns_errors_as_text() -> None:
    text = Flaky([AuthenticationError()]).get_response(HELLO, "m")
    assert text == "Error: Flaky: invalid API key"


# --- a provider written like the guide's template --------------------------------------


class GuideStyle(BaseProvider):
    """Only the guide's three methods, exactly as its template has them."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.seen: list[Any] = []

    def get_response(self, messages: Any, model: str, **kwargs: Any) -> str:
        self.seen.append((messages, model, kwargs))
        return f"echo: {messages[-1]['content']}"

    def get_available_models(self) -> list[str]:
        return ["guide-1", "guide-2"]

    def validate_config(self) -> bool:
        return bool(self.api_key)


async def test_guide_style_provider_streams_its_answer_as_one_chunk() -> None:
    provider = GuideStyle("k")
    options = ChatOptions(system_prompt="be brief", temperature=0.5)
    events = [e async for e in provider.stream(HELLO, "guide-1", options)]
    assert events == [TextDelta("echo: hi"), Finish("stop")]
    messages, _model, kwargs = provider.seen[0]
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert kwargs == {"temperature": 0.5}


async def test_guide_style_provider_exception_becomes_provider_error() -> None:
    class Broken(GuideStyle):
        def get_response(self, messages: Any, model: str, **kwargs: Any) -> str:
            raise RuntimeError("connection refused")

    with pytest.raises(UnavailableError, match="connection refused"):
        _ = [e async for e in Broken("k").stream(HELLO, "guide-1")]


async def test_guide_style_provider_gets_text_parts_as_text() -> None:
    provider = GuideStyle("k")
    messages = [{"role": "user", "content": [text_part("Hello"), text_part("there")]}]
    events = [e async for e in provider.stream(messages, "guide-1")]
    assert events == [TextDelta("echo: Hello\n\nthere"), Finish("stop")]
    assert provider.seen[0][0] == [{"role": "user", "content": "Hello\n\nthere"}]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ([image_part(), text_part("What is it?")], "cannot read images"),
        ([pdf_part(), text_part("Sum up")], "cannot read PDF files"),
    ],
)
async def test_guide_style_provider_refuses_images_and_pdfs_without_calling_it(
    content: list[dict[str, Any]], words: str
) -> None:
    provider = GuideStyle("k")
    with pytest.raises(BadRequestError, match=f"GuideStyle: {words}"):
        _ = [e async for e in provider.stream([{"role": "user", "content": content}], "guide-1")]
    assert provider.seen == []


def test_guide_style_provider_reads_text_only_and_a_silent_native_one_is_unknown() -> None:
    messages = [{"role": "user", "content": [image_part()]}]
    assert GuideStyle("k").capabilities("guide-1") == ModelCapabilities(False, False, False)
    assert Flaky([]).capabilities("m") == ModelCapabilities(None, None, None)
    assert Flaky([]).get_response(messages, "m") == "ok"  # unknown: sent, the model decides


def test_guide_style_provider_takes_no_reasoning_settings() -> None:
    unsupported = GuideStyle("k").unsupported_options("guide-1")
    assert set(unsupported) == {"reasoning_effort", "thinking_budget"}
    assert unsupported["thinking_budget"] == "GuideStyle does not take this setting"


async def test_guide_style_models_come_from_its_method() -> None:
    assert await GuideStyle("k").list_models() == ["guide-1", "guide-2"]


def test_status_explains_a_missing_key() -> None:
    status = GuideStyle("").status()
    assert not status.usable
    assert status.reason == "no API key"
    assert "GUIDESTYLE_API_KEY" in status.hint


def test_status_explains_a_missing_package() -> None:
    class NeedsPackage(GuideStyle):
        required_packages = ("surely_not_installed_pkg",)

    status = NeedsPackage("k").status()
    assert not status.usable
    assert "surely_not_installed_pkg" in status.reason
    assert "pip install" in status.hint


def test_repr_never_shows_the_key() -> None:
    assert "sk-secret" not in repr(GuideStyle("sk-secret-value"))


class RaisesKinds(GuideStyle):
    """A guide-style provider that raises ProviderError subclasses."""

    def get_response(self, messages: Any, model: str, **kwargs: Any) -> str:
        raise AuthenticationError()


def test_guide_style_get_response_turns_provider_errors_into_text() -> None:
    assert RaisesKinds("k").get_response(HELLO, "guide-1") == "Error: RaisesKinds: invalid API key"


async def test_guide_style_stream_sees_provider_errors_as_errors() -> None:
    with pytest.raises(AuthenticationError):
        _ = [e async for e in RaisesKinds("k").stream(HELLO, "guide-1")]


class LiveList(Flaky):
    async def fetch_models(self) -> list[str]:
        return ["live-a", "live-b"]


@pytest.mark.django_db
async def test_known_models_come_from_the_cached_live_list() -> None:
    from django.core.cache import cache

    await cache.aclear()
    provider = LiveList([])
    assert provider.known_models() is None  # not fetched yet: do not guess
    assert await provider.list_models() == ["live-a", "live-b"]
    assert provider.known_models() == ["live-a", "live-b"]


async def test_known_models_are_unknown_when_only_defaults_could_be_had() -> None:
    from django.core.cache import cache

    class Failing(Flaky):
        default_models = ("default-1",)

        async def fetch_models(self) -> list[str]:
            raise UnavailableError()

    await cache.aclear()
    provider = Failing([])
    assert await provider.list_models() == ["default-1"]
    assert provider.known_models() is None


# --- stop sequences -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "kept"),
    [
        ("END", ("END",)),
        (["END", "\n"], ("END", "\n")),
        (("a", "b", "c", "d"), ("a", "b", "c", "d")),
    ],
)
def test_options_keep_stop_sequences_as_a_tuple(stop: Any, kept: tuple[str, ...]) -> None:
    assert ChatOptions(stop=stop).stop == kept
    assert ChatOptions().stop == ()


@pytest.mark.parametrize(
    ("stop", "words"),
    [
        (["a", "b", "c", "d", "e"], "at most 4 stop sequences"),
        ([""], "must not be empty"),
        ("", "must not be empty"),
        (["x" * 201], "at most 200 characters"),
        ([b"END"], "a string or a list of strings"),
        (7, "a string or a list of strings"),
    ],
)
def test_options_reject_bad_stop_sequences(stop: Any, words: str) -> None:
    with pytest.raises(BadRequestError, match=words):
        ChatOptions(stop=stop)


def test_options_from_kwargs_take_stop_sequences() -> None:
    assert ChatOptions.from_kwargs(stop=["END"]).stop == ("END",)
