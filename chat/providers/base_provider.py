"""The provider interface every LLM backend implements.

Two faces, one implementation:

* The guide's interface (synchronous, simple): ``__init__(api_key)``,
  ``get_response(messages, model, **kwargs) -> str``, ``get_available_models()`` and
  ``validate_config()``. ``get_response`` returns a readable error string on failure, as
  the guide asks.
* The app's interface (asynchronous, streaming): ``stream(messages, model, options)``
  yields typed events (``TextDelta``, ``Usage``, ``Finish``) and *raises* a
  ``ProviderError`` on failure, so the app can tell an error from a reply. It also holds
  the one retry loop of the project (before the first token only).

A provider written like the guide's template (only the three guide methods) still
streams: its whole answer arrives as one ``TextDelta``. A native provider implements
``_stream`` and gets ``get_response`` for free, by draining the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import functools
import importlib.util
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from asgiref.sync import async_to_sync, sync_to_async

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
Message = Mapping[str, str]  # {"role": "system"|"user"|"assistant", "content": str}

# --- Stream events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking"), in order: Anthropic thinking
    blocks, Gemini thought parts, ``reasoning_content``/``reasoning`` fields and
    ``<think>`` blocks of compatible servers and the local model. Shown apart from the
    answer and never sent back to a model as context."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage reported by the upstream for the whole request. ``output_tokens``
    includes ``reasoning_tokens`` (the thinking part, when the provider reports it)."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int | None = None


class FinishReason(enum.StrEnum):
    """Why a reply ended, in one vocabulary for every provider (OpenAI's words where it
    has one). Only ``STOP`` (and ``TOOL_CALLS``) mean the model finished normally."""

    STOP = "stop"  # the model finished its answer
    LENGTH = "length"  # the token limit (max tokens) was used up
    CONTENT_FILTER = "content_filter"  # the provider's safety filter blocked it
    REFUSAL = "refusal"  # the model declined to answer
    TOOL_CALLS = "tool_calls"
    CUT_OFF = "cut_off"  # the stream ended without the provider saying it finished


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of the reply. ``reason`` is a ``FinishReason`` value, or the provider's
    own word when it has no equivalent; ``detail`` is the provider's raw reason when it
    says more (for example Gemini's "SAFETY" or "prompt blocked: OTHER"), for people
    and logs."""

    reason: str
    detail: str = ""

    @property
    def is_normal(self) -> bool:
        """True when the model finished its answer (nothing was cut, filtered, refused)."""
        return self.reason in (FinishReason.STOP, FinishReason.TOOL_CALLS)


StreamEvent = TextDelta | ReasoningDelta | Usage | Finish

# --- Errors -----------------------------------------------------------------------------


class ErrorKind(enum.StrEnum):
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    BAD_REQUEST = "bad_request"
    MODEL_NOT_FOUND = "model_not_found"
    NOT_CONFIGURED = "not_configured"


_DEFAULT_MESSAGES: dict[ErrorKind, str] = {
    ErrorKind.AUTHENTICATION: "invalid API key",
    ErrorKind.PERMISSION: "this API key is not allowed to use this model",
    ErrorKind.RATE_LIMITED: "rate limit reached, try again shortly",
    ErrorKind.UNAVAILABLE: "the service is unavailable, try again shortly",
    ErrorKind.TIMEOUT: "the request timed out",
    ErrorKind.BAD_REQUEST: "the request was rejected",
    ErrorKind.MODEL_NOT_FOUND: "unknown model",
    ErrorKind.NOT_CONFIGURED: "not configured",
}

_RETRYABLE = {ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT}


class ProviderError(Exception):
    """Any failure of a provider. ``kind`` says what went wrong, ``provider`` who failed;
    ``str(error)`` is one readable line for a person, for example
    "Anthropic: invalid API key". Messages never contain API keys."""

    kind: ClassVar[ErrorKind] = ErrorKind.UNAVAILABLE

    def __init__(
        self,
        message: str = "",
        *,
        provider: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or _DEFAULT_MESSAGES[self.kind]
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        return f"{self.provider}: {self.message}" if self.provider else self.message

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    def __str__(self) -> str:
        return self.user_message


class AuthenticationError(ProviderError):
    kind = ErrorKind.AUTHENTICATION


class PermissionDeniedError(ProviderError):
    kind = ErrorKind.PERMISSION


class RateLimitedError(ProviderError):
    kind = ErrorKind.RATE_LIMITED


class UnavailableError(ProviderError):
    kind = ErrorKind.UNAVAILABLE


class ProviderTimeoutError(ProviderError):
    kind = ErrorKind.TIMEOUT


class BadRequestError(ProviderError):
    kind = ErrorKind.BAD_REQUEST


class ModelNotFoundError(BadRequestError):
    kind = ErrorKind.MODEL_NOT_FOUND


class NotConfiguredError(ProviderError):
    kind = ErrorKind.NOT_CONFIGURED


def error_for_status(
    status: int,
    message: str = "",
    *,
    provider: str = "",
    retry_after: float | None = None,
) -> ProviderError:
    """The ProviderError for an HTTP status from an upstream."""
    cls: type[ProviderError]
    if status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDeniedError
    elif status == 404:
        cls = ModelNotFoundError
    elif status == 408:
        cls = ProviderTimeoutError
    elif status == 429:
        cls = RateLimitedError
    elif status >= 500:
        cls = UnavailableError
    else:
        cls = BadRequestError
    return cls(
        clean_upstream_message(message),
        provider=provider,
        status_code=status,
        retry_after=retry_after,
    )


def clean_upstream_message(message: str, *, limit: int = 300) -> str:
    """One readable line from an upstream error text, without anything that looks like a
    key (providers echo the key's prefix back in some 401 messages)."""
    import re

    text = " ".join(str(message or "").split())
    text = re.sub(r"\b(sk|key|AIza|ak|pk)[-_A-Za-z0-9]{8,}", "[redacted]", text)
    text = re.sub(r"\b[A-Za-z0-9_\-]{32,}\b", "[redacted]", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After (seconds or HTTP date) or retry-after-ms header."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- Options ----------------------------------------------------------------------------

TEMPERATURE_RANGE = (0.0, 2.0)
MAX_TOKENS_RANGE = (1, 200_000)


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """Per-request options, validated once. ``None`` means "the provider's default"."""

    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None:
            low, high = TEMPERATURE_RANGE
            if not isinstance(self.temperature, (int, float)) or not (
                low <= float(self.temperature) <= high
            ):
                raise BadRequestError(f"temperature must be between {low:g} and {high:g}")
        if self.max_tokens is not None:
            low_t, high_t = MAX_TOKENS_RANGE
            if (
                isinstance(self.max_tokens, bool)
                or not isinstance(self.max_tokens, int)
                or not (low_t <= self.max_tokens <= high_t)
            ):
                raise BadRequestError(f"max tokens must be a whole number from {low_t} to {high_t}")
        if not isinstance(self.system_prompt, str):
            raise BadRequestError("system prompt must be text")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ChatOptions:
        """Options from the guide-style ``get_response(..., temperature=0.2, max_tokens=100,
        system_prompt="...")``. Unknown options are an error, not silently dropped."""
        known = {"system_prompt", "temperature", "max_tokens"}
        unknown = set(kwargs) - known
        if unknown:
            raise BadRequestError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


# --- Message helpers (pure) -------------------------------------------------------------

_ROLES = ("system", "user", "assistant")


def normalize_messages(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Check the OpenAI-shaped messages and return plain dicts. Raises BadRequestError."""
    result: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if role not in _ROLES:
            raise BadRequestError(f"message {i}: role must be one of {', '.join(_ROLES)}")
        if not isinstance(content, str):
            raise BadRequestError(f"message {i}: content must be text")
        result.append({"role": role, "content": content})
    if not any(m["role"] != "system" for m in result):
        raise BadRequestError("there is no message to answer")
    return result


def split_system(
    messages: Sequence[Message], system_prompt: str = ""
) -> tuple[str, list[dict[str, str]]]:
    """Pull system messages out (APIs that take the system prompt apart: Anthropic,
    Gemini). The options' system prompt comes first, then any system messages."""
    parts = [system_prompt] if system_prompt.strip() else []
    turns: list[dict[str, str]] = []
    for message in messages:
        if message["role"] == "system":
            if message["content"].strip():
                parts.append(message["content"])
        else:
            turns.append({"role": message["role"], "content": message["content"]})
    return "\n\n".join(parts), turns


def merge_consecutive(turns: Sequence[Message]) -> list[dict[str, str]]:
    """Join consecutive turns of the same role (APIs that require alternation reject
    them), separated by a blank line."""
    merged: list[dict[str, str]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"] = f"{merged[-1]['content']}\n\n{turn['content']}"
        else:
            merged.append({"role": turn["role"], "content": turn["content"]})
    return merged


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[dict[str, str]]:
    """OpenAI-style: the options' system prompt as the first system message."""
    result = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt.strip():
        result.insert(0, {"role": "system", "content": system_prompt})
    return result


# --- Retry policy -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries before the first token only. ``max_retries`` extra attempts; the delay
    doubles from ``base_delay`` with jitter, never above ``max_delay``, and a server's
    Retry-After wins when it is longer (up to ``max_retry_after``: a longer wait is
    reported to the user instead)."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 20.0

    def delay(self, attempt: int, error: ProviderError) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based), None for no retry."""
        if attempt > self.max_retries or not error.retryable:
            return None
        backoff = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        backoff *= 0.75 + random.random() / 2
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return max(backoff, error.retry_after)
        return backoff


# --- The base class ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """Whether a provider can be used now and, if not, why and how to enable it."""

    name: str
    label: str
    usable: bool
    reason: str = ""
    hint: str = ""
    models: tuple[str, ...] = field(default_factory=tuple)


class BaseProvider:
    """Base of every provider. See the module docstring for the two interfaces.

    Class attributes a subclass may set:
    ``label`` (shown to people), ``requires_api_key``, ``api_key_setting`` (the settings
    name of its key, for hints), ``required_packages`` (import names; missing ones make
    the provider unusable with a clear reason), ``install_hint`` and ``default_models``
    (curated ids the API accepts, used when the live list cannot be had).
    """

    label: ClassVar[str] = ""
    requires_api_key: ClassVar[bool] = True
    api_key_setting: ClassVar[str] = ""
    required_packages: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""
    default_models: ClassVar[tuple[str, ...]] = ()
    context_tokens: ClassVar[int] = 128_000

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        models: Sequence[str] | None = None,
        name: str | None = None,
        label: str | None = None,
    ) -> None:
        self.api_key = api_key or ""
        self.base_url = base_url or None
        self.timeout = timeout if timeout and timeout > 0 else 60.0
        self.retry_policy = RetryPolicy(max_retries=2 if max_retries is None else max_retries)
        self.configured_models = tuple(models or ())
        self.name = name or type(self).__name__.removesuffix("Provider").lower()
        if label:
            self.label = label
        elif not type(self).label:
            self.label = type(self).__name__.removesuffix("Provider") or self.name

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``get_response`` keeps the guide's contract for callers (a
        ProviderError it raises comes back as a readable string), while the app's
        streaming path calls the original and sees the error as an error."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("get_response")
        if own is None or getattr(own, "_returns_errors_as_text", False):
            return

        @functools.wraps(own)
        def get_response(self: BaseProvider, *args: Any, **kw: Any) -> str:
            try:
                return own(self, *args, **kw)
            except ProviderError as e:
                if not e.provider:
                    e.provider = self.label
                return f"Error: {e.user_message}"

        get_response._returns_errors_as_text = True  # type: ignore[attr-defined]
        cls._raw_get_response = own  # type: ignore[attr-defined]
        cls.get_response = get_response  # type: ignore[method-assign]

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} name={self.name!r} base_url={self.base_url!r}>"

    # -- what subclasses implement -------------------------------------------------------

    async def _stream(
        self, messages: list[dict[str, str]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """The native streaming call. Raise ProviderError (``from`` the SDK error)."""
        raise NotImplementedError
        yield  # pragma: no cover - makes this an async generator

    async def fetch_models(self) -> list[str]:
        """The live model list from the provider's models endpoint."""
        raise NotImplementedError

    # -- the guide's interface -----------------------------------------------------------

    def get_response(self, messages: list[dict[str, str]], model: str, **kwargs: Any) -> str:
        """The whole answer as text; on failure a readable error string (the guide's
        contract). The app itself uses ``stream``, which raises instead."""
        if not self._has_native_stream():
            raise NotImplementedError(
                f"{type(self).__name__} implements neither get_response nor _stream"
            )
        try:
            return async_to_sync(self.complete)(messages, model, ChatOptions.from_kwargs(**kwargs))
        except ProviderError as e:
            return f"Error: {e.user_message}"

    def get_available_models(self) -> list[str]:
        """Model ids: the live list (cached) when the provider can fetch one, else the
        configured or curated defaults."""
        if self._has_live_models():
            return async_to_sync(self.list_models)()
        return list(self.configured_models or self.default_models)

    def default_model(self) -> str:
        """The model a new conversation starts with (no network call)."""
        models = self.configured_models or self.default_models
        return models[0] if models else ""

    def context_window(self, model: str) -> int:
        """How many tokens ``model`` takes in (prompt and reply). The app trims history
        to fit; override where it differs by model or configuration."""
        return self.context_tokens

    def unsupported_options(self, model: str) -> dict[str, str]:
        """The options ``model`` does not take, each with the reason people are shown, for
        example ``{"temperature": "reasoning models use a fixed temperature"}``. The app
        disables those settings for that model; a request never sends them. Default:
        every option is taken."""
        return {}

    def validate_config(self) -> bool:
        """True when the provider has what it needs to make a request (key, packages)."""
        return not self.missing_packages() and (bool(self.api_key) or not self.requires_api_key)

    # -- the app's interface -------------------------------------------------------------

    async def stream(
        self,
        messages: Iterable[Message],
        model: str,
        options: ChatOptions | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream the reply as events; raises ProviderError. Retries (rate limit, 5xx,
        timeout, connection) happen here, and only before the first text arrives."""
        options = options or ChatOptions()
        normalized = normalize_messages(messages)
        if not model:
            raise BadRequestError("no model chosen", provider=self.label)
        attempt = 0
        while True:
            sent_text = False
            finished = False
            try:
                # aclosing: a consumer that stops early (Stop) closes the provider's
                # generator, and with it the upstream HTTP response, at once.
                async with contextlib.aclosing(
                    self._stream_once(normalized, model, options)
                ) as events:
                    async for event in events:
                        if isinstance(event, (TextDelta, ReasoningDelta)):
                            if not event.text:
                                continue
                            sent_text = True
                        elif isinstance(event, Finish):
                            if finished:
                                continue
                            finished = True
                        yield event
                # One rule for every provider: a stream that ends without the provider
                # saying why (a proxy timing out, a connection closed early) is not a
                # whole answer. With nothing received it is a failure worth retrying.
                if not finished:
                    if not sent_text:
                        raise UnavailableError(
                            "the reply ended before the model answered", provider=self.label
                        )
                    yield Finish(FinishReason.CUT_OFF)
                return
            except ProviderError as error:
                self._tidy_error(error)
                if sent_text:
                    raise
                attempt += 1
                delay = self.retry_policy.delay(attempt, error)
                if delay is None:
                    if isinstance(error, RateLimitedError) and error.retry_after:
                        error.message += f" (try again in {math.ceil(error.retry_after)} s)"
                        error.args = (error.user_message,)
                    raise
                logger.info("%s: %s, retry %d in %.2fs", self.name, error.kind, attempt, delay)
                await asyncio.sleep(delay)

    async def complete(
        self,
        messages: Iterable[Message],
        model: str,
        options: ChatOptions | None = None,
    ) -> str:
        """The whole reply as text, by draining ``stream``; raises ProviderError."""
        parts = [
            e.text async for e in self.stream(messages, model, options) if isinstance(e, TextDelta)
        ]
        return "".join(parts)

    async def list_models(self) -> list[str]:
        """Model ids for the dropdown: live from the provider (cached in Django's cache
        for LLM_MODELS_CACHE_TTL seconds), falling back to the defaults when the call
        fails."""
        if self.configured_models:
            return list(self.configured_models)
        if not self._has_live_models():
            return await sync_to_async(self.get_available_models)()
        from django.conf import settings
        from django.core.cache import cache

        cached = await cache.aget(self._models_cache_key())
        if cached is not None:
            return list(cached["models"])
        try:
            models = await self.fetch_models()
        except ProviderError as e:
            logger.warning("%s: model list unavailable (%s); using defaults", self.name, e.kind)
            models = []
        except Exception:  # a models endpoint must never break the page
            logger.warning("%s: model list failed; using defaults", self.name, exc_info=True)
            models = []
        if models:
            await cache.aset(
                self._models_cache_key(),
                {"live": True, "models": models},
                getattr(settings, "LLM_MODELS_CACHE_TTL", 3600),
            )
            return list(models)
        fallback = list(self.default_models)
        # Retry the live list a minute later.
        await cache.aset(self._models_cache_key(), {"live": False, "models": fallback}, 60)
        return fallback

    def known_models(self) -> list[str] | None:
        """The model ids this provider is known to accept, without a network call, or
        None when that is not known (the live list has not been fetched, or failed):
        then any id is tried and the upstream decides."""
        if self.configured_models:
            return list(self.configured_models)
        if not self._has_live_models():
            return list(self.get_available_models())
        from django.core.cache import cache

        cached = cache.get(self._models_cache_key())
        return list(cached["models"]) if cached and cached.get("live") else None

    def _models_cache_key(self) -> str:
        return f"chat:models:{self.name}:{self.base_url or ''}"

    def status(self) -> ProviderStatus:
        """Usable or not, and why."""
        missing = self.missing_packages()
        if missing:
            return ProviderStatus(
                self.name,
                self.label,
                False,
                reason=f"Python package missing: {', '.join(missing)}",
                hint=self.install_hint or f"pip install {' '.join(missing)}",
            )
        if self.requires_api_key and not self.api_key:
            setting = self.api_key_setting or f"{self.name.upper()}_API_KEY"
            return ProviderStatus(
                self.name,
                self.label,
                False,
                reason="no API key",
                hint=f"set {setting} in .env and restart",
            )
        try:
            ok = self.validate_config()
        except Exception:
            ok = False
        if not ok:
            return ProviderStatus(self.name, self.label, False, reason="configuration is invalid")
        return ProviderStatus(self.name, self.label, True)

    @classmethod
    def missing_packages(cls) -> list[str]:
        missing = []
        for package in cls.required_packages:
            try:
                found = importlib.util.find_spec(package) is not None
            except ImportError:  # a dotted name whose parent package is absent
                found = False
            if not found:
                missing.append(package)
        return missing

    # -- internals -----------------------------------------------------------------------

    def _tidy_error(self, error: ProviderError) -> None:
        """Make an error ready for a person: who failed, one standard line for a bad key
        (upstream texts vary and some quote the key), and never the configured key,
        whatever shape it has and whatever the upstream echoed."""
        if not error.provider:
            error.provider = self.label
        if isinstance(error, AuthenticationError) and self.requires_api_key:
            setting = self.api_key_setting or f"{self.name.upper()}_API_KEY"
            error.message = f"invalid API key (check {setting})"
        key = self.api_key
        if key and len(key) >= 8 and key in error.message:
            error.message = error.message.replace(key, "[redacted]")
        error.args = (error.user_message,)

    def _has_native_stream(self) -> bool:
        return type(self)._stream is not BaseProvider._stream

    def _has_live_models(self) -> bool:
        return type(self).fetch_models is not BaseProvider.fetch_models

    async def _stream_once(
        self, messages: list[dict[str, str]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        if self.requires_api_key and not self.api_key:
            setting = self.api_key_setting or f"{self.name.upper()}_API_KEY"
            raise NotConfiguredError(f"no API key: set {setting}", provider=self.label)
        if self._has_native_stream():
            async with contextlib.aclosing(self._stream(messages, model, options)) as events:
                async for event in events:
                    yield event
            return
        # A guide-style provider: its whole answer is one chunk. Its get_response returns
        # errors as text, which we cannot tell from a reply; exceptions it raises are
        # errors.
        kwargs: dict[str, Any] = {}
        if options.temperature is not None:
            kwargs["temperature"] = options.temperature
        if options.max_tokens is not None:
            kwargs["max_tokens"] = options.max_tokens
        call_messages = with_system_prompt(messages, options.system_prompt)
        try:
            raw = getattr(type(self), "_raw_get_response", None)
            call = functools.partial(raw, self) if raw else self.get_response
            text = await sync_to_async(call, thread_sensitive=False)(call_messages, model, **kwargs)
        except ProviderError:
            raise
        except Exception as e:
            raise UnavailableError(
                clean_upstream_message(str(e)) or type(e).__name__, provider=self.label
            ) from e
        if not isinstance(text, str) or not text:
            raise UnavailableError("empty reply", provider=self.label)
        yield TextDelta(text)
        yield Finish("stop")
