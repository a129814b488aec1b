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

Messages are OpenAI-shaped; a user message may carry content parts (text, images and
PDFs as ``data:`` URLs: see ``messages.py``), which each provider maps to its API's own
form. ``capabilities(model)`` says which models read them and which reason;
``unsupported_options(model)`` which settings (temperature, reasoning effort, thinking
budget) a model does not take.

A provider written like the guide's template (only the three guide methods) still
streams: its whole answer arrives as one ``TextDelta``; it gets text only (text parts
joined; an image or a PDF is refused before it is called). A native provider implements
``_stream`` and gets ``get_response`` for free, by draining the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import logging
import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from asgiref.sync import async_to_sync, sync_to_async

from .capabilities import TEXT_ONLY, UNKNOWN, ModelCapabilities
from .clients import ClientConfig

# The types and helpers live in modules beside this one; they are re-exported here so
# that ``from .base_provider import X`` (the guide's template, older code) keeps working.
from .errors import (
    AuthenticationError,
    BadRequestError,
    ErrorKind,
    ModelNotFoundError,
    NotConfiguredError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
    clean_upstream_message,
    error_for_status,
    parse_retry_after,
    redact_keys,
)
from .events import (
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)
from .messages import (
    Content,
    ContentPart,
    Message,
    Role,
    cannot_read_files,
    content_text,
    is_blank,
    merge_consecutive,
    normalize_messages,
    split_system,
    text_only,
    with_system_prompt,
)
from .options import (
    MAX_TOKENS_RANGE,
    REASONING_EFFORTS,
    REASONING_OPTIONS,
    TEMPERATURE_RANGE,
    THINKING_BUDGET_RANGE,
    ChatOptions,
)
from .retry import RetryPolicy
from .transport import (
    Endpoint,
    host_of,
    missing_key_error,
    missing_package_error,
    transport_error,
)

__all__ = [
    "MAX_TOKENS_RANGE",
    "REASONING_EFFORTS",
    "REASONING_OPTIONS",
    "TEMPERATURE_RANGE",
    "THINKING_BUDGET_RANGE",
    "AuthenticationError",
    "BadRequestError",
    "BaseProvider",
    "ChatOptions",
    "Content",
    "ContentPart",
    "ErrorKind",
    "Finish",
    "FinishReason",
    "Message",
    "ModelCapabilities",
    "ModelNotFoundError",
    "NotConfiguredError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderStatus",
    "ProviderTimeoutError",
    "RateLimitedError",
    "ReasoningDelta",
    "RetryPolicy",
    "Role",
    "StreamEvent",
    "TextDelta",
    "UnavailableError",
    "Usage",
    "cannot_read_files",
    "clean_upstream_message",
    "content_text",
    "error_for_status",
    "is_blank",
    "merge_consecutive",
    "normalize_messages",
    "parse_retry_after",
    "redact_keys",
    "split_system",
    "text_only",
    "with_system_prompt",
]

logger = logging.getLogger(__name__)


def gettext(message: str) -> str:
    """``message`` in the active language (Django's ``gettext``), for what people are
    shown (a provider's status in the model menu); unchanged when Django is not set up
    (a provider used on its own, outside the app, or before the apps are loaded)."""
    from django.apps import apps
    from django.conf import settings

    if not (settings.configured and apps.ready):
        return message
    from django.utils.translation import gettext as translate

    return translate(message)


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
    the provider unusable with a clear reason), ``install_hint``, ``default_models``
    (curated ids the API accepts, used when the live list cannot be had) and
    ``default_base_url`` (where the SDK goes without a base URL; error details name its
    host).
    """

    label: ClassVar[str] = ""
    requires_api_key: ClassVar[bool] = True
    api_key_setting: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
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
        # What the model list said about each model, once read (see model_facts).
        self._facts: dict[str, dict[str, bool | None]] | None = None
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
        self, messages: list[dict[str, Any]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """The native streaming call. Raise ProviderError (``from`` the SDK error)."""
        raise NotImplementedError
        yield  # pragma: no cover - makes this an async generator

    async def fetch_models(self) -> list[str]:
        """The live model list from the provider's models endpoint."""
        raise NotImplementedError

    # -- the guide's interface -----------------------------------------------------------

    def get_response(self, messages: list[dict[str, Any]], model: str, **kwargs: Any) -> str:
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
        """The options ``model`` does not take, each with the reason people are shown
        (translated), for example ``{"temperature": "reasoning models use a fixed
        temperature"}``. The app disables those settings for that model; a request never
        sends them. Keys: ``"temperature"``, ``"reasoning_effort"``,
        ``"thinking_budget"``. Default: temperature is taken, the reasoning options are
        not (a provider that maps them says so by overriding this)."""
        reason = gettext("%(provider)s does not take this setting") % {"provider": self.label}
        return dict.fromkeys(REASONING_OPTIONS, reason)

    def capabilities(self, model: str) -> ModelCapabilities:
        """What ``model`` reads besides text (images, PDFs) and whether it reasons, with
        no network call: from the provider's model list where it said (see
        ``remember_model_facts``), else from the provider's table in
        ``capabilities.py``; a field is None when it is not known. Default: a provider
        written like the guide's template reads text only (``get_response`` gets text);
        one with its own ``_stream`` that says nothing is unknown."""
        if not self._has_native_stream():
            return TEXT_ONLY
        return UNKNOWN

    async def remember_model_facts(self, facts: Mapping[str, Mapping[str, bool | None]]) -> None:
        """Keep what the provider's model list says about each model (``{model_id:
        {"images": bool | None, "pdf": ..., "reasoning": ..., and provider-specific
        keys}}``) for as long as the list itself is cached (``LLM_MODELS_CACHE_TTL``),
        for ``model_facts``. Called by ``fetch_models``."""
        from django.conf import settings
        from django.core.cache import cache

        stored = {model: dict(values) for model, values in facts.items()}
        await cache.aset(
            self._facts_cache_key(), stored, getattr(settings, "LLM_MODELS_CACHE_TTL", 3600)
        )
        self._facts = stored

    def model_facts(self, model: str) -> Mapping[str, bool | None]:
        """What the model list said about ``model`` (see ``remember_model_facts``); empty
        when the list has not been fetched or did not name it. No network call; one
        cache read per provider instance (the menu asks about every model)."""
        facts = getattr(self, "_facts", None)
        if facts is None:
            from django.core.cache import cache

            facts = self._facts = cache.get(self._facts_cache_key()) or {}
        return facts.get(model) or {}

    async def amodel_facts(self, model: str) -> Mapping[str, bool | None]:
        """``model_facts`` for async code (a request being built)."""
        facts = getattr(self, "_facts", None)
        if facts is None:
            from django.core.cache import cache

            facts = self._facts = await cache.aget(self._facts_cache_key()) or {}
        return facts.get(model) or {}

    def _facts_cache_key(self) -> str:
        return self._models_cache_key() + ":facts"

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

    def shown_label(self) -> str:
        """The provider's name as people see it (the model menu, sentences about its
        replies), in the active language where it is translated; ``label`` by default."""
        return self.label

    def status(self) -> ProviderStatus:
        """Usable or not, and why."""
        missing = self.missing_packages()
        if missing:
            return ProviderStatus(
                self.name,
                self.label,
                False,
                reason=gettext("Python package missing: %(packages)s")
                % {"packages": ", ".join(missing)},
                hint=self.install_hint or f"pip install {' '.join(missing)}",
            )
        if self.requires_api_key and not self.api_key:
            return ProviderStatus(
                self.name,
                self.label,
                False,
                reason=gettext("no API key"),
                hint=gettext("set %(setting)s in .env and restart")
                % {"setting": self._api_key_setting_name()},
            )
        try:
            ok = self.validate_config()
        except Exception:
            ok = False
        if not ok:
            return ProviderStatus(
                self.name, self.label, False, reason=gettext("configuration is invalid")
            )
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
            error.message = f"invalid API key (check {self._api_key_setting_name()})"
        error.message = self._endpoint().redact(error.message)
        error.args = (error.user_message,)

    def _api_key_setting_name(self) -> str:
        """The settings name of this provider's key, for hints ("OPENAI_API_KEY")."""
        return self.api_key_setting or f"{self.name.upper()}_API_KEY"

    def _require_api_key(self) -> None:
        """Raise NotConfiguredError ("no API key: set <SETTING>") when the provider needs
        a key and has none: before any request, so that none goes out without it."""
        if self.requires_api_key and not self.api_key:
            raise missing_key_error(self.label, self._api_key_setting_name())

    def _client_config(self) -> ClientConfig:
        """What this provider's SDK client is built from and held under (key, base URL,
        timeout: see ``clients.SdkClients``). Raises NotConfiguredError when its SDK is
        not installed or its key is missing, before any request."""
        missing = self.missing_packages()
        if missing:
            hint = self.install_hint or f"pip install {' '.join(missing)}"
            raise missing_package_error(self.label, hint)
        self._require_api_key()
        return ClientConfig(self.api_key, self.base_url, self.timeout)

    def _endpoint(self) -> Endpoint:
        """Who this provider calls, for the text of its errors (``transport.Endpoint``):
        its label, the host of its base URL (or of ``default_base_url``), its timeout
        and its key (which that text never shows)."""
        url = self.base_url or self.default_base_url
        return Endpoint(self.label, host_of(url) if url else self.name, self.timeout, self.api_key)

    def _has_native_stream(self) -> bool:
        return type(self)._stream is not BaseProvider._stream

    def _has_live_models(self) -> bool:
        return type(self).fetch_models is not BaseProvider.fetch_models

    async def _stream_once(
        self, messages: list[dict[str, Any]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        self._require_api_key()
        if self._has_native_stream():
            async with contextlib.aclosing(self._stream(messages, model, options)) as events:
                async for event in events:
                    yield event
            return
        # A guide-style provider: its whole answer is one chunk. Its get_response returns
        # errors as text, which we cannot tell from a reply; exceptions it raises are
        # errors (a timeout or connection error of its HTTP library is recognised as one).
        kwargs: dict[str, Any] = {}
        if options.temperature is not None:
            kwargs["temperature"] = options.temperature
        if options.max_tokens is not None:
            kwargs["max_tokens"] = options.max_tokens
        # The guide's get_response reads text: parts become their text, and an image or
        # a PDF cannot reach it (BadRequestError, no request made).
        call_messages = text_only(with_system_prompt(messages, options.system_prompt), self.label)
        try:
            raw = getattr(type(self), "_raw_get_response", None)
            call = functools.partial(raw, self) if raw else self.get_response
            text = await sync_to_async(call, thread_sensitive=False)(call_messages, model, **kwargs)
        except ProviderError:
            raise
        except Exception as e:
            raise transport_error(e, self._endpoint()) or UnavailableError(
                clean_upstream_message(str(e)) or type(e).__name__, provider=self.label
            ) from e
        if not isinstance(text, str) or not text:
            raise UnavailableError("empty reply", provider=self.label)
        yield TextDelta(text)
        yield Finish("stop")
