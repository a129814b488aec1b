"""Claude through Anthropic's Messages API (the ``anthropic`` SDK, 2.x).

The SDK 2.x speaks API version 2026-10-21: it sends the key as ``Authorization: Bearer``,
and that API version has no sampling parameters (``temperature``, ``top_p``, ``top_k``
are rejected with a 400 even at their default values), so a temperature is not sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from .base_provider import (
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    Message,
    ModelNotFoundError,
    NotConfiguredError,
    ProviderError,
    ProviderTimeoutError,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    error_for_status,
    merge_consecutive,
    parse_retry_after,
    split_system,
)

logger = logging.getLogger(__name__)

# Anthropic requires max_tokens. Current models think before they answer (adaptive
# thinking) and the thinking counts against max_tokens, so the default leaves room for
# both; every current model accepts at least 64K.
DEFAULT_MAX_TOKENS = 16_000

# The Messages API wants the first turn to be the user's. A conversation that opens with
# an assistant turn (a greeting the app showed) keeps that turn, after this stand-in user
# turn: dropping it would lose what the user's next message answers ("What's your name?").
OPENING_USER_TURN = "[conversation start]"

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}

# The HTTP status of each error type, for errors that arrive inside a 200 stream.
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _map_messages(
    messages: Sequence[Message], system_prompt: str = ""
) -> tuple[str, list[dict[str, str]]]:
    """OpenAI-shaped messages -> (system text, Anthropic turns). System messages go to the
    separate ``system`` field; blank turns are dropped (the API rejects empty text);
    consecutive same-role turns are merged (the API wants alternation); a leading
    assistant turn gets ``OPENING_USER_TURN`` before it."""
    system, turns = split_system(messages, system_prompt)
    turns = merge_consecutive([t for t in turns if t["content"].strip()])
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    return system, turns


def _build_request(messages: Sequence[Message], model: str, options: ChatOptions) -> dict[str, Any]:
    """The keyword arguments of ``client.messages.create`` (without ``stream``).
    ``options.temperature`` is not sent: API version 2026-10-21 rejects it."""
    system, turns = _map_messages(messages, options.system_prompt)
    if not turns:
        raise BadRequestError("there is no message to answer")
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": options.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        request["system"] = system
    return request


def _finish_reason(stop_reason: str | None) -> str:
    if not stop_reason:
        return "stop"
    return _FINISH_REASONS.get(stop_reason, stop_reason)


class AnthropicProvider(BaseProvider):
    """Claude models (Anthropic's Messages API), streamed."""

    label = "Anthropic"
    api_key_setting = "ANTHROPIC_API_KEY"
    required_packages = ("anthropic",)
    install_hint = "pip install anthropic"
    default_models = ("claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5")
    # The API has no temperature any more (see the module docstring); the UI may hide it.
    supports_temperature: ClassVar[bool] = False

    def _client(self) -> Any:
        """A fresh SDK client: its connection pool belongs to the running event loop, and
        ``get_response`` runs each call in its own loop. The SDK's retries are off, as
        ``BaseProvider.stream`` retries."""
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
        )

    async def _stream(
        self, messages: list[dict[str, str]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        import anthropic
        import httpx2

        request = _build_request(messages, model, options)
        client = self._client()
        input_tokens = output_tokens = 0
        stop_reason: str | None = None
        finished = False
        try:
            stream = await client.messages.create(**request, stream=True)
            # The context manager closes the HTTP response however we leave: end of
            # stream, error, or the consumer stopping (aclose / cancellation).
            async with stream:
                async for event in stream:
                    if event.type == "message_start":
                        usage = getattr(event.message, "usage", None)
                        input_tokens = _total_input_tokens(usage)
                        output_tokens = getattr(usage, "output_tokens", None) or 0
                    elif event.type == "content_block_delta":
                        # Only text reaches the reply: thinking and signatures do not.
                        if event.delta.type == "text_delta" and event.delta.text:
                            yield TextDelta(event.delta.text)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        # Its usage is cumulative; input_tokens only in newer replies.
                        usage = getattr(event, "usage", None)
                        output_tokens = getattr(usage, "output_tokens", None) or output_tokens
                        if getattr(usage, "input_tokens", None) is not None:
                            input_tokens = _total_input_tokens(usage)
                    elif event.type == "message_stop":
                        finished = True
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self._map_error(e, model=model) from e
        except ValueError as e:  # an event that is not JSON
            raise UnavailableError("the service sent a malformed reply", provider=self.label) from e
        finally:
            await client.close()
        if not finished:
            raise UnavailableError("the reply was cut off", provider=self.label)
        yield Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        yield Finish(_finish_reason(stop_reason))

    async def fetch_models(self) -> list[str]:
        """Model ids from ``GET /v1/models`` (newest first), without retired ones."""
        import anthropic
        import httpx2

        if not self.api_key:
            raise NotConfiguredError(f"no API key: set {self.api_key_setting}", provider=self.label)
        client = self._client()
        try:
            return [
                model.id
                async for model in client.models.list(limit=1000)
                if getattr(model, "lifecycle", None) != "retired"
            ]
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self._map_error(e) from e
        finally:
            await client.close()

    def _map_error(self, e: BaseException, *, model: str = "") -> ProviderError:
        """The ProviderError for an SDK (or transport) exception."""
        import anthropic
        import httpx2

        if isinstance(e, anthropic.APIStatusError):
            status = e.status_code
            error_type = e.type if isinstance(e.type, str) else None
            if status < 400:  # an ``error`` event inside a 200 stream
                status = _STATUS_OF_ERROR_TYPE.get(error_type or "", 529)
            message = e.api_message if isinstance(e.api_message, str) else ""
            if status == 401:
                message = ""  # the default "invalid API key"; never echo key details
            retry_after = parse_retry_after(e.response.headers)
            error = error_for_status(status, message, provider=self.label, retry_after=retry_after)
            if isinstance(error, ModelNotFoundError) and model:
                error = ModelNotFoundError(
                    f"unknown model {model!r}", provider=self.label, status_code=status
                )
            return error
        if isinstance(e, (anthropic.APITimeoutError, httpx2.TimeoutException)):
            return ProviderTimeoutError(provider=self.label)
        if isinstance(e, anthropic.APIConnectionError):
            return UnavailableError("could not reach the service", provider=self.label)
        if isinstance(e, httpx2.TransportError):  # while reading the stream
            return UnavailableError("the connection dropped mid-reply", provider=self.label)
        return UnavailableError(provider=self.label)


def _total_input_tokens(usage: Any) -> int:
    """Input tokens including the cached ones (the API reports them apart)."""
    return sum(
        getattr(usage, name, None) or 0
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
