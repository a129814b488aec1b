"""OpenAI, and every server that speaks its Chat Completions API.

``OpenAIProvider`` talks to api.openai.com (or a proxy set with ``OPENAI_BASE_URL``)
through the official ``openai`` SDK: ``chat.completions.create(stream=True,
stream_options={"include_usage": True})``; the text arrives as deltas, the finish reason
on the last choice and the token usage on a final chunk without choices.

``OpenAICompatibleProvider`` is the same code for Ollama, vLLM, LM Studio, the llama.cpp
server, OpenRouter, Groq, DeepSeek...: the registry makes one subclass per endpoint
declared in ``OPENAI_COMPATIBLE_PROVIDERS`` (see ``register_openai_compatible``). It needs
a base URL, takes the key as optional, sends ``max_tokens`` (which those servers know)
instead of ``max_completion_tokens`` and shows their model list unfiltered.

Shape, as in every provider module: ``_map_messages`` and ``_build_request`` are pure,
``_stream`` makes the call, ``_map_error`` turns SDK errors into ``ProviderError``.
The SDK's own retries are off (``max_retries=0``): ``BaseProvider.stream`` retries, and
only before the first token.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .base_provider import (
    AuthenticationError,
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    ModelNotFoundError,
    NotConfiguredError,
    ProviderError,
    ProviderStatus,
    ProviderTimeoutError,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    clean_upstream_message,
    error_for_status,
    parse_retry_after,
    with_system_prompt,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

OPENAI_API_URL = "https://api.openai.com/v1"

# The SDK refuses an empty key; a keyless local server ignores this one.
KEY_PLACEHOLDER = "not-needed"

# Finish reasons with another name for the same thing.
_FINISH_REASONS = {"function_call": "tool_calls"}

# Ids in OpenAI's model list that are not chat models (or not for Chat Completions).
_CHAT_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4")
_NOT_CHAT = re.compile(
    r"embedding|tts|whisper|dall-e|moderation|transcribe|realtime|audio|image|"
    r"instruct|search|computer-use|deep-research|codex|sora|-pro\b"
)
# Reasoning models accept only their default temperature (they answer 400 otherwise).
_FIXED_TEMPERATURE = re.compile(r"^(o\d|gpt-5(?!-chat))")


def is_chat_model(model_id: str) -> bool:
    """Whether an id from OpenAI's ``/models`` is a chat model usable here. Fine-tuned
    models (``ft:gpt-4o-mini:...``) count as their base model."""
    base = model_id.lower().removeprefix("ft:")
    return base.startswith(_CHAT_PREFIXES) and not _NOT_CHAT.search(base)


def accepts_temperature(model: str) -> bool:
    """False for OpenAI's reasoning models (o1, o3, o4-mini, gpt-5...), which reject any
    temperature but their default; ``gpt-5-chat-latest`` takes one."""
    return not _FIXED_TEMPERATURE.match(model.lower().removeprefix("ft:"))


# One SDK client per event loop and configuration: building one costs ~20 ms of CPU (TLS
# context) and a shared one keeps connections to the upstream alive between messages.
# A client belongs to the loop it was made in, hence the key; it goes when its loop goes.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], AsyncOpenAI]]
_clients = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def _client_for(api_key: str, base_url: str, timeout: float) -> AsyncOpenAI:
    import httpx2
    import openai

    loop = asyncio.get_running_loop()
    key = (api_key, base_url, timeout)
    with _clients_lock:
        per_loop = _clients.setdefault(loop, {})
        client = per_loop.get(key)
        if client is None or client.is_closed():
            client = openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                timeout=timeout,
                max_retries=0,
                # No cap on concurrent streams (the SDK's default is 1,000 per client).
                http_client=openai.DefaultAsyncHttpxClient(
                    limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100)
                ),
            )
            per_loop[key] = client
        return client


class OpenAIProvider(BaseProvider):
    """OpenAI's Chat Completions API through the official SDK."""

    label = "OpenAI"
    api_key_setting = "OPENAI_API_KEY"
    required_packages = ("openai",)
    install_hint = "pip install openai"
    # Curated ids the API accepts, for when the live list cannot be had; the first is the
    # default choice (cheap and good).
    default_models = (
        "gpt-4o-mini",
        "gpt-4.1-mini",
        "gpt-4.1",
        "gpt-4o",
        "gpt-5-mini",
        "gpt-5",
        "o4-mini",
    )
    # OpenAI itself wants max_completion_tokens (its reasoning models reject max_tokens).
    max_tokens_param: ClassVar[str] = "max_completion_tokens"

    # -- pure parts ----------------------------------------------------------------------

    @staticmethod
    def _map_messages(
        messages: Sequence[Mapping[str, str]], system_prompt: str = ""
    ) -> list[dict[str, str]]:
        """OpenAI's own shape: the options' system prompt as the first system message."""
        return with_system_prompt(messages, system_prompt)

    def _build_request(
        self, messages: Sequence[Mapping[str, str]], model: str, options: ChatOptions
    ) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create``."""
        request: dict[str, Any] = {
            "model": model,
            "messages": self._map_messages(messages, options.system_prompt),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if options.temperature is not None and self._accepts_temperature(model):
            request["temperature"] = options.temperature
        if options.max_tokens is not None:
            request[self.max_tokens_param] = options.max_tokens
        return request

    def _accepts_temperature(self, model: str) -> bool:
        return accepts_temperature(model)

    def _keep_model(self, model_id: str) -> bool:
        return is_chat_model(model_id)

    # -- the client ----------------------------------------------------------------------

    def _resolved_base_url(self) -> str:
        return self.base_url or OPENAI_API_URL

    def _client(self) -> AsyncOpenAI:
        if self.missing_packages():
            raise NotConfiguredError(
                f"Python package missing: install it with {self.install_hint}", provider=self.label
            )
        return _client_for(self._sdk_api_key(), self._resolved_base_url(), self.timeout)

    def _sdk_api_key(self) -> str:
        if not self.api_key:
            raise NotConfiguredError(f"no API key: set {self.api_key_setting}", provider=self.label)
        return self.api_key

    # -- the calls -----------------------------------------------------------------------

    async def _stream(
        self, messages: list[dict[str, str]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        request = self._build_request(messages, model, options)
        client = self._client()
        try:
            stream = await client.chat.completions.create(**request)
        except Exception as e:
            raise self._map_error(e) from e
        finish_reason: str | None = None
        usage: Usage | None = None
        got_text = False
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(
                        input_tokens=chunk.usage.prompt_tokens or 0,
                        output_tokens=chunk.usage.completion_tokens or 0,
                    )
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    text = choice.delta.content if choice.delta is not None else None
                    if text:
                        got_text = True
                        yield TextDelta(text)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
        except Exception as e:
            raise self._map_error(e) from e
        finally:
            await stream.close()
        if finish_reason is None and not got_text:
            raise UnavailableError("the reply was empty", provider=self.label)
        if usage is not None:
            yield usage
        reason = finish_reason or "stop"
        yield Finish(_FINISH_REASONS.get(reason, reason))

    async def fetch_models(self) -> list[str]:
        client = self._client()
        try:
            page = await client.models.list()
            ids = [model.id async for model in page]
        except Exception as e:
            raise self._map_error(e) from e
        return sorted({model_id for model_id in ids if model_id and self._keep_model(model_id)})

    # -- errors --------------------------------------------------------------------------

    def _map_error(self, error: Exception) -> ProviderError:
        """The ProviderError for an SDK (or stream parsing) error; never holds the key."""
        import httpx2
        import openai

        if isinstance(error, ProviderError):
            return error
        if isinstance(error, openai.APITimeoutError):
            return ProviderTimeoutError(
                f"no answer from {self._host()} within {self.timeout:g} s", provider=self.label
            )
        if isinstance(error, openai.APIConnectionError):
            if isinstance(error.__cause__, httpx2.ConnectError):
                message = f"could not connect to {self._host()}"
            else:
                message = f"the connection to {self._host()} was lost"
            return UnavailableError(message, provider=self.label)
        if isinstance(error, openai.APIStatusError):
            return self._status_error(error)
        if isinstance(error, openai.APIError):  # an error event inside the stream
            return UnavailableError(self._redact(_error_message(error)), provider=self.label)
        if isinstance(error, json.JSONDecodeError):
            return UnavailableError("the reply could not be read", provider=self.label)
        return UnavailableError(
            self._redact(clean_upstream_message(str(error))) or type(error).__name__,
            provider=self.label,
        )

    def _status_error(self, error: Any) -> ProviderError:
        status: int = error.status_code
        retry_after = parse_retry_after(dict(error.response.headers))
        if status == 401:
            # OpenAI's 401 message quotes part of the key: say what to do instead.
            return AuthenticationError(
                f"invalid API key (check {self.api_key_setting})",
                provider=self.label,
                status_code=status,
            )
        message = self._redact(_error_message(error))
        if status == 404 and not _is_model_error(error, message):
            return BadRequestError(
                f"{message or 'not found'} (check the base URL {self._resolved_base_url()})",
                provider=self.label,
                status_code=status,
            )
        if status == 404:
            return ModelNotFoundError(message, provider=self.label, status_code=status)
        return error_for_status(status, message, provider=self.label, retry_after=retry_after)

    def _redact(self, text: str) -> str:
        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "[redacted]")
        return text

    def _host(self) -> str:
        url = self._resolved_base_url()
        return url.split("://", 1)[-1].split("/", 1)[0] or url


def _error_message(error: Any) -> str:
    """The upstream's own message: ``{"error": {"message": ...}}`` (the SDK keeps the
    inner object as ``body``) or a plain-text body."""
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return clean_upstream_message(message)
        detail = body.get("detail") or body.get("error")
        if isinstance(detail, str) and detail.strip():
            return clean_upstream_message(detail)
    if isinstance(body, str) and body.strip():
        return clean_upstream_message(body)
    return ""


def _is_model_error(error: Any, message: str) -> bool:
    code = getattr(error, "code", None) or ""
    return code == "model_not_found" or "model" in message.lower()


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible endpoint: Ollama, vLLM, LM Studio, the llama.cpp server,
    OpenRouter, Groq, DeepSeek... ``register_openai_compatible`` makes one subclass per
    endpoint, with its ``label``, ``endpoint_config`` and ``api_key_setting``."""

    label = "OpenAI-compatible"
    requires_api_key = False
    api_key_setting = ""
    install_hint = "pip install openai"
    default_models = ()
    # Most compatible servers know only the older name.
    max_tokens_param = "max_tokens"
    endpoint_config: ClassVar[Mapping[str, Any]] = {}

    @property
    def _setting_prefix(self) -> str:
        return self.name.upper().replace("-", "_")

    def _resolved_base_url(self) -> str:
        return self.base_url or ""

    def _sdk_api_key(self) -> str:
        return self.api_key or KEY_PLACEHOLDER

    def _client(self) -> AsyncOpenAI:
        if not self.base_url:
            raise NotConfiguredError(
                f"no base URL: set {self._setting_prefix}_BASE_URL", provider=self.label
            )
        return super()._client()

    def _accepts_temperature(self, model: str) -> bool:
        return True  # a compatible server's own business

    def _keep_model(self, model_id: str) -> bool:
        return True

    def _status_error(self, error: Any) -> ProviderError:
        if error.status_code == 401:
            setting = self.api_key_setting or f"{self._setting_prefix}_API_KEY"
            reason = "invalid API key" if self.api_key else "this server needs an API key"
            return AuthenticationError(
                f"{reason} (check {setting})", provider=self.label, status_code=401
            )
        return super()._status_error(error)

    def validate_config(self) -> bool:
        return bool(self.base_url) and super().validate_config()

    def status(self) -> ProviderStatus:
        if not self.missing_packages() and not self.base_url:
            return ProviderStatus(
                self.name,
                self.label,
                False,
                reason="no base URL",
                hint=f"set {self._setting_prefix}_BASE_URL",
            )
        return super().status()
