"""Mistral AI through the official ``mistralai`` SDK (3.x).

Wire format: ``POST /v1/chat/completions`` with ``stream: true`` answers Server-Sent
Events in the OpenAI chunk shape, usage in the last chunk, then ``data: [DONE]``. The
SDK is imported inside the functions that use it, so this module imports without it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from .base_provider import (
    BaseProvider,
    ChatOptions,
    Finish,
    Message,
    ModelNotFoundError,
    ProviderError,
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

logger = logging.getLogger(__name__)

# Mistral's finish reasons in our words; "error" is not a finish but a failure.
_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",
    "tool_calls": "tool_calls",
}


def _map_messages(messages: Sequence[Message], system_prompt: str = "") -> list[dict[str, str]]:
    """OpenAI-shaped messages for Mistral: the options' system prompt first. Assistant
    turns without text are dropped (Mistral rejects them)."""
    return [
        m
        for m in with_system_prompt(messages, system_prompt)
        if m["role"] != "assistant" or m["content"].strip()
    ]


def _build_request(messages: Sequence[Message], model: str, options: ChatOptions) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.stream_async``."""
    request: dict[str, Any] = {
        "model": model,
        "messages": _map_messages(messages, options.system_prompt),
    }
    if options.temperature is not None:
        request["temperature"] = float(options.temperature)
    if options.max_tokens is not None:
        request["max_tokens"] = options.max_tokens
    return request


def _delta_text(content: Any) -> str:
    """The reply text in a delta: a string, or the text chunks of a list (reasoning
    models send "thinking" chunks too, which are not part of the reply)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            chunk.text
            for chunk in content
            if getattr(chunk, "type", None) == "text" and isinstance(chunk.text, str)
        )
    return ""


def _upstream_message(body: str) -> tuple[str, str]:
    """The message and error type from a Mistral error body, e.g.
    ``{"object": "error", "message": "Invalid model: x", "type": "invalid_model"}`` or
    a 422's ``{"detail": [{"loc": [...], "msg": "..."}]}``."""
    try:
        data = json.loads(body or "")
    except ValueError:  # an HTML page from a proxy, say: the default message reads better
        return "", ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    error_type = data.get("type") if isinstance(data, dict) else None
    return _readable(data), error_type if isinstance(error_type, str) else ""


def _readable(value: Any) -> str:
    """The human part of an error value: its message, detail or msg fields."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("message", "detail", "msg"):
            if value.get(key):
                return _readable(value[key])
        return ""
    if isinstance(value, list):
        return "; ".join(filter(None, (_readable(item) for item in value)))
    return "" if value is None else str(value)


class MistralProvider(BaseProvider):
    """Mistral AI chat completions, streamed."""

    label: ClassVar[str] = "Mistral AI"
    api_key_setting: ClassVar[str] = "MISTRAL_API_KEY"
    required_packages: ClassVar[tuple[str, ...]] = ("mistralai",)
    install_hint: ClassVar[str] = "pip install mistralai"
    default_models: ClassVar[tuple[str, ...]] = (
        "mistral-large-latest",
        "mistral-medium-latest",
        "mistral-small-latest",
        "magistral-medium-latest",
        "codestral-latest",
        "ministral-8b-latest",
        "ministral-3b-latest",
    )

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        """An SDK client for one call, its own retries off. The HTTP clients share one
        TLS context (building one costs tens of milliseconds) and close on exit."""
        import httpx2
        from mistralai.client import Mistral
        from mistralai.client.utils import BackoffStrategy, RetryConfig

        server_url = None
        if self.base_url:
            # The SDK's paths start with /v1; accept a base URL given with it too.
            server_url = self.base_url.rstrip("/").removesuffix("/v1")
        tls = _tls_context()
        async_http = httpx2.AsyncClient(verify=tls, follow_redirects=True)
        sync_http = httpx2.Client(verify=tls, follow_redirects=True)  # unused; the SDK wants one
        try:
            yield Mistral(
                api_key=self.api_key,
                server_url=server_url,
                client=sync_http,
                async_client=async_http,
                timeout_ms=int(self.timeout * 1000),
                retry_config=RetryConfig("none", BackoffStrategy(0, 0, 1.0, 0), False),
            )
        finally:
            sync_http.close()
            await async_http.aclose()

    async def _stream(
        self, messages: list[dict[str, str]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        request = _build_request(messages, model, options)
        finish: str | None = None
        usage: Usage | None = None
        try:
            async with self._client() as client:
                stream = await client.chat.stream_async(**request)
                async with stream:  # closes the HTTP response when the consumer stops
                    async for event in stream:
                        chunk = event.data
                        if chunk.usage is not None:
                            usage = Usage(
                                input_tokens=chunk.usage.prompt_tokens or 0,
                                output_tokens=chunk.usage.completion_tokens or 0,
                            )
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        text = _delta_text(choice.delta.content)
                        if text:
                            yield TextDelta(text)
                        if choice.finish_reason:
                            finish = str(choice.finish_reason)
        except _sdk_errors() as e:
            mapped = self._map_error(e)
            if finish is None or finish == "error":
                raise mapped from e
            # The reply was whole; only the end of the stream ([DONE]) got lost.
            logger.info("%s: stream ended uncleanly after its finish (%s)", self.name, mapped.kind)
        if finish is None:
            raise UnavailableError("the reply ended before it was complete", provider=self.label)
        if finish == "error":
            raise UnavailableError("the model failed while answering", provider=self.label)
        if usage is not None:
            yield usage
        yield Finish(_FINISH_REASONS.get(finish, finish))

    async def fetch_models(self) -> list[str]:
        """Ids of the chat models this key may use, sorted."""
        try:
            async with self._client() as client:
                listing = await client.models.list_async()
        except _sdk_errors() as e:
            raise self._map_error(e) from e
        ids = {
            card.id
            for card in listing.data or ()
            if isinstance(getattr(card, "id", None), str)
            and getattr(getattr(card, "capabilities", None), "completion_chat", False)
        }
        return sorted(ids)

    def _map_error(self, e: BaseException) -> ProviderError:
        """The ProviderError for an SDK or transport exception."""
        import httpx2
        from mistralai.client.errors import MistralError

        if isinstance(e, ProviderError):
            return e
        if isinstance(e, MistralError):
            if e.status_code < 400:  # a 200 stream with a chunk the SDK cannot read
                return UnavailableError("the reply was malformed", provider=self.label)
            message, error_type = _upstream_message(e.body)
            if e.status_code == 400 and error_type == "invalid_model":
                return ModelNotFoundError(
                    clean_upstream_message(message), provider=self.label, status_code=400
                )
            return error_for_status(
                e.status_code,
                message,
                provider=self.label,
                retry_after=parse_retry_after(e.headers),
            )
        if isinstance(e, httpx2.TimeoutException):
            return ProviderTimeoutError(provider=self.label)
        if isinstance(e, httpx2.ConnectError):
            return UnavailableError("could not connect", provider=self.label)
        if isinstance(e, httpx2.TransportError):
            return UnavailableError("the connection was lost", provider=self.label)
        return UnavailableError(
            clean_upstream_message(str(e)) or type(e).__name__, provider=self.label
        )


def _sdk_errors() -> tuple[type[BaseException], ...]:
    """What the SDK and its HTTP client raise (imported only when an error happens)."""
    import httpx2
    from mistralai.client.errors import MistralError, NoResponseError

    return (MistralError, NoResponseError, httpx2.HTTPError)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS context httpx would build, built once per process."""
    import httpx2

    return httpx2.create_ssl_context()
